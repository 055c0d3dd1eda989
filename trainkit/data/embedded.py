"""Datasets that ship inside installed packages (scikit-learn), so a first run needs no network."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset


def digits() -> TensorDataset:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) floats in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return TensorDataset(x, y)
