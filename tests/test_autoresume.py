"""trainer.autoresume=true: the same command in the same directory continues the run there (preemption, requeue)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import FAST, cli_env, load_summary, run_cli
from test_reproducibility import RUN, assert_same_weights, metrics_rows

from trainkit import autoresume, cli
from trainkit.errors import CheckpointError, ConfigError

AUTO = ["trainer.autoresume=true"]


@pytest.fixture(autouse=True)
def _claims_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process `trainkit train` turns on run-directory claims (rundir.CLAIM) for the whole process."""
    from trainkit import rundir

    monkeypatch.setattr(rundir, "CLAIM", rundir.CLAIM)


@pytest.mark.slow
def test_sigterm_then_the_same_command_continues_and_ends_equal_to_a_run_left_alone(tmp_path: Path) -> None:
    """What a SLURM requeue does: SIGTERM mid-epoch (last.pt written), then the same command again."""
    args = ["train", *RUN, *AUTO, "hydra.run.dir=run"]
    proc = run_cli([*args[:-1], "hydra.run.dir=ref"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(args, tmp_path, env=cli_env(TRAINKIT_TEST_SIGNAL="45:TERM"))
    assert proc.returncode == 143, proc.stderr
    assert load_summary(tmp_path / "run")["status"] == "interrupted"
    proc = run_cli(args, tmp_path)  # no resume=: the directory's last.pt is found
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "resumed from" in proc.stdout and "step 45" in proc.stdout
    assert_same_weights(tmp_path / "ref", tmp_path / "run")
    assert metrics_rows(tmp_path / "run") == metrics_rows(tmp_path / "ref")
    summary = (tmp_path / "run" / "summary.json").read_text()
    proc = run_cli(args, tmp_path)  # once more: a completed run is left as it is
    assert proc.returncode == 0 and "already completed" in proc.stdout, proc.stderr
    assert (tmp_path / "run" / "summary.json").read_text() == summary


def test_a_directory_without_a_checkpoint_starts_fresh(
    tmp_path: Path, cli_in_process, fault_hooks: None, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "failed"}))  # died before its first checkpoint
    (run / "metrics.csv").write_text("epoch,step\n1,3\n")
    proc = cli_in_process(["train", "trainer.epochs=1", "trainer.progress=none", *AUTO, f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resumed" not in proc.stdout
    assert load_summary(run)["status"] == "completed" and load_summary(run)["epochs"] == 1
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # header + its own epoch, not the stale row


def test_another_config_is_refused_in_one_line_before_anything_is_written(
    trained_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".trainkit.lock"}
    assert cli.main(["train", *FAST, *AUTO, "optim.lr=0.5", f"hydra.run.dir={run}"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "differs in optim.lr" in err and "trainer.autoresume=true" in err
    assert {p: p.read_bytes() for p in before} == before  # not even .hydra/ was rewritten
    # The keys resume= may change are no difference; fewer epochs than trained is.
    assert cli.main(["train", *FAST, *AUTO, "trainer.epochs=1", f"hydra.run.dir={run}"]) == 2
    assert "can only add epochs" in capfd.readouterr().err


def test_corrupt_last_falls_back_to_last_prev(trained_run: Path, tmp_path: Path) -> None:
    from trainkit.config import compose

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    ckpts = run / "checkpoints"
    good = torch.load(ckpts / "last.pt", weights_only=True)
    (ckpts / "last.pt").unlink()
    (ckpts / "last.pt").write_bytes(b"PK\x03\x04 torn")
    good["epoch"] = 1
    torch.save(good, ckpts / "last.prev.pt")
    cfg = compose([*FAST, *AUTO])
    # Read-only (preflight, ranks > 0): the fallback is chosen, nothing is moved.
    assert autoresume.plan(cfg, run, main=False) == (ckpts / "last.prev.pt", False)
    assert (ckpts / "last.pt").read_bytes().endswith(b"torn")
    path, done = autoresume.plan(cfg, run)  # the owner: the broken file aside, last.pt the good one again
    assert path == ckpts / "last.prev.pt" and not done
    assert (ckpts / "last.pt.corrupt").is_file()
    assert torch.load(ckpts / "last.pt", weights_only=True)["epoch"] == 1
    (ckpts / "last.prev.pt").unlink()
    (ckpts / "last.pt").unlink()
    (ckpts / "last.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="autoresume=true: .*corrupt.*move it away"):
        autoresume.plan(cfg, run)
    assert autoresume.plan(cfg, tmp_path / "empty") is None


def test_a_run_dir_named_after_the_clock_is_refused(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="new directory on every start; give a fixed one"):
        autoresume.check_fixed_dir("outputs/${now:%H-%M-%S}", "hydra.run.dir")
    autoresume.check_fixed_dir("outputs/job_${oc.env:SLURM_JOB_ID}", "hydra.run.dir")  # the same on a requeue
    # A SLURM requeue re-runs the job in its already resolved sweep directory.
    autoresume.check_fixed_dir("multirun/${now:%H}", "hydra.sweep.dir", "hydra_plugins.x.SlurmLauncher.submitit")
    assert cli.main(["train", *AUTO, "trainer.epochs=1"]) == 2
    assert "hydra.run.dir=outputs/my_run" in capfd.readouterr().err
    assert cli.main(["train", *AUTO, "trainer.overwrite=true", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    assert "choose one" in capfd.readouterr().err
    assert not (tmp_path / "r").exists()
