"""Label sequences against per-timestep scores (CTC)."""

from __future__ import annotations

import torch
from torch import nn

from trainkit.errors import ConfigError, DataError
from trainkit.tasks.base import Batch, Task


class Sequence(Task):
    """Per-timestep class scores (N, T, C) against padded label sequences and their lengths (CTC).

    The batch is (inputs, targets (N, S) padded with the blank, target lengths (N,)); the model's
    (N, T, C) scores become (T, N, C) log-probabilities. Reports greedy-decoded exact-match `acc`.
    """

    name = "sequence"
    metrics = ("acc",)
    losses = ("CTCLoss",)

    def __init__(self, out_features: int | None = None, blank: int = 0) -> None:
        super().__init__(out_features)
        self.blank = int(blank)

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, targets, lengths = batch[0], batch[1], batch[2]
        out = model(x)
        n, t = out.shape[0], out.shape[1]
        log_probs = torch.log_softmax(out.float(), dim=2).transpose(0, 1)
        input_lengths = torch.full((n,), t, dtype=torch.long, device=out.device)
        loss = criterion(log_probs, targets, input_lengths, lengths)
        with torch.no_grad():
            sums = {"correct": self.exact_matches(out.argmax(2), targets, lengths)}
        return loss, sums

    def exact_matches(self, best: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Greedy CTC decoding (merge repeats, drop blanks) compared with the targets, on the device."""
        prev = torch.cat([torch.full_like(best[:, :1], self.blank), best[:, :-1]], dim=1)
        keep = (best != self.blank) & (best != prev)
        slot = keep.long().cumsum(1) - 1
        width = max(best.shape[1], targets.shape[1])
        decoded = torch.full((best.shape[0], width + 1), self.blank, dtype=best.dtype, device=best.device)
        decoded.scatter_(1, torch.where(keep, slot, torch.full_like(slot, width)), best)
        decoded = decoded[:, : targets.shape[1]]
        pos = torch.arange(targets.shape[1], device=targets.device)
        wanted = torch.where(pos < lengths.unsqueeze(1), targets, torch.full_like(targets, self.blank))
        same = (decoded == wanted).all(1) & (keep.sum(1) == lengths)
        return same.sum()

    def check_criterion(self, criterion: nn.Module) -> None:
        super().check_criterion(criterion)
        blank = getattr(criterion, "blank", self.blank)
        if blank != self.blank:
            raise ConfigError(f"loss.blank={blank} but task.blank={self.blank}; make them equal")

    def check_batch(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        if len(batch) < 3 or batch[1].dim() != 2:
            raise ConfigError(
                "task=sequence needs batches of (inputs, label sequences, their lengths), e.g. data=digit_strings; "
                f"this data gives {len(batch)} tensor(s) with targets {list(batch[1].shape)}"
            )
        return super().check_batch(model, criterion, batch)

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if out.dim() != 3:
            raise ConfigError(
                f"task=sequence needs per-timestep scores (batch, time, classes) from the model, got "
                f"{list(out.shape)}; use model=crnn"
            )
        if out.shape[1] < y.shape[1]:
            raise ConfigError(
                f"the model gives {out.shape[1]} timesteps but label sequences are up to {y.shape[1]} long; "
                "CTC needs at least as many timesteps as labels"
            )
        if self.out_features is not None and out.shape[2] != self.out_features:
            raise ConfigError(
                f"the model outputs {out.shape[2]} classes per timestep but task.out_features={self.out_features} "
                "(data.num_classes, the blank included)"
            )

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        if torch.is_floating_point(y):
            raise DataError(f"task=sequence needs integer label sequences, but the {split} targets are {y.dtype}")
