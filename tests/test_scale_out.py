"""Scaling out on gloo: no_sync under accumulation, sharded evaluation, elastic restarts, two nodes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cli_env
from test_distributed import free_port

NO_SYNC_SCRIPT = """
import contextlib, sys, torch
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
import trainkit.loop
from trainkit import distributed
from trainkit.data.loaders import TensorLoader
from trainkit.loop import Loop, LoopState, evaluate, train_one_epoch
from trainkit.models import MLP
from trainkit.tasks import Classification

info = distributed.init("cpu")
g = torch.Generator().manual_seed(1)
x, y = torch.randn(128, 1, 8, 8, generator=g), torch.randint(0, 10, (128,), generator=g)


def train(force_sync):
    torch.manual_seed(0)
    model = MLP(in_shape=[1, 8, 8], out_features=10, hidden=[32])
    ddp, _ = distributed.wrap_model(model, info.device)
    calls = [0]

    def counting(state, bucket):  # DDP's gradient all-reduce, counted
        calls[0] += 1
        return allreduce_hook(None, bucket)

    ddp.register_comm_hook(None, counting)
    if force_sync:  # the synced version: an all-reduce after every micro-batch
        trainkit.loop.grad_sync = lambda model, sync: contextlib.nullcontext()
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    loop = Loop(model=ddp, criterion=torch.nn.CrossEntropyLoss(), optimizer=opt, scheduler=None,
                interval="epoch", task=Classification(10), device=info.device, progress="none",
                is_main=info.is_main, accumulate=4)
    loader = TensorLoader((x, y), 8, shuffle=True, seed=3, rank=info.rank, world_size=info.world_size)
    train_one_epoch(loop, loader, LoopState(), 0, 1)  # 8 micro-batches per rank: 2 optimizer steps
    return model, calls[0], loop


model, calls, loop = train(False)
synced, synced_calls, _ = train(True)
odd = TensorLoader((x[:37], y[:37]), 5, rank=info.rank, world_size=info.world_size)  # 19 + 18, padded to 19 each
metrics = evaluate(loop, odd)
if info.is_main:
    torch.save({"params": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "synced": {k: v.detach().clone() for k, v in synced.state_dict().items()},
                "calls": calls, "synced_calls": synced_calls, "eval": metrics}, sys.argv[1])
distributed.cleanup()
distributed.exit_process(0)  # as trainkit's own workers leave (a C++ teardown can abort on a loaded machine)
"""


def run_two(script: Path, out: Path, cwd: Path) -> None:
    """Two processes with torchrun's environment (the launcher itself adds nothing to test here)."""
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, str(script), str(out)], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         env=cli_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                     MASTER_PORT=str(port)))
        for r in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs


@pytest.mark.slow
def test_accumulation_under_ddp_skips_the_all_reduce_and_equals_the_synced_run(tmp_path: Path) -> None:
    from trainkit.data.loaders import TensorLoader
    from trainkit.loop import Loop, evaluate
    from trainkit.models import MLP
    from trainkit.tasks import Classification

    script = tmp_path / "no_sync.py"
    script.write_text(NO_SYNC_SCRIPT)
    run_two(script, tmp_path / "out.pt", tmp_path)
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    # One all-reduce per optimizer step (2) instead of one per micro-batch (8); the small MLP is one bucket.
    assert (out["calls"], out["synced_calls"]) == (2, 8)
    for key, value in out["synced"].items():
        torch.testing.assert_close(out["params"][key], value, rtol=1e-5, atol=1e-6)
    # Sharded evaluation of 37 samples counts each once: the numbers of one process on the whole split.
    model = MLP(in_shape=[1, 8, 8], out_features=10, hidden=[32])
    model.load_state_dict(out["params"])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(128, 1, 8, 8, generator=g), torch.randint(0, 10, (128,), generator=g)
    loop = Loop(model=model, criterion=torch.nn.CrossEntropyLoss(), optimizer=None, scheduler=None,
                interval="epoch", task=Classification(10), device=torch.device("cpu"), progress="none")
    alone = evaluate(loop, TensorLoader((x[:37], y[:37]), 5))
    assert out["eval"]["acc"] == alone["acc"]
    assert out["eval"]["loss"] == pytest.approx(alone["loss"], rel=1e-6)  # float32 batch sums


def test_evaluation_shards_count_no_padding() -> None:
    from trainkit import distributed
    from trainkit.data.loaders import TensorLoader

    data = (torch.arange(7.0), torch.arange(7))
    seen: list[int] = []
    for rank in range(3):  # 7 samples over 3 ranks: 3 + 2 + 2, each shard padded to 3
        loader = TensorLoader(data, 2, rank=rank, world_size=3)
        batches = list(distributed.without_padding(loader))
        assert sum(n for _, n in batches) == distributed.real_samples(loader) == (3, 2, 2)[rank]
        seen += [int(v) for b, n in batches for v in b[1][:n]]
    assert sorted(seen) == list(range(7))
    assert distributed.real_samples(TensorLoader(data, 2)) is None  # one process: nothing cut
    # An all-padding batch still comes (every rank runs the same forwards) with no real samples.
    last = list(distributed.without_padding(TensorLoader(data, 1, rank=2, world_size=3)))
    assert [n for _, n in last] == [1, 1, 0]


# ------------------------------------------------------------------------- elastic restarts, two nodes

ELASTIC = ["-m", "trainkit", "train", "device=cpu", "trainer.autoresume=true", "trainer.epochs=4",
           "trainer.checkpoint_every_n_steps=3", "data.batch_size=16", "trainer.progress=none"]


def torchrun_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def run_rows(run_dir: Path) -> list[list[str]]:
    """metrics.csv without its time columns (train_time_s, train_samples_per_s)."""
    import csv

    with (run_dir / "metrics.csv").open(newline="") as f:
        return [[v for k, v in row.items() if not k.endswith(("_time_s", "_per_s"))] for row in csv.DictReader(f)]


def assert_same_run(a: Path, b: Path) -> None:
    assert run_rows(a) == run_rows(b)
    for name in ("last.pt", "best.pt"):
        ca = torch.load(a / "checkpoints" / name, weights_only=True)
        cb = torch.load(b / "checkpoints" / name, weights_only=True)
        assert ca["step"] == cb["step"] and ca["model"].keys() == cb["model"].keys()
        assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"]), name


def assert_clean_run_dir(run_dir: Path) -> None:
    """One run: one .hydra/, a completed summary, only whole checkpoints, no temp file of a killed write."""
    import json

    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.prev.pt", "last.pt"]
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".") and p.name not in (".hydra", ".trainkit.lock")]
    assert len(list(run_dir.rglob(".hydra"))) == 1


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2-process run left alone (one torchrun on one node)."""
    cwd = tmp_path_factory.mktemp("alone")
    proc = subprocess.run(torchrun_cmd("--standalone", "--nproc_per_node=2", *ELASTIC, "hydra.run.dir=run"),
                          cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return cwd / "run"


@pytest.mark.slow
def test_kill_9_of_a_worker_restarts_the_group_which_resumes_and_ends_equal(two_process_run: Path, tmp_path: Path) -> None:
    """torchrun --max-restarts=3: three SIGKILLs of a random worker at random moments mid-training."""
    import random
    import time

    psutil = pytest.importorskip("psutil")
    rng = random.Random()
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    proc = subprocess.Popen(torchrun_cmd("--standalone", "--nproc_per_node=2", "--max-restarts=3", "--monitor-interval=0.2",
                                         *ELASTIC, "hydra.run.dir=run"),
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # a failure kills torchrun and every worker it started
    kills = []
    try:
        for attempt in range(3):
            deadline = time.monotonic() + 180
            workers: dict[int, object] = {}
            while len(workers) < 2:  # this attempt's two workers
                assert proc.poll() is None and time.monotonic() < deadline, "no workers"
                for child in psutil.Process(proc.pid).children(recursive=True):
                    try:
                        env = child.environ()
                    except psutil.Error:
                        continue
                    if env.get("TORCHELASTIC_RESTART_COUNT") == str(attempt) and "RANK" in env:
                        workers[int(env["RANK"])] = child
                time.sleep(0.1)
            seen = last.stat().st_ino if last.exists() else None
            while not last.exists() or last.stat().st_ino == seen:  # this attempt wrote a checkpoint of its own
                assert proc.poll() is None and time.monotonic() < deadline, "no progress"
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.15))  # then a random moment (a step takes ~10 ms): mid-step, mid-save, ...
            rank = rng.randrange(2)
            step = torch.load(last, weights_only=True)["step"]
            workers[rank].send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
            kills.append((rank, step))
        output, _ = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-3000:]
    final = torch.load(two_process_run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert len(kills) == 3 and kills[-1][1] < final, (kills, final)  # three kills, all before the last step
    assert output.count("resumed from") == 3, output[-3000:]
    assert_same_run(two_process_run, run_dir)
    assert_clean_run_dir(run_dir)


@pytest.mark.slow
def test_two_nodes_make_one_run_written_by_global_rank_0_equal_to_one_node(two_process_run: Path, tmp_path: Path) -> None:
    """Two torchrun "nodes" of one process each on this machine, c10d rendezvous on 127.0.0.1."""
    import json

    port = free_port()
    nodes = []
    for node in range(2):
        cwd = tmp_path / f"node{node}"  # each "machine" starts in its own directory
        cwd.mkdir()
        nodes.append(subprocess.Popen(
            torchrun_cmd("--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1", "--rdzv-backend=c10d",
                         f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two_nodes", *ELASTIC, "hydra.run.dir=run"),
            cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in nodes]
    finally:
        for p in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in nodes] == [0, 0], [o[-2000:] for o in outputs]
    # The run directory is global rank 0's (c10d may give rank 0 to either node); the other node wrote nothing.
    dirs = [tmp_path / f"node{n}" / "run" for n in range(2) if (tmp_path / f"node{n}" / "run").exists()]
    assert len(dirs) == 1, dirs
    (run_dir,) = dirs
    (other,) = [tmp_path / f"node{n}" for n in range(2) if run_dir.parent.name != f"node{n}"]
    assert list(other.rglob("*")) == []
    assert json.loads((run_dir / "summary.json").read_text())["world_size"] == 2
    assert len(list(tmp_path.rglob("train.log"))) == 1 and len(list(tmp_path.rglob("summary.json"))) == 1
    assert_same_run(two_process_run, run_dir)
    assert_clean_run_dir(run_dir)


@pytest.mark.slow
def test_eval_under_torchrun_gives_the_one_process_numbers_and_the_runs_own_test(two_process_run: Path, tmp_path: Path) -> None:
    """Each rank evaluates a shard, the sums are all-reduced: 359 test samples counted once, like one process."""
    import json

    from conftest import run_cli

    best = two_process_run / "checkpoints" / "best.pt"
    proc = run_cli(["eval", f"ckpt={best}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    alone = json.loads((two_process_run / "eval.json").read_text())
    proc = subprocess.run(torchrun_cmd("--standalone", "--nproc_per_node=2", "-m", "trainkit", "eval", f"ckpt={best}"),
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("test (359 samples") == 1  # rank 0 speaks
    sharded = json.loads((two_process_run / "eval.json").read_text())
    assert (alone["world_size"], sharded["world_size"]) == (1, 2)
    assert sharded["test_acc"] == alone["test_acc"]
    assert sharded["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-6)
    # The run's own end-of-run test (2 processes, on best.pt) measured the same numbers.
    summary = json.loads((two_process_run / "summary.json").read_text())
    assert summary["test_acc"] == alone["test_acc"]
    report = json.loads((two_process_run / "test_report.json").read_text())
    assert report["samples"] == 359


# ------------------------------------------------------------------------- the GPU evidence script

GPU_CHECK = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


def test_gpu_check_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_gpu_check_cpu_fallback_prints_the_whole_table_and_a_ddp_smoke_run(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(GPU_CHECK), "--cpu", "--only", "mnist"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=500, env=cli_env(PYTHON=sys.executable))  # the conv net: by hand
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [(r[0].strip(), r[1].strip()) for r in rows[1:]] == [("mnist", "hand loop fp32"), ("mnist", "trainkit fp32")]
    assert all(float(r[4]) > 0.3 and float(r[3].replace(",", "")) > 0 for r in rows[1:])  # it learned, it timed
    assert "DDP smoke (gloo, 1 process): ok: distributed: 1 processes (gloo)" in proc.stdout
