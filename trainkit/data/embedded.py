"""Datasets that ship inside installed packages (scikit-learn), so a first run needs no network."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from trainkit.errors import DataError


def digits() -> TensorDataset:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) floats in [0, 1] and int64 labels."""
    from trainkit.data.bundled import digits_arrays  # sklearn's file, without importing sklearn

    images, target = digits_arrays()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(target, dtype=torch.int64)
    ds = TensorDataset(x, y)
    ds.classes = [str(i) for i in range(10)]  # type: ignore[attr-defined]  # scikit-learn's target_names
    return ds


def _standardize(t: torch.Tensor) -> torch.Tensor:
    return (t - t.mean(0)) / t.std(0).clamp_min(1e-8)


def diabetes(standardize: bool = True) -> TensorDataset:
    """scikit-learn's diabetes regression set: 442 samples, 10 features, a real target (N, 1).

    With `standardize`, features and target are scaled to mean 0, std 1 (over the whole set), so
    default learning rates work and MAE/RMSE read in standard deviations of the target.
    """
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.float32).unsqueeze(1)
    if standardize:
        x, y = _standardize(x), _standardize(y)
    return TensorDataset(x, y)


def breast_cancer(standardize: bool = True) -> TensorDataset:
    """scikit-learn's breast-cancer set: 569 samples, 30 features, 0/1 labels (1 = benign)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    if standardize:
        x = _standardize(x)
    ds = TensorDataset(x, torch.tensor(bunch.target, dtype=torch.int64))
    ds.classes = [str(n) for n in bunch.target_names]  # type: ignore[attr-defined]  # malignant, benign
    return ds


def digit_strings(
    size: int = 2000, min_length: int = 2, max_length: int = 5, seed: int = 0, blank: int = 0
) -> TensorDataset:
    """Strips of 2 to 5 scikit-learn digits side by side, with their label sequences, for CTC.

    Returns (images (N, 1, 8, 8 * max_length) zero-padded on the right, targets (N, max_length) holding
    digit + 1 (0 is the CTC blank) padded with the blank, lengths (N,)). The strips are a function of
    `seed` only (own generator).
    """
    from sklearn.datasets import load_digits

    if not 1 <= min_length <= max_length:
        raise DataError(f"data.dataset.min_length={min_length} and max_length={max_length} need 1 <= min <= max")
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    g = torch.Generator()
    g.manual_seed(int(seed))
    lengths = torch.randint(min_length, max_length + 1, (size,), generator=g)
    picks = torch.randint(0, len(images), (size, max_length), generator=g)
    present = torch.arange(max_length).unsqueeze(0) < lengths.unsqueeze(1)  # (N, max_length)
    tiles = images[picks] * present[:, :, None, None]  # (N, L, 8, 8), absent digits blank
    x = tiles.permute(0, 2, 1, 3).reshape(size, 1, 8, 8 * max_length)
    shift = 1 if blank == 0 else 0
    targets = torch.where(present, labels[picks] + shift, torch.full_like(picks, blank))
    return TensorDataset(x, targets, lengths)
