"""Which metric picks checkpoints/best.pt when the user names none: the task's own.

Each configs/task/*.yaml names `monitor` and `monitor_mode` (classification: val_acc, max; regression:
val_rmse, min). configs/trainer/default.yaml defaults `trainer.monitor` to `task.monitor` and
`trainer.monitor_mode` to `${trainkit.monitor_mode:...}` below, so every reader of `cfg.trainer.monitor`
(best.pt, early stopping, plateau, sweeps) sees the one in force, and an explicit `trainer.monitor` wins.
No torch, no Hydra: the resolver is registered with trainkit's others (trainkit.rundir).
"""

from __future__ import annotations

from typing import Any

MONITOR_MODE_RESOLVER = "trainkit.monitor_mode"
# What a task config without `monitor` gets: trainkit's default before tasks named their own.
FALLBACK_MONITOR = "val_loss"
FALLBACK_MODE = "min"


def default_mode(monitor: Any, task_monitor: Any, task_mode: Any) -> str:
    """trainer.monitor_mode when the user sets none: the task's mode for the task's monitor, else min.

    `trainer.monitor=val_loss` on a task that monitors val_acc (max) must still minimise.
    """
    return str(task_mode) if str(monitor) == str(task_monitor) else FALLBACK_MODE


def in_force(cfg: Any, task_name: str | None = None) -> tuple[str, str, str]:
    """(monitor, mode, why) of a composed or stored config; `why` says where the monitor came from."""
    from omegaconf import OmegaConf

    monitor = str(OmegaConf.select(cfg, "trainer.monitor", default=FALLBACK_MONITOR))
    mode = str(OmegaConf.select(cfg, "trainer.monitor_mode", default=FALLBACK_MODE))
    task_monitor = OmegaConf.select(cfg, "task.monitor", default=None)
    task_mode = OmegaConf.select(cfg, "task.monitor_mode", default=FALLBACK_MODE)
    name = task_name or _task_name(cfg)
    if task_monitor is None:
        if (monitor, mode) == (FALLBACK_MONITOR, FALLBACK_MODE):
            return monitor, mode, f"trainkit's default; the {name} task names none"
        return monitor, mode, "set by trainer.monitor"
    if monitor != str(task_monitor):
        return monitor, mode, "set by trainer.monitor"
    if mode != str(task_mode):
        return monitor, mode, "set by trainer.monitor_mode"
    return monitor, mode, f"the {name} task's default"


def describe(cfg: Any, task_name: str | None = None) -> str:
    """'val_acc (max, the classification task's default)': what `trainkit show` and a run's header print."""
    monitor, mode, why = in_force(cfg, task_name)
    return f"{monitor} ({mode}, {why})"


def _task_name(cfg: Any) -> str:
    from omegaconf import OmegaConf

    target = str(OmegaConf.select(cfg, "task._target_", default="") or "")
    return target.rsplit(".", 1)[-1].lower() or "run's"
