"""Tasks: how a batch becomes model outputs, a loss and metric sums.

The loop only calls `task.step`; it never asks which loss or model it holds. Metric sums stay
on the device (no host sync per step) and become numbers once per epoch in `task.finalize`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainkit.errors import ConfigError, DataError

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
        """Forward one batch; return the mean loss and detached per-batch metric sums."""
        x, y = batch[0], batch[1]
        out = model(x)
        loss = criterion(out, y)
        sums = self.batch_sums(out.detach(), y)  # detached: no autograd bookkeeping, cheaper than no_grad()
        sums["loss"] = loss.detach() * len(y)
        return loss, sums

    def batch_sums(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def finalize(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn summed statistics (read from the device once, plus the host-side `count`) into metrics."""
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums.get("loss", float("nan")) / n}

    def check_criterion(self, criterion: nn.Module) -> None:
        """Refuse a loss this task cannot feed, listing what fits."""
        name = type(criterion).__name__
        if self.losses and name not in self.losses and type(criterion).__module__.startswith("torch.nn"):
            raise ConfigError(
                f"loss {name} does not fit task={self.name}; losses that fit: {', '.join(self.losses)} "
                "(or pick the task that fits the loss: see 'trainkit ls task')"
            )

    def check_batch(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> None:
        """Run one batch forward and turn shape mismatches into a clear error."""
        with torch.no_grad():
            out = model(batch[0])
            self.check_output(out, batch[1])
            try:
                criterion(out, batch[1])
            except (RuntimeError, ValueError, IndexError) as exc:
                raise ConfigError(
                    f"loss {type(criterion).__name__} cannot take the model output {list(out.shape)} with targets "
                    f"{list(batch[1].shape)} ({str(exc).splitlines()[0]}); check model.out_features and the task"
                ) from exc

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        pass

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        pass


class Classification(Task):
    """Class logits (N, C) against integer labels in [0, C); reports accuracy."""

    name = "classification"
    metrics = ("acc",)
    losses = ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss")

    def batch_sums(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"correct": (out.argmax(dim=1) == y).sum()}

    def finalize(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = super().finalize(sums)
        metrics["acc"] = sums.get("correct", 0.0) / max(sums.get("count", 0.0), 1.0)
        return metrics

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if out.dim() != 2:
            raise ConfigError(
                f"task=classification needs model output (batch, classes), got {list(out.shape)}; "
                "end the model with a Linear layer to data.num_classes"
            )
        if self.out_features is not None and out.shape[1] != self.out_features:
            raise ConfigError(
                f"the model outputs {out.shape[1]} classes but the data has {self.out_features} "
                f"(output {list(out.shape)}, targets {list(y.shape)}); set the model's out_features to "
                "${task.out_features}"
            )

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        if torch.is_floating_point(y):
            raise DataError(
                f"task=classification needs integer class labels, but the {split} labels are {y.dtype}; "
                "use task=regression for real-valued targets"
            )
        lo, hi = int(y.min()), int(y.max())
        n = self.out_features
        if lo < 0 or (n is not None and hi >= n):
            raise DataError(
                f"{split} labels range over [{lo}, {hi}] but must lie in [0, {n}) for data.num_classes={n}; "
                "fix the labels or set data.num_classes"
            )


def describe(task: Any) -> str:
    return getattr(task, "name", type(task).__name__)
