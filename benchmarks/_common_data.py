"""A tensor-file dataset factory for the benchmarks, used until the project's data=tensor_file exists."""

from __future__ import annotations

from typing import Any


def load_tensor_file(path: str) -> dict[str, Any]:
    """{"x", "y", optional "x_val"/"y_val"/"x_test"/"y_test"} saved with torch.save -> trainkit splits."""
    import torch
    from torch.utils.data import TensorDataset

    blob = torch.load(path, weights_only=True)
    out: dict[str, Any] = {"train": TensorDataset(blob["x"], blob["y"]), "val": None, "test": None}
    for split in ("val", "test"):
        if f"x_{split}" in blob:
            out[split] = TensorDataset(blob[f"x_{split}"], blob[f"y_{split}"])
    return out
