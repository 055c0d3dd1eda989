"""What trainkit builds from a config it did not get from the user: a closed allow-list.

A config stored in a checkpoint (`trainkit eval`, `resume=`, the API) or read from someone else's
run directory is data written by a stranger, and Hydra's `instantiate` imports and calls whatever
its `_target_` names. So every such config goes through two steps before anything reads it:

1. `stored_config` turns the stored python data into a DictConfig *without resolving anything*:
   the walk is bounded (depth, node count, string size), any `${...}` interpolation or resolver
   is refused (trainkit stores configs resolved, so a legit one has none), a stored `hydra` node
   is dropped and every `download` key is set to false.
2. `check_stored_config` then checks every `_target_` (nested in dicts, lists and `_args_`) and
   every `_partial_` / `_recursive_` / `_convert_`. A target is built only if it is exactly a
   `_target_` that trainkit's own installed `configs/` names (`config_targets`), resolves to the
   very same object, or is one the user allows (`--allow NAME_OR_PREFIX`, TRAINKIT_ALLOW).
   Matching is on the resolved object: a name is resolved by importing only modules the list
   already trusts (or that are loaded already) and walking attributes, so an alias such as
   `torch.nn.modules.module.torch.load` is `torch.serialization.load` and is refused, and a
   stranger's module is never imported.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from trainkit.errors import CheckpointError, ConfigError

#: Kept for callers of the old prefix API: the user allows nothing extra by default.
DEFAULT_ALLOWED: tuple[str, ...] = ()

#: Names that load or run code, write files or unpickle: refused even under a prefix the user
#: allows, unless the user's entry names them at least as precisely (`--allow torch.hub.`).
DENIED: tuple[str, ...] = (
    "torch.hub.",
    "torch.load",
    "torch.save",
    "torch.serialization.",
    "torch.jit.load",
    "torch.package.",
    "torch.utils.cpp_extension.",
    "torch.utils.model_zoo.",
    "torch.utils.collect_env.",
    "torch.ops.",
    "torch.classes.",
    "torch.library.",
    "torch.distributed.",
    "torch.multiprocessing.",
    "torch.export.load",
    "torch._",
    "torchvision.io.write_",
    "torchvision.utils.save_image",
    "trainkit.api.",
    "trainkit.checkpoint.",
    "trainkit.cli.",
    "trainkit.job.",
    "trainkit.run.",
    "trainkit.security.",
)

#: Environment variable holding extra allowed names or prefixes, comma-separated (the persistent setting).
ENV_VAR = "TRAINKIT_ALLOW"

#: Bounds on a stored config: deeper, larger or longer is not a config trainkit wrote.
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_CHARS = 4_000_000

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_CONVERT = ("none", "partial", "object", "all")
_UNRESOLVED = object()


# --------------------------------------------------------------------------- what is allowed


@functools.cache
def config_targets(root: str | None = None) -> frozenset[str]:
    """Every `_target_` named by trainkit's own installed configs/ (Hydra's own hydra/ settings aside)."""
    import yaml

    if root is None:
        from trainkit.config import config_dir

        root = str(config_dir())
    base = Path(root)
    found: set[str] = set()
    for path in sorted(base.rglob("*.yaml")):
        if path.relative_to(base).parts[0] == "hydra":
            continue  # launchers and logging: Hydra's config, never part of a stored run config
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict):
            data.pop("hydra", None)
        for _, target in iter_targets(data):
            if isinstance(target, str):
                found.add(target)
    return frozenset(found)


def allowed_prefixes(extra: Iterable[str] = (), env: dict[str, str] | None = None) -> list[str]:
    """The user's allowed names and prefixes (`--allow` values and TRAINKIT_ALLOW), validated.

    `my_pkg.` (trailing dot) trusts everything below my_pkg; `my_pkg.Net` trusts that name (and what
    is below it, never `my_pkg.Net2` or `my_pkg_evil`).
    """
    env = os.environ if env is None else env
    user = [p.strip() for p in env.get(ENV_VAR, "").split(",") if p.strip()]
    user += [p.strip() for p in extra]
    out: list[str] = []
    for entry in user:
        if not entry or not _DOTTED.fullmatch(entry.rstrip(".")):
            raise ConfigError(
                f"--allow {entry!r} is not a package prefix or dotted name; "
                "give e.g. my_pkg. (everything in my_pkg) or my_pkg.models.Net (that one name)"
            )
        if entry not in out:
            out.append(entry)
    return out


def _matches(name: str, entry: str) -> bool:
    if entry.endswith("."):
        return name.startswith(entry)
    return name == entry or name.startswith(entry + ".")


def _denied(name: str, matched: Sequence[str]) -> bool:
    """A code-running name, unless the user's matching entry names it at least as precisely."""
    return any(name.startswith(d) and not any(len(e) >= len(d) for e in matched) for d in DENIED)


def _may_import(module: str, user: Sequence[str]) -> bool:
    """Modules the list already trusts: parents of trainkit's own targets, and what the user allows."""
    if any(t.startswith(module + ".") for t in config_targets()):
        return True
    return any(_matches(module, e) or e.startswith(module + ".") for e in user)


def _resolve(name: str, user: Sequence[str]) -> Any:
    """The object `name` denotes, importing only trusted (or already loaded) modules; else _UNRESOLVED."""
    parts = name.split(".")
    module: Any = None
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        module = sys.modules.get(module_name)
        if module is None and _may_import(module_name, user):
            try:
                module = importlib.import_module(module_name)
            except Exception:  # not a module (an attribute path), or a trusted package that fails to import
                module = None
        if module is not None:
            break
    else:
        return _UNRESOLVED
    obj = module
    for attr in parts[i:]:
        try:
            obj = getattr(obj, attr)
        except Exception:
            return _UNRESOLVED
    return obj


def _canonical(obj: Any) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if isinstance(module, str) and isinstance(qualname, str) else None


@functools.cache
def _config_object(target: str) -> Any:
    return _resolve(target, ())


def _is_config_object(obj: Any) -> bool:
    """True when `obj` is what one of trainkit's own configs names (an alias of an allowed target)."""
    leaf = getattr(obj, "__name__", None)
    if not isinstance(leaf, str):
        return False
    return any(t.rsplit(".", 1)[-1] == leaf and _config_object(t) is obj for t in config_targets())


def target_problem(target: Any, allow: Sequence[str] = ()) -> str | None:
    """Why `target` may not be built from a stored config (None: it may)."""
    if target is None:
        return None  # a disabled group (scheduler: none) carries _target_: null
    if not isinstance(target, str):
        return f"not a dotted name but a value of type {type(target).__name__}"
    if not _DOTTED.fullmatch(target):
        return "not a dotted import path"
    if target in config_targets():
        return None
    matched = [e for e in allow if _matches(target, e)]
    if not matched and any(p.startswith("_") for p in target.split(".")):
        return "a private name, not one of trainkit's configs' targets"
    obj = _resolve(target, allow)
    if obj is _UNRESOLVED:  # under a name you allow: building it reports the failed import, as for your own configs
        return None if matched and not _denied(target, matched) else "not one of the targets trainkit's configs use"
    if _is_config_object(obj) and not _denied(target, matched):
        return None
    if not matched:
        return "not one of the targets trainkit's configs use"
    canon = _canonical(obj)
    exact = target in matched  # a name the user spelled out is honoured as spelled (a re-export)
    if not exact and not (canon and any(_matches(canon, e) for e in allow)):
        return f"it is {canon or type(obj).__name__}, which you did not allow"
    if _denied(target, matched) or (canon and not exact and _denied(canon, [e for e in allow if _matches(canon, e)])):
        return "it loads or runs code; allow that exact name to build it anyway"
    if not callable(obj):
        return "not a class or function"
    return None


def is_allowed(target: Any, allow: Sequence[str] = ()) -> bool:
    """True when a stored config may build `target`."""
    return target_problem(target, allow) is None


# --------------------------------------------------------------------------- walking stored data


def iter_targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (config path, value) for every `_target_` in nested dicts and lists."""
    for where, key, value in _iter_special(node, path):
        if key == "_target_":
            yield where, value


def _iter_special(node: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, str, Any]]:
    if depth > MAX_DEPTH:
        raise ConfigError(f"the config is nested deeper than {MAX_DEPTH} levels at {path or 'its root'}")
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key in ("_target_", "_partial_", "_recursive_", "_convert_", "_args_"):
                yield here, str(key), value
            if key != "_target_":
                yield from _iter_special(value, here, depth + 1)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _iter_special(value, f"{path}[{i}]", depth + 1)


def allow_entry(target: str) -> str:
    """What `--allow` takes to trust `target`: the package of a package of the user's own, else the one name.

    Never a prefix of the standard library or of trainkit's own dependencies: `--allow os.` would trust os.system.
    """
    package = target.split(".")[0]
    shared = package in sys.stdlib_module_names or package in ("torch", "torchvision", "torchmetrics", "trainkit", "hydra",
                                                                "omegaconf", "numpy", "sklearn")
    return target if shared or "." not in target else package + "."


def _how_to_allow(target: Any) -> str:
    if not isinstance(target, str) or not _DOTTED.fullmatch(target):
        return "a _target_ must be a dotted import path such as torch.nn.Linear"
    entry = allow_entry(target)
    return f"if you trust it, rerun with --allow {entry} (or set {ENV_VAR}={entry})"


def check_config_targets(
    cfg_plain: dict[str, Any], allow: Sequence[str] = DEFAULT_ALLOWED, source: str = "the stored config"
) -> None:
    """Refuse (ConfigError, exit 2) any `_target_` of `cfg_plain` that is not allowed.

    `cfg_plain` is plain python data, already resolved. Only modules the allow-list trusts are
    imported while checking. `source` names where the config came from, e.g. "checkpoint 'x.pt'".
    """
    bad: list[tuple[str, Any, str]] = []
    for where, key, value in _iter_special(cfg_plain):
        if key == "_target_":
            problem = target_problem(value, allow)
        elif key in ("_partial_", "_recursive_"):
            problem = None if isinstance(value, bool) else "must be true or false"
        elif key == "_convert_":
            problem = None if value in _CONVERT else f"must be one of {', '.join(_CONVERT)}"
        else:  # _args_: its items are walked like any list
            problem = None if isinstance(value, list) else "must be a list"
        if problem:
            bad.append((where, value, problem))
    if bad:
        shown = "; ".join(f"{w}={_short(v)} ({p})" for w, v, p in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        first = next((v for w, v, _ in bad if w.endswith("_target_")), None)
        how = _how_to_allow(first) if first is not None else "fix or remove the key"
        raise ConfigError(
            f"{source} names code trainkit does not run without your say-so: {shown}; "
            f"nothing was imported; {how}"
        )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) and _DOTTED.fullmatch(value) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_stored_config(
    cfg: Any, allow: Sequence[str] = DEFAULT_ALLOWED, source: str = "the stored config"
) -> None:
    """`check_config_targets` for the config that will be built (after `stored_config` and overrides).

    The stored part holds no interpolation (`stored_config` refused them); what the user's overrides
    and trainkit's own config groups add is resolved here, as instantiate would.
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        try:
            plain = OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # a broken interpolation of an override: refuse rather than guess
            first = " ".join(str(exc).split())[:200]
            raise ConfigError(f"{source} cannot be resolved ({first}); nothing was imported") from None
    else:
        plain = cfg
    if not isinstance(plain, dict):
        raise ConfigError(f"{source} is not a mapping of config groups")
    check_config_targets(plain, allow, source)


def plain_data_problem(node: Any) -> tuple[str, str] | None:
    """(key, problem) for the first part of `node` that is not bounded, inert config data, else None.

    Visits every path (a pickle or YAML file can share one list many times over), so the cost is
    bounded by MAX_NODES, not by what the sharing would expand to.
    """
    budget = {"nodes": 0, "chars": 0}
    stack: list[tuple[Any, str, int]] = [(node, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        budget["nodes"] += 1
        if budget["nodes"] > MAX_NODES:
            return path or "(root)", f"has more than {MAX_NODES} entries"
        if depth > MAX_DEPTH:
            return path, f"is nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, str):
            budget["chars"] += len(value)
            if budget["chars"] > MAX_CHARS:
                return path, f"holds more than {MAX_CHARS} characters of text"
            if "${" in value:
                return path, "is an interpolation (${...}); trainkit stores configs resolved, so it was not resolved"
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    return path, f"has a key of type {type(key).__name__}"
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif value is not None and not isinstance(value, (bool, int, float)):
            return path, f"holds a {type(value).__name__}, not config data"
    return None


def stored_config(stored: Any, source: str) -> Any:
    """A checkpoint's stored config as a DictConfig: bounded, uninterpolated, downloads off, no `hydra`.

    Nothing is resolved, imported or read from the environment here; a refusal (CheckpointError: the
    file's content is at fault) names the key.
    """
    from omegaconf import OmegaConf

    if not isinstance(stored, dict):
        raise ConfigError(f"{source} is missing or not a mapping of config groups, so the model cannot be rebuilt")
    problem = plain_data_problem(stored)
    if problem:
        key, why = problem
        raise CheckpointError(
            f"{source} is not plain config data trainkit wrote: {key} {why}; nothing was resolved or imported "
            "(start a new run from your own config instead)"
        )
    data = {k: v for k, v in stored.items() if k != "hydra"}  # Hydra's settings come from your command line
    _downloads_off(data)
    try:
        return OmegaConf.create(data)
    except Exception as exc:  # e.g. a key OmegaConf cannot hold
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{source} is not plain config data trainkit wrote ({reason})") from None


def checked_config(
    stored: Any, source: str, overrides: Sequence[str], apply: Callable[[Any, list[str]], Any], allow: Sequence[str]
) -> Any:
    """What eval and resume build from a stored config: `stored_config`, the user's overrides (`apply`), checked.

    `data.download=VALUE` among the overrides applies to every `download` key of the data.
    """
    cfg = apply(stored_config(stored, source), list(overrides))
    if "data.download" in user_keys(overrides):
        set_downloads(cfg, bool(cfg.data.download))
    check_stored_config(cfg, allow, source)
    return cfg


def _downloads_off(node: Any) -> None:
    """Set every `download` key, at any depth, to false: a stored config does not fetch anything."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "download" and value is not False:
                node[key] = False
            else:
                _downloads_off(value)
    elif isinstance(node, list):
        for value in node:
            _downloads_off(value)


def set_downloads(cfg: Any, value: bool) -> None:
    """`data.download=VALUE` on the command line applies to every `download` key under `data`."""
    from omegaconf import DictConfig, ListConfig

    def walk(node: Any) -> None:
        if isinstance(node, DictConfig):
            for key in list(node.keys()):
                if key == "download":
                    node[key] = value
                else:
                    walk(node._get_node(key))
        elif isinstance(node, ListConfig):
            for i in range(len(node)):
                walk(node._get_node(i))

    walk(cfg._get_node("data") if "data" in cfg else None)


def user_keys(overrides: Iterable[str]) -> list[str]:
    """The dotted keys a user's `key=value` / `group=option` overrides set."""
    return [ov.partition("=")[0].lstrip("+~") for ov in overrides if "=" in ov and not ov.startswith("-")]
