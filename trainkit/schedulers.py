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


# --------------------------------------------------------------------------- a longer resume
# The scheduler attribute that holds each schedule's length (resume.stretch_horizon sets its config key).
HORIZON_ATTRS = {"CosineAnnealingLR": "T_max", "OneCycleLR": "total_steps", "WarmupCosine": "max_epochs",
                 "PolynomialLR": "total_iters"}


def resume_schedule(scheduler: Any, fresh: dict[str, Any], stored: dict[str, Any], optimizer: Any, reached: int) -> str | None:
    """Continue a schedule from a checkpoint; rebuilt for a new horizon when trainer.epochs grew.

    `fresh` is the state of the scheduler as just built for this run's config (its new horizon); the
    optimizer already holds the checkpoint's state. An unchanged horizon loads the stored state, so
    the run continues bit for bit. A longer one would keep the old horizon in that state (OneCycleLR
    raises past its last step), so the fresh schedule is stepped `reached` times (the epochs or steps
    already trained): the rest of the run follows the schedule the new length gives, from where it is.
    Returns the line that says so, or None.
    """
    name = type(scheduler).__name__
    attr = HORIZON_ATTRS.get(name)
    if attr is None or stored.get(attr) is None or stored.get(attr) == fresh.get(attr):
        scheduler.load_state_dict(stored)
        return None
    import warnings

    scheduler.load_state_dict(fresh)
    for group, lr in zip(optimizer.param_groups, fresh["_last_lr"], strict=True):
        group["lr"] = lr
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": replaying, on purpose
        warnings.simplefilter("ignore")
        for _ in range(reached):
            scheduler.step()
    lr = scheduler.get_last_lr()[0]
    return (f"scheduler {name}: {attr} {stored[attr]} -> {fresh[attr]} for the new trainer.epochs; rebuilt for "
            f"the new horizon and moved to where the run is ({reached} {'steps' if name == 'OneCycleLR' else 'epochs'}"
            f" done, lr {lr:.4g})")
