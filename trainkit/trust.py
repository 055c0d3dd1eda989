"""Runs made here: the `_target_`s of your own runs, trusted again when you evaluate or resume them.

A run trained with your own code (a `--config-dir` model, `--allow`) stores targets the closed
allow-list (trainkit.security) refuses in a stranger's checkpoint. When `trainkit train` starts such
a run it records them in a per-user store outside every run directory (`$XDG_STATE_HOME/trainkit/
trusted-runs`, else `~/.local/state/...`): one small file named by the SHA-256 of the run directory's
resolved path and the exact config the run's checkpoints carry. A run directory someone ships can hold
any file, but not an entry in your home, so it cannot forge one; the same checkpoint copied to
another directory, or with its config edited, hashes to another name and stays untrusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from trainkit.files import atomic_write_text

#: Bumped if the key ever changes meaning: old entries then simply stop matching.
_VERSION = "trainkit-trusted-run-v1"


def store_dir(env: dict[str, str] | None = None) -> Path:
    """Where the entries live: `$XDG_STATE_HOME/trainkit/trusted-runs` (default `~/.local/state`)."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: the XDG default (a relative one is to be ignored)
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "trainkit" / "trusted-runs"


def run_dir_of(ckpt_path: str | os.PathLike[str]) -> Path:
    """The run directory a checkpoint belongs to (RUN/checkpoints/x.pt -> RUN), resolved."""
    path = Path(ckpt_path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _canonical(node: Any) -> Any:
    """The config with every key a string, so json.dumps(sort_keys=True) is one text per config."""
    if isinstance(node, dict):
        return {str(k): _canonical(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_canonical(v) for v in node]
    return node


def _key(run_dir: Path, config: dict[str, Any]) -> str:
    text = json.dumps([_VERSION, str(Path(run_dir).resolve()), _canonical(config)], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def own_targets(config: dict[str, Any]) -> list[str]:
    """The config's `_target_`s the closed allow-list would refuse in a stranger's checkpoint."""
    from trainkit.security import is_allowed, iter_targets

    found: list[str] = []
    for _, target in iter_targets(config):
        if isinstance(target, str) and target not in found and not is_allowed(target):
            found.append(target)
    return found


def record(run_dir: Path, config: dict[str, Any]) -> str | None:
    """Trust `config`'s own targets for checkpoints of `run_dir`; returns a warning line if it could not.

    Nothing is written for a run that uses only trainkit's own targets.
    """
    targets = own_targets(config)
    if not targets:
        return None
    folder = store_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = {"run_dir": str(Path(run_dir).resolve()), "targets": targets}
        atomic_write_text(folder / f"{_key(run_dir, config)}.json", json.dumps(entry, indent=1) + "\n")
    except OSError as exc:
        return (f"could not record this run's own targets as trusted in {folder} ({exc.strerror or exc}); "
                f"eval and resume of it will need --allow")
    return None


def trusted_targets(run_dir: Path, config: Any) -> list[str]:
    """The targets you trusted for exactly this config in exactly this run directory (else none).

    Only names the config itself holds are returned, so an entry can never widen what it builds.
    """
    from trainkit.security import iter_targets, plain_data_problem

    if not isinstance(config, dict) or plain_data_problem(config):  # bounded before it is hashed
        return []
    path = store_dir() / f"{_key(run_dir, config)}.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(entry, dict) or entry.get("run_dir") != str(Path(run_dir).resolve()):
        return []
    listed = entry.get("targets")
    if not isinstance(listed, list):
        return []
    present = {t for _, t in iter_targets(config) if isinstance(t, str)}
    return [t for t in listed if isinstance(t, str) and t in present]
