"""Compose the run config with Hydra and turn every config mistake into a one-line error.

No torch here: `trainkit ls`, `show` and the pre-flight check of `train` must start instantly.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainkit.errors import ConfigError, closest
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
        bad = _first_line(text)
        return ConfigError(
            f"cannot parse override: {bad}; write overrides as key=value, lists as key=[a,b], "
            "and quote values with spaces or special characters"
        )
    if "Multirun" in text or "sweep" in text.lower() and "override" in text.lower():
        return ConfigError(f"{_first_line(text)}; add -m (--multirun) to sweep over several values")
    if "Missing mandatory value" in text:
        full = re.search(r"full_key: ([\w.\[\]]+)", text)
        key = full.group(1) if full else "?"
        return ConfigError(f"'{key}' has no value; set it on the command line, e.g. {key}=...")
    if "Primary config" in text or "Cannot find primary config" in text:
        return ConfigError(_first_line(text))
    return ConfigError(_first_line(text))


def _type_error(text: str, overrides: Sequence[str]) -> ConfigError | None:
    """A value the schema's type refuses (trainer.epochs=abc), worded as validate words it."""
    if not re.search(r"could not be converted to \w+|Cannot assign \w+ to \w+|field '[\w.]+' is not Optional", text):
        return None
    full = re.search(r"full_key: ([\w.]+)", text) or re.search(r"field '([\w.]+)' is not Optional", text)
    if not full:
        return None
    key = full.group(1)
    value = _override_value(key, overrides)
    if value is _ABSENT:  # set in a YAML file (an experiment, --config-dir), not on the command line
        shown = re.search(r"Value '(.*?)' of type '\w+'", text)
        value = shown.group(1) if shown else "?"
    group, _, rest = key.partition(".")
    rule = RULES.get(key)
    msg = (rule(value) if rule else None) or type_phrase(group, rest) or "has the wrong type"
    return ConfigError(f"invalid config: {key}={_show(value)} {msg}")


def _override_value(key: str, overrides: Sequence[str]) -> Any:
    """The parsed value the command line gives `key`, or _ABSENT."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for ov in overrides:
        try:
            parsed = parser.parse_overrides([ov])[0]
        except Exception:
            continue
        if parsed.key_or_group.lstrip("+") == key and not parsed.is_sweep_override():
            return parsed.value()
    return _ABSENT


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


def _hint(word: str, choices: Sequence[str]) -> str:
    best = closest(word, choices)
    return f" (did you mean '{best}'?)" if best else ""


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines()[:2] if ln.strip()]
    return re.sub(r"\s*See https?://\S+ for details\.?", "", " ".join(lines))


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


# --------------------------------------------------------------------------- validation

Check = Callable[[Any], "str | None"]


def _int(minimum: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer >= {minimum}"
        return None if v >= minimum else f"must be an integer >= {minimum}"

    return check


def _positive_number(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        return "must be a positive number"
    return None


def _nonneg_number(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return "must be a number >= 0"
    return None


def _fraction(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        return "must be a fraction in [0, 1)"
    return None


def _optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def _one_of(*choices: Any) -> Check:
    shown = ", ".join(dict.fromkeys(str(c) for c in choices))

    def check(v: Any) -> str | None:
        return None if v in choices and not isinstance(v, bool) else "must be one of: " + shown

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _bool_or_auto(v: Any) -> str | None:
    return None if isinstance(v, bool) or v == "auto" else "must be true, false or auto"


def _top_k(v: Any) -> str | None:
    values = v if isinstance(v, list) else [] if v is None else [v]
    ok = all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in values)
    return None if ok else "must be an integer >= 1 or a list of them, e.g. [1,5]"


def _early_stopping(v: Any) -> str | None:
    if isinstance(v, dict):
        return None
    return f"must be a group of settings; write trainer.early_stopping.patience={v} (and optionally .min_delta)"


def _open_unit(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
    return None if ok else "must be a number between 0 and 1"


def _is_int(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _seed(v: Any) -> str | None:
    # torch.manual_seed takes at most 2**64 - 1, and the data order adds the epoch to the seed.
    return None if _is_int(v, 0) and v < 2**63 else "must be an integer in [0, 2**63)"


def _sizes(v: Any) -> str | None:
    """model.hidden / model.channels: one size or a list of them, each >= 1 (nn.Linear(-1) is a traceback)."""
    values = v if isinstance(v, list) else [v]
    return None if values and all(_is_int(s, 1) for s in values) else "must be an integer >= 1 or a list of them, e.g. [128,64]"


def _shape(v: Any) -> str | None:
    values = v if isinstance(v, list) else [v]
    return None if values and all(_is_int(s, 1) for s in values) else "must be a list of sizes >= 1, e.g. [1,8,8]"


def _betas(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v
    )
    return None if ok else "must be two numbers in [0, 1), e.g. [0.9,0.999]"


def _name(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a name, e.g. relu"


def _milestones(v: Any) -> str | None:
    ok = isinstance(v, list) and all(_is_int(m, 1) for m in v)
    return None if ok else "must be a list of epochs >= 1, e.g. [10,15]"


# Keys whose values we know; anything a group's _target_ takes is checked against its signature at build time.
RULES: dict[str, Check] = {
    "seed": _seed,
    "trainer.epochs": _int(1),
    "trainer.accumulate": _int(1),
    "trainer.grad_clip": _optional(_positive_number),
    "trainer.log_every_n_steps": _int(1),
    "trainer.monitor_mode": _one_of("min", "max"),
    "trainer.progress": _one_of("auto", "rich", "plain", "none"),
    "trainer.compile": _bool,
    "trainer.deterministic": _bool,
    "trainer.checkpoint_every_n_steps": _optional(_int(1)),
    "trainer.skip_done": _bool,
    "trainer.overwrite": _bool,
    "trainer.on_nan": _one_of("stop", "skip_batch"),
    "trainer.strategy": _one_of("auto", "ddp", "dp"),
    "data.batch_size": _int(1),
    "data.eval_batch_size": _int(1),
    "data.num_workers": _int(0),
    "data.val_fraction": _fraction,
    "data.test_fraction": _fraction,
    "data.shuffle": _bool,
    "data.drop_last": _bool,
    "data.persistent_workers": _bool,
    "data.pin_memory": _bool_or_auto,
    "data.loader": _one_of("auto", "memory", "dataloader"),
    "data.sampler": _optional(_one_of("random", "sequential", "weighted")),
    "data.memory_budget_mb": _positive_number,
    "data.download": _bool,
    "data.skip_bad_files": _bool,
    "optim.lr": _positive_number,
    "optim.momentum": _nonneg_number,
    "optim.weight_decay": _nonneg_number,
    "device.type": _one_of("auto", "cpu", "cuda", "mps"),
    "device.index": _optional(_int(0)),
    "device.precision": _one_of(32, "32", "bf16", 16, "16"),
    "scheduler.interval": _one_of("epoch", "step"),
    "trainer.early_stopping": _optional(_early_stopping),
    "trainer.early_stopping.patience": _optional(_int(1)),
    "trainer.early_stopping.min_delta": _nonneg_number,
    "metrics.enabled": _bool,
    "metrics.top_k": _top_k,
    "metrics.average": _one_of("macro", "weighted", "micro"),
    "metrics.threshold": _open_unit,
    "metrics.per_class": _bool,
    "metrics.confusion_matrix": _bool,
    # Keys of the built-in components (a mistake here was a torch traceback mid-build).
    "model.hidden": _optional(_sizes),
    "model.channels": _optional(_sizes),
    "model.in_shape": _optional(_shape),
    "model.dropout": _fraction,
    "model.activation": _name,
    "task.out_features": _optional(_int(1)),
    "optim.betas": _betas,
    "optim.eps": _nonneg_number,
    "scheduler.step_size": _int(1),
    "scheduler.gamma": _positive_number,
    "scheduler.T_max": _int(1),
    "scheduler.milestones": _milestones,
    "scheduler.warmup_epochs": _int(0),
    "scheduler.max_epochs": _int(1),
}


# Keys the run reads unconditionally: deleting one (~key) is refused here rather than failing mid-build.
REQUIRED = (
    "seed", "trainer.epochs", "trainer.accumulate", "trainer.log_every_n_steps", "trainer.monitor",
    "trainer.monitor_mode", "trainer.progress", "data.batch_size", "data.eval_batch_size",
    "data.val_fraction", "data.test_fraction", "device.type", "device.precision",
    "model", "loss", "optim", "scheduler", "task",  # whole groups: ~optim failed mid-build with a traceback
    "model._target_", "loss._target_", "optim._target_", "task._target_", "data.dataset", "data.dataset._target_",
    "data.memory_budget_mb", "data.loader", "data.num_workers", "data.shuffle", "data.drop_last",
)


def validate(cfg: DictConfig) -> None:
    """Check every known key's type and range; gather all problems into one message."""
    problems: list[str] = []
    raw = OmegaConf.to_container(cfg, resolve=False)
    missing = [k for k in REQUIRED if not _exists(raw, k)]  # present but unresolvable: _resolution_problems
    missing = [k for k in missing if not any(k.startswith(m + ".") for m in missing)]  # ~model: not model._target_ too
    if missing:
        problems.append(f"missing {', '.join(missing)} (deleted with ~?); trainkit needs them: set KEY=VALUE")
    else:
        problems = _resolution_problems(cfg)
    if problems:  # the root cause: every check below would only repeat it
        raise ConfigError("invalid config: " + "; ".join(problems))
    unset = _unset_keys(raw)  # `???`: data=tensor_file needs data.path
    if unset:
        problems.append(f"{', '.join(unset)} has no value (???); give it on the command line, e.g. {unset[0]}=...")
    for key, check in RULES.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True, default=_ABSENT)
        except Exception as exc:  # interpolation to a missing key, mandatory value, ...
            problems.append(f"{key}: {_first_line(str(exc))}")
            continue
        if value is _ABSENT or key in unset:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        msg = check(value)
        if msg:
            problems.append(f"{key}={_show(value, key)} {msg}")
    val, test = (OmegaConf.select(cfg, f"data.{k}_fraction", default=0) for k in ("val", "test"))
    if not _fraction(val) and not _fraction(test) and val + test >= 1:
        problems.append(f"data.val_fraction={val} plus data.test_fraction={test} leave no training data; keep their sum below 1")
    monitor = OmegaConf.select(cfg, "trainer.monitor", default=None)
    if monitor is not None and not re.fullmatch(r"(train|val)_\w+", str(monitor)):
        problems.append(f"trainer.monitor={monitor} must name a train_ or val_ metric, e.g. val_loss or val_acc")
    from trainkit.loggers import logger_problems  # no torch: finds missing optional packages by name

    problems += logger_problems(cfg)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


_ABSENT = object()


def _resolution_problems(cfg: DictConfig) -> list[str]:
    """Interpolations that cannot resolve (a deleted key they point to, a cycle), named by key.

    `???` values are reported by validate itself; the hydra node is Hydra's business.
    """
    problems: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            full = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix.rstrip('.')}[{key}]"
            if full == "hydra" or OmegaConf.is_missing(node, key):
                continue
            if OmegaConf.is_interpolation(node, key):
                raw = str(node._get_node(key)._value())
                try:
                    value = node[key]
                except RecursionError:
                    problems.append(f"{full}={raw} refers to itself (directly or through other keys); give it a value")
                    continue
                except Exception as exc:
                    text = _first_line(str(exc)).split(" full_key:")[0]
                    if "Missing mandatory value" in text:
                        continue  # it points to a `???`: validate names that key itself
                    if "Recursive interpolation" in text:
                        problems.append(f"{full}={raw} refers to itself (directly or through other keys); give it a value")
                    elif "not found" in text:
                        problems.append(f"{full}={raw} points to a key that does not exist ({text}); "
                                        "set that key or give this one a value")
                    else:
                        problems.append(f"{full}={raw} cannot be resolved ({text})")
                    continue
                if isinstance(value, (DictConfig, ListConfig)):
                    walk(value, full + ".")
            else:
                child = node._get_node(key)
                if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
                    walk(child, full + ".")

    walk(cfg, "")
    return problems


def _unset_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is still `???` (not resolved: an interpolation to one would raise)."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _unset_keys(v, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if node == "???" else []


def _exists(node: Any, key: str) -> bool:
    """The dotted key is in the unresolved container (its value may still be an interpolation)."""
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _show(value: Any, key: str = "") -> str:
    """The value as the user wrote it: `trainer.grad_clip=0` reads 0, not the float node's 0.0."""
    group, _, rest = key.partition(".")
    if isinstance(value, float) and value.is_integer() and type_phrase(group, rest) == "must be a number":
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


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
