"""Run directories and per-job devices as OmegaConf resolvers (no torch, no Hydra import).

Registered when trainkit.config is imported, so every composition of trainkit's config knows them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainkit.monitor import MONITOR_MODE_RESOLVER, default_mode

# Claim directories (atomic mkdir) only when trainkit's CLI runs Hydra: resolving the config
# elsewhere (tests, `--cfg`, tools that print it) must not create directories as a side effect.
CLAIM = False


def enable_claims(on: bool = True) -> None:
    """Called by the CLI before Hydra starts a run or sweep."""
    global CLAIM
    CLAIM = on


UNIQUE_DIR_RESOLVER = "trainkit.unique_dir"
GPU_RESOLVER = "trainkit.gpu_for_job"
DIRECTION_RESOLVER = "trainkit.direction"


def claim_dir(path: str) -> str:
    """Create `path` atomically and return it, or `path_1`, `path_2`, ... if another run got there first.

    Hydra names run directories after the second they start and creates them with exist_ok=True
    (hydra issue #2925), so two runs started in the same second would share one. os.mkdir either
    creates the directory or fails: exactly one caller wins each name.
    """
    if not CLAIM:
        return path
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = p, 0
    while True:
        try:
            os.mkdir(candidate)
            return str(candidate)
        except FileExistsError:
            n += 1
            candidate = p.with_name(f"{p.name}_{n}")


def gpu_for_job(job_num: Any, gpus: Any = None) -> str:
    """The GPU a sweep job should use: job number modulo the GPUs visible ("" when there are none).

    `gpus` is a count, or a comma-separated list of ids (CUDA_VISIBLE_DEVICES's form); by default
    the CUDA_VISIBLE_DEVICES of the launching process, else the GPUs nvidia's driver lists.
    """
    ids = _gpu_ids(gpus)
    if not ids:
        return ""
    return ids[int(job_num) % len(ids)]


def _gpu_ids(gpus: Any) -> list[str]:
    if gpus is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible if visible is not None else _count_nvidia_gpus()
    if isinstance(gpus, int) and not isinstance(gpus, bool):
        return [str(i) for i in range(gpus)]
    return [g.strip() for g in str(gpus).split(",") if g.strip() and g.strip() != "-1"]


def _count_nvidia_gpus() -> int:
    """GPUs under /proc/driver/nvidia (no torch, no CUDA initialisation)."""
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return sum(1 for _ in root.iterdir())
    except OSError:
        return 0


def job_device_index(job_num: int, device_count: int) -> int | None:
    """The device.index a job of a local sweep gets when the config leaves it null (None: no GPU)."""
    if device_count <= 0:
        return None
    return int(job_num) % device_count


def sweep_direction(monitor_mode: str) -> str:
    """trainer.monitor_mode (min|max) as an Optuna study direction."""
    return "maximize" if str(monitor_mode) == "max" else "minimize"


def register_resolvers() -> None:
    """Make ${trainkit.unique_dir:...} and ${trainkit.gpu_for_job:...} available to configs.

    Cached, so a config resolves its directory once; Hydra copies the cache into each job's config.
    """
    if not OmegaConf.has_resolver(UNIQUE_DIR_RESOLVER):
        OmegaConf.register_new_resolver(UNIQUE_DIR_RESOLVER, claim_dir, use_cache=True)
    if not OmegaConf.has_resolver(DIRECTION_RESOLVER):
        OmegaConf.register_new_resolver(DIRECTION_RESOLVER, sweep_direction)
    if not OmegaConf.has_resolver(GPU_RESOLVER):
        OmegaConf.register_new_resolver(GPU_RESOLVER, gpu_for_job, use_cache=False)
    if not OmegaConf.has_resolver(MONITOR_MODE_RESOLVER):
        OmegaConf.register_new_resolver(MONITOR_MODE_RESOLVER, default_mode)


register_resolvers()
