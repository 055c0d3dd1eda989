"""Real-valued targets."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainkit.errors import ConfigError
from trainkit.tasks.base import Batch, Task


def _sum_to(values: torch.Tensor) -> torch.Tensor:
    return values.detach().sum().to(torch.float64)


class Regression(Task):
    """Real targets (N,) or (N, k) against outputs (N, k); reports MAE and RMSE."""

    name = "regression"
    metrics = ("mae", "rmse")
    losses = ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch[0])
        y = batch[1]
        y = (y.unsqueeze(1) if y.dim() == 1 else y).to(out.dtype)
        loss = criterion(out, y)
        with torch.no_grad():
            err = (out - y).flatten(1)
            sums = {"abs_err": _sum_to(err.abs().mean(1)), "sq_err": _sum_to(err.square().mean(1))}
        return loss, sums

    def finalize(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = super().finalize(sums)
        n = max(sums.get("count", 0.0), 1.0)
        metrics["mae"] = sums.get("abs_err", 0.0) / n
        metrics["rmse"] = math.sqrt(max(sums.get("sq_err", 0.0), 0.0) / n)
        return metrics

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        k = 1 if y.dim() == 1 else int(y[0].numel())
        if out.dim() != 2 or out.shape[1] != k:
            raise ConfigError(
                f"task=regression needs model output (batch, {k}) for targets {list(y.shape)}, got {list(out.shape)}; "
                "set the model's out_features to ${task.out_features} (data.target_dim)"
            )
