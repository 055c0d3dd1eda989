"""Kill campaign: SIGKILL a tiny run at random moments, resume it, and compare with an uninterrupted run.

    python benchmarks/kill_campaign.py --trials 50          # the figure in docs/reproducibility.md
    python benchmarks/kill_campaign.py --trials 5 --seed 3  # a quick look

Each trial kills `trainkit train` (digits, 3 epochs, a mid-epoch checkpoint every 7 steps, dropout
so the RNG state matters) one of four ways: right after a random optimizer step, inside a random
checkpoint write (after the temp file is written, before it replaces the old file), after a random
wall-clock delay (set-up, the loop, the test: anywhere), or twice (the run, then its resume). Then it
continues the run as a user would (`resume=DIR` when checkpoints/last.pt exists, else the same
command again) until it completes, and checks it is bit-identical to the reference run: every weight
of last.pt and best.pt (torch.equal), the epoch and step, and metrics.csv without its time columns;
both last.pt and last.prev.pt load with weights_only=True and no orphan temp file is left.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = [
    "trainer.epochs=3",
    "trainer.progress=plain",
    "trainer.checkpoint_every_n_steps=7",
    "model.dropout=0.2",
    "device=cpu",
]
STEPS = 60  # 3 epochs of 20 steps (digits: 1259 training samples, batch 64)
WRITES = 14  # checkpoint writes of the run: 8 mid-epoch, 3 epoch-end last.pt, best.pt when it improves
TIME_COLUMNS = {"train_time_s", "train_samples_per_s"}
KINDS = ("step", "write", "time", "double")
LANDED = [0, 0]  # kills that hit a live process, kills attempted


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("TRAINKIT_TEST_")}
    out.pop("TRAINKIT_DEBUG", None)
    out.setdefault("OMP_NUM_THREADS", "1")
    # A fault asked for (TRAINKIT_TEST_*): tests/hooks on the path, whose sitecustomize injects it.
    hooks = [str(REPO / "tests" / "hooks")] if any(k.startswith("TRAINKIT_TEST_") for k in extra) else []
    out["PYTHONPATH"] = os.pathsep.join([str(REPO), *hooks, out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out.update(extra)
    return out


def trainkit(args: list[str], cwd: Path, extra: dict[str, str] | None = None, kill_after: float | None = None,
             timeout: float = 600) -> int:
    """Run `python -m trainkit ARGS`; SIGKILL it after `kill_after` seconds if given. Returns the exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "trainkit", *args], cwd=cwd, env=env(**(extra or {})),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else timeout)
    except subprocess.TimeoutExpired:
        if kill_after is None:
            raise
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"trainkit {' '.join(args)} exited {proc.returncode}: {err.strip()[-600:]}")
    return proc.returncode


def kill_once(kind: str, rng: random.Random, wall: float, done: int = 0) -> tuple[dict[str, str], float | None, str]:
    """The environment / delay that kills one process, and a label for the report.

    `done`: the step a resume starts from, so its step and write kills land after it.
    """
    if kind == "step":
        step = rng.randint(done + 1, STEPS)
        return {"TRAINKIT_TEST_SIGNAL": f"{step}:KILL"}, None, f"after step {step}"
    if kind == "write":
        n = rng.randint(1, max(1, round(WRITES * (STEPS - done) / STEPS)))
        return {"TRAINKIT_TEST_KILL_IN_WRITE": str(n)}, None, f"inside checkpoint write {n}"
    delay = rng.uniform(0.2, wall * 1.1)
    return {}, delay, f"after {delay:.2f} s"


def continue_run(run: Path, cwd: Path, extra: dict[str, str] | None = None, kill_after: float | None = None) -> int:
    """What a user does next: resume when there is a last.pt, else start the same run again."""
    if (run / "checkpoints" / "last.pt").is_file():
        return trainkit(["train", f"resume={run.name}"], cwd, extra, kill_after)
    return trainkit(["train", *RUN, f"hydra.run.dir={run.name}"], cwd, extra, kill_after)


def checkpoint_step(run: Path) -> int:
    """The step a resume of `run` starts from (0 when it has no last.pt)."""
    import torch

    try:
        return int(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"])
    except (OSError, RuntimeError, KeyError):
        return 0


def completed(run: Path) -> bool:
    try:
        return json.loads((run / "summary.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False


def metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def differences(ref: Path, run: Path) -> list[str]:
    """Why `run` is not bit-identical to `ref` (empty: it is)."""
    import torch

    out = []
    for name in ("last.pt", "best.pt"):
        a = torch.load(ref / "checkpoints" / name, weights_only=True)
        b = torch.load(run / "checkpoints" / name, weights_only=True)
        if (a["epoch"], a["step"]) != (b["epoch"], b["step"]):
            out.append(f"{name}: epoch/step {b['epoch']}/{b['step']} vs {a['epoch']}/{a['step']}")
        if a["model"].keys() != b["model"].keys() or not all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]):
            out.append(f"{name}: weights differ")
    prev = run / "checkpoints" / "last.prev.pt"
    if prev.exists():
        try:
            torch.load(prev, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
            out.append(f"last.prev.pt does not load: {exc}")
    if metrics(ref) != metrics(run):
        out.append(f"metrics.csv differs: epochs {[r['epoch'] for r in metrics(run)]}")
    orphans = [p.name for d in (run, run / "checkpoints") for p in d.iterdir() if p.name.endswith(".tmp")]
    if orphans:
        out.append(f"orphan temp files: {orphans}")
    return out


def trial(i: int, kind: str, rng: random.Random, root: Path, ref: Path, wall: float) -> tuple[bool, str]:
    run = root / f"trial{i}"
    labels = []
    extra, delay, label = kill_once("write" if kind == "double" and rng.random() < 0.5 else
                                    ("step" if kind == "double" else kind), rng, wall)
    killed = trainkit(["train", *RUN, f"hydra.run.dir={run.name}"], root, extra, delay) == -signal.SIGKILL
    labels.append(label + ("" if killed else " (ended before the kill)"))
    LANDED[0], LANDED[1] = LANDED[0] + killed, LANDED[1] + 1
    if kind == "double" and not completed(run):  # kill the resume (or the restart) too
        extra, delay, label = kill_once(rng.choice(("step", "write", "time")), rng, wall, checkpoint_step(run))
        killed = continue_run(run, root, extra, delay) == -signal.SIGKILL
        labels.append("then " + label + ("" if killed else " (ended before the kill)"))
        LANDED[0], LANDED[1] = LANDED[0] + killed, LANDED[1] + 1
    for _ in range(3):
        if completed(run):
            break
        continue_run(run, root)
    if not completed(run):
        return False, f"{kind} ({', '.join(labels)}): never completed"
    diffs = differences(ref, run)
    return not diffs, f"{kind} ({', '.join(labels)})" + (": " + "; ".join(diffs) if diffs else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, cycled: {','.join(KINDS)}")
    parser.add_argument("--dir", type=Path, default=None, help="where the runs go (default: a temp dir)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds takes {', '.join(KINDS)}")
    rng = random.Random(args.seed)
    root = args.dir or Path(tempfile.mkdtemp(prefix="trainkit-kill-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trainkit(["train", *RUN, "hydra.run.dir=reference"], root)
    wall = time.perf_counter() - t0
    print(f"reference run: {wall:.1f} s in {root / 'reference'}", flush=True)
    same = 0
    for i in range(args.trials):
        try:
            ok, what = trial(i, kinds[i % len(kinds)], rng, root, root / "reference", wall)
        except RuntimeError as exc:  # a continuation refused or crashed: that is a finding too
            ok, what = False, str(exc)
        same += ok
        print(f"trial {i + 1:>3}: {'identical' if ok else 'DIFFERENT'}  {what}", flush=True)
    print(f"{same}/{args.trials} bit-identical to the uninterrupted run")
    print(f"kills that landed: {LANDED[0]} of {LANDED[1]} attempted (the others came after the run had ended)")
    return 0 if same == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
