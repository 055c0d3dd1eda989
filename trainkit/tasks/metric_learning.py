"""Metric learning: embeddings compared in pairs and triplets formed within the batch."""

from __future__ import annotations

import torch
from torch import nn

from trainkit.errors import ConfigError, DataError
from trainkit.tasks.base import Batch, Task


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
