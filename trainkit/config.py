"""Compose the run config with Hydra and turn every composition error into a one-line message.

The translation of Hydra's errors stays beside `compose` because it recomposes (an unknown key is
answered with the keys that do exist). The range rules and `validate` live in trainkit.rules and
are re-exported here. No torch here: `trainkit ls`, `show` and the pre-flight check of `train`
must start instantly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainkit.errors import ConfigError, closest
from trainkit.rules import ABSENT, RULES, first_line, show_value
from trainkit.rules import REQUIRED as REQUIRED  # re-exported: callers import them from here
from trainkit.rules import Check as Check
from trainkit.rules import validate as validate
from trainkit.rundir import register_resolvers
from trainkit.schema import register as register_schemas
from trainkit.schema import type_phrase

register_resolvers()  # ${trainkit.unique_dir:...} in hydra.run.dir and friends
register_schemas()  # schema/trainer, ...: the options' defaults lists name them

GROUPS = ("data", "model", "loss", "optim", "scheduler", "device", "task", "trainer", "logger")


def config_dir() -> Path:
    """The directory holding train.yaml: inside the package for a wheel, else the repo's configs/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError("trainkit's configs/ directory is missing from the installation; reinstall trainkit")


# --------------------------------------------------------------------------- composition


def compose(
    overrides: Sequence[str] = (),
    config_name: str = "train",
    user_config_dir: str | None = None,
    return_hydra_config: bool = False,
) -> DictConfig:
    """Compose `config_name` with the overrides, raising ConfigError with a precise message."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    if user_config_dir:
        overrides = [*overrides, f"hydra.searchpath=[file://{Path(user_config_dir).resolve()}]"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3", job_name="train"):
            return hydra_compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra's exceptions carry the facts; we reword them.
        raise translate_hydra_error(exc, overrides, user_config_dir) from exc
    finally:
        GlobalHydra.instance().clear()


def prepare_overrides(overrides: Sequence[str]) -> list[str]:
    """Rewrite two forms Hydra's override grammar refuses into what the user meant.

    `data.root=~/datasets`: `~` is the home directory, as in the shell (only a value that is `~` or
    starts with `~/`). `hydra.run.dir=${trainkit.unique_dir:runs/${now:%H}}`: an interpolation nested
    in a resolver's argument parses only quoted, so such a value is quoted (it still resolves).
    """
    out = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if sep and not ov.startswith("-") and (value == "~" or value.startswith("~/")):
            path = os.path.expanduser(value)
            if not re.fullmatch(r"[\w/.\-]+", path):
                path = _quote(path)
            ov = f"{key}={path}"
        elif sep and not ov.startswith("-") and value.startswith("${") and value.count("${") > 1 and "'" not in value:
            ov = f"{key}={_quote(value)}"
        out.append(ov)
    return out


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def group_options(group: str, user_config_dir: str | None = None) -> list[str]:
    """The option names available in a config group (built-in and the user's)."""
    names: set[str] = set()
    dirs = [config_dir()]
    if user_config_dir:
        dirs.append(Path(user_config_dir))
    for d in dirs:
        gdir = d / group
        if gdir.is_dir():
            names.update(p.stem for p in gdir.glob("*.yaml"))
    return sorted(names)


def translate_hydra_error(exc: Exception, overrides: Sequence[str], user_config_dir: str | None) -> ConfigError:
    """Reword a Hydra/OmegaConf composition error as one line that names the key and the fix."""
    text = _chain_text(exc)
    if "maximum recursion depth" in text:  # `key=[[[[...]]]]` hundreds deep: Hydra's parser recurses per level
        deepest = max(overrides, key=lambda o: o.count("[") + o.count("{"), default="")
        shown = deepest if len(deepest) <= 40 else deepest[:37] + "..."
        return ConfigError(
            f"'{shown}' is nested too deeply for Hydra's override parser; flatten the value, or put it in a "
            "YAML option file under --config-dir"
        )
    keyless = next((o for o in overrides if o.lstrip("+~").startswith("=")), None)
    if keyless is not None:
        return ConfigError(f"cannot parse override {keyless!r}: {explain_syntax(keyless)}")
    wrong_type = _type_error(text, overrides)
    if wrong_type is not None:
        return wrong_type
    if "LexerNoViableAltException" in text or "Error parsing override" in text or "mismatched input" in text \
            or "no viable alternative" in text or "extraneous input" in text:
        bad = _unparsable(overrides)
        if bad is not None:
            return ConfigError(f"cannot parse override {bad!r}: {explain_syntax(bad)}")
    m = re.search(r"Multiple values for ([\w/.\-]+)\.", text)
    if m:
        group = m.group(1)
        pick = next((o for o in overrides if o.startswith(f"+{group}=")), f"+{group}=...")
        return ConfigError(
            f"'{pick}': config group '{group}' already has an option; choose another with "
            f"{pick.lstrip('+')} (no leading '+'; see 'trainkit ls {group}')"
        )
    m = re.search(r"Could not find '([\w/.\-]+)/'", text)
    if m:
        group = m.group(1)
        choices = group_options(group, user_config_dir)
        return ConfigError(f"'{group}=' names no option; choose one of: {', '.join(choices)} (see 'trainkit ls {group}')")
    # Unknown option in a group: "Could not find 'optim/sgdd'" / "In 'train': Could not find 'optim/sgdd'".
    # An option inside a list (logger=[csv,tensorbord]) reads "Could not load 'logger/tensorbord'".
    m = re.search(r"Could not (?:find|load) '([\w/.\-]+)/([\w.\-]+)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        choices = group_options(group, user_config_dir)
        if choices:
            return ConfigError(
                f"unknown option '{option}' for config group '{group}'{_hint(option, choices)}; "
                f"choose one of: {', '.join(choices)} (see 'trainkit ls {group}')"
            )
    # Unknown key: "Could not override 'optim.lrr'. ... Key 'lrr' is not in struct".
    m = re.search(r"Could not override '([^']+)'", text)
    if m and ("not in struct" in text or "To append to your config" in text):
        return _unknown_key(m.group(1), overrides, user_config_dir)
    m = re.search(r"Could not delete from config\. '([^']+)' does not exist", text)
    if m:
        return _unknown_key(m.group(1), [o for o in overrides if not o.startswith("~")], user_config_dir)
    m = re.search(r"Ambiguous value for argument '([^=']+)=([^']*)'", text)
    if m:
        key, value = m.group(1), m.group(2)
        return ConfigError(
            f"'{key}={value}' is ambiguous: write {key}=[{value}] for a list, {key}='{value}' for a string, "
            "or add -m (--multirun) to sweep over the values"
        )
    if "Config group override must be a string" in text:
        # `logger=null`, `model=1`: a group takes an option name (or a list of them), not a value.
        dirs = [config_dir(), *([Path(user_config_dir)] if user_config_dir else [])]
        picks = [o for o in overrides if "=" in o and any((d / o.split("=", 1)[0].lstrip("+")).is_dir() for d in dirs)]
        for pick in picks:
            group, value = pick.lstrip("+").split("=", 1)
            if not re.fullmatch(r"[\w\-]+|\[.*\]", value) or value in ("null", "true", "false") or value.isdigit():
                return ConfigError(
                    f"'{pick}': config group '{group}' takes an option name or a list of them, "
                    f"e.g. {group}={group_options(group, user_config_dir)[0]} (see 'trainkit ls {group}')"
                )
        shown = " ".join(overrides)
        return ConfigError(f"cannot parse overrides {shown!r}: every override needs a key, as key=value")
    m = re.search(r"Key '([^']+)' is not in struct", text)
    if m:
        full = re.search(r"full_key: ([\w.\[\]]+)", text)
        return _unknown_key(full.group(1) if full else m.group(1), overrides, user_config_dir)
    if "Could not append to config" in text:
        m = re.search(r"An item is already at '([^']+)'", text)
        key = m.group(1) if m else "?"
        return ConfigError(f"key '{key}' already exists; set it with '{key}=VALUE' (no leading '+')")
    if "Error parsing override" in text or "mismatched input" in text or "no viable alternative" in text:
        bad = first_line(text)
        return ConfigError(
            f"cannot parse override: {bad}; write overrides as key=value, lists as key=[a,b], "
            "and quote values with spaces or special characters"
        )
    if "Multirun" in text or "sweep" in text.lower() and "override" in text.lower():
        return ConfigError(f"{first_line(text)}; add -m (--multirun) to sweep over several values")
    if "Missing mandatory value" in text:
        full = re.search(r"full_key: ([\w.\[\]]+)", text)
        key = full.group(1) if full else "?"
        return ConfigError(f"'{key}' has no value; set it on the command line, e.g. {key}=...")
    if "Primary config" in text or "Cannot find primary config" in text:
        return ConfigError(first_line(text))
    return ConfigError(first_line(text))


def _type_error(text: str, overrides: Sequence[str]) -> ConfigError | None:
    """A value the schema's type refuses (trainer.epochs=abc), worded as validate words it."""
    if not re.search(r"could not be converted to \w+|Cannot assign \w+ to \w+|field '[\w.]+' is not Optional", text):
        return None
    full = re.search(r"full_key: ([\w.]+)", text) or re.search(r"field '([\w.]+)' is not Optional", text)
    if not full:
        return None
    key = full.group(1)
    value = _override_value(key, overrides)
    if value is ABSENT:  # set in a YAML file (an experiment, --config-dir), not on the command line
        shown = re.search(r"Value '(.*?)' of type '\w+'", text)
        value = shown.group(1) if shown else "?"
    group, _, rest = key.partition(".")
    rule = RULES.get(key)
    msg = (rule(value) if rule else None) or type_phrase(group, rest) or "has the wrong type"
    return ConfigError(f"invalid config: {key}={show_value(value)} {msg}")


def _override_value(key: str, overrides: Sequence[str]) -> Any:
    """The parsed value the command line gives `key`, or ABSENT."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for ov in overrides:
        try:
            parsed = parser.parse_overrides([ov])[0]
        except Exception:
            continue
        if parsed.key_or_group.lstrip("+") == key and not parsed.is_sweep_override():
            return parsed.value()
    return ABSENT


def _unparsable(overrides: Sequence[str]) -> str | None:
    """The first override Hydra's grammar cannot parse on its own, or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for ov in overrides:
        try:
            parser.parse_overrides([ov])
        except Exception:
            return ov
    return None


def explain_syntax(ov: str) -> str:
    """Why one override does not parse, and how to write it (Hydra only says LexerNoViableAltException)."""
    key, sep, value = ov.partition("=")
    bare = key.lstrip("+~")
    quoted = f"{key}='{value}'"
    shell = f"(in the shell: \"{quoted}\")"
    odd = next((c for c in ov if ord(c) > 126 or (ord(c) < 32 and c != "\t")), None)
    if not ov.strip():
        return "an empty argument; remove it (check the quoting of the command line)"
    if not sep:
        return f"an override needs '=': write {bare}=VALUE to set it, or '~{bare}' to delete it"
    if not bare.strip():
        return "an override needs a key before '=', as key=value (e.g. optim.lr=0.01)"
    if not re.fullmatch(r"[A-Za-z_][\w\-]*(?:[./@][A-Za-z_][\w\-]*)*(?::[\w.\-]+)?", bare):
        where = f" (it holds {odd!r}, U+{ord(odd):04X})" if odd and odd in key else ""
        return f"'{bare}' is not a valid key{where}; keys are dotted ASCII names such as optim.lr or model"
    if odd is not None:
        return (f"{odd!r} (U+{ord(odd):04X}) may only appear inside quotes; write {quoted} {shell}, "
                "or retype it in plain ASCII if it was not meant")
    if value.count("'") % 2 or value.count('"') % 2:
        clean = f"{key}='{value.strip(chr(39) + chr(34))}'"
        return f"the value has an unmatched quote; quote the whole value: {clean} (in the shell: \"{clean}\")"
    if any(c.isspace() for c in value):
        return f"the value holds a space; quote it: {quoted} {shell}"
    if value.count("[") != value.count("]") or value.count("{") != value.count("}") or value.count("(") != value.count(")"):
        return "its brackets do not match; write lists as key=[a,b] and dicts as key={a:1}"
    if value.startswith("="):
        return f"there is one '=' too many; write {key}={value.lstrip('=')}"
    if "=" in value or value.endswith(","):
        return f"the value holds '=' or a trailing ','; quote it ({quoted}) or write a list as {key}=[a,b]"
    return ("write overrides as key=value, lists as key=[a,b], and quote values with spaces or special "
            f"characters: {quoted}")


# What people call an option that has another name: `device=gpu` means cuda (it reads closest to cpu).
_SYNONYMS = {"gpu": "cuda", "cuda0": "cuda", "nvidia": "cuda", "metal": "mps", "apple": "mps"}


def _hint(word: str, choices: Sequence[str]) -> str:
    meant = _SYNONYMS.get(word.lower())
    best = meant if meant in choices else closest(word, choices)
    return f" (did you mean '{best}'?)" if best else ""



def _chain_text(exc: BaseException) -> str:
    """The messages of an exception and its causes: Hydra puts the useful part in the cause."""
    parts, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts.append(str(cur))
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def _unknown_key(key: str, overrides: Sequence[str], user_config_dir: str | None) -> ConfigError:
    """Compose without the offending override to list the keys that do exist at that level."""
    parent, _, leaf = key.rpartition(".")
    rest = [o for o in overrides if not o.lstrip("+~").startswith(key + "=") and o.lstrip("+~").split("=")[0] != key]
    known: list[str] = []
    try:
        cfg = compose(rest, user_config_dir=user_config_dir)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig):
            known = [str(k) for k in node]
    except ConfigError:
        pass
    if leaf in known:  # it exists: Hydra's `~key` cannot delete a key whose value is null
        node_name = parent or key
        return ConfigError(
            f"cannot delete '{key}': Hydra cannot remove a key whose value is null; replace the whole node "
            f"instead ('~{node_name}' '+{node_name}._target_=...' plus the keys you need), or write your own "
            "option file under --config-dir"
        )
    best = closest(leaf, known)
    if best:
        return ConfigError(f"unknown config key '{key}'; did you mean '{parent + '.' if parent else ''}{best}'?")
    where = f" under '{parent}'" if parent else ""
    listing = f"; known keys{where}: {', '.join(known)}" if known else ""
    return ConfigError(f"unknown config key '{key}'{listing} (prefix with '+' to add a new key)")


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain python data (what checkpoints and summaries store)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


# --------------------------------------------------------------------------- sweeps


def expand_sweep(overrides: Sequence[str], limit: int = 64, user_config_dir: str | None = None) -> Iterator[list[str]]:
    """Yield the per-job override lists of a basic sweep (up to `limit`), for pre-flight checks.

    A glob over one of trainkit's config groups is expanded here as Hydra would (so its jobs are
    checked too); a glob that picks nothing, or one on a plain key, is refused (Hydra ran 0 jobs).
    """
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:  # broken syntax: the same one-line message as a single run gets
        raise translate_hydra_error(exc, overrides, None) from exc
    axes: list[list[str]] = []
    for ov in parsed:
        key = ov.get_key_element()
        if ov.is_sweep_override():
            if ov.value_type == ValueType.GLOB_CHOICE_SWEEP:
                picked = _glob_options(ov, user_config_dir)
                if picked is None:
                    return  # a glob over one of Hydra's own groups: Hydra checks it
                axes.append([f"{key}={v}" for v in picked[:limit]])
                continue
            if not ov.is_discrete_sweep():
                return  # intervals depend on the sweeper; _check_interval_sweeps refuses the basic one
            axes.append([f"{key}={v}" for v in itertools.islice(ov.sweep_string_iterator(), limit)])
        else:
            axes.append([f"{key}={ov.get_value_element_as_str()}"])
    for i, combo in enumerate(itertools.product(*axes)):
        if i >= limit:
            return
        yield list(combo)


def _glob_options(ov: Any, user_config_dir: str | None) -> list[str] | None:
    """The options of a config group a `group=glob(...)` override selects (what Hydra's sweeper runs)."""
    group = ov.key_or_group.lstrip("+")
    if group.split("/")[0] == "hydra":
        return None
    options = group_options(group, user_config_dir)
    if not options:
        raise ConfigError(
            f"'{ov.input_line}': glob() picks options of a config group, and '{group}' is not one; "
            f"list the values instead, e.g. {group}=0.1,0.01"
        )
    picked = ov.value().filter(options)
    if not picked:
        raise ConfigError(
            f"'{ov.input_line}' matches no option of config group '{group}', so the sweep would run no job; "
            f"its options: {', '.join(options)}"
        )
    return picked
