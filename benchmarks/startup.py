"""Start-up: how long `trainkit --help` takes, and where `trainkit train` spends its time before step one.

    python benchmarks/startup.py              # 5 interleaved rounds
    python benchmarks/startup.py --reps 9

Prints (1) medians of wall-clock times of whole commands (subprocesses, interleaved), (2) the phases
of one `trainkit train` up to its first training step, and (3) the slowest imports of that command
(`python -X importtime`, cumulative, top-level packages).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, interleave, machine

TRAIN_ARGS = ["train", "trainer.epochs=1", "trainer.progress=none", "device=cpu"]

# Runs inside the child: marks phases of the real CLI path, stops right after the first step.
PROBE = r"""
import sys, time, json
T0 = float(sys.argv[1]); marks = [("interpreter ready", time.time())]
import trainkit.cli as cli
marks.append(("import trainkit.cli", time.time()))
_pre, _hyd = cli.preflight, cli.run_hydra
def preflight(*a, **k):
    _pre(*a, **k); marks.append(("pre-flight compose + validate (imports hydra)", time.time()))
def run_hydra(args):
    import trainkit.parts as parts
    import trainkit.run as run
    marks.append(("import torch + trainkit.run", time.time()))
    setup, build_data = run.Run.setup, parts.build_data
    def Setup(self):
        marks.append(("hydra.main: compose again, run dir, logging", time.time()))
        setup(self); marks.append(("Run.setup: model, optimizer, checks", time.time()))
        step = self.task.loss_and_sums  # what the loop calls each batch; each task class overrides it
        def Step(*a, **k):
            out = step(*a, **k)
            marks.append(("first training step", time.time()))
            print("PROBE " + json.dumps([(n, t - T0) for n, t in marks]), flush=True); sys.exit(0)
        self.task.loss_and_sums = Step
    def BuildData(*a, **k):
        marks.append(("Run.setup: seeding, device", time.time()))
        out = build_data(*a, **k)
        marks.append(("build_data: dataset, split, preload", time.time()))
        return out
    run.Run.setup, parts.build_data = Setup, BuildData
    return _hyd(args)
cli.preflight, cli.run_hydra = preflight, run_hydra
cli.main(sys.argv[2:])
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=_env(), check=True, capture_output=True)
    return time.perf_counter() - t0


def probe(cwd: Path) -> list[tuple[str, float]]:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", PROBE, str(t0), *TRAIN_ARGS], cwd=cwd, env=_env(),
                         capture_output=True, text=True, check=True).stdout
    import json

    lines = [ln for ln in out.splitlines() if ln.startswith("PROBE ")]
    if not lines:  # the probe's hooks no longer match trainkit's code: say so instead of StopIteration
        sys.exit("startup.py: the probe run reached no training step; its hooks (PROBE) need updating to trainkit's code")
    line = lines[0]
    return [(n, float(t)) for n, t in json.loads(line[6:])]


def import_breakdown(cwd: Path, top: int) -> list[tuple[str, float]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "trainkit", *TRAIN_ARGS], cwd=cwd,
                          env=_env(), capture_output=True, text=True, check=True)
    cumulative: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cum, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if name == name.lstrip() and "." not in name.strip():  # top-level packages only
            cumulative[name.strip()] = cumulative.get(name.strip(), 0.0) + int(cum) / 1e6
    return sorted(cumulative.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--top", type=int, default=12, help="how many imports to list")
    args = p.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="trainkit-startup-"))
    py = sys.executable
    print(f"machine: {machine()}")
    first_step: list[list[tuple[str, float]]] = []

    def first() -> float:
        first_step.append(probe(cwd))
        return first_step[-1][-1][1]

    contenders = {
        "python -c pass": lambda: timed([py, "-c", "pass"], cwd),
        "trainkit --help": lambda: timed([py, "-m", "trainkit", "--help"], cwd),
        "trainkit train --help": lambda: timed([py, "-m", "trainkit", "train", "--help"], cwd),
        "python -c 'import torch'": lambda: timed([py, "-c", "import torch"], cwd),
        "trainkit train: first step": first,
        "trainkit train (1 epoch, digits)": lambda: timed([py, "-m", "trainkit", *TRAIN_ARGS], cwd),
    }
    results = interleave(contenders, args.reps)
    import statistics

    print("\n| command | median s | min s | max s |\n|---|---:|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    # the probe run whose first step is the median one
    runs = sorted(first_step[1:] or first_step, key=lambda r: r[-1][1])
    marks = runs[len(runs) // 2]
    print("\n`trainkit train` to its first step (median run), seconds since the process was launched:")
    print("| phase | took s | at s |\n|---|---:|---:|")
    prev = 0.0
    for name, t in marks:
        print(f"| {name} | {t - prev:.2f} | {t:.2f} |")
        prev = t
    print("\nslowest imports of `trainkit train` (python -X importtime, cumulative, one run):")
    print("| package | s |\n|---|---:|")
    for name, secs in import_breakdown(cwd, args.top):
        print(f"| {name} | {secs:.2f} |")


if __name__ == "__main__":
    main()
