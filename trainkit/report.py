"""`trainkit report DIR`: one row per run found under DIR, as a table, CSV, JSON or Markdown.

Reads only the files a run leaves (summary.json, .hydra/overrides.yaml, checkpoints/), so it works
on any run or sweep directory and never imports torch. Runs that differ only in `seed` are also
grouped (trainkit.grouping): mean ± std and n of each metric.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError
from trainkit.files import atomic_write_text
from trainkit.grouping import annotate, group_columns, group_label, group_rows, pm
from trainkit.tables import Col, build, choose, spare

FORMATS = ("table", "csv", "json", "md")
BASE_COLUMNS = ["job", "status", "overrides", "monitor", "best_value", "best_epoch", "epochs", "wall_time_s"]
HEADERS = {"wall_time_s": "time (s)", "best_epoch": "best epoch"}
SKIP_DIRS = {".hydra", "checkpoints", "__pycache__", ".git"}


def is_run_dir(path: Path) -> bool:
    """A run directory holds Hydra's record (.hydra/) or trainkit's summary.json."""
    return (path / ".hydra").is_dir() or (path / "summary.json").is_file()


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Every run directory under `root` (itself included), at any depth, in path order."""
    root = Path(root)
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if is_run_dir(here):
            found.append(here)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
    return sorted(found, key=_natural_key)


def _natural_key(p: Path) -> list[Any]:
    # Sweep jobs are numbered 0, 1, ..., 10: sort 2 before 10.
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in p.parts]


def _read_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        import yaml

        data = yaml.safe_load(path.read_text())
    except Exception:  # a half-written file: show the run without its overrides
        return []
    return [str(o) for o in data] if isinstance(data, list) else []


def run_row(run_dir: Path, root: Path) -> dict[str, Any]:
    """The report row of one run directory."""
    rel = run_dir.relative_to(root) if run_dir != root else Path(run_dir.name)
    row: dict[str, Any] = {"job": str(rel), "run_dir": str(run_dir)}
    summary: dict[str, Any] = {}
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            summary = {"status": "unreadable"}
    if summary:
        status = str(summary.get("status", "unknown"))
    elif (run_dir / "checkpoints" / "last.pt").is_file():
        status = "interrupted"
    else:
        status = "incomplete"
    row["status"] = status
    overrides = _read_overrides(run_dir)
    row["overrides"] = " ".join(overrides)
    row["group"] = group_label(overrides)
    for key in (
        "monitor",
        "monitor_mode",
        "best_value",
        "best_epoch",
        "epochs",
        "wall_time_s",
        "seed",
        "error",
    ):
        row[key] = summary.get(key)
    for key, value in summary.items():
        if key.startswith("test_"):
            row[key] = value
    return row


def collect(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows for every run under `root`, best first by each run's monitored metric; failures last.

    When runs differ only in `seed`, each row also carries its group's columns (group, group_n, ...).
    """
    root = Path(root)
    rows = sort_rows([run_row(d, root) for d in find_runs(root)])
    annotate(rows, group_rows(rows))
    return rows


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(r: dict[str, Any]) -> tuple[int, float]:
        v = r.get("best_value")
        if r.get("status") != "completed" or not isinstance(v, (int, float)) or not math.isfinite(v):
            return (1, 0.0)
        return (0, -v if r.get("monitor_mode") == "max" else v)

    return sorted(rows, key=key)


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Base columns, then every test metric any row has, the error text if any failed, run_dir, then the
    group columns (over seeds) when there are groups."""
    tests = sorted({k for r in rows for k in r if k.startswith("test_")})
    cols = BASE_COLUMNS + tests
    if any(r.get("error") for r in rows):
        cols.append("error")
    return [*cols, "run_dir", *group_columns(rows)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading ' (OWASP)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def write_csv(rows: list[dict[str, Any]], path: str | os.PathLike[str] | None = None) -> str:
    """summary.csv: one row per run, full precision; written atomically when `path` is given."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(rows), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else csv_cell(v)) for k, v in r.items()})
    text = buf.getvalue()
    if path is not None:
        atomic_write_text(path, text)
    return text


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """One table row per run; then, when runs differ only in seed, one row per group (mean ± std)."""
    grouped = group_columns(rows)
    cols = [c for c in columns(rows) if c != "run_dir" and c not in grouped]
    lines = _md(cols, [{c: _cell(r.get(c)) for c in cols} for r in rows])
    groups = group_rows(rows)
    if groups:
        gcols, cells = group_cells(groups)
        lines += ["", f"Over seeds: mean ± sample std of {len(groups)} groups (n completed runs each).", ""]
        lines += _md([h for _, h in gcols], [{h: c[k] for k, h in gcols} for c in cells])
    return "\n".join(lines) + "\n"


def _md(header: list[str], cells: list[dict[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for c in cells:
        lines.append("| " + " | ".join(c.get(h, "").replace("|", "\\|") for h in header) + " |")
    return lines


def _key_test(monitor: str | None) -> str:
    """The test metric that matches the monitor: val_acc -> test_acc, val_rmse -> test_rmse."""
    return "test_" + (monitor.split("_", 1)[1] if monitor and "_" in monitor else "loss")


def _common(rows: list[dict[str, Any]]) -> list[str]:
    """Overrides every run shares (shown once above the table rather than on each row)."""
    if len(rows) < 2:
        return []
    lists = [str(r.get("overrides") or "").split(" ") for r in rows]
    return [o for o in lists[0] if o and all(o in other for other in lists[1:])]


def _without(text: str, common: Sequence[str]) -> str:
    return " ".join(o for o in text.split(" ") if o and o not in common)


def group_cells(
    groups: list[dict[str, Any]], common: Sequence[str] = ()
) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(key, header) pairs and one dict of texts per group: group, n, seeds, then mean ± std per metric."""
    monitors = {g["monitor"] for g in groups if g.get("monitor")}
    monitor = next(iter(monitors)) if len(monitors) == 1 else None
    metrics = [k[len("mean_"):] for k in groups[0] if k.startswith("mean_")]
    metrics = [m for m in metrics if any(g.get(f"mean_{m}") is not None for g in groups)]
    cols = [("group", "group"), ("group_n", "n"), ("group_seeds", "seeds")]
    cols += [("monitor", "monitor")] if len(monitors) > 1 else []  # groups of several tasks
    cols += [(m, f"best {monitor or 'value'}" if m == "best_value" else HEADERS.get(m, m)) for m in metrics]
    cells = []
    for g in groups:
        c = {"group": _without(g["group"], common) or "(no other overrides)", "group_n": f"{g['group_n']}/{g['runs']}",
             "group_seeds": g["group_seeds"], "monitor": str(g.get("monitor") or "")}
        c.update({m: pm(g.get(f"mean_{m}"), g.get(f"std_{m}")) for m in metrics})
        cells.append(c)
    return cols, cells


def _priority(key: str, monitor: str | None) -> int:
    order = ["job", "group", "status", "group_n", "best_value", "monitor", _key_test(monitor), "overrides", "test_loss",
             "best_epoch", "wall_time_s", "epochs", "group_seeds"]
    return order.index(key) if key in order else len(order)


# A row's overrides stay in the table while they fold onto at most this many lines; else they go below it.
MAX_OVERRIDE_LINES = 3


def print_table(rows: list[dict[str, Any]], title: str | None = None, console: Any = None) -> None:
    """The rich table: one line per run, best first, fitted to the terminal; then the groups over seeds.

    Overrides every run shares are printed once above it; a run's own overrides fold in their column, or
    go on their own lines under the table when the terminal is too narrow for them.
    """
    from trainkit.tables import console as default_console

    out = console or default_console()
    width = int(out.width)
    monitors = {r["monitor"] for r in rows if r.get("monitor")}
    monitor = next(iter(monitors)) if len(monitors) == 1 else None  # runs of several tasks: a monitor column
    common = _common(rows)
    hidden = ("run_dir", "error", *group_columns(rows), *(("monitor",) if len(monitors) <= 1 else ()))
    keys = [c for c in columns(rows) if c not in hidden]
    cells = [{k: _cell(r.get(k)) for k in keys} for r in rows]
    for c, r in zip(cells, rows, strict=True):
        c["overrides"] = _without(str(r.get("overrides") or ""), common)
    cols = [Col(k, f"best {monitor or 'value'}" if k == "best_value" else HEADERS.get(k, k), _priority(k, monitor),
                fold=k == "overrides" or k == "job" and any(len(c["job"]) > 40 for c in cells),
                min_width=20 if k == "overrides" else 24,
                justify="left" if k in ("job", "status") else "right") for k in keys]
    if not any(c["overrides"] for c in cells):
        cols = [c for c in cols if c.key != "overrides"]
    chosen, split = choose(cols, cells, width)
    below = False
    if any(c.key == "overrides" for c in cols):
        rest = [c for c in chosen if c.key != "overrides"]
        room = spare(rest, cells, split, width) - 3
        longest = max(len(c["overrides"]) for c in cells)
        if room < 12 or -(-longest // room) > MAX_OVERRIDE_LINES:
            below = True
            chosen, split = choose([c for c in cols if c.key != "overrides"], cells, width)
    styles = [None if r.get("status") == "completed" else "red" if r.get("status") == "failed" else "yellow" for r in rows]
    if common:
        out.print(f"every run: {' '.join(common)}", markup=False)
    out.print(build(chosen, cells, split, title=title, styles=styles))
    if below:
        for c in cells:
            if c["overrides"]:
                # textwrap fills each line, breaking a long path where rich would leave "0:" alone on a line.
                for line in textwrap.wrap(f"{c['job']}: {c['overrides']}", width, subsequent_indent="  ",
                                          break_on_hyphens=False):
                    out.print(line, markup=False, soft_wrap=True)
    left = [c.key for c in cols if c not in chosen and not (below and c.key == "overrides")]
    if left:
        out.print(f"left out at {width} columns: {', '.join(left)} (--format csv|json|md has every column)",
                  markup=False)
    for r in rows:
        if r.get("error"):
            out.print(f"{r['job']}: {r['status']}: {r['error']}", markup=False, soft_wrap=True)
    groups = group_rows(rows)
    if groups:
        print_groups(groups, out, common)


def print_groups(groups: list[dict[str, Any]], out: Any, common: Sequence[str] = ()) -> None:
    """The runs over seeds: one line per group, mean ± sample std of each metric, n completed of all."""
    monitor = next((g["monitor"] for g in groups if g.get("monitor")), None)
    gcols, cells = group_cells(groups, common)
    cols = [Col(k, h, _priority(k, monitor), fold=k in ("group", "group_seeds"), min_width=16 if k == "group" else 5,
                justify="left" if k in ("group", "group_seeds") else "right") for k, h in gcols]
    chosen, split = choose(cols, cells, int(out.width))
    title = f"over seeds: mean ± std of {len(groups)} groups"
    styles = [None if g["group_n"] == g["runs"] else "yellow" for g in groups]
    out.print(build(chosen, cells, split, title=title, styles=styles))
    left = [c.key for c in cols if c not in chosen]
    if left:
        out.print(f"left out at {out.width} columns: {', '.join(left)} (--format csv|json|md has every column)",
                  markup=False)


def render(rows: list[dict[str, Any]], fmt: str) -> str | None:
    """CSV/JSON/Markdown text, or None after printing the table."""
    if fmt == "csv":
        return write_csv(rows)
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    if fmt == "md":
        return to_markdown(rows)
    print_table(rows)
    return None


REPORT_HELP = """usage: trainkit report DIR [--format table|csv|json|md]

Find every run under DIR (a run directory, a sweep directory, or outputs/) at any depth and print
one row per run: its overrides, status, best monitored value, test metrics and time, best first.

examples:
  trainkit report outputs/multirun/2026-11-22/14-03-11
  trainkit report outputs --format md
"""


def cmd_report(args: list[str]) -> int:
    """The `trainkit report` subcommand."""
    if any(a in ("-h", "--help") for a in args):
        print(REPORT_HELP)
        return 0
    fmt = "table"
    dirs: list[str] = []
    it = iter(args)
    for a in it:
        if a in ("--format", "-f"):
            fmt = next(it, "")
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a.startswith("-"):
            raise TrainkitError(f"unknown option '{a}' for report; see 'trainkit report --help'")
        else:
            dirs.append(a)
    if fmt not in FORMATS:
        raise TrainkitError(
            f"--format {fmt or '(missing)'} is not a format; choose one of: {', '.join(FORMATS)}"
        )
    if len(dirs) != 1:
        raise TrainkitError("report needs one directory: trainkit report outputs/multirun/DATE/TIME")
    root = Path(dirs[0])
    if not root.is_dir():
        raise TrainkitError(
            f"report: '{root}' is not a directory; give a run or sweep directory (e.g. outputs)"
        )
    rows = collect(root)
    if not rows:
        raise TrainkitError(f"report: no runs under '{root}' (a run directory holds .hydra/ or summary.json)")
    text = render(rows, fmt)
    if text is not None:
        print(text, end="")
    return 0
