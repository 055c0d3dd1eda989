"""A run directory with one owner, safe writes into it, finite checkpoints, faults and signals as one line.

Most cases run the real CLI in this process (`cli.main`) on digits for 1-2 epochs; the lock's
holder and the kill campaign are separate processes.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, cli_env

from trainkit import cli, files, owner
from trainkit.errors import CheckpointError
from trainkit.resume import plan

TINY = ["trainer.epochs=2", "trainer.progress=none", "device=cpu"]


def train(run: Path, *args: str) -> int:
    """`trainkit train` in this process; the exit code (Hydra's task ends errors with SystemExit)."""
    try:
        return cli.main(["train", *TINY, f"hydra.run.dir={run}", *args])
    except SystemExit as exc:
        return int(exc.code or 0)


def resume(run: Path, *args: str) -> int:
    try:
        return cli.main(["train", f"resume={run}", *args])
    except SystemExit as exc:
        return int(exc.code or 0)


def status(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["status"]


def epochs_logged(run: Path) -> list[str]:
    return [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed 2-epoch run with mid-epoch checkpoints (so last.prev.pt exists); tests copy it."""
    run = tmp_path_factory.mktemp("done") / "run"
    assert train(run, "trainer.checkpoint_every_n_steps=7") == 0
    return run


def copy_run(done_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(done_run, run, ignore=shutil.ignore_patterns(owner.LOCK_NAME))
    return run


# --------------------------------------------------------------------------- safe writes


def test_atomic_write_refuses_a_link_and_never_opens_a_planted_temp_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "summary.json"
    (tmp_path / "summary.json.tmp").symlink_to(victim)  # the fixed temp names of older trainkit
    (tmp_path / ".summary.json.tmp").symlink_to(victim)
    files.atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n" and not target.is_symlink()
    assert victim.read_text() == "precious\n"
    target.unlink()
    target.symlink_to(victim)
    with pytest.raises(files.LinkRefused, match="summary.json' is a symbolic link") as exc:
        files.atomic_write_text(target, "{}\n")
    assert exc.value.exit_code == 2 and victim.read_text() == "precious\n"
    log = tmp_path / "train.log"
    log.symlink_to(victim)
    with pytest.raises(files.LinkRefused):
        files.open_append(log)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        files.NoFollowFileHandler(str(log))  # the handler Hydra builds for train.log (job_logging)
    assert victim.read_text() == "precious\n"
    assert [p.name for p in files.remove_orphans(tmp_path)] == [".summary.json.tmp"]
    assert victim.exists()  # the link was removed, not what it pointed at


def test_planted_links_leave_the_victim_unchanged_through_eval_and_resume(done_run: Path, tmp_path: Path) -> None:
    run = copy_run(done_run, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("eval.json.tmp", ".record.json.tmp", "summary.json.tmp", ".eval.json.tmp"):
        (run / name).symlink_to(victim)
    assert cli.main(["eval", f"ckpt={run / 'checkpoints' / 'best.pt'}", "device=cpu"]) == 0
    assert json.loads((run / "eval.json").read_text())["split"] == "test"
    assert victim.read_text() == "precious\n"
    (run / "train.log").unlink()
    (run / "train.log").symlink_to(victim)
    assert resume(run, "trainer.epochs=3") == 2
    assert victim.read_text() == "precious\n"
    (run / "eval.json").unlink()
    (run / "eval.json").symlink_to(victim)
    assert cli.main(["eval", f"ckpt={run / 'checkpoints' / 'best.pt'}", "device=cpu"]) == 2
    assert victim.read_text() == "precious\n"


# --------------------------------------------------------------------------- one owner


def test_a_locked_run_directory_refuses_a_second_run_and_resume(done_run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(done_run, tmp_path)
    code = f"from trainkit import owner; owner.acquire({str(run)!r}); print('held', flush=True); import time; time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert resume(run, "trainer.epochs=3") == 2
        err = capsys.readouterr().err
        assert f"is in use by pid {holder.pid} on host" in err and err.count("\n") == 1
        assert train(run, "trainer.overwrite=true") == 2
        assert "is in use by pid" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    owner.acquire(run)  # the kernel dropped the killed holder's lock: a stale lock file blocks nobody
    owner.release(run)
    assert epochs_logged(run) == ["1", "2"]


def test_a_fixed_run_dir_is_never_silently_replaced(done_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(done_run, tmp_path)
    best = (run / "checkpoints" / "best.pt").read_bytes()
    assert train(run) == 2
    err = capsys.readouterr().err
    assert "already holds a completed run" in err and "trainer.overwrite=true" in err
    assert (run / "checkpoints" / "best.pt").read_bytes() == best and epochs_logged(run) == ["1", "2"]
    # an interrupted run that has a checkpoint: resume it, or overwrite
    (run / "summary.json").unlink()
    assert train(run) == 2
    err = capsys.readouterr().err
    assert "holds an unfinished run (checkpoints/best.pt)" in err and f"trainkit train resume={run}" in err
    # overwrite: a clean run, one row per epoch, and a fresh checkpoint; the old run's eval files go too
    (run / "eval_best_test.json").write_text("{}")
    (run / "eval.json").write_text("{}")
    assert train(run, "trainer.overwrite=true", "trainer.epochs=1") == 0
    assert epochs_logged(run) == ["1"] and status(run) == "completed"
    assert not (run / "eval_best_test.json").exists() and not (run / "eval.json").exists()
    assert not (run / "checkpoints" / "last.prev.pt").exists()


def test_a_restart_without_a_checkpoint_starts_a_clean_metrics_csv_and_drops_orphans(done_run: Path,
                                                                                   tmp_path: Path) -> None:
    # A run killed after its first metrics row but before its first last.pt, then started again.
    run = copy_run(done_run, tmp_path)
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"torn")
    (run / ".summary.json.x1y2.tmp").write_text("{")
    assert epochs_logged(run) == ["1", "2"]
    assert train(run) == 0
    assert epochs_logged(run) == ["1", "2"] and status(run) == "completed"
    assert not list(run.rglob("*.tmp"))


def test_a_dangling_outputs_link_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").symlink_to(tmp_path / "gone")
    try:  # refused by the pre-flight (a return code) or, past it, by the run-dir callback (SystemExit)
        code = cli.main(["train", *TINY])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "'outputs' is a symbolic link" in err and "does not exist" in err
    assert err.count("\n") == 1 and not (tmp_path / "gone").exists()


# --------------------------------------------------------------------------- finite weights, faults


def test_mid_epoch_checkpoints_never_hold_nan_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Epoch 1 trains at lr 0.1; StepLR then multiplies it by 1e9, which diverges within epoch 2,
    # while the loss is read only every 50 steps: the weights are checked at every write.
    run = tmp_path / "run"
    diverge = ["trainer.epochs=3", "scheduler=step", "scheduler.step_size=1", "scheduler.gamma=1e9",
               "trainer.checkpoint_every_n_steps=1"]
    assert train(run, *diverge) == 1
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "the last good one is kept" in err and "Traceback" not in err
    for name in ("last.pt", "last.prev.pt", "best.pt"):
        ckpt = torch.load(run / "checkpoints" / name, weights_only=True)
        assert all(bool(torch.isfinite(t).all()) for t in ckpt["model"].values()), name
    assert status(run) == "failed" and not owner.holds(run)  # the lock is given back however a run ends


def test_disk_full_and_unwritable_checkpoints_exit_1_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    real_save, saves = torch.save, []

    def full_disk(obj: object, f: object, *a: object, **k: object) -> None:  # the test-side fault: ENOSPC
        saves.append(1)
        if len(saves) > 2:  # steps 7 and 14 write; the epoch's end (one save, best.pt linked to it) fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "full"
    assert train(run, "trainer.checkpoint_every_n_steps=7") == 1
    err = capsys.readouterr().err
    assert "could not write" in err and "last.pt' (No space left on device; free some space)" in err
    assert "is kept" in err and err.count("\n") == 1 and "Traceback" not in err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 14
    assert not list(run.rglob("*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)

    real_mkstemp = files.tempfile.mkstemp

    def read_only(*a: object, **k: object) -> tuple[int, str]:
        if str(k.get("prefix", "")).endswith(".pt.") and (tmp_path / "ro" / "checkpoints" / "last.pt").exists():
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert train(tmp_path / "ro", "trainer.checkpoint_every_n_steps=7") == 1
    err = capsys.readouterr().err
    assert "could not write" in err and "(Permission denied; make the folder writable)" in err and "is kept" in err


# --------------------------------------------------------------------------- signals outside the loop


@pytest.mark.parametrize(("phase", "epochs_done"), [("setup", None), ("end", 2), ("test", 2)])
def test_sigterm_outside_the_loop_exits_143_interrupted_with_a_summary(
    phase: str, epochs_done: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], fault_hooks: None,
) -> None:
    run = tmp_path / "run"
    monkeypatch.setenv("TRAINKIT_TEST_SIGNAL", f"{phase}:TERM")
    assert train(run) == 143
    assert "SIGTERM: stopped" in capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "test_acc" not in summary
    monkeypatch.delenv("TRAINKIT_TEST_SIGNAL")
    if epochs_done is None:  # nothing was trained: the same command starts it again
        assert train(run) == 0
    else:
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == epochs_done
        assert resume(run) == 0
    assert status(run) == "completed" and epochs_logged(run) == ["1", "2"]


# --------------------------------------------------------------------------- resume checks


def test_resume_refuses_weights_that_do_not_fit_odd_counters_and_tensors_in_the_config(
    done_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(done_run, tmp_path)
    last = run / "checkpoints" / "last.pt"
    good = torch.load(last, weights_only=True)

    def stored(**change: object) -> None:
        ckpt = {**good, **change}
        torch.save(ckpt, last)
        (run / "checkpoints" / "last.prev.pt").unlink(missing_ok=True)

    misfit = json.loads(json.dumps(good["config"]))
    misfit["model"]["hidden"] = [32]
    stored(config=misfit)
    assert resume(run, "trainer.epochs=3") == 2
    err = capsys.readouterr().err
    assert "do not fit the model built from its config" in err and err.count("\n") == 1
    stored(epoch=1.5)
    with pytest.raises(CheckpointError, match="stores epoch=1.5"):
        plan(str(run), [])
    config = json.loads(json.dumps(good["config"]))
    config["model"]["hidden"] = torch.tensor([128])
    stored(config=config)
    with pytest.raises(CheckpointError, match="not plain config data"):
        plan(str(run), [])
    assert not owner.holds(run)  # a refused plan gives its lock back


def test_resume_warns_when_trainkit_or_the_model_code_changed(done_run: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(done_run, tmp_path)
    last = run / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert len(ckpt["model_source_hash"]) == 16
    torch.save({**ckpt, "trainkit_version": "0.0.1", "model_source_hash": "0" * 16}, last)
    assert resume(run, "trainer.epochs=3") == 0
    out = capsys.readouterr().out
    assert "was written by trainkit 0.0.1" in out and "the code of MLP changed" in out
    assert status(run) == "completed"


def test_a_corrupt_last_pt_is_moved_aside_and_both_fallbacks_load(done_run: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(done_run, tmp_path)
    (run / "checkpoints" / "last.pt").write_bytes(b"torn")
    assert resume(run, "trainer.epochs=3") == 0
    assert "moved it to last.pt.corrupt" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt.corrupt").read_bytes() == b"torn"
    for name in ("last.pt", "last.prev.pt"):
        assert torch.load(run / "checkpoints" / name, weights_only=True)["epoch"] in (2, 3)
    assert epochs_logged(run) == ["1", "2", "3"]


# --------------------------------------------------------------------------- kill campaign


@pytest.mark.slow
def test_kill_campaign_few_trials_are_bit_identical(tmp_path: Path) -> None:
    # A kill inside a checkpoint write, and a double kill (the run, then its resume or restart).
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "kill_campaign.py"), "--trials", "2",
                           "--kinds", "write,double", "--seed", "1", "--dir", str(tmp_path)], env=cli_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2/2 bit-identical" in proc.stdout, proc.stdout
    assert "trial   1: identical  write (inside checkpoint write" in proc.stdout
    assert "trial   2: identical  double (" in proc.stdout and ", then " in proc.stdout


def test_the_fused_finite_check_sees_every_dtype_and_never_overflows() -> None:
    from trainkit.guards import model_is_finite

    model = torch.nn.Linear(3, 2)
    model.register_buffer("big", torch.tensor([1e300], dtype=torch.float64))  # finite, beyond float32
    model.register_buffer("fp16", torch.zeros(2, dtype=torch.float16))
    model.register_buffer("empty", torch.zeros(0))
    assert model_is_finite(model)
    model.fp16[1] = float("inf")
    assert not model_is_finite(model)
    model.fp16[1] = 0
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    assert not model_is_finite(model)


# --------------------------------------------------------------------------- checkpoints of an older trainkit

NEWER_TRAINER_KEYS = ("overwrite", "skip_done", "on_nan", "strategy", "compile", "deterministic",
                      "checkpoint_every_n_steps", "early_stopping")


def test_a_checkpoint_without_the_newer_trainer_keys_still_evaluates_and_resumes(
    trained_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    for name in ("last.pt", "best.pt"):
        path = run / "checkpoints" / name
        path.unlink()  # best.pt may be a hard link to last.pt: write each anew
        ckpt = torch.load(trained_run / "checkpoints" / name, weights_only=True)
        for key in NEWER_TRAINER_KEYS:
            del ckpt["config"]["trainer"][key]
        torch.save(ckpt, path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", f"ckpt={run}/checkpoints/best.pt"]) == 0, capfd.readouterr().err
    assert json.loads((run / "eval.json").read_text())["epoch"] == 2
    assert resume(run, "trainer.epochs=3") == 0, capfd.readouterr().err
    assert status(run) == "completed"
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3


def test_an_in_process_train_gives_back_the_claim_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After cli.main trains, a later pre-flight probe resolves the run dir again without creating it."""
    from trainkit import cli, preflight, rundir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rundir, "CLAIM", False)
    assert cli.main(["train", "trainer.epochs=1", "trainer.progress=none", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert rundir.CLAIM is False
    where = preflight.output_dir(["hydra.run.dir=${trainkit.unique_dir:runs/x}"], None, False)
    assert where == "runs/x" and not (tmp_path / "runs").exists()
