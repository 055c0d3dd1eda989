"""Metric writers behind one small interface: CSV always (the run's record), others by `logger=`."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any


class Logger:
    """A metrics sink. Only rank 0 creates loggers."""

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One row per epoch (train, val, lr, timing)."""

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The run's final summary (test metrics, best epoch)."""

    def close(self) -> None:
        """Flush and release files."""


class CSVLogger(Logger):
    """`metrics.csv`: one row per epoch; a resumed run appends without duplicating epochs."""

    def __init__(self, run_dir: str | Path, filename: str = "metrics.csv", resume_epoch: int | None = None) -> None:
        self.path = Path(run_dir) / filename
        self.columns: list[str] | None = None
        if resume_epoch is not None and self.path.exists():
            self._truncate(resume_epoch)

    def _truncate(self, keep_through_epoch: int) -> None:
        """Drop rows past the checkpoint's epoch: a killed run may have logged an epoch it never saved."""
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            self.columns = list(reader.fieldnames or [])
            rows = [r for r in reader if int(r["epoch"]) <= keep_through_epoch]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)

    def log_epoch(self, row: dict[str, Any]) -> None:
        new = self.columns is None and not self.path.exists()
        if self.columns is None:
            self.columns = list(row) if new else _header(self.path)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """metrics.csv back as dicts of floats (ints for epoch/step)."""
    rows: list[dict[str, Any]] = []
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: (int(v) if k in ("epoch", "step") else float(v)) if v not in ("", None) else None for k, v in r.items()})
    return rows
