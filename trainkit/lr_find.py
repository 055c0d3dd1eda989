"""The learning-rate range test: `trainkit tune lr` and `optim.lr=auto`.

The run's own parts are built from its config (same seed, so the same initial weights) and trained
for `tune.steps` optimizer steps while the lr rises exponentially from `tune.min_lr` to `tune.max_lr`.
The loss is smoothed (an exponential average, bias-corrected); the test stops once the smoothed loss
exceeds 4x its minimum or is not finite. The suggestion is the lr where the smoothed loss falls
fastest (against log lr) before its minimum, rounded to 3 significant digits so that
`optim.lr=<suggestion>` on the command line is the very same number. The RNG states are put back
afterwards and everything the test built is dropped: the real run never sees any of it.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from trainkit import files
from trainkit.build import resolve_device
from trainkit.checkpoint import rng_state, set_rng_state
from trainkit.errors import ConfigError, TrainkitError
from trainkit.parts import build_parts, seed_everything

SMOOTHING = 0.95  # weight of the running average of the loss
DIVERGE = 4.0  # stop when the smoothed loss exceeds this many times its minimum


@dataclass
class RangeTest:
    """The lrs tried, their losses (raw and smoothed), and the suggested lr (None: no usable descent)."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    stopped: str = "completed"  # or why it stopped early
    index: int | None = None  # the suggestion's row

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["step", "lr", "loss", "smoothed_loss", "suggested"])
        for i, (lr, loss, smooth) in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=True)):
            writer.writerow([i + 1, repr(lr), repr(loss), repr(smooth), int(i == self.index)])
        return out.getvalue()


def settings(cfg: DictConfig) -> tuple[int, float, float]:
    """(steps, min_lr, max_lr) from `tune.*`; a range that does not rise is the user's mistake."""
    tune = cfg.get("tune") or {}
    steps, lo, hi = int(tune.get("steps", 200)), float(tune.get("min_lr", 1e-6)), float(tune.get("max_lr", 1.0))
    if not lo < hi:
        raise ConfigError(f"tune.min_lr={lo:g} must be below tune.max_lr={hi:g}; e.g. tune.min_lr=1e-6 tune.max_lr=1")
    return steps, lo, hi


def range_test(cfg: DictConfig, device: torch.device | None = None) -> RangeTest:
    """Run the range test on the parts `cfg` builds; the RNGs are as they were when it returns."""
    steps, lo, hi = settings(cfg)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.optim.lr = lo
    saved = rng_state()
    try:
        seed_everything(int(cfg.seed))
        device = device or resolve_device(cfg)
        parts = build_parts(cfg, device)
        return _ramp(parts, device, steps, lo, hi)
    finally:
        set_rng_state(saved)


def _ramp(parts: Any, device: torch.device, steps: int, lo: float, hi: float) -> RangeTest:
    model, optimizer, task, criterion = parts.model, parts.optimizer, parts.task, parts.criterion
    if isinstance(optimizer, torch.optim.LBFGS):
        raise ConfigError("the lr range test needs an optimizer that takes one step per batch; LBFGS does not: "
                          "give optim.lr=VALUE")
    scales = [g["lr"] / lo for g in optimizer.param_groups]  # param groups keep their lr ratios
    scaler = parts.scaler
    autocast = (lambda: torch.autocast(device.type, dtype=parts.dtype)) if parts.dtype is not None else None
    result, avg, best = RangeTest(), 0.0, math.inf
    model.train()
    epoch = 0
    while len(result.lrs) < steps:
        parts.data.train.set_epoch(epoch)
        for batch in parts.data.train:
            i = len(result.lrs)
            if i >= steps:
                break
            lr = lo * (hi / lo) ** (i / max(steps - 1, 1))
            for group, scale in zip(optimizer.param_groups, scales, strict=True):
                group["lr"] = lr * scale
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            optimizer.zero_grad(set_to_none=True)
            if autocast is not None:
                with autocast():
                    loss, _ = task.step(model, criterion, batch)
            else:
                loss, _ = task.step(model, criterion, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                result.stopped = f"loss not finite at lr {lr:.3g}"
                break
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            avg = SMOOTHING * avg + (1 - SMOOTHING) * value
            smooth = avg / (1 - SMOOTHING ** (i + 1))
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smooth)
            best = min(best, smooth)
            if i > 0 and smooth > DIVERGE * best:
                result.stopped = f"diverged at lr {lr:.3g} (smoothed loss over {DIVERGE:g}x its minimum)"
                break
        else:
            epoch += 1
            continue
        break
    _suggest(result)
    return result


def _suggest(result: RangeTest) -> None:
    """The lr of the steepest fall of the smoothed loss against log lr, before its minimum."""
    s = result.smoothed
    if len(s) < 10:
        return
    low = min(range(len(s)), key=s.__getitem__)
    start = max(1, len(s) // 10)  # the first steps are the average warming up
    if low - start < 3:
        return
    logs = [math.log10(lr) for lr in result.lrs]
    slopes = [(s[i + 1] - s[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(start, low)]
    result.index = start + min(range(len(slopes)), key=slopes.__getitem__)
    result.suggestion = float(f"{result.lrs[result.index]:.3g}")


def write(result: RangeTest, out_dir: Path) -> list[str]:
    """lr_find.csv and (with matplotlib) lr_find.png in `out_dir`; the lines that say what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files.atomic_write_text(out_dir / "lr_find.csv", result.csv_text())
    lines = [f"wrote {out_dir / 'lr_find.csv'}"]
    try:
        from trainkit.plot import _pyplot

        plt = _pyplot()
    except TrainkitError:
        return [*lines, "no lr_find.png: it needs matplotlib: pip install 'trainkit[plot]'"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed loss")
    if result.index is not None:
        ax.plot([result.lrs[result.index]], [result.smoothed[result.index]], "o", color="C3",
                label=f"suggested lr {result.suggestion:g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = max(result.smoothed[: max(1, len(result.smoothed) // 10)]) * 1.5 if result.smoothed else None
    if top is not None and math.isfinite(top):
        ax.set_ylim(top=top)
    ax.legend()
    ax.set_title("lr range test")
    fig.tight_layout()
    tmp = out_dir / ".lr_find.png.tmp"
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(out_dir / "lr_find.png")
    return [*lines, f"wrote {out_dir / 'lr_find.png'}"]


def _no_suggestion(result: RangeTest) -> TrainkitError:
    return TrainkitError(
        f"the lr range test found no falling loss to pick an lr from ({len(result.lrs)} steps, {result.stopped}); "
        "widen the range (tune.min_lr lower, tune.max_lr higher) or raise tune.steps"
    )


def resolve_auto_lr(cfg: DictConfig, out_dir: Path, world_size: int = 1, is_main: bool = True) -> dict[str, Any]:
    """`optim.lr=auto`: run the range test, write its files into `out_dir`, put the lr into `cfg`.

    Returns what the run records: the lr, the test's settings, and its header line.
    """
    if world_size > 1:
        raise ConfigError("optim.lr=auto runs the lr range test in one process; run 'trainkit tune lr' with the "
                          "same overrides first and give optim.lr=VALUE")
    steps, lo, hi = settings(cfg)
    t0 = time.perf_counter()
    result = range_test(cfg)
    if is_main:
        write(result, out_dir)
    if result.suggestion is None:
        raise _no_suggestion(result)
    with open_dict(cfg):
        cfg.optim.lr = result.suggestion
    return {
        "lr": result.suggestion, "steps": len(result.lrs), "min_lr": lo, "max_lr": hi, "stopped": result.stopped,
        "seconds": round(time.perf_counter() - t0, 2),
        "line": f"optim.lr=auto: the lr range test chose optim.lr={result.suggestion!r} "
                f"({len(result.lrs)} steps, {lo:g}..{hi:g}; {out_dir / 'lr_find.csv'})",
    }


def tune_lr(overrides: list[str], user_config_dir: str | None = None, say: Any = print) -> dict[str, Any]:
    """`trainkit tune lr [overrides] [output=DIR]`: the range test alone, its files, and the override to use."""
    from trainkit import rundir
    from trainkit.config import compose, validate

    out = [a.split("=", 1)[1] for a in overrides if a.startswith("output=")]
    overrides = [a for a in overrides if not a.startswith("output=")]
    cfg = compose(overrides, user_config_dir=user_config_dir)
    validate(cfg)
    if str(cfg.optim.get("lr")) == "auto":
        with open_dict(cfg):
            cfg.optim.lr = 1.0  # replaced by the ramp: optim.lr=auto on this command asks for nothing else
    if out and not out[-1]:
        raise TrainkitError("output= needs a directory: output=outputs/lr_find")
    t0 = time.perf_counter()
    result = range_test(cfg)
    if out:
        out_dir = Path(out[-1])
    else:
        was = rundir.CLAIM
        rundir.enable_claims(True)  # a directory of its own, as a run gets (two in one second: TIME_1)
        try:
            out_dir = Path(rundir.claim_dir(time.strftime("outputs/lr_find/%Y-%m-%d/%H-%M-%S")))
        finally:
            rundir.enable_claims(was)
    try:
        lines = write(result, out_dir)
    except OSError as exc:
        raise files.fault(out_dir, exc) from None
    for line in lines:
        say(line)
    say(f"lr range test: {len(result.lrs)} steps from {result.lrs[0]:.3g} to {result.lrs[-1]:.3g} "
        f"in {time.perf_counter() - t0:.1f} s ({result.stopped})")
    if result.suggestion is None:
        raise _no_suggestion(result)
    say(f"suggested lr: {result.suggestion:g}")
    keep = [a for a in overrides if not a.startswith(("optim.lr=", "tune."))]
    say(f"use it with: {shlex.join(['trainkit', 'train', *keep, f'optim.lr={result.suggestion!r}'])}")
    return {"lr": result.suggestion, "dir": str(out_dir), "steps": len(result.lrs), "stopped": result.stopped}
