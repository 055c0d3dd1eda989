"""Tasks: how a batch becomes model outputs, a loss and metric sums.

The loop only calls `task.step`; it never asks which loss or model it holds. Metric sums stay
on the device (no host sync per step) and become numbers once per epoch in `task.finalize`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from trainkit.errors import ConfigError, DataError, suggest

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
        loss, sums = self.loss_and_sums(model, criterion, batch)
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
                out = model(batch[0])
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
        with torch.no_grad():
            sums = {"correct": (out.argmax(dim=1) == y).sum()}
        return loss, sums

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


# ---------------------------------------------------------------------------- more tasks


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


def batch_partners(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample, the next sample of the batch (cyclically) with the same label and with another one.

    Deterministic: it depends only on the batch's order (itself a function of seed and epoch), never on
    an RNG. A sample with no partner of a kind is its own partner; pair labels are recomputed from y.
    """
    n = y.shape[0]
    i = torch.arange(n, device=y.device)
    ahead = (i.unsqueeze(0) - i.unsqueeze(1)) % n  # ahead[a, b]: steps from a forward to b
    same = y.unsqueeze(0) == y.unsqueeze(1)
    far = torch.full_like(ahead, n)
    pos_dist, pos = torch.where(same & (ahead > 0), ahead, far).min(dim=1)
    neg_dist, neg = torch.where(~same, ahead, far).min(dim=1)
    return torch.where(pos_dist < n, pos, i), torch.where(neg_dist < n, neg, i)


class Pairs(Task):
    """Two inputs through one model with a same/different label; reports cosine-similarity accuracy.

    Each sample of a classification batch is paired with a same-class and a different-class sample of
    the same batch (2N pairs). MarginRankingLoss ranks the same-class cosine above the other one.
    """

    name = "pairs"
    metrics = ("acc",)
    losses = ("CosineEmbeddingLoss", "HingeEmbeddingLoss", "MarginRankingLoss")

    def __init__(self, out_features: int | None = 32, threshold: float = 0.5) -> None:
        super().__init__(out_features)
        self.threshold = float(threshold)

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        emb = model(x).flatten(1)  # one forward: the pairs share it, as a siamese net shares weights
        pos, neg = batch_partners(y)
        first = torch.cat([torch.arange(len(y), device=y.device)] * 2)
        second = torch.cat([pos, neg])
        same = y[first] == y[second]
        sign = same.to(emb.dtype) * 2 - 1
        e1, e2 = emb[first], emb[second]
        cos = torch.cosine_similarity(e1, e2, dim=1)
        if isinstance(criterion, nn.MarginRankingLoss):
            n = len(y)
            loss = criterion(cos[:n], cos[n:], torch.ones_like(cos[:n]))
        elif isinstance(criterion, nn.HingeEmbeddingLoss):
            loss = criterion(nn.functional.pairwise_distance(e1, e2), sign)
        else:
            loss = criterion(e1, e2, sign)
        with torch.no_grad():
            sums = {"correct": ((cos.detach() > self.threshold) == same).sum()}
        return loss, sums

    def finalize(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = super().finalize(sums)
        metrics["acc"] = sums.get("correct", 0.0) / max(2 * sums.get("count", 0.0), 1.0)  # 2 pairs per sample
        return metrics

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        _check_embedding(self.name, out)

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        _check_class_labels(self.name, y, split)


class Triplets(Task):
    """Anchor / positive / negative from each batch through one embedding model; reports triplet accuracy."""

    name = "triplets"
    metrics = ("acc",)
    losses = ("TripletMarginLoss", "TripletMarginWithDistanceLoss")

    def loss_and_sums(self, model: nn.Module, criterion: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        emb = model(x).flatten(1)
        pos, neg = batch_partners(y)
        positive, negative = emb[pos], emb[neg]
        loss = criterion(emb, positive, negative)
        with torch.no_grad():
            d_pos = nn.functional.pairwise_distance(emb, positive)
            d_neg = nn.functional.pairwise_distance(emb, negative)
            sums = {"correct": (d_pos < d_neg).sum()}
        return loss, sums

    def check_output(self, out: torch.Tensor, y: torch.Tensor) -> None:
        _check_embedding(self.name, out)

    def check_targets(self, y: torch.Tensor, split: str) -> None:
        _check_class_labels(self.name, y, split)


def _check_embedding(task: str, out: torch.Tensor) -> None:
    if out.dim() < 2 or out[0].numel() < 2:
        raise ConfigError(
            f"task={task} needs an embedding per sample (batch, dim >= 2), got model output {list(out.shape)}; "
            "set the model's out_features to ${task.out_features}"
        )


def _check_class_labels(task: str, y: torch.Tensor, split: str) -> None:
    if torch.is_floating_point(y) or y.dim() != 1:
        raise DataError(
            f"task={task} forms its pairs from integer class labels, but the {split} labels are {y.dtype} "
            f"{list(y.shape)}; use a classification dataset"
        )


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


TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (Classification, Regression, Binary, Multilabel, SoftTargets, Pairs, Triplets, Sequence)
}

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

