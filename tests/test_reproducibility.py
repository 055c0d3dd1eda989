"""Exact resume after SIGKILL/SIGINT/SIGTERM, sweeps with a summary, the report, the run record.

The subprocess tests run the real CLI on digits; TRAINKIT_TEST_SIGNAL=STEP:NAME makes the run send
itself a real signal right after optimizer step STEP, so the interruption lands at a known point.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import cli_env, load_summary, run_cli, run_dirs

from trainkit import cli
from trainkit.errors import TrainkitError

# 3 epochs of 20 steps, a mid-epoch checkpoint every 7 steps, dropout so the torch RNG matters.
RUN = [
    "trainer.epochs=3",
    "trainer.progress=plain",
    "trainer.checkpoint_every_n_steps=7",
    "model.dropout=0.2",
]
TIME_COLUMNS = {"train_time_s", "train_samples_per_s"}


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def assert_same_weights(a: Path, b: Path) -> None:
    for name in ("last.pt", "best.pt"):
        ca = torch.load(a / "checkpoints" / name, weights_only=True)
        cb = torch.load(b / "checkpoints" / name, weights_only=True)
        assert ca["model"].keys() == cb["model"].keys()
        for key in ca["model"]:
            assert torch.equal(ca["model"][key], cb["model"][key]), f"{name}: {key} differs"
        assert ca["step"] == cb["step"] and ca["epoch"] == cb["epoch"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run left alone."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = run_cli(["train", *RUN, "hydra.run.dir=ref"], cwd)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return cwd / "ref"


def test_sigkill_mid_epoch_then_resume_is_bit_identical(reference: Path, tmp_path: Path) -> None:
    # Killed right after step 30 (epoch 2, batch 10); the last checkpoint is step 28's.
    proc = run_cli(["train", *RUN, "hydra.run.dir=run"], tmp_path, env=cli_env(TRAINKIT_TEST_SIGNAL="30:KILL"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = tmp_path / "run"
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]) == (1, 8, 28)
    assert ckpt["partial_sums"]["count"] == 8 * 64
    assert len(metrics_rows(run)) == 1
    cmd_before = (run / "cmd.txt").read_text()

    proc = run_cli(["train", "resume=run"], tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "resumed from" in proc.stdout and "epoch 2, batch 8" in proc.stdout

    assert_same_weights(reference, run)
    assert metrics_rows(run) == metrics_rows(reference)
    assert [r["epoch"] for r in metrics_rows(run)] == ["1", "2", "3"]
    ref_summary, summary = load_summary(reference), load_summary(run)
    assert summary["status"] == "completed"
    assert summary["test_acc"] == ref_summary["test_acc"] and summary["best_value"] == ref_summary["best_value"]
    assert (run / "cmd.txt").read_text() == cmd_before  # the original command stays the record
    record = json.loads((run / "record.json").read_text())
    assert len(record["resumed"]) == 1 and record["resumed"][0]["step"] == 28
    assert record["seed"] == 0 and record["device"]["device"] == "cpu" and "git" in record
    assert {"trainkit", "torch", "python", "cuda"} <= record["versions"].keys()
    assert record["data"]["sizes"] == {"train": 1259, "val": 179, "test": 359} and record["data"]["fingerprint"]
    assert "out_features: 10" in (run / "config_resolved.yaml").read_text()


def test_ctrl_c_writes_last_pt_prints_resume_command_and_resumes_exactly(reference: Path, tmp_path: Path) -> None:
    proc = run_cli(["train", *RUN, "hydra.run.dir=run"], tmp_path, env=cli_env(TRAINKIT_TEST_SIGNAL="25:INT"))
    assert proc.returncode == 130, proc.stderr
    assert "resume with: trainkit train resume=run" in proc.stderr
    run = tmp_path / "run"
    assert load_summary(run)["status"] == "interrupted"
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["step"], ckpt["batch_in_epoch"]) == (25, 5)  # the step in flight finished, then it stopped

    proc = run_cli(["train", "resume=run/checkpoints/last.pt"], tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert_same_weights(reference, run)
    assert metrics_rows(run) == metrics_rows(reference)


@pytest.mark.slow
def test_sigterm_exits_143_and_skip_done_rerun_finishes_the_run(reference: Path, tmp_path: Path) -> None:
    args = ["train", *RUN, "hydra.run.dir=run", "trainer.skip_done=true"]
    proc = run_cli(args, tmp_path, env=cli_env(TRAINKIT_TEST_SIGNAL="45:TERM"))
    assert proc.returncode == 143, proc.stderr
    # Re-running the same command continues the interrupted run instead of starting over.
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "resumed from" in proc.stdout
    run = tmp_path / "run"
    assert_same_weights(reference, run)
    assert metrics_rows(run) == metrics_rows(reference)


def test_resume_refuses_changes_that_would_make_another_run(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", f"resume={reference}", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr=0.5 cannot change on resume" in err and "trainer.epochs" in err
    assert cli.main(["train", f"resume={reference}", "trainer.epochs=2"]) == 2
    assert "resume can only add epochs" in capsys.readouterr().err
    assert cli.main(["train", f"resume={reference.parent / 'nope'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sweep_runs_every_job_summarises_failures_and_skip_done_skips_finished(tmp_path: Path) -> None:
    # The second job diverges (lr 1e12): a failed row; the first still completes.
    args = [
        "train",
        "-m",
        "optim.lr=0.1,1e12",
        "trainer.epochs=1",
        "trainer.progress=none",
        "hydra.sweep.dir=sweep",
    ]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    sweep = tmp_path / "sweep"
    assert [p.name for p in run_dirs(sweep)] == ["0", "1"]
    with (sweep / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed")]
    assert "optim.lr=0.1" in rows[0]["overrides"] and float(rows[0]["test_acc"]) > 0.5
    assert "TrainingDiverged" in rows[1]["error"]
    assert "best val_acc" in proc.stdout  # the rich table, by the classification task's monitor

    done = (sweep / "0" / "summary.json").read_text()
    proc = run_cli([*args, "trainer.skip_done=true", "optim.lr=0.1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipping" in proc.stdout and (sweep / "0" / "summary.json").read_text() == done


def test_report_finds_runs_at_any_depth_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fake_run(rel: str, status: str, best: float | None, overrides: list[str]) -> None:
        d = tmp_path / rel
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        summary = {
            "status": status,
            "monitor": "val_acc",
            "monitor_mode": "max",
            "best_value": best,
            "epochs": 2,
        }
        if best is not None:
            summary["test_acc"] = best - 0.01
        (d / "summary.json").write_text(json.dumps(summary))

    fake_run("multirun/a/0", "completed", 0.90, ["optim.lr=0.1"])
    fake_run("multirun/a/10", "failed", None, ["optim.lr=9"])
    fake_run("multirun/a/2", "completed", 0.95, ["optim.lr=0.01"])
    (tmp_path / "single" / "checkpoints").mkdir(parents=True)
    (tmp_path / "single" / ".hydra").mkdir()
    (tmp_path / "single" / "checkpoints" / "last.pt").write_bytes(b"")

    assert cli.main(["report", str(tmp_path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["job"], r["status"]) for r in rows] == [
        ("multirun/a/2", "completed"),
        ("multirun/a/0", "completed"),
        ("multirun/a/10", "failed"),
        ("single", "interrupted"),
    ]
    assert cli.main(["report", str(tmp_path / "multirun"), "--format=csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("job,status,overrides,monitor,best_value") and "test_acc" in lines[0]
    assert lines[1].startswith("a/2,completed,optim.lr=0.01,val_acc,0.95")
    assert cli.main(["report", str(tmp_path / "multirun"), "--format", "md"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("| a/2 | completed | optim.lr=0.01 |")
    assert cli.main(["report", str(tmp_path / "multirun")]) == 0
    assert "a/2" in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path), "--format", "xml"]) == 2
    assert "choose one of: table, csv, json, md" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "no runs under" in capsys.readouterr().err


def test_report_does_not_import_torch(tmp_path: Path) -> None:
    code = "import sys, trainkit.report, trainkit.sweep; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=cli_env()).returncode == 0


# ------------------------------------------------------------------------------ units


def test_same_second_runs_get_their_own_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from trainkit import rundir
    from trainkit.config import compose
    from trainkit.sweep import claim_dir

    monkeypatch.setattr(rundir, "CLAIM", True)
    claimed: list[str] = []
    threads = [threading.Thread(target=lambda: claimed.append(claim_dir(str(tmp_path / "12-00-00")))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted([str(tmp_path / "12-00-00")] + [str(tmp_path / f"12-00-00_{i}") for i in range(1, 8)])

    # Through Hydra's own config: each composed config claims its directory once.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rundir, "CLAIM", False)
    assert compose([], return_hydra_config=True).hydra.run.dir.startswith("outputs/")
    assert not (tmp_path / "outputs").exists()  # resolving outside a CLI run creates nothing
    monkeypatch.setattr(rundir, "CLAIM", True)  # what the CLI turns on before Hydra runs
    dirs = []
    for _ in range(2):
        cfg = compose(["hydra.run.dir=${trainkit.unique_dir:outputs/fixed}"], return_hydra_config=True)
        dirs += [OmegaConf.select(cfg, "hydra.run.dir"), OmegaConf.select(cfg, "hydra.run.dir")]
    assert dirs == ["outputs/fixed", "outputs/fixed", "outputs/fixed_1", "outputs/fixed_1"]
    default = compose([], return_hydra_config=True).hydra.run.dir
    assert Path(default).parent.parent == Path("outputs") and len(Path(default).name) == len("HH-MM-SS")


def test_parallel_sweep_jobs_get_one_gpu_each(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainkit.sweep import gpu_for_job, job_device_index

    assert [job_device_index(n, 4) for n in range(6)] == [0, 1, 2, 3, 0, 1]
    assert job_device_index(3, 0) is None
    assert [gpu_for_job(n, "2,5") for n in range(3)] == ["2", "5", "2"]
    assert gpu_for_job(7, 3) == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_for_job(0) == ""


def test_optuna_and_joblib_configs_compose() -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from omegaconf import OmegaConf

    import trainkit.sweep  # noqa: F401
    from trainkit.config import compose

    cfg = compose(
        ["hparams_search=optuna", "trainer.monitor=val_acc", "trainer.monitor_mode=max"],
        return_hydra_config=True,
    )
    assert "Optuna" in cfg.hydra.sweeper._target_
    assert OmegaConf.select(cfg, "hydra.sweeper.direction") == "maximize"
    cfg = compose(["hydra/launcher=joblib"], return_hydra_config=True)
    assert "Joblib" in cfg.hydra.launcher._target_


def test_signal_sets_a_flag_instead_of_stopping_mid_step() -> None:
    from trainkit.signals import StopOnSignal

    stopper = StopOnSignal()
    stopper.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopper.requested and stopper.signum == signal.SIGTERM
    finally:
        stopper.restore()
    assert signal.getsignal(signal.SIGTERM) is not stopper._handle


def test_resume_accepts_only_safe_overrides() -> None:
    from omegaconf import OmegaConf

    from trainkit.resume import apply_overrides, split_resume

    assert split_resume(["resume=a", "trainer.epochs=5"]) == ("a", ["trainer.epochs=5"])
    cfg = OmegaConf.create({"trainer": {"epochs": 2, "progress": "auto"}, "optim": {"lr": 0.1}, "data": {"num_workers": 0}})
    apply_overrides(cfg, ["trainer.epochs=5", "trainer.progress=plain", "data.num_workers=2"])
    assert (cfg.trainer.epochs, cfg.trainer.progress, cfg.data.num_workers) == (5, "plain", 2)
    for bad in ("optim.lr=1", "model=cnn", "seed=3", "hydra.run.dir=x", "+optim.foo=1"):
        with pytest.raises(TrainkitError, match="cannot change on resume"):
            apply_overrides(cfg, [bad])


def test_deterministic_flag_is_set_both_ways() -> None:
    from trainkit.run import set_deterministic

    try:
        set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        set_deterministic(False)  # a later sweep job in the same process must not inherit it
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(False)


def test_record_has_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    from trainkit.record import git_state

    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    try:
        subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git")
    (tmp_path / "f.txt").write_text("a")
    subprocess.run(["git", "add", "f.txt"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=tmp_path, check=True, env=env)
    state = git_state(tmp_path)
    assert state is not None and len(state["commit"]) == 40 and state["dirty"] is False
    (tmp_path / "f.txt").write_text("b")
    assert git_state(tmp_path)["dirty"] is True
    assert git_state(tmp_path / "missing") is None


def test_parallel_launcher_job_gets_its_gpu_and_a_worker_start_method(monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from trainkit.job import prepare_parallel_job

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    hc = OmegaConf.create({"launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher"}})

    def job(num: int, **device: object) -> object:
        cfg = OmegaConf.create({"device": {"type": "auto", "index": None, **device}, "data": {"num_workers": 2}})
        OmegaConf.set_struct(cfg, True)
        hc.job = {"num": num}
        prepare_parallel_job(cfg, hc)
        return cfg

    assert [job(n).device.index for n in range(4)] == [0, 1, 0, 1]
    assert job(3, index=0).device.index == 0  # an explicit index wins
    assert job(1, type="cpu").device.index is None
    assert job(0).data.multiprocessing_context in ("fork", "spawn")
    hc.launcher._target_ = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert job(1).device.index is None  # sequential jobs: nothing to spread


@pytest.mark.slow
def test_joblib_sweep_with_dataloader_workers(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    args = [
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optim=sgd,adam",
        "trainer.epochs=1",
        "trainer.progress=none",
        "data.loader=dataloader",
        "data.num_workers=1",
        "hydra.sweep.dir=sweep",
    ]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    with (tmp_path / "sweep" / "summary.csv").open(newline="") as f:
        assert sorted(r["status"] for r in csv.DictReader(f)) == ["completed", "completed"]
    assert (tmp_path / "sweep" / "1" / "cmd.txt").read_text().startswith("trainkit train optim=adam")


@pytest.mark.slow
def test_runs_started_together_never_share_a_directory(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trainkit", "train", "trainer.epochs=1", "trainer.progress=none", f"seed={s}"],
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (1, 2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read() if p.stderr else ""
    dirs = run_dirs(tmp_path / "outputs")
    assert len(dirs) == 2
    assert sorted(json.loads((d / "record.json").read_text())["seed"] for d in dirs) == [1, 2]


def test_resume_falls_back_to_the_previous_checkpoint_and_refuses_foreign_code(reference: Path, tmp_path: Path) -> None:
    import shutil

    from trainkit.resume import plan

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    assert (run / "checkpoints" / "last.prev.pt").is_file()
    (run / "checkpoints" / "last.pt").write_bytes(b"torn")
    resumed = plan(str(run), [])
    assert resumed.ckpt.name == "last.prev.pt" and resumed.run_dir == run.resolve()

    ckpt = torch.load(run / "checkpoints" / "last.prev.pt", weights_only=True)
    ckpt["config"]["model"]["_target_"] = "os.system"
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    with pytest.raises(TrainkitError, match="os.system"):
        plan(str(run), [])


def test_resume_of_a_sweep_directory_says_how_to_resume_its_jobs(tmp_path: Path) -> None:
    from trainkit.resume import locate

    (tmp_path / "0").mkdir()
    (tmp_path / "multirun.yaml").write_text("{}\n")
    with pytest.raises(TrainkitError, match="is a sweep directory.*trainer.skip_done=true hydra.sweep.dir="):
        locate(str(tmp_path))


def test_resume_takes_the_allow_option_its_refusal_recommends(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from trainkit.resume import plan

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["config"]["model"]["_target_"] = "their_pkg.Net"
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    assert cli.main(["train", f"resume={run}"]) == 2
    assert "rerun with --allow their_pkg." in capsys.readouterr().err
    # allowed: past the check, up to the next one (trainer.epochs=1 is fewer than the 3 done; nothing runs)
    assert cli.main(["train", f"resume={run}", "--allow", "their_pkg.", "trainer.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "resume can only add epochs" in err and "say-so" not in err
    assert plan(str(run), [], allow=["their_pkg."]).cfg.model._target_ == "their_pkg.Net"


def test_interval_sweep_with_the_basic_sweeper_is_a_one_line_error() -> None:
    with pytest.raises(TrainkitError, match=r"optim.lr=interval\(0,1\): Hydra's basic sweeper cannot sample"):
        cli.preflight(["optim.lr=interval(0,1)", "trainer.epochs=1"], None, True)
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cli.preflight(["optim.lr=interval(0.001,0.1)", "hparams_search=optuna"], None, True)  # Optuna samples it


def test_resuming_a_run_that_early_stopping_ended_trains_no_further_epoch(tmp_path: Path) -> None:
    # Resuming it (or a kill between its last.pt and its summary) trained one more epoch and moved stop_epoch.
    # A checkpoint written before the counters were saved replays them from metrics.csv (_replay_early_stopping).
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from trainkit.early_stopping import EarlyStopping
    from trainkit.loop import LoopState
    from trainkit.run import Run

    (tmp_path / "metrics.csv").write_text("epoch,step,val_loss\n1,20,0.5\n2,40,0.3\n3,60,0.4\n4,80,0.35\n")

    def resumed(patience: int, epoch: int = 4) -> SimpleNamespace:
        run = SimpleNamespace(
            early_stopping=EarlyStopping(patience=patience), state=LoopState(epoch=epoch), resume_from=tmp_path,
            dist=SimpleNamespace(is_main=True), run_dir=tmp_path, stop_epoch=None,
            cfg=OmegaConf.create({"trainer": {"monitor": "val_loss"}}),
        )
        Run._replay_early_stopping(run)  # an old checkpoint: no counters in it
        return run

    done = resumed(patience=2)  # epochs 3 and 4 did not improve on 0.3: it had stopped at epoch 4
    assert Run.stopped_early_before_resume(done) and done.stop_epoch == 4
    longer = resumed(patience=3)  # a larger patience on resume: it goes on, with the count replayed
    assert not Run.stopped_early_before_resume(longer) and longer.early_stopping.wait == 2
    assert not Run.stopped_early_before_resume(resumed(patience=2, epoch=2))  # not stopped yet at epoch 2
    # A checkpoint that carries the counters needs no metrics.csv: the state round-trips them.
    saved = LoopState(epoch=4, early_stopping=done.early_stopping).state_dict()
    (tmp_path / "metrics.csv").unlink()
    fresh = LoopState(early_stopping=EarlyStopping(patience=2))
    assert fresh.load_state_dict(saved) and fresh.early_stopping.wait == 2 and fresh.early_stopping.best == 0.3
    assert not LoopState(early_stopping=EarlyStopping(patience=2)).load_state_dict({"epoch": 4, "step": 80})


def test_printed_resume_command_allows_the_runs_own_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run of the user's own model (--config-dir) printed `resume=DIR`, which resume= then refused.
    from trainkit import trust
    from trainkit.resume import resume_command

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    run = tmp_path / "run"
    cfg = {"model": {"_target_": "my_project.models.SpiralNet"}, "optim": {"_target_": "torch.optim.SGD"},
           "scheduler": {"_target_": None}}
    assert resume_command(run, cfg).endswith(f"resume={run.resolve()} --allow my_project.")
    assert resume_command(run, {"optim": {"_target_": "torch.optim.SGD"}}) == f"trainkit train resume={run.resolve()}"
    # A run you started here is trusted already (trainkit.trust): its resume command needs no --allow.
    assert trust.record(run, cfg) is None
    assert resume_command(run, cfg) == f"trainkit train resume={run.resolve()}"
    assert resume_command(tmp_path / "elsewhere", cfg).endswith("--allow my_project.")  # a copy is not


# ------------------------------------------------------------------------------ a longer resume

SCHEDULERS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "configs" / "scheduler").glob("*.yaml"))
HORIZON = {"cosine": ("T_max", 2), "onecycle": ("total_steps", 40), "warmup_cosine": ("max_epochs", 2)}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_resume_with_more_epochs_follows_the_longer_schedule(name: str, tmp_path: Path, cli_in_process) -> None:  # type: ignore[no-untyped-def]
    from conftest import train_in_process

    # One epoch, then resumed to two: epoch 2's lr is the one a two-epoch run has (digits: 20 steps an epoch).
    base = ["trainer.progress=none", f"scheduler={name}", "optim.lr=0.05"]
    train_in_process([*base, "trainer.epochs=1"], tmp_path / "run")
    train_in_process([*base, "trainer.epochs=2"], tmp_path / "two")
    proc = cli_in_process(["train", f"resume={tmp_path / 'run'}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    resumed, two = metrics_rows(tmp_path / "run"), metrics_rows(tmp_path / "two")
    assert [r["epoch"] for r in resumed] == ["1", "2"]
    assert float(resumed[1]["lr"]) == pytest.approx(float(two[1]["lr"]), rel=1e-6)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 40
    if name in HORIZON:
        attr, value = HORIZON[name]
        assert f"rebuilt for the new horizon and moved to where the run is ({20 if name == 'onecycle' else 1} " in proc.stdout
        assert state["scheduler"][attr] == value and state["config"]["scheduler"] != {}
    else:
        assert "rebuilt" not in proc.stdout


@pytest.mark.parametrize("fixed", ["scheduler.epochs=2", "+scheduler.total_steps=40"])
def test_resume_past_a_fixed_onecycle_horizon_is_refused(fixed: str, tmp_path: Path, cli_in_process) -> None:  # type: ignore[no-untyped-def]
    from conftest import train_in_process

    train_in_process(["trainer.progress=none", "scheduler=onecycle", fixed, "trainer.epochs=1"], tmp_path / "run")
    proc = cli_in_process(["train", f"resume={tmp_path / 'run'}", "trainer.epochs=3"], tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "scheduler OneCycleLR" in line and "trainer.epochs=3" in line and "start a new run" in line
    assert load_summary(tmp_path / "run")["status"] == "completed"  # refused before anything was touched
