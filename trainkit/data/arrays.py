"""Data larger than memory: memory-mapped .npy arrays (data=npy) and Hugging Face `datasets` on disk (data=hf).

Both read samples from disk on demand, so `data.loader=auto` streams them through DataLoader
workers (the resumable TorchLoader) when they exceed data.memory_budget_mb, and preloads them
when they fit. Batches are read with one indexed read (`__getitems__`), not sample by sample.
The open files are handles of each process: a worker (fork or spawn) reopens them, nothing big is pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from trainkit.errors import DataError


def _existing(path: Any, key: str) -> Path:
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise DataError(f"{key}={path} does not exist (looked for {p.resolve()}); give the right path")
    return p


def _as_tensor(a: Any) -> torch.Tensor:
    """A sample or batch as a tensor: floats as float32, integers and booleans as int64, copied out of the map."""
    import numpy as np

    t = torch.from_numpy(np.array(a))  # a copy: the map stays read-only and its pages are not pinned
    return t.float() if torch.is_floating_point(t) else t.long()


class NpyDataset(Dataset):
    """Rows of a memory-mapped x.npy with the labels of y.npy (labels are small: read at once)."""

    def __init__(self, x_path: Path, y_path: Path) -> None:
        import numpy as np

        self.x_path, self.y_path = x_path, y_path
        x = self._open()
        y = np.load(y_path, mmap_mode="r")
        if len(x) != len(y):
            raise DataError(f"data.x_path has {len(x)} rows but data.y_path has {len(y)}; they must match")
        self.targets = _as_tensor(y)
        if not torch.is_floating_point(self.targets) and self.targets.dim() == 1 and len(self.targets):
            self.classes = [str(i) for i in range(int(self.targets.max()) + 1)]
        self.n = len(x)

    def _open(self) -> Any:
        import numpy as np

        try:
            x = np.load(self.x_path, mmap_mode="r")
        except ValueError as exc:  # object arrays (pickles) cannot be mapped, and are not loaded
            raise DataError(f"data.x_path={self.x_path} is not a plain numeric .npy array ({exc}); save it with numpy.save") from None
        self._x = x
        return x

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_x"}  # a worker maps the file itself

    @property
    def x(self) -> Any:
        return self.__dict__["_x"] if self.__dict__.get("_x") is not None else self._open()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _as_tensor(self.x[i]).float(), self.targets[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        import numpy as np

        order = np.asarray(indices)
        xb = _as_tensor(self.x[np.sort(order)]).float()  # one sorted read of the map, then back in order
        xb = xb[torch.from_numpy(np.argsort(np.argsort(order)))]
        return list(zip(xb, self.targets[torch.as_tensor(order)], strict=True))


def npy(x_path: str, y_path: str, x_val_path: str | None = None, y_val_path: str | None = None,
        x_test_path: str | None = None, y_test_path: str | None = None) -> dict[str, Any]:
    """x.npy (samples, ...) and y.npy (samples,) memory-mapped; optional val/test files, else split by fraction."""
    out: dict[str, Any] = {"train": NpyDataset(_existing(x_path, "data.x_path"), _existing(y_path, "data.y_path")),
                           "val": None, "test": None}
    for split, xp, yp in (("val", x_val_path, y_val_path), ("test", x_test_path, y_test_path)):
        if (xp is None) != (yp is None):
            raise DataError(f"data.x_{split}_path and data.y_{split}_path go together; give both or neither")
        if xp is not None:
            out[split] = NpyDataset(_existing(xp, f"data.x_{split}_path"), _existing(yp, f"data.y_{split}_path"))
    return out


class HFDataset(Dataset):
    """A Hugging Face `datasets.Dataset` (Arrow, memory-mapped) as (x, label) samples."""

    def __init__(self, ds: Any, x_column: str | None, label_column: str) -> None:
        if label_column not in ds.column_names:
            raise DataError(f"data.label_column={label_column} is not a column of the data set "
                            f"(its columns: {', '.join(ds.column_names[:12])}); give the label column's name")
        features = [x_column] if x_column else [c for c in ds.column_names if c != label_column]
        missing = [c for c in features if c not in ds.column_names]
        if missing:
            raise DataError(f"data.x_column={missing[0]} is not a column of the data set "
                            f"(its columns: {', '.join(ds.column_names[:12])})")
        self.ds = ds.with_format("numpy", columns=[*features, label_column])
        self.features, self.label_column = features, label_column
        self.targets = _as_tensor(self.ds[label_column])
        names = getattr(ds.features.get(label_column), "names", None)
        if names:
            self.classes = list(names)
        elif not torch.is_floating_point(self.targets) and len(self.targets):
            self.classes = [str(i) for i in range(int(self.targets.max()) + 1)]

    def __len__(self) -> int:
        return len(self.ds)

    def _x(self, rows: dict[str, Any], batched: bool) -> torch.Tensor:
        if len(self.features) == 1:
            x = _as_tensor(rows[self.features[0]]).float()
            image = x.dim() == (4 if batched else 3) and x.shape[-1] in (1, 3, 4) and rows[self.features[0]].dtype.name == "uint8"
            return (x.movedim(-1, -3) / 255.0) if image else x  # HWC uint8 images -> CHW in [0, 1]
        return torch.stack([_as_tensor(rows[c]).float() for c in self.features], dim=-1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._x(self.ds[int(i)], batched=False), self.targets[int(i)]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        xb = self._x(self.ds[list(indices)], batched=True)
        return list(zip(xb, self.targets[torch.as_tensor(indices)], strict=True))


def hf(path: str, label_column: str = "label", x_column: str | None = None, split: str = "train",
       val_split: str | None = "validation", test_split: str | None = "test") -> dict[str, Any]:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`, or .parquet / .arrow files (a glob).

    A DatasetDict gives its `split`, `val_split` and `test_split` (those it has; the rest is carved by fraction).
    """
    try:
        import datasets
    except ImportError:
        raise DataError("data=hf needs Hugging Face datasets; install it with: pip install 'trainkit[hf]'") from None
    p = Path(str(path)).expanduser()
    files = sorted(p.parent.glob(p.name)) if any(c in p.name for c in "*?[") else ([p] if p.is_file() else [])
    if not files and not p.is_dir():
        raise DataError(f"data.path={path} does not exist (looked for {p.resolve()}); give a save_to_disk folder or parquet/arrow files")
    try:
        if files:
            kind = "arrow" if all(f.suffix == ".arrow" for f in files) else "parquet"
            loaded: Any = datasets.load_dataset(kind, data_files={"train": [str(f) for f in files]}, split="train")
        else:
            loaded = datasets.load_from_disk(str(p))
    except Exception as exc:
        raise DataError(f"data.path={path} is not a data set `datasets` can read ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:120]}); give a save_to_disk folder or parquet/arrow files") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"data.split={split} is not a split of {path} (it has: {', '.join(loaded)}); choose one")
        out = {"train": HFDataset(loaded[split], x_column, label_column), "val": None, "test": None}
        for key, name in (("val", val_split), ("test", test_split)):
            if name and name in loaded:
                out[key] = HFDataset(loaded[name], x_column, label_column)
        return out
    return {"train": HFDataset(loaded, x_column, label_column), "val": None, "test": None}


def check_source(target: str, kwargs: dict[str, Any]) -> None:
    """Pre-flight: the files data=npy and data=hf read exist, and hf's package is installed."""
    if target == "trainkit.data.arrays.npy":
        for key in ("x_path", "y_path", "x_val_path", "y_val_path", "x_test_path", "y_test_path"):
            if kwargs.get(key) is not None:
                _existing(kwargs[key], f"data.{key}")
    elif target == "trainkit.data.arrays.hf":
        import importlib.util

        if importlib.util.find_spec("datasets") is None:
            raise DataError("data=hf needs Hugging Face datasets; install it with: pip install 'trainkit[hf]'")
        p = Path(str(kwargs.get("path"))).expanduser()
        if not any(c in p.name for c in "*?[") and not p.exists():
            raise DataError(f"data.path={kwargs.get('path')} does not exist (looked for {p.resolve()}); "
                            "give a save_to_disk folder or parquet/arrow files")
