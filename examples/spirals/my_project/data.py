"""Two interleaved spirals: a map-style Dataset, the way the PyTorch tutorials write one."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset


class TwoSpirals(Dataset):
    """`n` points on two spirals in the plane; the label says which spiral a point lies on.

    A map-style dataset needs only `__len__` and `__getitem__`; trainkit splits it into
    train/val/test by `seed` and batches it.
    """

    def __init__(self, n: int = 2000, turns: float = 1.5, noise: float = 0.05, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        labels = torch.arange(n) % 2
        t = torch.rand(n, generator=g) * turns * 2 * math.pi + 0.5
        angle = t + math.pi * labels
        radius = t / (turns * 2 * math.pi)
        self.x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        self.x += noise * torch.randn(n, 2, generator=g)
        self.y = labels.long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]
