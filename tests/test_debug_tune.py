"""Issue 15, parts 3-6: debug presets, the lr range test, averaged weights (EMA/SWA), the profiler, check --layers.

Real runs on digits (in this process: tests/conftest.py's train_in_process and cli_in_process).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import cfg_train, load_summary, train_in_process

from trainkit import plot
from trainkit.errors import TrainkitError

QUIET = ["trainer.progress=none", "metrics.enabled=false"]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# --------------------------------------------------------------------------- debug presets
def test_fast_dev_run_trains_one_epoch_of_n_batches_and_marks_the_run(tmp_path: Path, capsys) -> None:
    summary = train_in_process(["trainer.fast_dev_run=2", "trainer.epochs=5", "data.eval_batch_size=16",
                                "trainer.progress=none"], tmp_path / "run")
    assert summary["status"] == "completed" and summary["fast_dev_run"] == 2
    assert summary["epochs"] == 1 and summary["steps"] == 2
    assert len(_rows(tmp_path / "run")) == 1
    report = json.loads((tmp_path / "run" / "test_report.json").read_text())
    assert report["samples"] == 32  # 2 test batches of 16
    assert "fast_dev_run=2" in capsys.readouterr().out


def test_limit_batches_take_a_count_or_a_fraction(tmp_path: Path) -> None:
    # digits: 1259 training samples, 20 batches of 64
    assert train_in_process(["trainer.limit_train_batches=3", "trainer.epochs=2", *QUIET], tmp_path / "a")["steps"] == 6
    assert train_in_process(["trainer.limit_train_batches=0.25", "trainer.epochs=1", *QUIET], tmp_path / "b")["steps"] == 5
    from trainkit.parts import build_parts

    cfg, _ = cfg_train(["trainer.limit_val_batches=1", "data.eval_batch_size=16"])
    parts = build_parts(cfg, torch.device("cpu"))
    assert len(parts.data.val) == 1 and sum(len(b[0]) for b in parts.data.val) == 16
    assert len(parts.data.test) > 1  # only fast_dev_run limits the test split
    assert any("val limited to 1 of" in n for n in parts.notes)


def test_overfit_batches_reach_near_zero_loss_on_the_same_batches(tmp_path: Path) -> None:
    summary = train_in_process(["trainer.overfit_batches=1", "optim=adam", "optim.lr=0.01", "trainer.epochs=40",
                                *QUIET], tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert all(int(r["step"]) == i + 1 for i, r in enumerate(rows))  # one batch per epoch
    last = rows[-1]
    assert float(last["train_loss"]) < 0.02 and float(last["val_loss"]) < 0.02, last
    assert float(last["val_acc"]) == 1.0 and summary["status"] == "completed"


def test_the_debug_group_composes_its_presets() -> None:
    assert cfg_train(["debug=fast"])[0].trainer.fast_dev_run == 2
    assert cfg_train(["debug=overfit"])[0].trainer.overfit_batches == 2
    profile = cfg_train(["debug=profile"])[0].trainer
    assert profile.profile is True and profile.limit_train_batches == 20
    assert cfg_train([])[0].trainer.fast_dev_run is None  # optional: no preset by default


# --------------------------------------------------------------------------- lr range test
def test_tune_lr_writes_csv_and_png_and_prints_the_override(tmp_path: Path, cli_in_process) -> None:
    proc = cli_in_process(["tune", "lr", "tune.steps=80", "output=lr"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "lr" / "lr_find.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert 10 <= len(rows) <= 80
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-6)
    (chosen,) = [r for r in rows if r["suggested"] == "1"]
    lr = float(f"{float(chosen['lr']):.3g}")
    assert f"suggested lr: {lr:g}" in proc.stdout and f"optim.lr={lr!r}" in proc.stdout
    assert (tmp_path / "lr" / "lr_find.png").stat().st_size > 1000


def test_tune_lr_from_python_returns_the_suggestion(tmp_path: Path, monkeypatch) -> None:
    import trainkit

    monkeypatch.chdir(tmp_path)
    result = trainkit.tune_lr(["tune.steps=40", "optim=adam"])
    assert Path(result["dir"]).parent.parent.name == "lr_find" and (Path(result["dir"]) / "lr_find.csv").is_file()
    assert 1e-6 <= result["lr"] <= 1 and result["steps"] <= 40


def test_tune_lr_without_matplotlib_writes_the_csv_and_says_so(tmp_path: Path, cli_in_process, monkeypatch) -> None:
    def missing() -> None:
        raise TrainkitError("trainkit plot needs matplotlib")

    monkeypatch.setattr(plot, "_pyplot", missing)
    proc = cli_in_process(["tune", "lr", "tune.steps=40", "output=lr"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "lr" / "lr_find.csv").is_file() and not (tmp_path / "lr" / "lr_find.png").exists()
    assert "pip install 'trainkit[plot]'" in proc.stdout


def test_tune_lr_bad_input_is_one_line(tmp_path: Path, cli_in_process) -> None:
    for args, words in ((["tune"], "tune needs what to tune"), (["tune", "lr", "tune.min_lr=1", "tune.max_lr=0.1"], "below"),
                        (["tune", "lr", "tune.steps=2"], "tune.steps=2")):
        proc = cli_in_process(args, tmp_path)
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_lr_auto_records_its_choice_and_trains_exactly_as_the_value_given(tmp_path: Path, capsys) -> None:
    common = ["trainer.epochs=1", "tune.steps=60", *QUIET]
    auto = train_in_process(["optim.lr=auto", *common], tmp_path / "auto")
    lr = auto["lr_find"]["lr"]
    assert 1e-6 <= lr <= 1 and (tmp_path / "auto" / "lr_find" / "lr_find.csv").is_file()
    assert f"the lr range test chose optim.lr={lr!r}" in capsys.readouterr().out
    assert f"lr: {lr}" in (tmp_path / "auto" / "config_resolved.yaml").read_text()
    train_in_process([f"optim.lr={lr!r}", *common], tmp_path / "given")
    a, b = (_weights(tmp_path / d / "checkpoints" / "last.pt") for d in ("auto", "given"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- averaged weights
AVG = ["trainer.ema.decay=0.9", "trainer.swa.start_epoch=2", "trainer.swa.lr=0.02", *QUIET]


def test_ema_and_swa_are_validated_tested_and_resume_exactly(tmp_path: Path, cli_in_process) -> None:
    whole = train_in_process(["trainer.epochs=3", *AVG], tmp_path / "whole")
    assert {"val_ema_loss", "val_ema_acc"} <= set(_rows(tmp_path / "whole")[0])
    assert {"ema_test_acc", "swa_test_acc", "ema_test_loss", "test_acc"} <= set(whole)
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "whole")]
    assert lrs == [0.1, 0.02, 0.02]  # SWALR from epoch 2 (anneal_epochs=1)
    train_in_process(["trainer.epochs=1", *AVG], tmp_path / "part")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as train_in_process trains: the same sums to the last bit
    try:
        proc = cli_in_process(["train", f"resume={tmp_path / 'part'}", "trainer.epochs=3"], tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    raw_a, raw_b = (_weights(tmp_path / d / "checkpoints" / "last.pt") for d in ("whole", "part"))
    assert all(torch.equal(raw_a[k], raw_b[k]) for k in raw_a)
    a, b = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True)["averaging"] for d in ("whole", "part"))
    for name in ("ema", "swa"):
        assert a[name].keys() == b[name].keys() and all(torch.equal(a[name][k], b[name][k]) for k in a[name])
    assert int(a["swa"]["n_averaged"]) == 2
    resumed = load_summary(tmp_path / "part")
    assert [resumed[k] for k in ("ema_test_acc", "swa_test_acc")] == [whole[k] for k in ("ema_test_acc", "swa_test_acc")]


def test_the_averaged_weights_are_checkpoints_eval_predict_and_export_read(tmp_path: Path, cli_in_process) -> None:
    summary = train_in_process(["trainer.epochs=3", *AVG], tmp_path / "run")
    from trainkit.evaluate import evaluate_checkpoint

    ckpts = tmp_path / "run" / "checkpoints"
    for name in ("ema", "swa"):  # what the run tested as ema_test_* / swa_test_*, swa's BatchNorm pass included
        result = evaluate_checkpoint(str(ckpts / f"{name}.pt"), [])
        assert result["test_acc"] == summary[f"{name}_test_acc"] and result["test_loss"] == summary[f"{name}_test_loss"]
        assert (tmp_path / "run" / f"eval_{name}_test.json").is_file()
    raw = _weights(ckpts / "last.pt")
    ema = torch.load(ckpts / "ema.pt", weights_only=True)
    assert ema["averaged"] == "ema" and ema["model"].keys() == raw.keys()
    assert not all(torch.equal(ema["model"][k], raw[k]) for k in raw)
    proc = cli_in_process(["export", f"ckpt={ckpts / 'ema.pt'}", "format=safetensors", f"output={tmp_path / 'ema.safetensors'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = cli_in_process(["train", f"resume={ckpts / 'ema.pt'}"], tmp_path)
    assert proc.returncode == 2 and "holds the run's ema weights, not a training state" in proc.stderr


def test_swa_recomputes_batchnorm_statistics(tmp_path: Path) -> None:
    from trainkit.averaging import Averaging

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    avg = Averaging(model, torch.optim.SGD(model.parameters(), lr=0.1), swa_start=1)
    avg.swa.update_parameters(model)
    data = [(torch.randn(32, 4) * 3 + 5, torch.zeros(32))]
    (swa,) = avg.test_models(data, torch.device("cpu")).values()
    expected = model[0](data[0][0]).detach().mean(0)
    assert torch.allclose(swa[1].running_mean, expected, atol=1e-5)


# --------------------------------------------------------------------------- profiler, check --layers
def test_profile_writes_a_trace_and_prints_the_top_operators(tmp_path: Path, capsys) -> None:
    train_in_process(["trainer.profile=true", "trainer.epochs=1", "trainer.limit_train_batches=6",
                      "trainer.profile_schedule.wait=1", "trainer.profile_schedule.active=2", *QUIET], tmp_path / "run")
    trace = json.loads((tmp_path / "run" / "profile" / "trace.json").read_text())
    assert any(str(e.get("name", "")).startswith("aten::") for e in trace["traceEvents"])
    out = capsys.readouterr().out
    assert "profile: steps 3-4 recorded" in out and "Self CPU" in out and "aten::" in out
    assert "aten::" in (tmp_path / "run" / "profile" / "top_ops.txt").read_text()


def test_profile_window_longer_than_the_run_says_so(tmp_path: Path, capsys) -> None:
    train_in_process(["trainer.profile=true", "trainer.epochs=1", "trainer.limit_train_batches=2", *QUIET], tmp_path / "run")
    assert "nothing was recorded" in capsys.readouterr().out
    assert not (tmp_path / "run" / "profile" / "trace.json").exists()


def test_check_layers_prints_shapes_parameters_and_flops(tmp_path: Path, cli_in_process) -> None:
    from trainkit.check import dry_run

    facts = dry_run([], layers=True)
    # the default MLP on a batch of 64 digits: 64->128->10, two FLOPs per multiply-add
    assert facts["flops"] == 2 * 64 * (64 * 128 + 128 * 10)
    head = next(r for r in facts["layers"] if r["name"] == "head")
    assert head["parameters"] == 128 * 10 + 10 and head["output"] == "[64, 10]"
    proc = cli_in_process(["check", "--layers", "model=cnn"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "FLOPs" in proc.stdout and "Conv2d" in proc.stdout and "(forward, one batch)" in proc.stdout
