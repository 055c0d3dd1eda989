"""The training loop: the seeds' five lines, plus validation, schedules and checkpoint hooks.

    for x, y in loader:
        loss = task.step(model, criterion, (x, y))   # forward + loss
        optimizer.zero_grad(); loss.backward(); optimizer.step()

Everything else here (autocast, accumulation, clipping, the schedule, metric sums kept on the
device and read once per log interval) wraps those lines without hiding them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainkit.console import EpochProgress
from trainkit.distributed import all_reduce_sums, grad_sync, info, without_padding
from trainkit.errors import TrainingDiverged
from trainkit.guards import diverged_message, mask_nonfinite_stats, take_skipped, zero_nonfinite_grads
from trainkit.schedulers import step_schedule
from trainkit.state import LoopState
from trainkit.sums import StepSums, read_sums, settle

__all__ = ["Loop", "LoopState", "evaluate", "fit", "global_totals", "read_sums", "train_one_epoch"]


@dataclass
class Loop:
    """What one training run is made of (built from the config by run.py)."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: Any
    interval: str
    task: Any
    device: torch.device
    dtype: torch.dtype | None = None
    scaler: Any = None  # a torch.amp.GradScaler; None means a disabled one (float32, bfloat16)
    grad_clip: float | None = None
    accumulate: int = 1
    log_every: int = 50
    progress: str = "auto"
    on_nan: str = "stop"  # stop | skip_batch (see guards.zero_nonfinite_grads for what a skip costs)
    is_main: bool = True
    on_step_end: Callable[[LoopState, StepSums], None] | None = None  # after each optimizer step: (state, the epoch's sums)
    should_stop: Callable[[], bool] = lambda: False
    memory_format: torch.memory_format | None = None  # channels_last for conv nets on CUDA
    on_log: Callable[[int, dict[str, float]], None] | None = None  # loggers, at each log interval
    on_epoch_start: Callable[[int], None] | None = None  # before each training epoch (0-based): model.freeze

    def __post_init__(self) -> None:
        if self.scaler is None:  # disabled: scale/unscale_/update do nothing, step is optimizer.step()
            self.scaler = torch.amp.GradScaler(self.device.type, enabled=False)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def needs_closure(self) -> bool:
        # LBFGS re-evaluates the loss several times per step, so it takes a closure.
        return isinstance(self.optimizer, torch.optim.LBFGS)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else float("nan")


def _to_device(
    batch: tuple[torch.Tensor, ...], device: torch.device, memory_format: torch.memory_format | None = None
) -> tuple[torch.Tensor, ...]:
    out = tuple(t.to(device, non_blocking=True) for t in batch)
    if memory_format is not None and out[0].dim() == 4:  # image batches follow the model's layout
        out = (out[0].contiguous(memory_format=memory_format), *out[1:])
    return out


def _resident(loader: Any, device: torch.device) -> bool:
    """True when the loader's batches already live on `device` (in-memory loader): no per-step .to()."""
    tensors = getattr(loader, "tensors", None)
    return bool(tensors) and all(t.device == device for t in tensors)


def global_totals(sums: StepSums) -> dict[str, float]:
    """The sums of every rank added up (one collective under DDP), with `count`; one process reads its own."""
    if info().world_size == 1:
        return sums.totals()
    return read_sums(*all_reduce_sums(sums.tensors(), sums.count))


def train_one_epoch(loop: Loop, loader: Any, state: LoopState, epoch: int, epochs: int) -> dict[str, float]:
    """One pass over the training loader; returns the epoch's train metrics."""
    model, task, criterion = loop.model, loop.task, loop.criterion
    model.train()
    start_batch = state.batch_in_epoch
    sums = StepSums(state.partial_sums if start_batch else None)  # resumed mid-epoch: continue the epoch's sums
    batches = len(loader)
    bar = EpochProgress(loop.progress, epoch + 1, epochs, batches, enabled=loop.is_main)
    last_loss, last_count = sums.total("loss"), sums.count
    move = not _resident(loader, loop.device) or loop.memory_format is not None
    closure_mode = loop.needs_closure
    try:
        for i, batch in enumerate(loader, start=start_batch):
            if move:
                batch = _to_device(batch, loop.device, loop.memory_format)
            if closure_mode:
                stats, stepped = _closure_step(loop, batch), True
            else:
                stepped = (i + 1) % loop.accumulate == 0 or i + 1 == batches
                with grad_sync(model, stepped):  # DDP: gradients all-reduced at the boundary step only
                    with loop.autocast():
                        loss, stats = task.loss_and_sums(model, criterion, batch)
                    stats["loss"] = loss.detach()
                    if loop.on_nan == "skip_batch":
                        stats = mask_nonfinite_stats(settle(stats), len(batch[0]))
                    loop.scaler.scale(loss / loop.accumulate if loop.accumulate > 1 else loss).backward()
                if stepped:
                    _optimizer_step(loop, loss)
            if stepped:
                _finish_step(loop, state)
            sums.add(stats, len(batch[0]))
            state.batch_in_epoch = i + 1
            bar.update(i + 1, sums.count)
            if not stepped:
                continue  # inside a gradient accumulation: no step to log, save or stop at
            if state.step % loop.log_every == 0 and (i + 1) % loop.accumulate == 0:
                # The only host sync inside an epoch: once per log interval.
                loss_sum, count = sums.total("loss"), sums.count
                recent = (loss_sum - last_loss) / max(count - last_count, 1)
                _check_finite(recent, epoch, state.step, loop)
                bar.report(i + 1, recent, loss_sum / max(count, 1), loop.lr())
                if loop.on_log is not None:
                    loop.on_log(state.step, {"train_loss": recent, "lr": loop.lr()})
                last_loss, last_count = loss_sum, count
            if loop.on_step_end is not None:  # the live sums: read only if a checkpoint is written
                loop.on_step_end(state, sums)
            if loop.should_stop():
                break
    finally:
        bar.close()
    totals = global_totals(sums)  # every rank gets the global averages
    skipped, totals = take_skipped(totals)
    if loop.on_nan == "skip_batch" and skipped and totals.get("count", 0.0) <= 0:
        raise TrainingDiverged(
            f"every batch of epoch {epoch + 1} had a non-finite loss and was skipped "
            "(trainer.on_nan=skip_batch); lower optim.lr or set trainer.grad_clip=1.0 "
            "(the last good checkpoint is kept)"
        )
    metrics = task.finalize(totals)
    _check_finite(metrics["loss"], epoch, state.step, loop)
    if loop.on_nan == "skip_batch":
        metrics["skipped_batches"] = float(skipped)
    return metrics


def _closure_step(loop: Loop, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """One step of a closure optimizer (LBFGS re-evaluates the loss): the first evaluation's statistics."""
    stats: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        loop.optimizer.zero_grad(set_to_none=True)
        with loop.autocast():
            loss, s = loop.task.loss_and_sums(loop.model, loop.criterion, batch)
        loss.backward()
        if not stats:
            stats.update(s, loss=loss.detach())
        return loss

    loop.optimizer.step(closure)
    return stats


def _optimizer_step(loop: Loop, loss: torch.Tensor) -> None:
    """At an accumulation boundary: unscale, clip, skip a non-finite step, step, zero the gradients."""
    optimizer, scaler = loop.optimizer, loop.scaler
    norm = None
    if loop.grad_clip:
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), loop.grad_clip)
    if loop.on_nan == "skip_batch" and not scaler.is_enabled():  # an enabled GradScaler skips inf steps itself
        zero_nonfinite_grads(optimizer, loss, norm)
    scaler.step(optimizer)
    scaler.update()
    _zero_grad(optimizer)


def _zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.zero_grad(set_to_none=True) minus its profiler record_function (~4% of a small MLP's step).

    Only for optimizers that keep torch's zero_grad; one that overrides it gets its own.
    """
    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def _finish_step(loop: Loop, state: LoopState) -> None:
    state.step += 1
    step_schedule(loop.scheduler, loop.interval, "step")


def _check_finite(value: float, epoch: int, step: int, loop: Loop | None = None) -> None:
    if not math.isfinite(value):
        precision = "16" if loop is not None and loop.dtype is not None else "32"
        raise TrainingDiverged(diverged_message(value, epoch, step, precision))


@torch.inference_mode()
def evaluate(loop: Loop, loader: Any) -> dict[str, float]:
    """Loss and metrics over a whole split, with the model in eval mode."""
    model = loop.model
    was_training = model.training
    model.eval()
    sums = StepSums()
    move = not _resident(loader, loop.device) or loop.memory_format is not None
    for batch, real in without_padding(loader):  # under DDP: each sample counted once, as in one process
        if move:
            batch = _to_device(batch, loop.device, loop.memory_format)
        with loop.autocast():
            loss, stats = loop.task.loss_and_sums(model, loop.criterion, batch)
        if real:  # a batch of padding alone (DDP) runs its forward but adds nothing
            stats["loss"] = loss
            sums.add(stats, real)
    model.train(was_training)
    return loop.task.finalize(global_totals(sums))


def fit(
    loop: Loop,
    train_loader: Any,
    val_loader: Any,
    state: LoopState,
    epochs: int,
    monitor: str,
    on_epoch_end: Callable[[dict[str, Any]], None],
) -> None:
    """Train epochs state.epoch..epochs-1, validating after each and stepping epoch schedules."""
    for epoch in range(state.epoch, epochs):
        if loop.on_epoch_start is not None:
            loop.on_epoch_start(epoch)
        train_loader.set_epoch(epoch, state.batch_in_epoch)
        lr = state.epoch_lr if state.batch_in_epoch and state.epoch_lr is not None else loop.lr()
        state.epoch_lr = lr
        t0 = time.perf_counter()
        train = train_one_epoch(loop, train_loader, state, epoch, epochs)
        if loop.device.type == "cuda":
            torch.cuda.synchronize(loop.device)
        train_time = time.perf_counter() - t0
        if loop.should_stop():
            return
        val = evaluate(loop, val_loader)
        samples = int(train_loader.num_samples) if hasattr(train_loader, "num_samples") else 0
        samples *= info().world_size  # throughput of the whole run, not of one rank
        row: dict[str, Any] = {"epoch": epoch + 1, "step": state.step, "lr": lr}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        row["train_time_s"] = train_time
        row["train_samples_per_s"] = samples / train_time if train_time > 0 else 0.0
        step_schedule(loop.scheduler, loop.interval, "epoch", row[monitor])
        state.epoch = epoch + 1
        state.batch_in_epoch = 0
        state.partial_sums = {}
        on_epoch_end(row)
        if state.stop:
            return
