"""The end-of-sweep summary that Hydra calls (a Hydra callback), and the resolvers it relies on.

No torch here: the callback only reads the files the jobs left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trainkit.rundir import (  # noqa: F401  (re-exported; importing registers the resolvers)
    claim_dir,
    gpu_for_job,
    job_device_index,
    register_resolvers,
    sweep_direction,
)

try:  # Hydra's callback base class; hydra is a dependency, but keep this module importable without it.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]


class SweepSummary(Callback):  # type: ignore[misc]
    """At the end of a multirun: print every job's result as a table, write summary.csv at the sweep root."""

    def __init__(self, filename: str = "summary.csv") -> None:
        self.filename = filename

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from trainkit.report import collect, print_table, write_csv

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        rows = collect(sweep_dir)
        if not rows:
            return
        write_csv(rows, sweep_dir / self.filename)
        print_table(rows, title=f"sweep {sweep_dir}: {len(rows)} jobs")
        print(f"summary: {sweep_dir / self.filename}")
