"""`trainkit plot`: training curves from metrics.csv as PNG, for one run or a comparison of many.

matplotlib is an optional extra (`pip install 'trainkit[plot]'`); nothing else here needs torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError

METRICS_FILE = "metrics.csv"
# Columns that are bookkeeping, not curves worth a panel of their own.
SKIP = ("epoch", "step", "lr")


def find_runs(path: Path) -> list[Path]:
    """The run directories at or under `path` (any directory that holds metrics.csv), sorted."""
    if (path / METRICS_FILE).is_file():
        return [path]
    runs = sorted((p.parent for p in path.rglob(METRICS_FILE)), key=_natural)
    return runs


def _natural(p: Path) -> list[Any]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def panels(rows: list[dict[str, Any]]) -> list[str]:
    """Metric names to draw: loss first, then every metric logged for train or val, then lr."""
    names: list[str] = []
    for key in rows[0] if rows else []:
        for prefix in ("train_", "val_"):
            if key.startswith(prefix):
                metric = key[len(prefix) :]
                if metric.endswith(("_s", "_per_s")) or metric in names:
                    continue
                if all(r.get(key) is None for r in rows):
                    continue  # a text column, or one never filled
                names.append(metric)
    names.sort(key=lambda m: m != "loss")  # stable: the rest keep their column order
    if rows and "lr" in rows[0]:
        names.append("lr")
    return names


def run_label(run: Path, common: set[str] | None = None) -> str:
    """A short name for a run: its command-line overrides (minus those all runs share), else its path."""
    overrides = read_overrides(run)
    if common is not None:
        overrides = [o for o in overrides if o not in common]
    return " ".join(overrides) if overrides else run.name


def read_overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    try:
        return [str(o) for o in OmegaConf.load(path)]
    except Exception:
        return []


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise TrainkitError(
            "trainkit plot needs matplotlib, which is not installed; install it with: pip install 'trainkit[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs = [int(r["epoch"]) for r in rows if r.get(key) is not None]
    ys = [r[key] for r in rows if r.get(key) is not None]
    return xs, ys


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None  # a column that is not a number (a logger's text column) is not a curve


def _load(run: Path) -> list[dict[str, Any]]:
    """metrics.csv as rows of numbers; rows without an epoch are skipped."""
    import csv

    try:
        with (run / METRICS_FILE).open(newline="") as f:
            rows = [{k: _number(v) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]
    except (OSError, csv.Error) as exc:
        raise TrainkitError(f"cannot read {run / METRICS_FILE}: {exc}") from exc
    return [r for r in rows if r.get("epoch") is not None]


def plot_run(run: Path, out: Path | None = None) -> Path:
    """curves.png in the run directory: one panel per metric, train dashed and val solid."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    rows = _load(run)
    if not rows:
        raise TrainkitError(f"{run / METRICS_FILE} has no epochs yet; plot it after the first epoch ends")
    names = panels(rows)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], names, strict=True):
        if metric == "lr":
            ax.plot(*_series(rows, "lr"), marker="o", markersize=3, color="tab:green")
            ax.set_yscale("log" if all(v > 0 for v in _series(rows, "lr")[1]) else "linear")
        else:
            for prefix, style in (("train_", "--"), ("val_", "-")):
                xs, ys = _series(rows, prefix + metric)
                if xs:
                    ax.plot(xs, ys, style, marker="o", markersize=3, label=prefix.rstrip("_"))
            ax.legend()
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(run_label(run) if read_overrides(run) else str(run), fontsize=10)
    fig.tight_layout()
    target = out or run / "curves.png"
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def plot_comparison(runs: list[Path], out: Path) -> Path:
    """One figure comparing runs: a panel per metric, one colour per run (val solid, train dashed)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    data = {run: _load(run) for run in runs}
    data = {run: rows for run, rows in data.items() if rows}
    if not data:
        raise TrainkitError("none of the runs has a finished epoch in metrics.csv yet; nothing to plot")
    names: list[str] = []
    for rows in data.values():
        names += [n for n in panels(rows) if n not in names]
    names.sort(key=lambda m: (m == "lr", m != "loss"))
    shared = set.intersection(*(set(read_overrides(r)) for r in data))
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, rows) in enumerate(data.items()):
        color = colors[i % len(colors)]
        label = run_label(run, shared)
        for ax, metric in zip(axes[0], names, strict=True):
            if metric == "lr":
                xs, ys = _series(rows, "lr")
                ax.plot(xs, ys, color=color, marker="o", markersize=3, label=label)
                continue
            xs, ys = _series(rows, "val_" + metric)
            if xs:
                ax.plot(xs, ys, "-", color=color, marker="o", markersize=3, label=label)
            xs, ys = _series(rows, "train_" + metric)
            if xs:
                ax.plot(xs, ys, "--", color=color, alpha=0.5)
    for ax, metric in zip(axes[0], names, strict=True):
        ax.set_title(metric if metric == "lr" else f"{metric} (val solid, train dashed)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _ended(run: Path) -> str:
    """How a run without metrics ended, from its summary.json: 'status failed: <error>'."""
    import json

    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return "see its train.log"
    error = summary.get("error")
    return f"status {summary.get('status')}" + (f": {error}" if error else "")


def plot(paths: list[str], out: str | None = None) -> list[Path]:
    """What `trainkit plot` does; returns the files written."""
    dirs = [Path(p) for p in paths]
    for d in dirs:
        if not d.is_dir():
            raise TrainkitError(f"{d} is not a directory; give a run directory (outputs/DATE/TIME) or a sweep directory")
    runs: list[Path] = []
    for d in dirs:
        found = find_runs(d)
        if not found and (d / "summary.json").is_file():  # a run that ended before its first epoch
            raise TrainkitError(f"{d} has no {METRICS_FILE}: the run ended before its first epoch ({_ended(d)}); nothing to plot")
        if not found:
            raise TrainkitError(f"no {METRICS_FILE} in {d} or below; is it a trainkit run or sweep directory?")
        runs += [r for r in found if r not in runs]
    if len(runs) == 1:
        return [plot_run(runs[0], Path(out) if out else None)]
    if out:
        target = Path(out)
    elif len(dirs) == 1:
        target = dirs[0] / "comparison.png"  # a sweep: the figure lives with its jobs
    else:
        target = Path("comparison.png")
    return [plot_comparison(runs, target)]
