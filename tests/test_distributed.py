"""Several processes on torch.distributed (gloo on the CPU): torchrun, DDP, one run directory, stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import FAST, REPO, cli_env, load_summary, run_cli, run_dirs
from torch import nn

from trainkit import distributed
from trainkit.config import compose
from trainkit.errors import ConfigError, TrainkitError


def torchrun(args: list[str], nproc: int = 2) -> list[str]:
    """The command line of `torchrun --standalone --nproc_per_node=N ARGS` with this interpreter."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_two_processes_one_run_dir_same_accuracy(trained_run: Path, tmp_path: Path) -> None:
    """Two gloo processes with half the per-process batch: one run dir, world_size 2, one-process accuracy."""
    proc = subprocess.run(
        torchrun(["-m", "trainkit", "train", *FAST, "data.batch_size=32"]),
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")  # not one per rank (hydra #2070)
    assert len(list((tmp_path / "outputs").rglob("train.log"))) == 1
    assert len(list((tmp_path / "outputs").rglob("summary.json"))) == 1
    summary = load_summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["world_size"] == 2
    baseline = load_summary(trained_run)  # one process, data.batch_size=64: the same global batch
    assert abs(summary["test_acc"] - baseline["test_acc"]) < 0.02, (summary["test_acc"], baseline["test_acc"])
    assert abs(summary["best_value"] - baseline["best_value"]) < 0.02
    # Only rank 0 prints and logs: each epoch line appears once on the terminal and once in train.log.
    assert proc.stdout.count("epoch 2, loss") == 1
    assert (run_dir / "train.log").read_text().count("epoch 2, loss") == 1
    assert "global batch 64" in proc.stdout
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in best["model"])  # the unwrapped model: loads in one process


GRAD_SCRIPT = """
import json, sys, torch
from trainkit import distributed
from trainkit.data.loaders import TensorLoader
from trainkit.loop import Loop, LoopState, train_one_epoch
from trainkit.models import MLP
from trainkit.tasks import Classification

info = distributed.init("cpu")
g = torch.Generator().manual_seed(1)
x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
torch.manual_seed(0)
model = MLP(in_shape=[1, 8, 8], out_features=10, hidden=[32])
ddp, _ = distributed.wrap_model(model, info.device)
opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
loop = Loop(model=ddp, criterion=torch.nn.CrossEntropyLoss(), optimizer=opt, scheduler=None, interval="epoch",
            task=Classification(10), device=info.device, progress="none", is_main=info.is_main)
# 64 samples, 32 per rank: one optimizer step on the same global batch a single process takes at once.
loader = TensorLoader((x, y), 32, shuffle=True, seed=3, rank=info.rank, world_size=info.world_size)
metrics = train_one_epoch(loop, loader, LoopState(), 0, 1)
if info.is_main:
    torch.save({"params": {k: v.detach().clone() for k, v in model.state_dict().items()}, "metrics": metrics},
               sys.argv[1])
distributed.cleanup()
distributed.exit_process(0)  # as trainkit's own workers leave (a C++ teardown can abort on a loaded machine)
"""


def test_ddp_gradients_match_a_single_process_step_on_the_same_global_batch(tmp_path: Path) -> None:
    from trainkit.data.loaders import TensorLoader
    from trainkit.loop import Loop, LoopState, train_one_epoch
    from trainkit.models import MLP
    from trainkit.tasks import Classification

    script = tmp_path / "ddp_step.py"
    script.write_text(GRAD_SCRIPT)
    out = tmp_path / "ddp.pt"
    # Two processes with torchrun's environment (the launcher itself adds nothing to test here).
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
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
    ddp = torch.load(out, weights_only=True)

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    torch.manual_seed(0)
    model = MLP(in_shape=[1, 8, 8], out_features=10, hidden=[32])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loop = Loop(model=model, criterion=nn.CrossEntropyLoss(), optimizer=opt, scheduler=None, interval="epoch",
                task=Classification(10), device=torch.device("cpu"), progress="none")
    metrics = train_one_epoch(loop, TensorLoader((x, y), 64, shuffle=True, seed=3), LoopState(), 0, 1)

    for key, value in model.state_dict().items():
        assert not torch.equal(value, before[key])  # the step moved every weight
        # params after one SGD step = before - lr * grad: equal params mean equal gradients.
        torch.testing.assert_close(ddp["params"][key], value, rtol=1e-5, atol=1e-6)
    # Metrics are averaged over both ranks: the loss and accuracy of the whole global batch.
    assert ddp["metrics"]["loss"] == pytest.approx(metrics["loss"], rel=1e-6)
    assert ddp["metrics"]["acc"] == pytest.approx(metrics["acc"])


@pytest.mark.slow
def test_sigterm_on_one_rank_checkpoints_and_stops_every_rank(tmp_path: Path) -> None:
    """kill -TERM of rank 1 alone: all ranks stop at the same step, rank 0 writes last.pt, nobody hangs."""
    psutil = pytest.importorskip("psutil")

    cmd = torchrun(["-m", "trainkit", "train", "trainer.epochs=500", "trainer.progress=plain",
                    "data.batch_size=32"])
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "outputs").rglob("metrics.csv")):  # training has started on every rank
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.2)
        ranks = {}
        for child in psutil.Process(proc.pid).children(recursive=True):
            rank = child.environ().get("RANK")
            if rank is not None:
                ranks[int(rank)] = child
        ranks[1].send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # torchrun reports its workers' exit 143
    assert "exitcode  : 143" in output
    (run_dir,) = run_dirs(tmp_path / "outputs")
    summary = load_summary(run_dir)
    assert summary["status"] == "interrupted" and summary["world_size"] == 2
    assert summary["epochs"] < 500
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == summary["steps"]
    assert "stopped by signal" in (run_dir / "train.log").read_text()


@pytest.mark.slow
def test_submitit_local_job_of_two_tasks_is_one_ddp_run(tmp_path: Path) -> None:
    """The SLURM code path without SLURM: submitit starts 2 tasks, trainkit makes them one process group."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run_cli(["train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
                    "device=cpu", *FAST, "data.batch_size=32"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    summary = load_summary(run_dir)
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert (run_dir / "train.log").read_text().count("epoch 2, loss") == 1


# ------------------------------------------------------------------------- units (no processes)


def test_torchrun_environment_makes_a_gloo_group_and_rank0_shares_the_run_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In-process, world size 1: what every torchrun worker does before and after Hydra starts."""
    port = free_port()
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert distributed.launched_by_torchrun()
    try:
        args = ["trainer.epochs=1", "device=cpu"]
        assert distributed.torchrun_hydra_args(args, compose(args), multirun=False) == args  # rank 0: Hydra as usual
        info = distributed.info()
        assert (info.backend, info.rank, info.world_size, info.device) == ("gloo", 0, 1, torch.device("cpu"))
        distributed.share_run_dir(tmp_path)  # the broadcast the other ranks wait for
        assert distributed.setup_run(compose(["device=cpu"]), tmp_path) is info
        wrapped, _ = distributed.wrap_model(nn.Linear(2, 2), info.device)
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
        with pytest.raises(ConfigError, match="strategy=dp .* without torchrun"):
            distributed.cleanup()
            distributed.init("cpu", strategy="dp")
    finally:
        distributed.cleanup()
    assert not distributed.info().enabled


def test_sweep_under_torchrun_is_refused_before_joining_a_group() -> None:
    with pytest.raises(TrainkitError, match="-m .*cannot run under torchrun"):
        distributed.torchrun_hydra_args(["-m", "optim.lr=0.1,0.2"], compose(["optim.lr=0.1"]), multirun=True)


def test_strategy_ddp_without_torchrun_says_how_to_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "SUBMITIT_FOLDER", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(var, raising=False)
    cfg = compose(["trainer.strategy=ddp"])
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node=N -m trainkit train"):
        distributed.setup_run(cfg, Path("unused"))
    assert distributed.setup_run(compose([]), Path("unused")).world_size == 1


def test_strategy_ddp_without_torchrun_is_refused_before_a_run_dir_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainkit.cli import preflight

    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node=N -m trainkit train"):
        preflight(["trainer.strategy=ddp"], None, multirun=False)
    preflight(["trainer.strategy=ddp"], None, multirun=True)  # a submitit sweep: its jobs are the processes
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    preflight(["trainer.strategy=ddp"], None, multirun=False)


def test_strategy_dp_on_cpu_falls_back_to_one_device_with_a_message() -> None:
    model = nn.Linear(3, 2)
    wrapped, note = distributed.wrap_model(model, torch.device("cpu"), "dp")
    assert wrapped is model
    assert note is not None and "trainer.strategy=dp needs 2 or more CUDA GPUs" in note


def test_strategy_values_are_checked(tmp_path: Path) -> None:
    from trainkit.config import validate

    with pytest.raises(ConfigError, match="trainer.strategy=.deepspeed. must be one of: auto, ddp, dp, fsdp"):
        validate(compose(["trainer.strategy=deepspeed"]))


def test_backends_per_device() -> None:
    assert distributed.backend_for("cpu") == "gloo"
    with pytest.raises(ConfigError, match="no MPS backend"):
        distributed.backend_for("mps")
    if not torch.cuda.is_available():
        assert distributed.backend_for("auto") == "gloo"


def test_run_dir_override_survives_awkward_paths() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for path in ["/tmp/out/2026-01-01/10-00-00", "/tmp/my runs/a=b,c", "/tmp/it's here"]:
        (ov,) = parser.parse_overrides([f"hydra.run.dir={distributed._hydra_quote(path)}"])
        assert ov.value() == path


def test_all_reduce_is_a_no_op_in_one_process() -> None:
    sums = {"loss": torch.tensor(3.0, dtype=torch.float64)}
    assert distributed.all_reduce_sums(sums, 7) == (sums, 7)
    assert distributed.any_rank(True) and not distributed.any_rank(False)


def test_stop_signal_turns_sigterm_into_a_stop_at_the_next_step() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = distributed.StopSignal().install()
    try:
        assert not stop.check()
        signal.raise_signal(signal.SIGTERM)
        assert stop.check() and stop.exit_code == 143
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) == before


SCHEMA_MATCH = r"ignore:\s*'hydra/launcher/submitit_\w+' is validated:UserWarning"


@pytest.mark.filterwarnings(SCHEMA_MATCH)
@pytest.mark.parametrize("launcher", ["submitit_slurm", "submitit_local"])
def test_submitit_launcher_configs_compose_with_trainkit_defaults(launcher: str) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose([f"hydra/launcher={launcher}", "hydra.launcher.gpus_per_node=4"], return_hydra_config=True)
    node = cfg.hydra.launcher
    assert node._target_.endswith("SlurmLauncher" if launcher == "submitit_slurm" else "LocalLauncher")
    assert node.nodes == 1 and node.timeout_min > 0
    if launcher == "submitit_slurm":
        assert node.tasks_per_node == 4  # one process per GPU
        assert node.max_num_timeout > 0 and node.signal_delay_s > 0  # requeued on preemption/timeout


@pytest.mark.filterwarnings(SCHEMA_MATCH)
def test_submitit_slurm_config_makes_a_valid_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys reach submitit the way the plugin passes them, and submitit turns every one into sbatch."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit
    from hydra.core.hydra_config import HydraConfig
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    fake_bin = tmp_path / "bin"  # submitit looks for srun before it writes a script; no cluster needed
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ.get('PATH', '')}")
    cfg = compose(["hydra/launcher=submitit_slurm", "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=8",
                   "hydra.launcher.partition=gpu"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra.job.name} and ${hydra.sweep.dir} resolve against it
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    # What the plugin's SlurmLauncher.launch does with them:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path / "sub"),
                                         max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    text = executor._executor._make_submission_file_text("python -m trainkit", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=gpu", "--time=240",
                 "--signal=USR2@120", "--cpus-per-task=8"):
        assert f"#SBATCH {line}" in text


def test_docs_page_and_readme_section_exist() -> None:
    text = (REPO / "docs" / "distributed.md").read_text()
    for needed in ("torchrun", "submitit_slurm", "trainer.strategy=dp", "global batch", "nccl"):
        assert needed in text
    assert "torchrun" in (REPO / "README.md").read_text()


@pytest.mark.slow
def test_ddp_run_resumed_mid_epoch_writes_the_metrics_of_the_run_left_alone(tmp_path: Path) -> None:
    """SIGTERM mid-epoch, then resume under torchrun: the same metrics.csv and weights as no interruption.

    The partial train sums in last.pt are all ranks' (not rank 0's alone), carried once on resume.
    """
    args = ["-m", "trainkit", "train", "device=cpu", "trainer.epochs=2", "trainer.progress=none",
            "trainer.checkpoint_every_n_steps=7"]

    def torchrun_in(cwd: Path, args: list[str], **env: str) -> Path:
        cwd.mkdir(exist_ok=True)
        proc = subprocess.run(torchrun(args), cwd=cwd, env=cli_env(**env), capture_output=True, text=True,
                              timeout=300)
        (run_dir,) = run_dirs(cwd / "outputs")
        return run_dir if proc.returncode == 0 else Path(proc.stdout[-2000:] + proc.stderr[-2000:])

    alone = torchrun_in(tmp_path / "alone", args)
    stopped = torchrun_in(tmp_path / "stopped", args, TRAINKIT_TEST_SIGNAL="15:TERM")  # epoch 2, batch 5 of 10
    (stopped,) = run_dirs(tmp_path / "stopped" / "outputs")
    assert load_summary(stopped)["status"] == "interrupted"
    # As docs/distributed.md says: the same torchrun launch with resume= (the checkpoint holds the config).
    assert torchrun_in(tmp_path / "stopped", ["-m", "trainkit", "train", f"resume={stopped}"]) == stopped
    assert load_summary(stopped)["status"] == "completed"

    def rows(run_dir: Path) -> list[list[str]]:
        return [line.split(",")[:7] for line in (run_dir / "metrics.csv").read_text().splitlines()]

    assert rows(stopped) == rows(alone)  # epoch, step, lr, train/val loss and acc; time columns aside
    a = torch.load(alone / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
