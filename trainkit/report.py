"""`trainkit report DIR`: one row per run found under DIR, as a table, CSV, JSON or Markdown.

Reads only the files a run leaves (summary.json, .hydra/overrides.yaml, checkpoints/), so it works
on any run or sweep directory and never imports torch.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError
from trainkit.files import atomic_write_text

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
    row["overrides"] = " ".join(_read_overrides(run_dir))
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
    """Rows for every run under `root`, best first by each run's monitored metric; failures last."""
    root = Path(root)
    rows = [run_row(d, root) for d in find_runs(root)]
    return sort_rows(rows)


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(r: dict[str, Any]) -> tuple[int, float]:
        v = r.get("best_value")
        if r.get("status") != "completed" or not isinstance(v, (int, float)) or not math.isfinite(v):
            return (1, 0.0)
        return (0, -v if r.get("monitor_mode") == "max" else v)

    return sorted(rows, key=key)


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Base columns, then every test metric any row has, then the error text if any failed."""
    tests = sorted({k for r in rows for k in r if k.startswith("test_")})
    cols = BASE_COLUMNS + tests
    if any(r.get("error") for r in rows):
        cols.append("error")
    return [*cols, "run_dir"]


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
    cols = [c for c in columns(rows) if c != "run_dir"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """The rich table: one line per run, best first."""
    from rich.console import Console
    from rich.table import Table

    cols = [c for c in columns(rows) if c not in ("run_dir", "error", "monitor")]
    monitor = next((r["monitor"] for r in rows if r.get("monitor")), None)
    table = Table(title=title)
    for c in cols:
        header = f"best {monitor}" if c == "best_value" and monitor else HEADERS.get(c, c)
        if c in ("job", "status", "overrides"):
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, justify="right", no_wrap=True)
    for r in rows:
        style = None if r.get("status") == "completed" else "red" if r.get("status") == "failed" else "yellow"
        table.add_row(*(_cell(r.get(c)) for c in cols), style=style)
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a log file: no 80-column squeeze
        console = Console(highlight=False, width=200)
    console.print(table)
    for r in rows:
        if r.get("error"):
            print(f"{r['job']}: {r['status']}: {r['error']}")


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
