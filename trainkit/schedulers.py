"""When a schedule steps (`step_schedule`), and schedules torch does not ship in one piece (warm-up then cosine)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from trainkit.errors import ConfigError


def step_schedule(scheduler: Any, interval: str, at: str, value: float | None = None) -> None:
    """Step `scheduler` when it runs per `at` ('step' or 'epoch'); ReduceLROnPlateau reads the monitored value."""
    if scheduler is None or interval != at:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(value)
    else:
        scheduler.step()


class WarmupCosine(LRScheduler):
    """lr rises linearly to the optimizer's lr over `warmup_epochs`, then follows a cosine towards `eta_min`.

    Epoch e (0-based) trains with base_lr * (e + 1) / warmup_epochs while e < warmup_epochs, then with
    eta_min + (base_lr - eta_min) * (1 + cos(pi * (e - warmup_epochs + 1) / (max_epochs - warmup_epochs + 1))) / 2.
    Closed form and plain-number state, so its state_dict loads with torch.load(weights_only=True).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_epochs: int,
        max_epochs: int,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if int(warmup_epochs) < 0 or int(max_epochs) < 1:
            raise ConfigError(
                f"scheduler.warmup_epochs={warmup_epochs} must be >= 0 and max_epochs={max_epochs} >= 1"
            )
        self.warmup_epochs = int(warmup_epochs)
        self.max_epochs = int(max_epochs)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        w = self.warmup_epochs
        if epoch < w:
            return base_lr * (epoch + 1) / w
        span = max(self.max_epochs - w + 1, 1)
        progress = min((epoch - w + 1) / span, 1.0)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]
