"""Issue 2: `trainkit train` / `trainkit eval` end to end, the run directory, seeds and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FAST, load_summary, run_cli, run_dirs, train_in_process

TIME_COLUMNS = {"train_time_s", "train_samples_per_s"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_default_train_reaches_95_percent_on_digits(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "outputs" / "run"
    summary = train_in_process([], run_dir)
    assert summary == load_summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["test_acc"] >= 0.95
    assert summary["epochs"] == 20
    # The user sees the seeds' per-epoch line, the test result and where the run went.
    out = capfd.readouterr().out
    assert "epoch 20, loss" in out and "val acc" in out
    assert "test (best epoch" in out
    assert str(run_dir.name) in out


def test_run_directory_layout(trained_run: Path) -> None:
    parts = trained_run.relative_to(trained_run.parents[2]).parts
    assert parts[0] == "outputs" and len(parts[1]) == 10 and len(parts[2]) == 8  # outputs/YYYY-MM-DD/HH-MM-SS
    for name in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log", "model.txt",
                 "metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (trained_run / name).is_file(), name
    assert "parameters:" in (trained_run / "model.txt").read_text()
    assert "epoch 2, loss" in (trained_run / "train.log").read_text()
    rows = _rows(trained_run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in ("epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "train_time_s", "train_samples_per_s"):
        assert col in rows[0], col
    assert float(rows[0]["lr"]) == 0.1
    assert int(rows[1]["step"]) == 2 * int(rows[0]["step"])  # steps per epoch are constant
    summary = load_summary(trained_run)
    for key in ("test_loss", "test_acc", "best_epoch", "monitor", "best_value", "epochs", "wall_time_s", "seed",
                "world_size", "versions", "device"):
        assert key in summary, key
    # No trainer.monitor given: the classification task's own, val_acc (max).
    assert summary["monitor"] == "val_acc" and summary["monitor_mode"] == "max"
    assert summary["world_size"] == 1 and summary["device"] == "cpu"
    assert set(summary["versions"]) >= {"python", "torch", "trainkit"}
    best_row = rows[summary["best_epoch"] - 1]
    assert float(best_row["val_acc"]) == pytest.approx(summary["best_value"])
    assert float(best_row["val_acc"]) == max(float(r["val_acc"]) for r in rows)
    assert "monitor   val_acc (max, the classification task's default)" in (trained_run / "train.log").read_text()


def test_checkpoints_load_with_weights_only(trained_run: Path) -> None:
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(trained_run / "checkpoints" / name, weights_only=True)
        for key in ("model", "optimizer", "scheduler", "epoch", "step", "config"):
            assert key in ckpt, key
        assert isinstance(ckpt["config"], dict)  # plain data, never a pickled DictConfig
        assert ckpt["config"]["optim"]["lr"] == 0.1
    last = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2


def _eval(args: list[str], cwd: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """`trainkit eval ARGS` in this process: (exit code, stdout, stderr)."""
    from trainkit import cli

    monkeypatch.chdir(cwd)
    capfd.readouterr()
    code = cli.main(["eval", *args])
    out, err = capfd.readouterr()
    return code, out, err


def test_eval_rebuilds_model_from_checkpoint(trained_run: Path, capfd: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _eval([f"ckpt={trained_run}/checkpoints/best.pt"], trained_run, capfd, monkeypatch)
    assert code == 0, err
    result = json.loads((trained_run / "eval.json").read_text())
    summary = load_summary(trained_run)
    assert result["split"] == "test"
    assert result["test_acc"] == pytest.approx(summary["test_acc"])
    assert result["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-5)
    assert "test (" in out
    code, out, err = _eval([f"ckpt={trained_run}/checkpoints/best.pt", "split=val", "device=cpu"], trained_run, capfd,
                           monkeypatch)
    assert code == 0, err
    result = json.loads((trained_run / "eval.json").read_text())
    best_row = _rows(trained_run / "metrics.csv")[summary["best_epoch"] - 1]
    assert result["split"] == "val"
    assert result["val_acc"] == pytest.approx(float(best_row["val_acc"]))


def test_eval_keeps_the_runs_split(trained_run: Path, capfd: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _eval([f"ckpt={trained_run}/checkpoints/best.pt", "seed=1"], trained_run, capfd, monkeypatch)
    assert code == 2
    assert "seed cannot change in eval" in err and len(err.strip().splitlines()) == 1


def test_same_seed_gives_identical_metrics(trained_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"  # in this process; trained_run came from a subprocess
    train_in_process(FAST, again)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]  # noqa: E731
    assert strip(_rows(again / "metrics.csv")) == strip(_rows(trained_run / "metrics.csv"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim=sgdd", "unknown option 'sgdd' for config group 'optim' (did you mean 'sgd'?); choose one of: "),
        ("optim.lrr=0.1", "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
        ("optim.lr=abc", "optim.lr='abc' must be a positive number"),
        ("trainer.epochs=-1", "trainer.epochs=-1 must be an integer >= 1"),
        ("data.batch_size=0", "data.batch_size=0 must be an integer >= 1"),
        ("device.precision=8", "device.precision=8 must be one of"),
        ("optim.lr=[1,2", "cannot parse override"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path: Path, override: str, message: str) -> None:
    proc = run_cli(["train", override], tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()  # refused before a run directory exists


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    proc = run_cli(["train", "optim.lr=abc", "--debug"], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_model_output_mismatch_names_both_shapes_and_keeps_run_dir(tmp_path: Path) -> None:
    proc = run_cli(["train", "model.out_features=5", *FAST], tmp_path)
    assert proc.returncode == 2
    assert "the model outputs 5 classes but the data has 10" in proc.stderr
    assert "Traceback" not in proc.stderr
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    summary = load_summary(run_dir)
    assert summary["status"] == "failed" and "the model outputs 5 classes" in summary["error"]


def test_labels_out_of_range_are_refused_before_training(tmp_path: Path) -> None:
    proc = run_cli(["train", "data.num_classes=5", *FAST], tmp_path)
    assert proc.returncode == 2
    assert "labels range over [0, 9] but must lie in [0, 5)" in proc.stderr
    assert "epoch 1" not in proc.stdout


def test_unknown_command_suggests(tmp_path: Path) -> None:
    proc = run_cli(["trian"], tmp_path)
    assert proc.returncode == 2 and "did you mean 'train'" in proc.stderr


def test_overrides_reach_the_run(trained_run: Path, tmp_path: Path) -> None:
    proc = run_cli(["train", "model=cnn", "optim=adam", "optim.lr=0.005", "trainer.epochs=1", "data.batch_size=32",
                    "trainer.progress=plain"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = run_dirs(tmp_path / "outputs")
    saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert saved["model"]["_target_"] == "trainkit.models.CNN" and saved["optim"]["lr"] == 0.005
    assert "Conv2d" in (run_dir / "model.txt").read_text()
    rows = _rows(run_dir / "metrics.csv")
    assert float(rows[0]["lr"]) == 0.005 and int(rows[0]["step"]) == -(-1259 // 32)


def _write_fake_mnist(root: Path, n_train: int = 120, n_test: int = 40) -> None:
    """Tiny MNIST files in torchvision's raw idx layout (no network): digit k drawn as a bright row k."""
    import struct

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = (torch.rand(n, 28, 28, generator=g) * 40).to(torch.uint8)
        for i, k in enumerate(labels.tolist()):
            images[i, 2 + 2 * k] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.to(torch.uint8).numpy().tobytes())


def test_torchvision_mnist_from_files_on_disk(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path / "mnist")
    summary = train_in_process(["data=mnist", f"data.root={tmp_path / 'mnist'}", "data.download=false",
                                "trainer.epochs=3", "data.batch_size=16", "trainer.progress=plain"], tmp_path / "run")
    assert summary == load_summary(tmp_path / "run")
    assert summary["data"]["sizes"] == {"train": 108, "val": 12, "test": 40}
    assert summary["test_acc"] > 0.5  # the bright row gives the class away


def test_missing_torchvision_files_say_where_to_put_them(tmp_path: Path) -> None:
    proc = run_cli(["train", "data=mnist", f"data.root={tmp_path / 'nowhere'}", "data.download=false"], tmp_path)
    assert proc.returncode == 2
    assert "MNIST files not found under" in proc.stderr and "data.download=false" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
