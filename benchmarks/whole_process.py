"""Whole process: `trainkit train` against the hand-written script `hand_train.py`, start to exit.

    python benchmarks/whole_process.py                      # digits and a 60k-sample MLP, 1 epoch, 5 rounds
    python benchmarks/whole_process.py --workload digits --epochs 5 --reps 7

Each round runs both commands as fresh processes, one after the other (interleaved, 1 thread each:
OMP_NUM_THREADS=1), and records the process's CPU time (user + system, from wait4), its wall time,
its peak RSS, and three wall-clock phases read from the time each output line arrives:
start-up (launch to the last line before the first `epoch` line), epochs (to the last `epoch` line)
and shut-down (to exit: the test pass, the report, the summary, interpreter exit).
The table prints medians and trainkit's ratios to the hand script (of medians and per round).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine

HERE = Path(__file__).resolve().parent
EPOCH = re.compile(r"^epoch \d+")


def run_once(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Launch `cmd`, timestamp its output lines, return wall, CPU, peak RSS and the three phases."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO, text=True)
    stamps: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        stamps.append((time.perf_counter() - t0, line.rstrip("\n")))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        tail = "\n".join(line for _, line in stamps[-15:])
        raise SystemExit(f"{' '.join(cmd)} failed (status {status}):\n{tail}")
    epochs = [i for i, (_, line) in enumerate(stamps) if EPOCH.match(line)]
    if not epochs:
        raise SystemExit(f"{' '.join(cmd)} printed no 'epoch N' line")
    start = stamps[epochs[0] - 1][0] if epochs[0] > 0 else 0.0
    last = stamps[epochs[-1]][0]
    return {"start-up": start, "epochs": last - start, "shut-down": wall - last, "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def workloads(tmp: Path, epochs: int) -> dict[str, dict[str, list[str]]]:
    """Per workload, the trainkit command and the hand script's (their run directories are filled in per round)."""
    import torch
    from overhead import make_tensors

    x, y = make_tensors(60000, (784,), 10, seed=0)
    path = tmp / "mlp60k.pt"
    torch.save({"x": x, "y": y}, path)
    train = [sys.executable, "-m", "trainkit", "train", f"trainer.epochs={epochs}", "trainer.progress=none",
             "device=cpu"]
    hand = [sys.executable, str(HERE / "hand_train.py"), f"--epochs={epochs}"]
    return {
        "digits": {"trainkit": train, "hand": [*hand, "--data=digits"]},
        "mlp60k": {"trainkit": [*train, "data=tensor_file", f"data.path={path}", "model.hidden=[256]"],
                   "hand": [*hand, f"--data={path}", "--hidden=256"]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["digits", "mlp60k", "all"], default="all")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    tmp = Path(tempfile.mkdtemp(prefix="trainkit-whole-"))
    print(f"whole process: epochs={args.epochs} reps={args.reps}")
    print(f"machine: {machine()}")
    for name, cmds in workloads(tmp, args.epochs).items():
        if args.workload not in ("all", name):
            continue
        results: dict[str, list[dict[str, float]]] = {k: [] for k in cmds}
        for r in range(args.reps + 1):  # the first round warms the file cache and is not counted
            for who, cmd in cmds.items():
                out = tmp / f"{name}-{who}-{r}"
                full = [*cmd, f"hydra.run.dir={out}"] if who == "trainkit" else [*cmd, f"--out={out}"]
                res = run_once(full, env)
                if r:
                    results[who].append(res)
            if r:
                t, h = results["trainkit"][-1], results["hand"][-1]
                print(f"  {name} round {r}/{args.reps}: CPU trainkit {t['cpu']:.2f} s, hand {h['cpu']:.2f} s", flush=True)
        print(f"\n{name}, {args.epochs} epoch(s), medians of {args.reps} rounds (seconds; RSS in MB):")
        cols = ["start-up", "epochs", "shut-down", "wall", "cpu", "rss_mb"]
        print("| command | " + " | ".join(cols) + " |")
        print("|---|" + "---:|" * len(cols))
        med = {who: {c: statistics.median(r[c] for r in rs) for c in cols} for who, rs in results.items()}
        for who in results:
            print(f"| {who} | " + " | ".join(f"{med[who][c]:.2f}" if c != "rss_mb" else f"{med[who][c]:.0f}"
                                             for c in cols) + " |")
        t, h = results["trainkit"], results["hand"]
        for c in ("cpu", "wall"):
            per_round = statistics.median(a[c] / b[c] for a, b in zip(t, h, strict=True))
            print(f"trainkit / hand {c}: {med['trainkit'][c] / med['hand'][c]:.2f}x (medians), {per_round:.2f}x (per round)")
        print(f"peak RSS: trainkit {med['trainkit']['rss_mb'] - med['hand']['rss_mb']:+.0f} MB over the hand script")


if __name__ == "__main__":
    main()
