"""`trainkit check`: build everything a run would build, push one batch through, report, exit.

It uses the same builder and checks as `Run.setup` (trainkit.parts), so a mismatch stops here with the error
the run would hit, minutes earlier and without a run directory.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from trainkit.build import count_parameters, resolve_device
from trainkit.config import compose, validate
from trainkit.console import console
from trainkit.errors import ConfigError, TrainkitError
from trainkit.layers import format_table, layer_table
from trainkit.parts import build_parts, check_batch, check_data, first_val_batch, seed_everything


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


def describe_tensor(t: Any) -> str:
    if torch.is_tensor(t):
        return f"{list(t.shape)} {str(t.dtype).removeprefix('torch.')}"
    return type(t).__name__


class ShapeTrace:
    """Forward hooks that record each submodule's output shape, and which module was running."""

    def __init__(self, model: nn.Module, max_depth: int = 2) -> None:
        self.rows: list[tuple[str, str, str]] = []
        self.entered: list[tuple[str, nn.Module]] = []
        self.handles = []
        self.max_depth = max_depth
        self.activation_bytes = 0  # outputs of leaf modules: roughly what backward keeps alive
        for name, module in model.named_modules():
            if not name:
                continue
            self.handles.append(module.register_forward_pre_hook(self._pre(name)))
            self.handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            self.entered.append((name, module))

        return hook

    def _post(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self.entered and self.entered[-1][0] == name:
                self.entered.pop()
            if torch.is_tensor(out) and next(module.children(), None) is None:
                self.activation_bytes += out.element_size() * out.numel()
            if name.count(".") < self.max_depth:
                self.rows.append((name, type(module).__name__, describe_tensor(out)))

        return hook

    def failing_module(self) -> str:
        """' in module NAME (Type)' for the innermost module that was running when forward failed."""
        if not self.entered:
            return ""
        name, module = self.entered[-1]
        return f" in module '{name}' ({type(module).__name__})"

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def dry_run(overrides: list[str], user_config_dir: str | None = None, layers: bool = False) -> dict[str, Any]:
    """Build the run these overrides describe, train one batch, print what was seen; return the facts.

    `layers`: also every layer's output shape, parameters and FLOPs on the batch (trainkit.layers).
    """
    cfg = compose(overrides, user_config_dir=user_config_dir)
    validate(cfg)
    seed_everything(int(cfg.seed))
    say = console.print
    device = resolve_device(cfg)
    parts = build_parts(cfg, device)
    cfg, data, task, model, criterion = parts.cfg, parts.data, parts.task, parts.model, parts.criterion
    optimizer, scheduler, interval, dtype = parts.optimizer, parts.scheduler, parts.interval, parts.dtype
    batches = len(data.train)
    build_s = parts.data_s

    say(
        f"[bold]data[/]     {data.sizes['train']} train / {data.sizes['val']} val / "
        f"{data.sizes['test']} test samples, "
        f"{data.loader_kind} loader, {batches} batches of {int(cfg.data.batch_size)} per epoch "
        f"(built in {human_seconds(build_s)})",
        highlight=False,
    )
    # The checks Run.setup makes before its first step (trainkit.parts), in the same order, so the
    # errors are the same: the data first, the validation batch after the model's shape trace.
    check_data(task, data)
    val_batch = first_val_batch(data, device)
    batch = next(iter(data.train))
    batch = tuple(t.to(device) if torch.is_tensor(t) else t for t in batch)
    n_params = count_parameters(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    batch_bytes = sum(t.element_size() * t.numel() for t in batch if torch.is_tensor(t))
    say(
        f"[bold]batch[/]    inputs {describe_tensor(batch[0])}"
        + "".join(f", targets {describe_tensor(t)}" for t in batch[1:2])
        + f"  ({human_bytes(batch_bytes)} on {device})",
        highlight=False,
    )

    trace = ShapeTrace(model)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    try:
        for i in range(2 if batches > 1 else 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            try:
                with torch.autocast(device.type, dtype=dtype) if dtype is not None else _null():
                    out = model(batch[0])
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise ConfigError(
                    f"the model cannot take the input batch {list(batch[0].shape)}{trace.failing_module()}: "
                    f"{str(exc).splitlines()[0]}; check the model's sizes against data.input_shape"
                ) from exc
            if i == 0:
                trace.remove()
                say(
                    f"[bold]model[/]    {type(model).__name__}: {n_params:,} parameters ({trainable:,} trainable)",
                    highlight=False,
                )
                for name, kind, shape in trace.rows:
                    say(f"           {name:<20} {kind:<14} -> {shape}", highlight=False, markup=False)
                say(
                    f"[bold]memory[/]   batch {human_bytes(batch_bytes)}, activations ~"
                    f"{human_bytes(trace.activation_bytes)} (leaf module outputs), parameters "
                    f"{human_bytes(sum(p.element_size() * p.numel() for p in model.parameters()))}",
                    highlight=False,
                )
                check_batch(parts, val_batch)
                task.check_output(out, batch[1])
                if layers:
                    rows, total_flops = layer_table(model, batch[0])
                    for line in format_table(rows, total_flops, n_params):
                        say(f"           {line}", highlight=False, markup=False)
            loss, _ = task.step(model, criterion, batch)
            if not math.isfinite(float(loss.detach())):
                raise TrainkitError(f"the loss of the first batch is {float(loss.detach())}; check the data and optim.lr")
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            grad_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
            if isinstance(optimizer, torch.optim.LBFGS):  # it re-evaluates the loss: the loop's closure

                def closure() -> torch.Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    again, _ = task.step(model, criterion, batch)
                    again.backward()
                    return again

                optimizer.step(closure)
            else:
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
            if i == 0:
                say(
                    f"[bold]loss[/]     {type(criterion).__name__}: {describe_tensor(out)} vs "
                    f"{describe_tensor(batch[1])} -> {float(loss.detach()):.4f}",
                    highlight=False,
                )
                say(
                    f"[bold]backward[/] gradients on {len(grads)} tensors, total norm {grad_norm:.4g}",
                    highlight=False,
                )
    finally:
        trace.remove()
    lr = float(optimizer.param_groups[0]["lr"])
    sched = type(scheduler).__name__ if scheduler is not None else "none"
    say(
        f"[bold]optim[/]    {type(optimizer).__name__} lr {lr:.3g}, scheduler {sched} (steps per {interval})",
        highlight=False,
    )
    step_s = times[-1]
    val_s = _eval_seconds(model, val_batch, device, dtype)
    val_batches = len(data.val)
    epoch_s = step_s * batches + val_s * val_batches
    peak = ""
    if device.type == "cuda":
        peak = f", peak device memory {human_bytes(torch.cuda.max_memory_allocated(device))}"
    say(
        f"[bold]time[/]     {human_seconds(step_s)} per training step{peak}; estimated epoch "
        f"~{human_seconds(epoch_s)} ({batches} steps + {val_batches} validation batches), "
        f"{int(cfg.trainer.epochs)} epochs ~{human_seconds(epoch_s * int(cfg.trainer.epochs))}",
        highlight=False,
    )
    say("[green]check passed[/]: this config builds and trains; no run directory was written", highlight=False)
    return {
        "parameters": n_params,
        "trainable_parameters": trainable,
        "input_shape": list(batch[0].shape),
        "output_shape": list(out.shape),
        "batch_bytes": batch_bytes,
        "activation_bytes": trace.activation_bytes,
        "step_s": step_s,
        "epoch_s_estimate": epoch_s,
        "loss": float(loss.detach()),
        "shapes": trace.rows,
        **({"layers": rows, "flops": total_flops} if layers else {}),
    }


def _eval_seconds(model: nn.Module, batch: tuple[Any, ...], device: torch.device, dtype: Any) -> float:
    """Time of one validation forward (the second of two, the first warms up)."""
    model.eval()
    elapsed = 0.0
    with torch.inference_mode():
        for _ in range(2):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype) if dtype is not None else _null():
                model(batch[0])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
    model.train()
    return elapsed


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()
