"""The user's model: any nn.Module whose constructor arguments the config names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SpiralNet(nn.Module):
    """A small tanh MLP: smooth boundaries suit the spirals."""

    def __init__(self, in_shape: Sequence[int], out_features: int, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        features = int(in_shape[-1])
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.Tanh()]
            features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
