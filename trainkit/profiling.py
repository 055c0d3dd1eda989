"""`trainer.profile=true`: torch.profiler over a window of optimizer steps, a trace file and the top operators.

The window is `torch.profiler.schedule(wait, warmup, active)` from `trainer.profile_schedule`, stepped
once per optimizer step, so the first steps (allocations, autotuning) stay out of it. When the window
closes, `profile/trace.json` (Chrome trace format: chrome://tracing or https://ui.perfetto.dev) and
`profile/top_ops.txt` are written and the top operators by self time are printed. Built only when
asked for: a run without it has no profiler and no per-step call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.profiler import ProfilerActivity, profile, schedule

ROWS = 15


class StepProfiler:
    """A started torch.profiler that records steps wait+warmup .. wait+warmup+active-1 and then reports."""

    def __init__(self, out_dir: Path, device: torch.device, wait: int, warmup: int, active: int,
                 say: Any = print) -> None:
        self.out_dir, self.say = out_dir, say
        self.cuda = device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        self.window = (wait, warmup, active)
        self.done = False
        self.prof = profile(activities=activities, schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1),
                            on_trace_ready=self._report, record_shapes=False)
        self.prof.start()

    @classmethod
    def from_config(cls, trainer: DictConfig, run_dir: Path, device: torch.device, say: Any = print,
                    is_main: bool = True) -> StepProfiler | None:
        """None unless trainer.profile (read once, at set-up); under DDP only rank 0 profiles."""
        if not trainer.profile or not is_main:
            return None
        w = trainer.profile_schedule
        return cls(run_dir / "profile", device, int(w.wait), int(w.warmup), int(w.active), say)

    def step(self) -> None:
        """After every optimizer step (until the window has been reported)."""
        if not self.done:
            self.prof.step()

    def _report(self, prof: Any) -> None:
        self.done = True
        self.out_dir.mkdir(parents=True, exist_ok=True)
        trace = self.out_dir / "trace.json"
        prof.export_chrome_trace(str(trace))
        averages = prof.key_averages()
        tables = [averages.table(sort_by="self_cpu_time_total", row_limit=ROWS)]
        if self.cuda:
            tables.append(averages.table(sort_by="self_device_time_total", row_limit=ROWS))
        text = "\n".join(tables)
        (self.out_dir / "top_ops.txt").write_text(text)
        wait, warmup, active = self.window
        self.say(f"profile: steps {wait + warmup + 1}-{wait + warmup + active} recorded; top operators by self "
                 f"{'CPU and CUDA' if self.cuda else 'CPU'} time (also {self.out_dir / 'top_ops.txt'}):")
        self.say(text)
        self.say(f"profile: trace in {trace} (open in https://ui.perfetto.dev or chrome://tracing)")

    def stop(self) -> None:
        """End of training (or a failure): stop the profiler; a window the run was too short for says so."""
        if self.done:
            return
        self.prof.stop()  # reports what was recorded, if the window was reached
        if not self.done:
            self.done = True
            wait, warmup, active = self.window
            self.say(f"profile: the run took fewer than {wait + warmup + 1} steps, so nothing was recorded; "
                     "lower trainer.profile_schedule.wait/warmup")
