"""data.sampler (random | sequential | weighted) and the class statistics behind weighted sampling and loss.weight=auto."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from trainkit.errors import ConfigError, DataError

SAMPLERS = ("random", "sequential", "weighted")


def sampler_mode(sampler: Any, shuffle: bool) -> tuple[bool, bool]:
    """(shuffle, weighted) for data.sampler; null keeps data.shuffle."""
    if sampler is None:
        return bool(shuffle), False
    if sampler not in SAMPLERS:
        raise ConfigError(f"data.sampler={sampler} must be one of: {', '.join(SAMPLERS)} (or null to follow data.shuffle)")
    return sampler != "sequential", sampler == "weighted"


def train_labels(ds: Dataset) -> torch.Tensor:
    """The integer class label of every sample of a split, without loading its inputs where possible."""
    if isinstance(ds, TensorDataset) and len(ds.tensors) > 1:
        return ds.tensors[1]
    if isinstance(ds, Subset):
        inner = ds.dataset
        targets = getattr(inner, "targets", None)
        if targets is not None:
            return torch.as_tensor(targets)[torch.as_tensor(ds.indices)]
        if isinstance(inner, TensorDataset):
            return inner.tensors[1][torch.as_tensor(ds.indices)]
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets)
    return torch.as_tensor([int(ds[i][1]) for i in range(len(ds))])  # type: ignore[arg-type]


def class_counts(ds: Dataset, num_classes: int | None = None) -> torch.Tensor:
    """Samples per class in a split (float64), for inverse-frequency weights."""
    y = train_labels(ds)
    if torch.is_floating_point(y) or y.dim() != 1:
        raise DataError(
            f"class-balanced weights need integer class labels, but this data's labels are {y.dtype} {list(y.shape)}; "
            "use data.sampler=random and a loss weight list (or none)"
        )
    return torch.bincount(y.long().cpu(), minlength=int(num_classes or 0)).to(torch.float64)


def balanced_sample_weights(ds: Dataset) -> torch.Tensor:
    """Per-sample weights 1 / (samples of its class): each class is drawn equally often."""
    y = train_labels(ds).long().cpu()
    counts = class_counts(ds)
    return (1.0 / counts.clamp_min(1.0))[y]


def weighted_order(weights: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """An epoch's sample indices drawn with replacement by weight; a function of (seed, epoch) only."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return torch.multinomial(weights.double().cpu(), len(weights), replacement=True, generator=g)
