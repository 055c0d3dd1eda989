"""The task skeleton: how a batch becomes model outputs, a loss and metric sums; the task table.

The loop only calls `task.loss_and_sums`; it never asks which loss or model it holds. Metric sums
stay on the device (no host sync per step; `trainkit.sums` adds them up every few steps) and become
metrics once per epoch in `task.finalize`. `task.step` is the same for one batch, its loss summed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainkit.errors import ConfigError
from trainkit.sums import settle

Batch = tuple[torch.Tensor, ...]


class Task:
    """Base task: inputs are batch[0], targets batch[1]; subclasses say what is measured."""

    name = "task"
    #: metric names that `finalize` returns besides `loss`
    metrics: tuple[str, ...] = ()
    #: losses this task can feed, by class name; empty means any
    losses: tuple[str, ...] = ()

    def __init__(self, out_features: int | None = None) -> None:
        self.out_features = out_features

    def step(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward one batch; return the mean loss and detached per-batch sums (the loss summed over the batch)."""
        loss, stats = self.loss_and_sums(model, criterion, batch)
        sums = settle(stats)
        sums["loss"] = loss.detach() * len(batch[0])
        return loss, sums

    def loss_and_sums(
        self, model: nn.Module, criterion: nn.Module, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """What a task computes: forward, the mean loss, and its statistics' sums (what `finalize` reads)."""
        x, y = batch[0], batch[1]
        out = model(x)
        loss = criterion(out, y)
        return loss, self.batch_sums(out.detach(), y)  # detached: no autograd bookkeeping, cheaper than no_grad()

    def batch_sums(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def finalize(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn summed statistics (read from the device once, plus the host-side `count`) into metrics."""
        n = max(sums.get("count", 0.0), 1.0)
        metrics = {"loss": sums.get("loss", float("nan")) / n}
        if "correct" in sums:  # tasks that count right answers per sample report accuracy
            metrics["acc"] = sums["correct"] / n
        return metrics

    def check_criterion(self, criterion: nn.Module) -> None:
        """Refuse a loss this task cannot feed, listing what fits (and which task the loss fits)."""
        name = type(criterion).__name__
        if self.losses and name not in self.losses and type(criterion).__module__.startswith("torch.nn"):
            options = loss_options()
            fitting = ", ".join(options.get(loss, loss) for loss in self.losses)
            option = options.get(name, name)
            homes = tasks_for_loss(name)
            where = f"; loss={option} fits task={' or task='.join(homes)}" if homes else ""
            first = options.get(self.losses[0], self.losses[0])
            raise ConfigError(
                f"loss={option} ({name}) does not fit task={self.name}; losses that fit task={self.name}: {fitting}"
                f"{where} (a loss picks its task by itself: loss={first} alone selects task={self.name})"
            )

    def check_batch(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Run one batch forward (eval mode, no grad) and turn shape mismatches into a clear error."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                try:
                    out = model(batch[0])
                except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # the message `trainkit check` gives
                    raise ConfigError(
                        f"the model cannot take the input batch {list(batch[0].shape)}: {str(exc).splitlines()[0]}; "
                        "check the model's sizes against data.input_shape"
                    ) from exc
                self.check_output(out, batch[1])
                try:
                    _, sums = self.step(model, criterion, batch)
                except (RuntimeError, ValueError, IndexError) as exc:
                    raise ConfigError(
                        f"loss {type(criterion).__name__} cannot take the model output {list(out.shape)} with "
                        f"targets {list(batch[1].shape)} under task={self.name} ({str(exc).splitlines()[0]}); "
                        "check model.out_features and the task"
                    ) from exc
        finally:
            model.train(was_training)
        return sums

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        pass

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        pass


#: the built-in tasks by name; trainkit.tasks fills it once every task module is imported (the
#: subclasses live in modules that import this one, so naming them here would be a circle)
TASKS: dict[str, type[Task]] = {}


_LOSS_OPTIONS: dict[str, str] = {}


def loss_options() -> dict[str, str]:
    """torch loss class -> the loss= option that builds it (for messages that say what to type).

    Read from the `_target_: torch.nn.X` line of each configs/loss/*.yaml, so a new loss option
    needs no second entry here.
    """
    if not _LOSS_OPTIONS:
        from trainkit.config import config_dir

        for path in sorted((config_dir() / "loss").glob("*.yaml")):
            for line in path.read_text().splitlines():
                if line.startswith("_target_:"):
                    _LOSS_OPTIONS[line.split(":", 1)[1].strip().rpartition(".")[2]] = path.stem
    return _LOSS_OPTIONS


def check_monitor(task: Any, sums: Any, count: int, monitor: str) -> None:
    """Refuse a trainer.monitor the run would never log, before the first step rather than after an epoch.

    `sums` are what `task.step` gave for one batch (`check_batch` returns them); the epoch's columns
    are `train_` and `val_` plus each name `task.finalize` makes of such sums.
    """
    if not isinstance(sums, dict) or monitor in ("train_time_s", "train_samples_per_s"):
        return
    names = task.finalize({**{k: float(v) for k, v in sums.items()}, "count": float(count)})
    columns = [f"{split}_{name}" for split in ("train", "val") for name in names]
    if monitor not in columns:
        raise ConfigError(f"trainer.monitor={monitor} is not a metric of this run; choose one of: {', '.join(columns)}")


def tasks_for_loss(loss_name: str) -> list[str]:
    """The task names whose `losses` include the torch loss class `loss_name`."""
    return [name for name, cls in TASKS.items() if loss_name in cls.losses]
