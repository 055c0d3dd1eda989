"""Shared helpers for the benchmark scripts: interleaved repetitions, medians, a ratio table.

The machine these run on is often shared, so every script runs its contenders interleaved
(A, B, C, A, B, C, ...) and reports the median of each with its spread, never a single best run.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from a checkout
    sys.path.insert(0, str(REPO))


def machine() -> str:
    """One line naming the machine and library versions the numbers came from."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = "  load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}{load}")


class Clock:
    """Wall time and this thread's CPU time of a block.

    With torch on one thread, the CPU time barely moves when other processes load the machine,
    so it separates real overhead from noise; the wall time is what train_samples_per_s reports.
    """

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.thread_time() - self._cpu


def interleave(
    contenders: dict[str, Callable[[], float]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Call each contender in turn, `reps` rounds (after `warmup` unrecorded rounds); collect its results."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(warmup + reps):
        for name, fn in contenders.items():
            value = fn()
            if r >= warmup:
                results[name].append(value)
        if r >= warmup:
            line = "  ".join(f"{n} {v[-1]:,.0f}" for n, v in results.items())
            print(f"  round {r - warmup + 1}/{reps}: {line}", flush=True)
    return results


def table(
    results: dict[str, list[float]], unit: str, baselines: list[str], higher_is_better: bool = True
) -> str:
    """Median, spread, ratio of medians to the best baseline, and the median of per-round ratios.

    The per-round ratio compares contenders that ran back to back in the same round, so it is less
    sensitive to the machine's load drifting between rounds than the ratio of medians.
    """
    medians = {k: statistics.median(v) for k, v in results.items()}
    pick = max if higher_is_better else min
    best = pick(baselines, key=lambda k: medians[k])
    lines = [f"| contender | median {unit} | spread (min..max) | x {best} (medians) | x {best} (per round) |",
             "|---|---:|---:|---:|---:|"]
    for name, values in results.items():
        m = medians[name]
        spread = f"{(min(values) / m - 1) * 100:+.0f}%..{(max(values) / m - 1) * 100:+.0f}%" if m else "n/a"
        pairs = [(v / b if higher_is_better else b / v) for v, b in zip(values, results[best], strict=True)]
        ratio = m / medians[best] if higher_is_better else medians[best] / m
        lines.append(f"| {name} | {m:,.1f} | {spread} | {ratio:.3f} | {statistics.median(pairs):.3f} |")
    return "\n".join(lines)


def write_fake_mnist(root: Path, n_train: int = 60000, n_test: int = 10000, seed: int = 0) -> Path:
    """MNIST-shaped files in torchvision's raw idx layout (root/MNIST/raw/...), learnable, no download.

    Each class lights a different 8x8 patch on top of noise, so a model's accuracy still means something.
    """
    import numpy as np

    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        images = rng.integers(0, 90, (n, 28, 28), dtype=np.uint8)
        for c in range(10):
            r, col = 2 + (c // 5) * 12, 1 + (c % 5) * 5
            images[labels == c, r : r + 8, col : col + 5] = 230
        header = np.array([2051, n, 28, 28], dtype=">i4").tobytes()
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        label_header = np.array([2049, n], dtype=">i4").tobytes()
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(label_header + labels.tobytes())
    return Path(root)
