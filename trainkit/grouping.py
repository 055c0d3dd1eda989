"""Runs over seeds: rows whose overrides differ only in `seed`, grouped, with mean ± std and n of each metric.

`trainkit train -m seed=0,1,2 optim.lr=0.1,0.01` gives one group per lr. The statistics use the completed
runs of a group only; std is the sample standard deviation (n - 1), absent for a single run. Pure data, no
torch: report.py and the end-of-sweep table render what this returns.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

SEED_OVERRIDE = re.compile(r"^\+{0,2}seed=")
# Every metric of a row that gets a mean and std: these, then every test_* key.
STAT_KEYS = ("best_value", "best_epoch", "wall_time_s")
# The group columns a report gains (per-run rows keep all of theirs).
GROUP_KEYS = ("group", "group_n", "group_seeds")


def group_label(overrides: list[str]) -> str:
    """A run's overrides without its seed: the runs of one group share it."""
    return " ".join(o for o in overrides if not SEED_OVERRIDE.match(o))


def stat_keys(rows: list[dict[str, Any]]) -> list[str]:
    tests = sorted({k for r in rows for k in r if k.startswith("test_")})
    return [*STAT_KEYS, *tests]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and sample std of `values`; (None, None) for none, std None for one."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def group_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per group (by each row's `group` label), best mean first; [] when no group has two runs.

    A group dict holds group, group_n (completed runs), group_seeds, runs (all of them, failures too),
    monitor/monitor_mode, and mean_<metric> / std_<metric> for best_value, best_epoch, wall_time_s, test_*.
    """
    if not all("group" in r for r in rows):  # rows collect() found no groups in
        return []
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_label.setdefault(str(r.get("group", "")), []).append(r)
    if all(len(members) < 2 for members in by_label.values()):
        return []
    keys = stat_keys(rows)
    groups = []
    for label, members in by_label.items():
        done = [r for r in members if r.get("status") == "completed"]
        first = members[0]
        g: dict[str, Any] = {
            "group": label,
            "group_n": len(done),
            "group_seeds": " ".join(str(s) for s in sorted(r["seed"] for r in done if r.get("seed") is not None)),
            "runs": len(members),
            "monitor": first.get("monitor"),
            "monitor_mode": first.get("monitor_mode"),
        }
        for key in keys:
            values = [v for v in (_number(r.get(key)) for r in done) if v is not None]
            g[f"mean_{key}"], g[f"std_{key}"] = mean_std(values)
        groups.append(g)
    return sorted(groups, key=_best_first)


def _best_first(g: dict[str, Any]) -> tuple[int, float]:
    v = g.get("mean_best_value")
    if v is None:
        return (1, 0.0)
    return (0, -v if g.get("monitor_mode") == "max" else v)


def annotate(rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    """Give each run row its group's columns (the CSV and JSON carry them); drop `group` when none."""
    if not groups:
        for r in rows:
            r.pop("group", None)
        return
    by_label = {g["group"]: g for g in groups}
    for r in rows:
        g = by_label[str(r.get("group", ""))]
        r.update({k: v for k, v in g.items() if k not in ("runs", "monitor", "monitor_mode")})


def group_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The group columns the rows carry, in order: group, n, seeds, then each metric's mean and std."""
    if not any("group_n" in r for r in rows):
        return []
    stats = [f"{s}_{k}" for k in stat_keys(rows) for s in ("mean", "std")]
    return [*GROUP_KEYS, *(c for c in stats if any(c in r for r in rows))]


def pm(mean: float | None, std: float | None) -> str:
    """'0.9666 ± 0.0040' (4 significant digits), the mean alone for one run, '' for none."""
    if mean is None:
        return ""
    return f"{mean:.4g}" + (f" ± {std:.2g}" if std is not None else "")
