"""What trainkit will instantiate from a config it did not get from the user.

A config stored in a checkpoint (for `trainkit eval`, or a resume) or read from someone else's
run directory is data written by a stranger. Hydra's `instantiate` imports and calls whatever its
`_target_` names, with whatever arguments the config gives, and Hydra says itself that its own
blocklist is not a security boundary. So before any such config reaches `instantiate` (or even
`hydra.utils.get_class`, which imports the module), `check_config_targets` walks it and refuses
every `_target_` that is not under an allowed prefix. Nothing is imported while checking: the
check only compares strings.

Allowed by default: `torch.`, `torchvision.`, `torchmetrics.`, `trainkit.`. Users add their own
packages with `--allow my_pkg.` (repeatable) or the TRAINKIT_ALLOW environment variable
(comma-separated prefixes). A handful of entry points inside the allowed packages load or run
code (torch.hub, C++ extensions, full unpickling, ...) and stay refused even so.

The integrator's resume path calls the same function:

    from trainkit.security import allowed_prefixes, check_config_targets
    check_config_targets(stored_config_dict, allowed_prefixes(cli_allow))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from trainkit.errors import ConfigError

#: Packages whose constructors a stored config may call without being asked.
DEFAULT_ALLOWED: tuple[str, ...] = ("torch.", "torchvision.", "torchmetrics.", "trainkit.")

#: Names under the allowed packages that load or execute code, write files or unpickle: always refused
#: unless the user allows that exact prefix (e.g. `--allow torch.hub.`).
DENIED: tuple[str, ...] = (
    "torch.hub.",
    "torch.load",
    "torch.save",
    "torch.serialization.",
    "torch.jit.load",
    "torch.package.",
    "torch.utils.cpp_extension.",
    "torch.utils.model_zoo.",
    "torch.ops.",
    "torch.classes.",
    "torch.library.",
    "torch.distributed.",
    "torch.multiprocessing.",
    "torch.export.load",
    "torch._",
    "torchvision.io.write_",
    "trainkit.checkpoint.",
    "trainkit.cli.",
    "trainkit.run.",
    "trainkit.security.",
)

#: Environment variable holding extra allowed prefixes, comma-separated (the persistent setting).
ENV_VAR = "TRAINKIT_ALLOW"

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def allowed_prefixes(extra: Iterable[str] = (), env: dict[str, str] | None = None) -> list[str]:
    """The default prefixes plus the user's (`--allow` values and TRAINKIT_ALLOW), validated."""
    env = os.environ if env is None else env
    user = [p.strip() for p in env.get(ENV_VAR, "").split(",") if p.strip()]
    user += [p.strip() for p in extra]
    out = list(DEFAULT_ALLOWED)
    for prefix in user:
        if not prefix or not _DOTTED.fullmatch(prefix.rstrip(".")):
            raise ConfigError(
                f"--allow {prefix!r} is not a package prefix; "
                "give a dotted module prefix such as my_pkg. or my_pkg.models."
            )
        if prefix not in out:
            out.append(prefix)
    return out


def iter_targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (config path, value) for every `_target_` in nested dicts and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield here, value
            else:
                yield from iter_targets(value, here)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from iter_targets(value, f"{path}[{i}]")


def _matches(target: str, prefix: str) -> bool:
    # "my_pkg." allows my_pkg.x; "my_pkg" (no dot) allows my_pkg and my_pkg.x but not my_pkg_evil.
    if prefix.endswith("."):
        return target.startswith(prefix)
    return target == prefix or target.startswith(prefix + ".")


def is_allowed(target: str, allow: Sequence[str]) -> bool:
    """True when `target` is under an allowed prefix and not a refused entry point."""
    if not isinstance(target, str) or not _DOTTED.fullmatch(target):
        return False
    if not any(_matches(target, p) for p in allow):
        return False
    user_extra = [p for p in allow if p not in DEFAULT_ALLOWED]
    for denied in DENIED:
        if not target.startswith(denied):
            continue
        if not any(_matches(target, p) and len(p) >= len(denied) for p in user_extra):
            return False
    return True


def check_config_targets(
    cfg_plain: dict[str, Any], allow: Sequence[str] = DEFAULT_ALLOWED, source: str = "the stored config"
) -> None:
    """Refuse (ConfigError, exit 2) any `_target_` in `cfg_plain` outside `allow`; import nothing.

    `cfg_plain` must be plain python data with interpolations already resolved (a `${...}` left
    in a `_target_` could resolve to anything later, so it is refused too). `source` names where
    the config came from in the message, e.g. "checkpoint 'runs/x/checkpoints/best.pt'".
    """
    bad: list[str] = []
    for where, target in iter_targets(cfg_plain):
        if target is None:
            continue  # a disabled group (scheduler: none) carries _target_: null
        if not is_allowed(target, allow):
            bad.append(f"{where}={target}")
    if bad:
        first = bad[0].split("=", 1)[1]
        package = first.split(".")[0] + "." if isinstance(first, str) and _DOTTED.fullmatch(first) else None
        how = (
            f"if you trust it, rerun with --allow {package} (or set {ENV_VAR}={package})"
            if package
            else "a _target_ must be a dotted import path"
        )
        raise ConfigError(
            f"{source} names code trainkit does not run without your say-so: {', '.join(bad)} "
            f"(allowed: {', '.join(allow)}); nothing was imported; {how}"
        )


def check_stored_config(
    cfg: Any, allow: Sequence[str] = DEFAULT_ALLOWED, source: str = "the stored config"
) -> None:
    """`check_config_targets` for a DictConfig: resolve interpolations first, as instantiate would."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        try:
            plain = OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # a broken or hostile interpolation: refuse rather than guess
            first = " ".join(str(exc).split())[:200]
            raise ConfigError(f"{source} cannot be resolved ({first}); nothing was imported") from None
    else:
        plain = cfg
    if not isinstance(plain, dict):
        raise ConfigError(f"{source} is not a mapping of config groups")
    check_config_targets(plain, allow, source)
