"""The training state a checkpoint carries: counters, best value, partial sums, wall time, early stopping.

One object with `state_dict()` / `load_state_dict()`, so saving and resuming cannot forget a field.
Its keys sit at the checkpoint's top level (`epoch`, `step`, ...), where checkpoints of earlier
versions keep them, so old checkpoints still resume and `trainkit eval` still reads `epoch`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from trainkit.early_stopping import EarlyStopping


@dataclass
class LoopState:
    """Counters that a checkpoint carries so a run can continue where it stopped."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained (mid-epoch resume)
    best_value: float | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None  # val_loss of the best epoch: breaks ties of another monitor
    partial_sums: dict[str, float] = field(default_factory=dict)  # train sums of a part-trained epoch
    epoch_lr: float | None = None  # lr at the start of the current epoch (its metrics row reports it)
    stop: bool = False  # set in on_epoch_end (early stopping): fit ends after that epoch
    early_stopping: EarlyStopping | None = None  # its counters travel with the checkpoint
    earlier_time_s: float = 0.0  # wall time before the last resume
    started: float = field(default_factory=time.perf_counter)

    def improves(self, value: float, mode: str, monitor: str, val_loss: float | None) -> bool:
        """Whether an epoch with `value` of the monitor (and `val_loss`) is the new best.

        A tie on the monitor goes to the lower val_loss: accuracy moves in steps of 1/val samples, so
        on a small validation split many epochs tie, and the first of them is usually the least trained.
        Deterministic, and resumable: the best epoch's val_loss travels with the checkpoint.
        """
        if self.best_value is None:
            return True
        if value != self.best_value:
            return value < self.best_value if mode == "min" else value > self.best_value
        if monitor == "val_loss" or val_loss is None or self.best_val_loss is None:
            return False
        return val_loss < self.best_val_loss

    def elapsed(self) -> float:
        """Wall time of the run so far, across resumes."""
        return self.earlier_time_s + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        es = self.early_stopping
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "partial_sums": dict(self.partial_sums) if self.batch_in_epoch else {},
            "epoch_lr": self.epoch_lr,
            "wall_time_s": self.elapsed(),
            "early_stopping": es.state_dict() if es is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Take the counters from a checkpoint; False when it holds no early-stopping counters to take
        (written before they were saved, or by a run without early stopping): the caller replays them."""
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.batch_in_epoch = int(state.get("batch_in_epoch") or 0)
        self.best_value = state.get("best_value")
        self.best_epoch = state.get("best_epoch")
        self.best_val_loss = state.get("best_val_loss")  # None in older checkpoints: no tie-break until the next best
        self.partial_sums = dict(state.get("partial_sums") or {})
        self.epoch_lr = state.get("epoch_lr")
        self.earlier_time_s = float(state.get("wall_time_s") or 0.0)
        es_state = state.get("early_stopping")
        if self.early_stopping is not None and isinstance(es_state, dict):
            self.early_stopping.load_state_dict(es_state)
            return True
        return False
