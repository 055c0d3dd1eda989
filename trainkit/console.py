"""What the user sees: a rich live bar on a terminal, plain lines elsewhere, all mirrored to train.log."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

log = logging.getLogger("trainkit")
console = Console(highlight=False, soft_wrap=True)


def say(message: str, *, style: str | None = None) -> None:
    """Print a line for the user and write it to train.log (a non-zero rank's console is quiet already)."""
    console.print(message, style=style, markup=False)
    log.info(message)


class EpochProgress:
    """One epoch's progress: a live bar (terminal) or a line per log interval (pipes, CI)."""

    def __init__(self, mode: str, epoch: int, epochs: int, batches: int, enabled: bool = True) -> None:
        if mode == "auto":
            mode = "rich" if sys.stdout.isatty() else "plain"
        self.mode = mode if enabled else "none"
        self.epoch, self.epochs, self.batches = epoch, epochs, batches
        self.start = time.perf_counter()
        self.samples = 0
        self._first: int | None = None  # batches done before this process began the epoch (a mid-epoch resume)
        self._last_draw = 0.0
        self._progress: Progress | None = None
        if self.mode == "rich":
            self._progress = Progress(
                TextColumn(f"epoch {epoch}/{epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._task = self._progress.add_task("train", total=batches, status="")
            self._progress.start()

    def update(self, batch: int, samples: int) -> None:
        """Advance the bar; cheap enough for every step (redraws at most ~10 times a second)."""
        self.samples = samples
        if self._first is None:
            self._first = batch - 1
        if self._progress is None:
            return
        now = time.perf_counter()
        if now - self._last_draw > 0.1 or batch == self.batches:
            self._last_draw = now
            self._progress.update(self._task, completed=batch)

    def report(self, batch: int, loss: float, avg_loss: float, lr: float) -> None:
        """At a log interval: the loss since the last report (and the epoch's mean when it differs), throughput, lr."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.samples / elapsed
        shown = f"loss {loss:.4f}"
        if f"{avg_loss:.4f}" != f"{loss:.4f}":  # the first report of an epoch: both are the same number
            shown += f" (epoch mean {avg_loss:.4f})"
        status = f"{shown}  {rate:,.0f} samples/s  lr {lr:.2e}"
        if self._progress is not None:
            self._progress.update(self._task, completed=batch, status=status)
        elif self.mode == "plain":
            say(f"  epoch {self.epoch} [{batch}/{self.batches}] {status}  eta {self.eta(batch, elapsed)}")

    def eta(self, batch: int, elapsed: float) -> str:
        """Time left in this epoch at the pace of the batches this process has run (m:ss)."""
        done = batch - (self._first or 0)
        left = max(self.batches - batch, 0) * elapsed / max(done, 1)
        minutes, seconds = divmod(int(round(left)), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def fmt_metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def epoch_line(row: dict[str, Any], better: bool) -> str:
    """The line each epoch prints: losses, metrics, lr and throughput; ` *` marks a new best."""
    skip = ("train_loss", "train_time_s", "train_samples_per_s")
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
    parts += [f"train {k[6:]} {row[k]:.3f}" for k in row if k.startswith("train_") and k not in skip]
    parts += [f"val loss {row['val_loss']:.4f}"]
    parts += [f"val {k[4:]} {row[k]:.3f}" for k in row if k.startswith("val_") and k != "val_loss"]
    parts += [f"lr {row['lr']:.3g}", f"time {row['train_time_s']:.2f} sec", f"{row['train_samples_per_s']:,.0f} samples/s"]
    return ", ".join(parts) + (" *" if better else "")


def early_stop_line(es: Any, monitor: str, epoch: int, best_value: float, best_epoch: int | None) -> str:
    return (f"early stopping at epoch {epoch}: {monitor} did not improve by more than {es.min_delta:g} "
            f"for {es.wait} epoch(s) (patience {es.patience}); best {best_value:.4f} at epoch {best_epoch}")


class CountProgress:
    """A live bar over the batches of a job that is not an epoch (`predict`): on a terminal only, else silent."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self._progress: Progress | None = None
        if enabled and sys.stdout.isatty():
            self._progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=console, transient=True)
            self._task = self._progress.add_task(label, total=total)
            self._progress.start()

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
