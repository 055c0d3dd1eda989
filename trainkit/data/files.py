"""A user's own data: a torch.save'd tensor file, a CSV table, or an image folder (torchvision ImageFolder)."""

from __future__ import annotations

import csv as csv_module
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from trainkit.errors import DataError


def _existing(path: str, key: str) -> Path:
    p = Path(str(path)).expanduser()
    try:
        found = p.exists()
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES: the path itself is the problem
        raise DataError(f"{key}={str(path)[:80]}{'...' if len(str(path)) > 80 else ''} cannot be read: "
                        f"{exc.strerror or exc}; give a shorter or correct path") from None
    if not found:
        raise DataError(f"{key}={path} does not exist (looked for {p.resolve()}); give the right path")
    return p


def tensor_file(path: str) -> dict[str, Any]:
    """A file written by torch.save({"x": X, "y": y}, path), with optional x_val/y_val and x_test/y_test.

    Splits that the file lacks are carved from x/y by data.val_fraction / data.test_fraction. Loaded
    with weights_only=True: tensors only, no pickled code.
    """
    p = _existing(path, "data.path")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"data.path={path} is not a torch.save file of tensors ({str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(blob, dict) or "x" not in blob or "y" not in blob:
        keys = list(blob) if isinstance(blob, dict) else type(blob).__name__
        raise DataError(f"data.path={path} must hold a dict with tensors 'x' and 'y' (optional x_val, y_val, x_test, y_test); got {keys}")
    out: dict[str, Any] = {"train": _pair(blob, "x", "y", path), "val": None, "test": None}
    for split in ("val", "test"):
        if f"x_{split}" in blob or f"y_{split}" in blob:
            out[split] = _pair(blob, f"x_{split}", f"y_{split}", path)
    return out


def _pair(blob: dict[str, Any], xk: str, yk: str, path: str) -> TensorDataset:
    x, y = blob.get(xk), blob.get(yk)
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise DataError(f"data.path={path}: '{xk}' and '{yk}' must both be tensors")
    if len(x) != len(y):
        raise DataError(f"data.path={path}: '{xk}' has {len(x)} rows but '{yk}' has {len(y)}; they must match")
    if torch.is_floating_point(x):
        x = x.float()
    return TensorDataset(x, y)


def csv(path: str, label_column: str | int = "label", delimiter: str = ",", label_type: str = "auto") -> TensorDataset:
    """A table with a header row: every column but `label_column` is a float feature.

    label_type: class (labels become indices 0..C-1 in sorted order), real (float targets for
    regression), or auto (real when any label has a fractional part, else class).
    """
    p = _existing(path, "data.path")
    with p.open(newline="") as fh:
        rows = list(csv_module.reader(fh, delimiter=delimiter))
    if len(rows) < 2:
        raise DataError(f"data.path={path} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    if isinstance(label_column, int) or str(label_column).lstrip("-").isdigit():
        col = int(label_column) % len(header)
    elif label_column in header:
        col = header.index(str(label_column))
    else:
        raise DataError(f"data.label_column={label_column} is not a column of {path}; its columns: {', '.join(header)}")
    features, labels = [], []
    for n, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {n} has {len(row)} fields but the header has {len(header)}")
        try:
            features.append([float(v) for i, v in enumerate(row) if i != col])
        except ValueError as exc:
            raise DataError(f"{path} line {n}: a feature is not a number ({exc}); only the label column may hold text") from exc
        labels.append(row[col].strip())
    x = torch.tensor(features, dtype=torch.float32)
    if label_type not in ("auto", "class", "real"):
        raise DataError(f"data.label_type={label_type} must be auto, class or real")
    numeric = all(_is_number(v) for v in labels)
    if label_type == "real" or (label_type == "auto" and numeric and any(float(v) != int(float(v)) for v in labels)):
        if not numeric:
            raise DataError(f"data.label_type=real but column '{header[col]}' of {path} holds text")
        return TensorDataset(x, torch.tensor([float(v) for v in labels], dtype=torch.float32).unsqueeze(1))
    keys = sorted(set(labels), key=lambda v: (float(v), v) if numeric else (0.0, v))
    index = {k: i for i, k in enumerate(keys)}
    return TensorDataset(x, torch.tensor([index[v] for v in labels], dtype=torch.int64))


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def image_folder(root: str, train_transforms: Any = None, eval_transforms: Any = None) -> dict[str, Any]:
    """torchvision ImageFolder: root/CLASS/*.png, or root/train, root/val, root/test each so laid out.

    Missing val/test splits are carved from train (the carved ones see eval transforms, never augmentation).
    """
    from torchvision.datasets import ImageFolder

    from trainkit.data.vision import compose_transforms

    base = _existing(root, "data.root")
    train_tf, eval_tf = compose_transforms(train_transforms), compose_transforms(eval_transforms)
    train_dir = base / "train" if (base / "train").is_dir() else base

    def load(d: Path, tf: Any) -> Any:
        try:
            return ImageFolder(str(d), transform=tf)
        except (FileNotFoundError, RuntimeError) as exc:
            raise DataError(f"no images under {d} ({str(exc).splitlines()[0][:120]}); lay them out as {d}/CLASS/IMAGE.png") from exc

    out: dict[str, Any] = {"train": load(train_dir, train_tf), "train_eval": load(train_dir, eval_tf), "val": None, "test": None}
    for split in ("val", "test"):
        if train_dir != base and (base / split).is_dir():
            out[split] = load(base / split, eval_tf)
            if out[split].classes != out["train"].classes:
                raise DataError(f"{base / split} has classes {out[split].classes} but {train_dir} has {out['train'].classes}")
    return out


def check_source(target: str, kwargs: dict[str, Any]) -> None:
    """Pre-flight: the file or folder a built-in data source reads exists (before a run directory is made)."""
    if not target.startswith("trainkit.data.files."):
        return
    name = target.rsplit(".", 1)[-1]
    path, root = kwargs.get("path"), kwargs.get("root")
    if name in ("tensor_file", "csv") and path is not None and not _existing(str(path), "data.path").is_file():
        raise DataError(f"data.path={path} is a directory; give the file")
    if name == "image_folder" and root is not None and not _existing(str(root), "data.root").is_dir():
        raise DataError(f"data.root={root} is a file; give the folder that holds CLASS/IMAGE files")
