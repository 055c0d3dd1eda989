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
    from trainkit.checkpoint import check_archive
    from trainkit.errors import CheckpointError

    p = _existing(path, "data.path")
    try:
        kind = check_archive(p, "data.path")  # bounded: a decompression bomb is refused unread
    except CheckpointError as exc:
        if "refused before loading" in str(exc):  # a bomb: the size limits' message says how to raise them
            raise DataError(str(exc)) from None
        raise DataError(f"data.path={path} is not a torch.save file of tensors (truncated or corrupt)") from None
    if kind == "other":
        raise DataError(f"data.path={path} is not a torch.save file of tensors (neither torch's zip format nor a pickle)")
    if kind == "pickle":
        raise DataError(f"data.path={path} is not a torch.save file of tensors in torch's zip format (a raw pickle or "
                        "a pre-1.6 torch.save); re-save it with torch.save")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # the reason only: torch's message can quote the file's bytes
        raise DataError(f"data.path={path} is not a torch.save file of tensors ({type(exc).__name__})") from exc
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
    if x.is_complex() or y.is_complex():
        which = xk if x.is_complex() else yk
        raise DataError(
            f"data.path={path}: '{which}' is complex ({x.dtype if which == xk else y.dtype}); models take real numbers: "
            f"save torch.view_as_real({which}) (real and imaginary parts as features) or {which}.abs()"
        )
    if torch.is_floating_point(x):
        x = x.float()
    return TensorDataset(x, y)


def csv(path: str, label_column: str | int = "label", delimiter: str = ",", label_type: str = "auto",
        columns: Any = None, max_categories: int = 20) -> Any:
    """A table with a header row: every column but `label_column` is a feature.

    label_type: class (labels become indices 0..C-1 in sorted order), real (float targets for
    regression), or auto (real when any label has a fractional part, else class). A file of
    numbers only (no empty cell, no `columns`) is used as it is: a TensorDataset of floats. Any
    other table goes through trainkit.data.tables (types inferred, `columns` overrides them, the
    encoding fitted on the training split once it is cut): {"train": rows by id, "table": ...}.
    """
    p = _existing(path, "data.path")
    with p.open(newline="") as fh:
        rows = list(csv_module.reader(fh, delimiter=delimiter))
    return _table_rows(rows, path, label_column, label_type, columns, max_categories)


def parquet(path: str, label_column: str | int = "label", label_type: str = "auto", columns: Any = None,
            max_categories: int = 20) -> Any:
    """A parquet file (pandas + pyarrow: pip install 'trainkit[tables]'), read as csv reads its text."""
    p = _existing(path, "data.path")
    from trainkit.data.tables import read_parquet

    return _table_rows(read_parquet(p), path, label_column, label_type, columns, max_categories)


def _table_rows(rows: list[list[Any]], path: str, label_column: str | int, label_type: str, columns: Any,
                max_categories: int) -> Any:
    """Header row + cells -> the dataset (see csv)."""
    if len(rows) < 2:
        raise DataError(f"data.path={path} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    if len(header) < 2:
        raise DataError(
            f"data.path={path} has only one column; a table needs at least one feature column besides "
            "the label (check data.delimiter)"
        )
    col = _label_index(label_column, header, path)
    features, labels = [], []
    for n, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {n} has {len(row)} fields but the header has {len(header)}")
        try:
            features.append([float(v) for i, v in enumerate(row) if i != col])
        except ValueError:  # text or an empty cell: the table is encoded (trainkit.data.tables)
            features.append(None)
        label = row[col].strip()
        if not label or label.lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
            raise DataError(f"{path} line {n}: the label is {label or 'empty'!s}; fill it in or drop the row")
        labels.append(label)
    names = [h for i, h in enumerate(header) if i != col]
    table = None
    if columns or any(f is None for f in features):
        from trainkit.data.tables import Table

        table = Table(names, [[v for i, v in enumerate(r) if i != col] for r in body], columns, max_categories, path)
        x = torch.arange(len(body)).unsqueeze(1)  # row ids: encoded after the split, fitted on the training rows
    else:
        x = torch.tensor(features, dtype=torch.float32)
    if label_type not in ("auto", "class", "real"):
        raise DataError(f"data.label_type={label_type} must be auto, class or real")
    numeric = all(_is_number(v) for v in labels)
    if label_type == "real" or (label_type == "auto" and numeric and any(float(v) != int(float(v)) for v in labels)):
        if not numeric:
            raise DataError(f"data.label_type=real but the label column (data.label_column={label_column}) of {path} holds text")
        return _with_table(TensorDataset(x, torch.tensor([float(v) for v in labels], dtype=torch.float32).unsqueeze(1)), table, names)
    keys = sorted(set(labels), key=lambda v: (float(v), v) if numeric else (0.0, v))
    index = {k: i for i, k in enumerate(keys)}
    ds = TensorDataset(x, torch.tensor([index[v] for v in labels], dtype=torch.int64))
    ds.classes = keys  # type: ignore[attr-defined]  # the label text of each class id (Data.meta["class_names"])
    return _with_table(ds, table, names)


def _with_table(ds: TensorDataset, table: Any, names: list[str]) -> Any:
    """A numbers-only table as before (its feature names kept for the preprocessing record), else rows + table."""
    if table is None:
        ds.feature_names = names  # type: ignore[attr-defined]
        return ds
    return {"train": ds, "val": None, "test": None, "table": table}


def _label_index(label_column: str | int, header: list[str], path: str) -> int:
    """data.label_column: a column name, or an index in [0, columns) (4 on a 3-column file wrapped round to 1)."""
    if str(label_column) in header:
        return header.index(str(label_column))
    if isinstance(label_column, int) and not isinstance(label_column, bool) or str(label_column).lstrip("-").isdigit():
        i = int(label_column)
        if 0 <= i < len(header):
            return i
        raise DataError(
            f"data.label_column={label_column} is out of range: {path} has {len(header)} columns, so an index must "
            f"be 0..{len(header) - 1} (or give the label column's name)"
        )
    # the header's names are the file's contents: counted, never echoed (the file may not be a table at all)
    raise DataError(f"data.label_column={label_column} is not a column of {path} (its header row has "
                    f"{len(header)} column{'s' if len(header) != 1 else ''}); give the label column's name or index")


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def image_folder(
    root: str, train_transforms: Any = None, eval_transforms: Any = None, skip_bad_files: bool = False
) -> dict[str, Any]:
    """torchvision ImageFolder: root/CLASS/*.png, or root/train, root/val, root/test each so laid out.

    Missing val/test splits are carved from train (the carved ones see eval transforms, never augmentation).
    Every file is reached once (a symlink loop or a second link to one file is refused: it would put
    the same image in train and test) and opened once here, so a corrupt, empty, truncated or
    oversized image is named now, not mid-epoch; `skip_bad_files` drops them instead (counted in
    the result's `skipped_files`).
    """
    from torchvision.datasets import ImageFolder

    from trainkit.data.vision import compose_transforms

    base = _existing(root, "data.root")
    train_tf, eval_tf = compose_transforms(train_transforms), compose_transforms(eval_transforms)
    train_dir = base / "train" if (base / "train").is_dir() else base
    dirs = {"train": train_dir}
    for split in ("val", "test"):
        if train_dir != base and (base / split).is_dir():
            dirs[split] = base / split
    seen: dict[str, Path] = {}
    for d in dirs.values():
        _walk_once(d, seen)
    checked: dict[str, str | None] = {}  # path -> problem (None: fine); train and train_eval share it

    def load(d: Path, tf: Any) -> Any:
        try:
            ds = ImageFolder(str(d), transform=tf, loader=_open_image)
        except (FileNotFoundError, RuntimeError) as exc:
            raise DataError(f"no images under {d} ({str(exc).splitlines()[0][:120]}); lay them out as {d}/CLASS/IMAGE.png") from exc
        for path, _ in ds.samples:
            if path not in checked:
                checked[path] = image_problem(path)
        bad = {p: why for p, why in checked.items() if why}
        if bad and not skip_bad_files:
            first = next(iter(bad.items()))
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise DataError(
                f"bad image {first[0]} ({first[1]}){more}; fix or remove it, or set data.skip_bad_files=true to skip such files"
            )
        ds.samples = [(p, t) for p, t in ds.samples if p not in bad]
        ds.imgs, ds.targets = ds.samples, [t for _, t in ds.samples]
        if not ds.samples:
            raise DataError(f"no readable images under {d}: all {len(bad)} are bad")
        return ds

    out: dict[str, Any] = {"train": load(train_dir, train_tf), "train_eval": load(train_dir, eval_tf), "val": None, "test": None}
    for split in ("val", "test"):
        if split in dirs:
            out[split] = load(dirs[split], eval_tf)
            if out[split].classes != out["train"].classes:
                raise DataError(f"{dirs[split]} has classes {out[split].classes} but {train_dir} has {out['train'].classes}")
    out["skipped_files"] = sum(1 for why in checked.values() if why)
    return out


def _walk_once(top: Path, seen: dict[str, Path]) -> None:
    """Walk an image tree following links, refusing a loop or a file reached twice (os.walk follows loops ~40 deep)."""
    import os

    stack = [top]
    ancestors_of: dict[str, set[str]] = {os.path.realpath(top): set()}
    while stack:
        d = stack.pop()
        real_d = os.path.realpath(d)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"cannot read the image folder {d}: {exc.strerror or exc}") from None
        for e in entries:
            path = Path(e.path)
            real = os.path.realpath(path)
            if e.is_dir(follow_symlinks=True):
                if real == real_d or real in ancestors_of.get(real_d, set()):
                    raise DataError(
                        f"symlink loop in the image folder: {path} -> {os.readlink(path) if path.is_symlink() else real}; "
                        "it would read every image again and again (and put the same images in train and test); remove the link"
                    )
                if real in ancestors_of:
                    raise DataError(f"{path} is the folder {real} a second time; remove the link so each image is read once")
                ancestors_of[real] = ancestors_of[real_d] | {real_d}
                stack.append(path)
            elif real in seen:
                raise DataError(
                    f"{path} and {seen[real]} are the same file ({real}); each image must appear once, "
                    "or it may be in train and test at the same time; remove one of them"
                )
            elif e.is_file(follow_symlinks=True) or path.is_symlink():
                seen[real] = path


def image_problem(path: str) -> str | None:
    """Why an image file cannot be used (None: it opens and verifies), without decoding its pixels."""
    import os
    import warnings

    from PIL import Image

    if not os.path.exists(path):
        return "a dangling symlink" if os.path.islink(path) else "it does not exist"
    if os.path.getsize(path) == 0:
        return "an empty file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"too many pixels, a possible decompression bomb: {str(exc).split('.')[0]}"
    except Image.UnidentifiedImageError:
        return "not an image file PIL can read"
    except Exception as exc:  # truncated or corrupt data: SyntaxError, OSError, struct errors
        return f"corrupt or truncated: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}"
    return None


def _open_image(path: str) -> Any:
    """ImageFolder's loader with the file named on failure (a truncated JPEG passes verify and fails here)."""
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            im = Image.open(fh)
            return im.convert("RGB")
    except Exception as exc:
        raise DataError(
            f"bad image {path} ({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}); fix or remove it, "
            "or set data.skip_bad_files=true to skip such files"
        ) from None


def check_source(target: str, kwargs: dict[str, Any]) -> None:
    """Pre-flight: the file or folder a built-in data source reads exists (before a run directory is made)."""
    if not target.startswith("trainkit.data.files."):
        return
    name = target.rsplit(".", 1)[-1]
    path, root = kwargs.get("path"), kwargs.get("root")
    if name in ("tensor_file", "csv", "parquet") and path is not None and not _existing(str(path), "data.path").is_file():
        raise DataError(f"data.path={path} is a directory; give the file")
    if name in ("csv", "parquet") and path is not None and kwargs.get("columns"):
        from trainkit.data.tables import check_types, header_names

        header = header_names(Path(str(path)).expanduser(), str(kwargs.get("delimiter", ",")), name == "parquet")
        label = kwargs.get("label_column", "label")
        keep = [h for i, h in enumerate(header) if h != str(label) and str(i) != str(label)]
        check_types(dict(kwargs["columns"]), keep, str(path))
    if name == "image_folder" and root is not None and not _existing(str(root), "data.root").is_dir():
        raise DataError(f"data.root={root} is a file; give the folder that holds CLASS/IMAGE files")
