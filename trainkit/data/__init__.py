"""Datasets, deterministic splits and loaders (in-memory tensor slicing or torch DataLoader)."""

from trainkit.data.build import Data, build_data

__all__ = ["Data", "build_data"]
