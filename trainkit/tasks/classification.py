"""Class labels: one class per sample, binary, several yes/no labels, and soft targets."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from trainkit.errors import ConfigError, DataError, suggest
from trainkit.sums import Matches
from trainkit.tasks.base import Batch, Task


class Classification(Task):
    """Class logits (N, C) against integer labels in [0, C); reports accuracy."""

    name = "classification"
    metrics = ("acc",)
    losses = ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss")

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        out = model(x)
        # NLLLoss reads log-probabilities: the task gives it log_softmax of the model's logits.
        loss = criterion(torch.log_softmax(out, dim=1) if isinstance(criterion, nn.NLLLoss) else out, y)
        # argmax gives integers, which autograd does not track: no detach() or no_grad() block needed,
        # each of which costs a few us a step on a small model; Matches compares when the sums are read.
        # A 2-D float y holds class probabilities (mixup/cutmix): scored against its argmax.
        hard = y.argmax(dim=1) if y.dim() == 2 and y.is_floating_point() else y
        return loss, {"correct": Matches(out.argmax(dim=1), hard)}

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


class Binary(Task):
    """One logit (or probability) per sample against 0/1 or -1/+1 targets; reports accuracy.

    The task turns targets into what each loss wants (0/1 for BCE, -1/+1 for soft margin) and
    the model's logit into a probability for BCELoss, so one model serves all three losses.
    """

    name = "binary"
    metrics = ("acc",)
    losses = ("BCELoss", "BCEWithLogitsLoss", "SoftMarginLoss")

    def __init__(self, out_features: int | None = 1, output: str = "logit") -> None:
        super().__init__(out_features)
        if output not in ("logit", "probability"):
            raise ConfigError(f"task.output={output} must be logit or probability")
        self.output = output

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch[0]).reshape(len(batch[0]), -1)[:, 0]
        positive = batch[1].reshape(-1) > 0  # 0/1 and -1/+1 targets alike
        if isinstance(criterion, nn.BCELoss):
            inp = out if self.output == "probability" else torch.sigmoid(out)
            loss = criterion(inp, positive.to(out.dtype))
        else:
            logit = torch.logit(out, eps=1e-6) if self.output == "probability" else out
            target = positive.to(out.dtype)
            if isinstance(criterion, nn.SoftMarginLoss):
                target = target * 2 - 1
            loss = criterion(logit, target)
        with torch.no_grad():
            predicted = out > (0.5 if self.output == "probability" else 0.0)
            sums = {"correct": (predicted == positive).sum()}
        return loss, sums

    def report_batch(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, 0/1 targets) for the test report (trainkit.metrics), whatever the loss took."""
        out = model(batch[0]).reshape(len(batch[0]), -1)[:, 0]
        logit = torch.logit(out, eps=1e-6) if self.output == "probability" else out
        return logit, (batch[1].reshape(-1) > 0).long()

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if out[0].numel() != 1:
            raise ConfigError(
                f"task=binary needs one output per sample, got model output {list(out.shape)}; "
                "set the model's out_features to 1 (${task.out_features})"
            )

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        values = torch.unique(y).tolist()
        if not set(values) <= {0, 1} and not set(values) <= {-1, 1}:
            shown = values[:6]
            raise DataError(
                f"task=binary needs 0/1 or -1/+1 targets, but the {split} targets take values {shown}; "
                "use task=classification for several classes or task=regression for real values"
            )


# Yes/no questions about a class index, for multilabel targets derived from a classification dataset.


def _is_prime(c: torch.Tensor) -> torch.Tensor:
    out = c >= 2
    for d in range(2, math.isqrt(max(int(c.max()), 1)) + 1):
        out &= (c % d != 0) | (c == d)
    return out


LABEL_RULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "even": lambda c: c % 2 == 0,
    "odd": lambda c: c % 2 == 1,
    "greater_than_4": lambda c: c > 4,
    "prime": _is_prime,
}


class Multilabel(Task):
    """Several yes/no labels per sample; reports exact-match `acc`, mean `label_acc` and `acc_<label>`.

    Integer class labels become label vectors by `labels` (e.g. even / greater_than_4 / prime);
    2-D 0/1 targets in the data are used as they are.
    """

    name = "multilabel"
    losses = ("MultiLabelSoftMarginLoss", "BCEWithLogitsLoss", "MultiLabelMarginLoss")

    def __init__(self, out_features: int | None = None, labels: Iterable[str] = ("even", "greater_than_4", "prime")) -> None:
        labels = [str(name) for name in labels]
        for name in labels:
            if name not in LABEL_RULES:
                raise ConfigError(f"unknown task.labels entry '{name}'{suggest(name, LABEL_RULES)}; choose from: {', '.join(LABEL_RULES)}")
        if out_features is not None and int(out_features) != len(labels):
            raise ConfigError(
                f"task.out_features={out_features} but task.labels names {len(labels)} labels; make them equal"
            )
        super().__init__(len(labels))
        self.labels = labels
        self.metrics = ("acc", "label_acc", *(f"acc_{name}" for name in labels))
        classes = torch.arange(self._TABLE_SIZE)
        self._table = torch.stack([LABEL_RULES[name](classes) for name in labels], dim=1)
        self._tables: dict[torch.device, torch.Tensor] = {}

    _TABLE_SIZE = 1024  # class indices answered by a lookup table (one gather per step, no host copy)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """(N, labels) booleans from class indices (or from 0/1 targets already 2-D)."""
        if y.dim() == 2:
            return y > 0
        table = self._tables.get(y.device)
        if table is None:
            table = self._tables[y.device] = self._table.to(y.device)
        return table[y.clamp(0, self._TABLE_SIZE - 1)]

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        if y.dim() == 1 and (torch.is_floating_point(y) or int(y.min()) < 0 or int(y.max()) >= self._TABLE_SIZE):
            raise DataError(
                f"task=multilabel derives its labels from class indices in [0, {self._TABLE_SIZE}), but the {split} "
                "labels are not such indices; give 2-D 0/1 targets instead"
            )

    def report_batch(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, 0/1 label matrix) for the test report (trainkit.metrics), whatever the loss took."""
        return model(batch[0]), self.targets(batch[1]).long()

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch[0])
        hot = self.targets(batch[1])
        if isinstance(criterion, nn.MultiLabelMarginLoss):
            # Indices of the positive labels first, then -1 (the format MultiLabelMarginLoss reads).
            idx = torch.arange(hot.shape[1], device=hot.device).expand_as(hot)
            order = torch.argsort((~hot).long() * hot.shape[1] + idx, dim=1)
            target = torch.where(hot.gather(1, order), order, torch.full_like(order, -1))
        else:
            target = hot.to(out.dtype)
        loss = criterion(out, target)
        with torch.no_grad():
            right = (out > 0) == hot
            sums = {"exact": right.all(1).sum()}
            per_label = right.sum(0)
            for i, name in enumerate(self.labels):
                sums[f"right_{name}"] = per_label[i]
        return loss, sums

    def finalize(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = super().finalize(sums)
        n = max(sums.get("count", 0.0), 1.0)
        metrics["acc"] = sums.get("exact", 0.0) / n
        per = {f"acc_{name}": sums.get(f"right_{name}", 0.0) / n for name in self.labels}
        metrics["label_acc"] = sum(per.values()) / max(len(per), 1)
        metrics.update(per)
        return metrics

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if out.dim() != 2 or out.shape[1] != len(self.labels):
            raise ConfigError(
                f"task=multilabel needs model output (batch, {len(self.labels)}) for labels {self.labels}, got "
                f"{list(out.shape)}; set the model's out_features to ${{task.out_features}}"
            )


class SoftTargets(Task):
    """Log-probabilities against a target distribution (KL divergence); reports argmax accuracy.

    Class labels become label-smoothed distributions; 2-D float targets (teacher probabilities) are used as given.
    """

    name = "soft_targets"
    metrics = ("acc",)
    losses = ("KLDivLoss",)

    def __init__(self, out_features: int | None = None, smoothing: float = 0.1) -> None:
        super().__init__(out_features)
        if not 0.0 <= float(smoothing) < 1.0:
            raise ConfigError(f"task.smoothing={smoothing} must lie in [0, 1)")
        self.smoothing = float(smoothing)

    def distribution(self, y: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
        if y.dim() == 2:
            return y.to(dtype)
        one_hot = nn.functional.one_hot(y, classes).to(dtype)
        return one_hot * (1.0 - self.smoothing) + self.smoothing / classes

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch[0])
        log_probs = torch.log_softmax(out, dim=1)
        target = self.distribution(batch[1], out.shape[1], log_probs.dtype)
        hard = target.argmax(1)  # log is monotone: the same argmax either way
        if getattr(criterion, "log_target", False):
            target = target.clamp_min(1e-12).log()
        loss = criterion(log_probs, target)
        with torch.no_grad():
            sums = {"correct": (out.argmax(1) == hard).sum()}
        return loss, sums

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        classes = y.shape[1] if y.dim() == 2 else self.out_features
        if out.dim() != 2 or (classes is not None and out.shape[1] != classes):
            raise ConfigError(
                f"task=soft_targets needs model output (batch, {classes}), got {list(out.shape)}; "
                "set the model's out_features to ${task.out_features}"
            )
