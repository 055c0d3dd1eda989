"""`trainer.autoresume=true`: the same command, re-run in the same directory, continues the run there.

What preemptible jobs need (a SLURM requeue, a torchrun restart, a re-submitted sweep): no `resume=`
to type. The job's directory decides: no checkpoint -> a fresh start; `checkpoints/last.pt` (or
`last.prev.pt` when last.pt is unreadable) -> continue from it, but only if the composed config is the
stored one except for the keys `resume=` lets change (resume.SAFE_KEYS), so a re-run never silently
continues another run. No torch at import (the Hydra callback in owner.py reads `requested`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainkit.errors import CheckpointError, ConfigError

KEY = "trainer.autoresume"
# Run directories that change on every re-run: nothing there to continue.
MOVING = ("${now:", "${trainkit.unique_dir:")


def requested(trainer: Any) -> bool:
    """trainer.autoresume is set in this (composed) trainer group."""
    return bool(trainer.get("autoresume")) if trainer is not None else False


def check_fixed_dir(raw_dir: str, key: str, launcher: str = "") -> None:
    """Autoresume needs a directory that a re-run finds again: refuse one named after the clock.

    A SLURM (submitit) requeue re-runs the job with its sweep directory already resolved, so a
    sweep under a submitit launcher may keep the default.
    """
    if key == "hydra.sweep.dir" and "submitit" in launcher:
        return
    if any(m in raw_dir for m in MOVING):
        raise ConfigError(
            f"{KEY}=true continues the run found in {key}, but {key}={raw_dir} is a new directory on "
            f"every start; give a fixed one, e.g. {key}=outputs/my_run"
        )


def config_diffs(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Keys whose values differ in two plain configs (a key missing or null on either side is no difference)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in a.keys() & b.keys():
            out += config_diffs(a[k], b[k], f"{prefix}{k}.")
        return out
    return [] if a == b or a is None or b is None else [prefix.rstrip(".")]


def unsafe_diffs(cfg_plain: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The differences a continued run may not have (resume's safe keys aside)."""
    from trainkit.resume import is_safe_override

    return [k for k in config_diffs(cfg_plain, stored) if not is_safe_override(k)]


def readable_last(run_dir: Path, main: bool = True) -> tuple[Path, dict[str, Any]] | None:
    """(path, checkpoint) of the newest readable last checkpoint in `run_dir`, or None when it holds none.

    A torn or corrupt last.pt falls back to last.prev.pt; the main process moves the broken file aside
    (NAME.corrupt) and makes last.pt the fallback again, as `resume=` does, so every rank of a process
    group reads the same checkpoint. A corrupt last.pt with no fallback is a CheckpointError.
    """
    from trainkit import checkpoint as ckpt_io

    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file() and not ckpt_io.previous_path(last).is_file():
        return None
    try:
        return ckpt_io.load_with_fallback(last, main)
    except CheckpointError as exc:
        raise CheckpointError(f"{KEY}=true: {exc}; move it away to start this run over, or use another hydra.run.dir") from None


def plan(cfg: Any, run_dir: Path, main: bool = True) -> tuple[Path, bool] | None:
    """(checkpoint to continue from, whether it ends the last epoch), or None to start fresh.

    Refuses a checkpoint of another run (another config) or one past trainer.epochs.
    """
    from trainkit.config import to_plain
    from trainkit.resume import check_counters

    found = readable_last(run_dir, main)
    if found is None:
        return None
    path, ckpt = found
    check_counters(ckpt, path)
    stored = ckpt.get("config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{KEY}=true: checkpoint '{path}' carries no config, so the run cannot be continued")
    diffs = unsafe_diffs(to_plain(cfg), stored)
    if diffs:
        raise ConfigError(
            f"{KEY}=true: '{run_dir}' holds a run with another config (differs in {', '.join(sorted(diffs)[:5])}); "
            "re-run its own command, or use another hydra.run.dir / hydra.sweep.dir (trainer.overwrite=true without autoresume replaces it)"
        )
    done = int(ckpt.get("epoch", 0)) + (1 if ckpt.get("batch_in_epoch") else 0)
    if int(cfg.trainer.epochs) < done:
        raise ConfigError(
            f"{KEY}=true: trainer.epochs={cfg.trainer.epochs} but the run in '{run_dir}' has already reached "
            f"epoch {done}; a continued run can only add epochs (trainer.epochs >= {done})"
        )
    return path, done >= int(cfg.trainer.epochs) and not ckpt.get("batch_in_epoch")
