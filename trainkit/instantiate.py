"""`_target_` -> object: hydra's instantiate with errors that name the config key and the fix.

Below every builder (model, data, loggers), so each of them can build its group the same way.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from trainkit.errors import ConfigError, TrainkitError, closest, suggest

# Keys of a group that steer trainkit rather than being passed to the `_target_`.
RESERVED = {
    "model": ("init", "pretrained", "pretrained_prefix", "pretrained_strict", "freeze"),  # trainkit/finetune.py
    "optim": ("param_groups",),
    "scheduler": ("interval",),
    "loss": (),
    "task": ("monitor", "monitor_mode"),
}


def target_kwargs(group: str, node: DictConfig) -> dict[str, Any]:
    """The group's keys minus trainkit's own, resolved to plain data."""
    plain = OmegaConf.to_container(node, resolve=True)
    assert isinstance(plain, dict)
    for key in RESERVED.get(group, ()):
        plain.pop(key, None)
    return plain


def resolve_target(group: str, path: str) -> Any:
    # get_method takes classes and functions alike (get_class logs an error for a function).
    hydra_log = logging.getLogger("hydra.utils")  # it logs the failed import itself: our one line says it
    disabled, hydra_log.disabled = hydra_log.disabled, True
    try:
        return get_method(path)
    except Exception:
        raise ConfigError(
            f"{group}._target_={path} cannot be imported; check the spelling and that its package is installed "
            "(for a module of your own, run from its folder with PYTHONPATH=.)"
        ) from None
    finally:
        hydra_log.disabled = disabled


def check_signature(group: str, target: Any, kwargs: dict[str, Any], provided: tuple[str, ...] = ()) -> None:
    """Name a misspelt argument before the run starts, as hydra-zen's builds() does."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    bad = [key for key in kwargs if not key.startswith("_") and key not in params]
    if not bad:
        return
    takes = ", ".join(k for k in params if k not in provided and k != "self") or "none"
    name = getattr(target, "__qualname__", target)
    # A built-in option's keys stay when only _target_ changes: name every one to drop at once.
    if any(kwargs[key] is None for key in bad):  # a null key cannot be deleted with ~
        drop = f"'~{group}' '+{group}._target_=...' with the keys you need"
    else:
        drop = " ".join(f"'~{group}.{key}'" for key in bad)
    if len(bad) == 1:
        raise ConfigError(
            f"{group}.{bad[0]} is not an argument of {name}{suggest(bad[0], params)}; its arguments: {takes} "
            f"(to drop the key: {drop})"
        )
    listed = ", ".join(f"{group}.{k}" + (f" (did you mean '{c}'?)" if (c := closest(k, params)) else "") for k in bad)
    raise ConfigError(
        f"{len(bad)} keys are not arguments of {name}: {listed}; its arguments: {takes} (to drop the keys: {drop})"
    )


def instantiate_group(group: str, node: DictConfig, *args: Any, **extra: Any) -> Any:
    """Instantiate `cfg.<group>` with a clear error naming the group when it fails."""
    kwargs = target_kwargs(group, node)
    target_path = kwargs.get("_target_")
    if not target_path:
        raise ConfigError(f"{group} has no _target_; set {group}._target_=package.Class")
    target = resolve_target(group, str(target_path))
    check_signature(group, target, {k: v for k, v in kwargs.items() if k != "_target_"}, tuple(extra))
    try:
        # _convert_=all: plain lists reach the target (a ListConfig in optimizer state breaks weights_only loads).
        extra.setdefault("_convert_", "all")  # callers may pass it too (data/build.py does)
        return instantiate(kwargs, *args, **extra)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, TrainkitError):
            raise cause from exc
        reason = str(cause).splitlines()[0] if cause else str(exc).splitlines()[-1]
        raise ConfigError(f"cannot build {group} ({target_path}): {reason}") from exc
    except TrainkitError:
        raise
