"""GPU evidence: trainkit against a hand-written loop on MNIST-size and CIFAR-size data, and its speed switches.

    python benchmarks/gpu_check.py            # on a GPU (~5 min on one H200-class device)
    python benchmarks/gpu_check.py --cpu      # the same table at tiny sizes on the CPU (CI time, ~1 min)

Both sides get the same generated tensors (no download: 28x28x1 "MNIST-size" and 32x32x3 "CIFAR-size"
images whose class is a fixed random pattern plus noise, so accuracy climbs over the epochs), the same
model class (trainkit.models.MLP / CNN), SGD with the same settings, the same batch size and epochs.
trainkit runs `trainkit train data=tensor_file ...` in a subprocess (its real path: data kept on the
device, metric sums on the device, checkpoints every epoch); the hand loop is the seeds' five lines with a
validation pass per epoch. Printed per row: seconds until validation accuracy >= the target (training
time only, as trainkit's train_time_s), steady samples/s (the best epoch after the first, which holds
warm-up and compilation), the final validation accuracy and peak device memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZES = {  # name: (n_train, shape, model, epochs, target accuracy); --cpu divides n and epochs
    "mnist": (60_000, (1, 28, 28), "mlp", 3, 0.90),
    "cifar": (50_000, (3, 32, 32), "cnn", 3, 0.80),
}


def make_data(path: Path, n: int, shape: tuple[int, ...], seed: int = 0) -> None:
    """Images whose class is one of 10 fixed smooth random patterns, plus noise; a held-out 1/6 for validation."""
    import torch

    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(10, shape[0], 4, 4, generator=g)  # low-frequency: a conv net's 3x3 filters see them too
    patterns = torch.nn.functional.interpolate(coarse, size=shape[1:], mode="bilinear", align_corners=False)
    n_val = n // 6

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (count,), generator=g)
        x = patterns[y] + 1.5 * torch.randn(count, *shape, generator=g)
        return x, y

    x, y = draw(n)
    xv, yv = draw(n_val)
    torch.save({"x": x, "y": y, "x_val": xv, "y_val": yv, "x_test": xv, "y_test": yv}, path)


def trainkit_row(data: Path, model: str, epochs: int, target: float, device: str, extra: list[str],
                 workdir: Path) -> dict[str, Any]:
    run = workdir / f"run_{model}_{'_'.join(e.replace('=', '-').replace('.', '') for e in extra) or 'base'}"
    cmd = [sys.executable, "-m", "trainkit", "train", "data=tensor_file", f"data.path={data}", f"model={model}",
           "optim=sgd", "optim.lr=0.05", "data.batch_size=256", f"trainer.epochs={epochs}", f"device={device}",
           "trainer.progress=none", "metrics.enabled=false", f"hydra.run.dir={run}", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:100]}
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((run / "summary.json").read_text())
    return _row([float(r["val_acc"]) for r in rows], [float(r["train_time_s"]) for r in rows],
                [float(r["train_samples_per_s"]) for r in rows], target,
                summary.get("peak_gpu_mem_mb"))


def hand_row(data: Path, model: str, epochs: int, target: float, device: str, bf16: bool = False,
             channels_last: bool = False) -> dict[str, Any]:
    """The loop a user writes: data on the device, shuffle, forward, loss, zero_grad, backward, step."""
    import torch

    from trainkit.models import CNN, MLP

    dev = torch.device(device)
    blob = torch.load(data, weights_only=True)
    x, y = blob["x"].to(dev), blob["y"].to(dev)
    xv, yv = blob["x_val"].to(dev), blob["y_val"].to(dev)
    torch.manual_seed(0)
    shape = list(x.shape[1:])
    net = (MLP(in_shape=shape, out_features=10, hidden=[128]) if model == "mlp"  # configs/model/*.yaml's sizes
           else CNN(in_shape=shape, out_features=10, channels=[32, 64], kernel_size=3, hidden=128)).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x, xv = x.contiguous(memory_format=torch.channels_last), xv.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    accs, times, rates = [], [], []
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x), device=dev)
        _sync(dev)
        t0 = time.perf_counter()
        for i in range(0, len(x), 256):
            idx = perm[i:i + 256]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
        rates.append(len(x) / times[-1])
        net.eval()
        with torch.no_grad():
            correct = sum(int((net(xv[i:i + 1024]).argmax(1) == yv[i:i + 1024]).sum()) for i in range(0, len(xv), 1024))
        accs.append(correct / len(xv))
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    return _row(accs, times, rates, target, peak)


def _sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _row(accs: list[float], times: list[float], rates: list[float], target: float, peak: float | None) -> dict[str, Any]:
    elapsed, tta = 0.0, None
    for acc, t in zip(accs, times, strict=True):
        elapsed += t
        if tta is None and acc >= target:
            tta = elapsed
    steady = max(rates[1:]) if len(rates) > 1 else rates[0]
    return {"tta_s": tta, "samples_s": steady, "acc": accs[-1], "peak_mb": peak}


def ddp_smoke(device: str, workdir: Path, data: Path) -> str:
    """One process under torchrun: nccl on a GPU (gloo on the CPU), trainer.strategy=ddp, one epoch."""
    run = workdir / "ddp_smoke"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "trainkit",
           "train", "data=tensor_file", f"data.path={data}", "trainer.epochs=1", f"device={device}",
           "trainer.strategy=ddp", "trainer.progress=none", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("distributed:")), "no 'distributed:' line")
    if proc.returncode != 0:
        return f"FAILED (exit {proc.returncode}): {(proc.stderr.strip().splitlines() or ['?'])[-1][:120]}"
    summary = json.loads((run / "summary.json").read_text())
    return f"ok: {line}; world_size {summary['world_size']}, test_acc {summary.get('test_acc', float('nan')):.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (what CI runs)")
    parser.add_argument("--only", choices=sorted(SIZES), help="one data size")
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.is_available() and not args.cpu
    device = "cuda" if gpu else "cpu"
    where = torch.cuda.get_device_name(0) if gpu else "CPU (fallback: tiny sizes, numbers are not GPU evidence)"
    print(f"# gpu_check on {where}; torch {torch.__version__}")
    if not gpu:
        print("# (bf16, trainer.compile and channels_last rows run on a GPU only: compiling alone takes a minute here)")
    print("| data | contender | s to target acc | samples/s | final val acc | peak MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        smoke_data = None
        for name, (n, shape, model, epochs, target) in SIZES.items():
            if args.only and name != args.only:
                continue
            if not gpu:
                n, epochs, target = 600, 2, 0.5
            data = workdir / f"{name}.pt"
            make_data(data, n, shape)
            smoke_data = smoke_data or data
            # (label, hand loop or trainkit, its switches): bf16 autocast, torch.compile, channels_last on a GPU
            contenders: list[tuple[str, bool, Any]] = [("hand loop fp32", True, {}), ("trainkit fp32", False, [])]
            if gpu:
                contenders += [
                    ("hand loop bf16", True, {"bf16": True}),
                    *([("hand loop bf16 + channels_last", True, {"bf16": True, "channels_last": True})]
                      if model == "cnn" else []),
                    ("trainkit bf16", False, ["device.precision=bf16"]),
                    ("trainkit bf16 + compile", False, ["device.precision=bf16", "trainer.compile=true"]),
                ]
            for label, hand, switches in contenders:
                if hand:
                    row = hand_row(data, model, epochs, target, device, **switches)
                else:
                    row = trainkit_row(data, model, epochs, target, device, switches, workdir)
                if "error" in row:
                    print(f"| {name} | {label} | error: {row['error']} | | | |")
                    continue
                tta = "not reached" if row["tta_s"] is None else f"{row['tta_s']:.2f}"
                peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
                print(f"| {name} | {label} | {tta} | {row['samples_s']:,.0f} | {row['acc']:.4f} | {peak} |", flush=True)
        if gpu and not args.only:
            print("channels_last: trainkit uses it for conv nets on CUDA by default (perf.wants_channels_last), "
                  "so every trainkit cifar row has it; compare the two hand-loop bf16 rows for its gain")
        print(f"DDP smoke ({'nccl' if gpu else 'gloo'}, 1 process): {ddp_smoke(device, workdir, smoke_data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
