"""Tables as they come: infer each column's type, fit the encoding on the training rows, encode any rows alike.

A column is numeric (every filled cell a number), boolean (true/false, yes/no), categorical (text), or
dropped (`data.columns={id: drop}`, or text where nearly every row has its own value: a name, an id).
Numbers are filled with the training median, then standardised with the training mean and std; a
numeric or boolean column with holes in training gets an indicator column `NAME=missing`. A
categorical column is one-hot over its `max_categories` most frequent training values, plus
`NAME=missing` when training had holes and `NAME=other` for the rarer ones and for values never seen
in training (at eval or predict).

The fitted encoding (`fit`) is a plain dict of str, float and list values (it loads with
`torch.load(weights_only=True)`); `transform(rows, preprocessing)` applies it to new rows: that is
what `Data.meta["preprocessing"]` holds and what eval and predict use. Error messages name columns
the user gave and row numbers, never a cell's contents (the file may hold anything).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainkit.errors import DataError

TYPES = ("numeric", "categorical", "boolean", "drop")
#: Cells read as missing (case-insensitive, after stripping spaces): empty, NA, NaN, null, None, ?.
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
TRUE = frozenset({"true", "yes", "t", "y"})
FALSE = frozenset({"false", "no", "f", "n"})
MISSING_NAME, OTHER_NAME = "missing", "other"
#: A text column with more distinct training values than this share of its filled cells is an identifier.
ID_SHARE = 0.5


class Table:
    """The feature cells of a table as read (strings or None), column by column; encoded after the split."""

    def __init__(self, names: list[str], rows: list[list[Any]], types: Mapping[str, str] | None = None,
                 max_categories: int = 20, source: str = "the table") -> None:
        self.names = list(names)
        self.columns = {n: [_cell(r[i]) for r in rows] for i, n in enumerate(self.names)}
        self.types = dict(types or {})
        self.max_categories = int(max_categories)
        self.source = source
        check_types(self.types, self.names, source)

    def fit(self, rows: Sequence[int]) -> dict[str, Any]:
        """The encoding fitted on these rows (the training split's)."""
        return fit({n: [col[i] for i in rows] for n, col in self.columns.items()}, self.types, self.max_categories)

    def encode(self, rows: Sequence[int], preprocessing: Mapping[str, Any]) -> torch.Tensor:
        return transform({n: [col[i] for i in rows] for n, col in self.columns.items()}, preprocessing)


def check_types(types: Mapping[str, str], names: Sequence[str], source: str = "the table") -> None:
    """data.columns: every key a column of the table, every value one of TYPES."""
    for name, kind in types.items():
        if str(kind) not in TYPES:
            raise DataError(f"data.columns.{name}={kind} is not a column type; use one of: {', '.join(TYPES)}")
        if str(name) not in names:
            raise DataError(
                f"data.columns names '{name}', which is not a feature column of {source} "
                f"({len(names)} feature column{'s' if len(names) != 1 else ''}); check the header row's spelling"
            )


def needs_encoding(cells: Sequence[Sequence[str]]) -> bool:
    """True when some feature cell is not a number (text, or empty): the old all-numbers path cannot read it."""
    return any(not _is_number(v) for row in cells for v in row)


def fit(columns: Mapping[str, Sequence[Any]], types: Mapping[str, str] | None = None,
        max_categories: int = 20) -> dict[str, Any]:
    """Fit the encoding of every column on the training rows (`columns`: name -> cells)."""
    types = dict(types or {})
    out: list[dict[str, Any]] = []
    dropped: list[str] = []
    for name, raw in columns.items():
        cells = [_cell(v) for v in raw]
        kind = str(types.get(name) or infer_type(cells, max_categories))
        if kind == "drop":
            dropped.append(name)
            continue
        out.append(_FIT[kind](name, cells, max_categories))
    features = [f for col in out for f in outputs(col)]
    return {"kind": "table", "version": "1", "columns": out, "features": features, "dropped": dropped}


def fit_numbers(names: Sequence[str], x: torch.Tensor) -> dict[str, Any]:
    """The encoding of an all-numbers table used as it is (no scaling): holes at predict get the training median."""
    cols = [{"name": n, "type": "numeric", "fill": float(x[:, i].double().median()) if len(x) else 0.0,
             "mean": 0.0, "std": 1.0, "indicator": "no"} for i, n in enumerate(names)]
    return {"kind": "table", "version": "1", "columns": cols, "features": list(names), "dropped": []}


def infer_type(cells: Sequence[str | None], max_categories: int = 20) -> str:
    filled = [c for c in cells if c is not None]
    if not filled:
        return "drop"  # no value at all in training: nothing to learn from
    if all(_is_number(c) for c in filled):
        return "numeric"
    if all(c.lower() in TRUE | FALSE for c in filled):
        return "boolean"
    distinct = len(set(filled))
    if distinct > max_categories and distinct > ID_SHARE * len(filled):
        return "drop"  # an identifier or free text: one value per row, nothing one-hot can generalise
    return "categorical"


def outputs(col: Mapping[str, Any]) -> list[str]:
    """The feature names one column encodes to, in order."""
    name = col["name"]
    missing = [f"{name}={MISSING_NAME}"] if col["indicator"] == "yes" else []
    if col["type"] == "categorical":
        return [f"{name}={c}" for c in col["categories"]] + missing + [f"{name}={OTHER_NAME}"]
    return [name, *missing]


def _fit_numeric(name: str, cells: list[str | None], _: int) -> dict[str, Any]:
    values = [_number(c, name, i) for i, c in enumerate(cells)]
    present = [v for v in values if v is not None]
    fill = float(torch.tensor(present, dtype=torch.float64).quantile(0.5)) if present else 0.0
    filled = torch.tensor([fill if v is None else v for v in values], dtype=torch.float64)
    mean = float(filled.mean()) if len(filled) else 0.0
    std = float(filled.std(unbiased=False)) if len(filled) > 1 else 0.0
    return {"name": name, "type": "numeric", "fill": fill, "mean": mean, "std": std if std > 0 else 1.0,
            "indicator": "yes" if len(present) < len(values) else "no"}


def _fit_boolean(name: str, cells: list[str | None], _: int) -> dict[str, Any]:
    values = [_boolean(c, name, i) for i, c in enumerate(cells)]
    present = [v for v in values if v is not None]
    return {"name": name, "type": "boolean", "fill": sum(present) / len(present) if present else 0.0,
            "indicator": "yes" if len(present) < len(values) else "no"}


def _fit_categorical(name: str, cells: list[str | None], max_categories: int) -> dict[str, Any]:
    counts = Counter(c for c in cells if c is not None)
    top = sorted(counts, key=lambda c: (-counts[c], c))[: max(0, max_categories)]
    return {"name": name, "type": "categorical", "categories": sorted(top),
            "indicator": "yes" if any(c is None for c in cells) else "no"}


_FIT = {"numeric": _fit_numeric, "boolean": _fit_boolean, "categorical": _fit_categorical}


def transform(rows: Any, preprocessing: Mapping[str, Any]) -> torch.Tensor:
    """Encode rows as a fitted `preprocessing` says: a float32 tensor (rows, len(preprocessing["features"])).

    `rows`: a pandas DataFrame, a mapping of column name -> cells, or a list of row mappings
    (cells: str, number, bool or None/NaN for missing). Columns the encoding does not use are ignored;
    a column it needs that `rows` lacks is a DataError.
    """
    columns = _as_columns(rows)
    n = len(next(iter(columns.values()))) if columns else 0
    parts: list[torch.Tensor] = []
    for col in preprocessing["columns"]:
        name = col["name"]
        if name not in columns:
            raise DataError(f"the rows lack the column '{name}' that this model's table had; add it (empty cells may be left empty)")
        cells = [_cell(v) for v in columns[name]]
        parts.append(_ENCODE[col["type"]](col, cells))
    if not parts:
        return torch.zeros((n, 0), dtype=torch.float32)
    return torch.cat(parts, dim=1).to(torch.float32)


def _encode_numeric(col: Mapping[str, Any], cells: list[str | None]) -> torch.Tensor:
    values = [_number(c, col["name"], i) for i, c in enumerate(cells)]
    x = torch.tensor([col["fill"] if v is None else v for v in values], dtype=torch.float64)
    out = [((x - col["mean"]) / col["std"]).unsqueeze(1)]
    if col["indicator"] == "yes":
        out.append(torch.tensor([[1.0 if v is None else 0.0] for v in values], dtype=torch.float64))
    return torch.cat(out, dim=1)


def _encode_boolean(col: Mapping[str, Any], cells: list[str | None]) -> torch.Tensor:
    values = [_boolean(c, col["name"], i) for i, c in enumerate(cells)]
    out = [torch.tensor([[col["fill"] if v is None else float(v)] for v in values], dtype=torch.float64)]
    if col["indicator"] == "yes":
        out.append(torch.tensor([[1.0 if v is None else 0.0] for v in values], dtype=torch.float64))
    return torch.cat(out, dim=1)


def _encode_categorical(col: Mapping[str, Any], cells: list[str | None]) -> torch.Tensor:
    index = {c: i for i, c in enumerate(col["categories"])}
    width = len(index) + (2 if col["indicator"] == "yes" else 1)
    other = width - 1  # missing cells go to NAME=missing when training had holes, else to NAME=other
    missing = len(index) if col["indicator"] == "yes" else other
    idx = torch.tensor([missing if c is None else index.get(c, other) for c in cells], dtype=torch.long)
    return torch.nn.functional.one_hot(idx, width).to(torch.float64)


_ENCODE = {"numeric": _encode_numeric, "boolean": _encode_boolean, "categorical": _encode_categorical}


def _as_columns(rows: Any) -> dict[str, list[Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return {str(k): list(v) for k, v in rows.to_dict("list").items()}
    if isinstance(rows, Mapping):
        return {str(k): list(v) for k, v in rows.items()}
    if isinstance(rows, Sequence) and all(isinstance(r, Mapping) for r in rows):
        names = list(dict.fromkeys(str(k) for r in rows for k in r))
        return {n: [r.get(n) for r in rows] for n in names}
    raise DataError("rows to encode must be a pandas DataFrame, a dict of columns or a list of row dicts")


def _cell(v: Any) -> str | None:
    """A cell as text, None when missing (empty, NA, NaN, None, ...)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (int, float)):
        return repr(v)
    text = str(v).strip()
    return None if text.lower() in MISSING else text


def _is_number(v: str | None) -> bool:
    if v is None:
        return False
    try:
        return math.isfinite(float(v))
    except ValueError:
        return False


def _number(c: str | None, name: str, i: int) -> float | None:
    if c is None:
        return None
    try:
        return float(c)
    except ValueError:
        raise DataError(
            f"column '{name}' is numeric but row {i + 1} of it holds text; fix the cell, leave it empty, "
            f"or set data.columns.{name}=categorical"
        ) from None


def _boolean(c: str | None, name: str, i: int) -> float | None:
    if c is None:
        return None
    low = c.lower()
    if low in TRUE or low in ("1", "1.0"):
        return 1.0
    if low in FALSE or low in ("0", "0.0"):
        return 0.0
    raise DataError(
        f"column '{name}' is boolean but row {i + 1} of it is neither true nor false; fix the cell, "
        f"leave it empty, or set data.columns.{name}=categorical"
    )


def encode_splits(splits: dict[str, Any], table: Table,
                  preprocessing: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Replace each split's row ids by its encoded rows: (preprocessing, note for the run header).

    The encoding is fitted on the training split's rows, unless a stored `preprocessing` is given.
    """
    from torch.utils.data import TensorDataset

    ids = {k: ds.tensors[0][:, 0].tolist() for k, ds in splits.items()}
    preprocessing = dict(preprocessing) if preprocessing is not None else table.fit(ids["train"])
    for k, ds in splits.items():
        splits[k] = TensorDataset(table.encode(ids[k], preprocessing), *ds.tensors[1:])
    return preprocessing, describe(preprocessing)


def describe(preprocessing: Mapping[str, Any]) -> str:
    """One line for the run header: how many features, which columns were one-hot, filled or dropped."""
    cols = preprocessing["columns"]
    onehot = [c["name"] for c in cols if c["type"] == "categorical"]
    holes = [c["name"] for c in cols if c["indicator"] == "yes"]
    parts = [f"table: {len(preprocessing['features'])} features from {len(cols)} columns"]
    for label, names in (("one-hot", onehot), ("holes filled", holes), ("dropped", preprocessing["dropped"])):
        if names:
            parts.append(f"{label}: {', '.join(_short(n) for n in names[:6])}{' ...' if len(names) > 6 else ''}")
    return "; ".join(parts)


def _short(name: str) -> str:
    return name if len(name) <= 24 else name[:21] + "..."


def header_names(path: Any, delimiter: str = ",", parquet: bool = False) -> list[str]:
    """The column names of a CSV (its first row) or parquet file (its schema), without reading the rows."""
    if parquet:
        try:
            import pyarrow.parquet as pq

            return [str(n) for n in pq.read_schema(path).names]
        except ImportError:
            raise DataError("data=parquet needs pyarrow; install it with: pip install 'trainkit[tables]'") from None
        except Exception as exc:
            raise DataError(f"data.path={path} is not a parquet file ({type(exc).__name__})") from None
    import csv

    with open(path, newline="") as fh:
        first = next(csv.reader(fh, delimiter=delimiter), [])
    return [h.strip() for h in first]


def read_parquet(path: Any) -> list[list[str]]:
    """A parquet file as rows of text cells, header first (what the CSV reader gives); needs pandas + pyarrow."""
    try:
        import pandas as pd
    except ImportError:
        raise DataError("data=parquet needs pandas and pyarrow; install them with: pip install 'trainkit[tables]'") from None
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise DataError("data=parquet needs pyarrow; install it with: pip install 'trainkit[tables]'") from None
    except Exception as exc:
        raise DataError(f"data.path={path} is not a parquet file pandas can read ({type(exc).__name__})") from None
    header = [str(c) for c in frame.columns]
    body = [[_cell(v) or "" for v in row] for row in frame.itertuples(index=False, name=None)]
    return [header, *body]
