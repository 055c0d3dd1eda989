"""`trainkit plot`: training curves from metrics.csv as PNG, for one run or a comparison of many.

A comparison draws at most `top` runs (10 by default), the best by their monitor, with the legend outside
the axes, and says which it left out; with several paths, one that cannot be plotted (a run that failed
before its first epoch) is skipped with a note. matplotlib is an optional extra (`pip install
'trainkit[plot]'`); nothing else here needs torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError

METRICS_FILE = "metrics.csv"
# Runs a comparison draws by default: more colours than this are not told apart.
TOP = 10
# Legend labels longer than this are cut (the full overrides are in each run's .hydra/overrides.yaml).
LABEL_CHARS = 60
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


def best_of(run: Path) -> tuple[float, str, str] | None:
    """(best_value, monitor, mode) from the run's summary.json, or None for a run without one."""
    import json
    import math

    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    value = summary.get("best_value")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value), str(summary.get("monitor", "")), str(summary.get("monitor_mode", "min"))


def rank(runs: list[Path], top: int) -> tuple[list[Path], list[Path]]:
    """(shown, left out): the `top` best runs by their monitor (all when top <= 0); runs without a summary last."""
    if top <= 0 or len(runs) <= top:
        return runs, []
    bests = {run: best_of(run) for run in runs}

    def key(run: Path) -> tuple[int, float]:
        b = bests[run]
        return (1, 0.0) if b is None else (0, -b[0] if b[2] == "max" else b[0])

    ordered = sorted(runs, key=key)  # stable: ties keep path order
    return ordered[:top], ordered[top:]


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def comparison_figure(runs: list[Path], top: int = TOP) -> tuple[Any, list[Path], list[Path]]:
    """The comparison figure (not saved), the runs drawn and those left out (beyond `top`): a panel per
    metric, one colour per run (val solid, train dashed), the legend to the right of the panels."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    data = {run: _load(run) for run in runs}
    data = {run: rows for run, rows in data.items() if rows}
    if not data:
        raise TrainkitError("none of the runs has a finished epoch in metrics.csv yet; nothing to plot")
    shown, left_out = rank(list(data), top)
    data = {run: data[run] for run in shown}
    names: list[str] = []
    for rows in data.values():
        names += [n for n in panels(rows) if n not in names]
    names.sort(key=lambda m: (m == "lr", m != "loss"))
    shared = set.intersection(*(set(read_overrides(r)) for r in [*data, *left_out]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(data) <= 10 else "tab20")
    for i, (run, rows) in enumerate(data.items()):
        color = cmap(i % cmap.N)
        label = _short(run_label(run, shared))
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
    handles, labels = axes[0][0].get_legend_handles_labels()
    title = None
    if left_out:
        b = best_of(shown[0])
        by = f" by {b[1]} ({b[2]})" if b else ""
        title = f"best {len(shown)} of {len(shown) + len(left_out)}{by}"
    fig.tight_layout()
    # Outside the axes, right of the last panel: 20 labels on top of the curves hid them.
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, title=title,
               title_fontsize=8, frameon=False)
    return fig, shown, left_out


def plot_comparison(runs: list[Path], out: Path, top: int = TOP) -> Path:
    """comparison.png: see comparison_figure; the runs it left out are named on stderr."""
    import sys

    plt = _pyplot()
    fig, shown, left_out = comparison_figure(runs, top)
    fig.savefig(out, dpi=100, bbox_inches="tight")  # "tight" takes the legend outside the axes in
    plt.close(fig)
    for run in runs:
        if run not in shown and run not in left_out:
            print(f"trainkit plot: skipped {run}: {METRICS_FILE} has no finished epoch yet", file=sys.stderr)
    if left_out:
        names = ", ".join(str(r) for r in left_out)
        print(f"trainkit plot: drew the best {len(shown)} runs by their monitor; left out "
              f"{len(left_out)}: {names} (--top 0 draws all)", file=sys.stderr)
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


def plot(paths: list[str], out: str | None = None, top: int = TOP) -> list[Path]:
    """What `trainkit plot` does; returns the files written.

    With several paths, one that cannot be plotted (a run that failed before its first epoch, a file) is
    skipped with a note on stderr, so `trainkit plot outputs/*/*` draws the rest; with one it is an error.
    """
    import sys

    dirs = [Path(p) for p in paths]
    for d in dirs:
        if not d.exists():
            raise TrainkitError(f"{d} is not a directory; give a run directory (outputs/DATE/TIME) or a sweep directory")
    runs: list[Path] = []
    problems: list[tuple[str, str]] = []  # (the error alone, the note when skipped among several)
    for d in dirs:
        found = find_runs(d) if d.is_dir() else []
        if not d.is_dir():
            problems.append((f"{d} is not a directory; give a run directory (outputs/DATE/TIME) or a sweep directory",
                             f"{d}: not a directory"))
        elif not found and (d / "summary.json").is_file():  # a run that ended before its first epoch
            problems.append((f"{d} has no {METRICS_FILE}: the run ended before its first epoch ({_ended(d)}); nothing to plot",
                             f"{d}: no {METRICS_FILE}, the run ended before its first epoch ({_ended(d)})"))
        elif not found:
            problems.append((f"no {METRICS_FILE} in {d} or below; is it a trainkit run or sweep directory?",
                             f"{d}: no {METRICS_FILE} in it or below"))
        runs += [r for r in found if r not in runs]
    if problems and (len(dirs) == 1 or not runs):
        first = problems[0][0]
        raise TrainkitError(first if len(problems) == 1 else f"nothing to plot: {first} (and {len(problems) - 1} more)")
    for _, note in problems:
        print(f"trainkit plot: skipped {note}", file=sys.stderr)
    if len(runs) == 1:
        return [plot_run(runs[0], Path(out) if out else None)]
    if out:
        target = Path(out)
    elif len(dirs) == 1:
        target = dirs[0] / "comparison.png"  # a sweep: the figure lives with its jobs
    else:
        target = Path("comparison.png")
    return [plot_comparison(runs, target, top)]
