"""Early stopping: end training when the monitored metric has stopped improving.

`trainer.early_stopping.patience=N` stops after N epochs in a row without an improvement of more than
`trainer.early_stopping.min_delta` on `trainer.monitor` (in the direction of `trainer.monitor_mode`). The
decision is taken after the epoch's checkpoints are written, so `last.pt` is the epoch it stopped at and
`best.pt` the best one; summary.json records `stopped_early` and `stop_epoch`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class EarlyStopping:
    """Counts epochs without improvement, as Lightning's and Keras's EarlyStopping do."""

    patience: int
    min_delta: float = 0.0
    mode: str = "min"
    best: float | None = None
    wait: int = 0
    seen: int = 0

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when training should stop after this epoch."""
        self.seen += 1
        if self.improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.should_stop()

    def should_stop(self) -> bool:
        return self.wait >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """The counters (patience and min_delta come from the config, which may change on resume)."""
        return {"best": self.best, "wait": self.wait, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.seen = state.get("best"), int(state.get("wait") or 0), int(state.get("seen") or 0)

    def replay(self, values: Iterable[float]) -> None:
        """Rebuild the count from earlier epochs: a checkpoint written before the counters were saved
        resumes by reading them back from metrics.csv."""
        for value in values:
            self.update(value)


def from_config(trainer: object) -> EarlyStopping | None:
    """The run's EarlyStopping from `cfg.trainer`, or None when `early_stopping.patience` is null or absent."""
    node = getattr(trainer, "get", lambda *_: None)("early_stopping")
    patience = node.get("patience") if node is not None else None
    if patience is None:
        return None
    return EarlyStopping(
        patience=int(patience),
        min_delta=float(node.get("min_delta", 0.0) or 0.0),
        mode=str(trainer.get("monitor_mode", "min")),  # type: ignore[attr-defined]
    )
