"""`trainkit predict` and `trainkit export` (issue 15, parts 1 and 2) on tiny runs trained once per module."""

from __future__ import annotations

import csv
import json
import random
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import InProcessCli, cli_env, run_cli, train_in_process

ONE = ["trainer.epochs=1", "trainer.progress=plain"]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny finished runs: digits (classification, multilabel), breast_cancer (binary), CSV tables, images."""
    root = tmp_path_factory.mktemp("runs")
    rng = random.Random(0)
    rows = [[a, b, "yes" if a + b > 1 else "no", c] for a, b, c in ((rng.random(), rng.random(), rng.random()) for _ in range(200))]
    _write_csv(root / "table.csv", ["a", "b", "label", "c"], rows)
    reg = [[a, b, round(2 * a - b, 4) + 0.0001] for a, b in ((rng.random(), rng.random()) for _ in range(200))]
    _write_csv(root / "reg.csv", ["a", "b", "target"], reg)
    from PIL import Image

    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        (root / "images" / name).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (12, 10), tuple(v + rng.randint(-25, 25) for v in colour)).save(root / "images" / name / f"{i}.png")
    recipes = {
        "digits": ["model=linear"],
        "multilabel": ["model=linear", "loss=multilabel_soft_margin"],
        "binary": ["model=linear", "loss=bce_with_logits"],
        "table": ["data=csv", f"data.path={root / 'table.csv'}", "optim.lr=0.05"],
        "regression": ["data=csv", f"data.path={root / 'reg.csv'}", "data.label_column=target", "loss=mse"],
        "pairs": ["loss=cosine_embedding"],
        "images": ["data=image_folder", f"data.root={root / 'images'}", "model=linear", "trainer.epochs=3"],
    }
    out = {"root": root}
    for name, overrides in recipes.items():
        out[name] = root / f"run_{name}"
        train_in_process([*ONE, *overrides], out[name])
    return out


def _test_split(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's own test split, rebuilt from its checkpoint's config (what eval tests on)."""
    from trainkit.data import build_data
    from trainkit.evaluate import read_checkpoint

    _, cfg = read_checkpoint(str(run_dir / "checkpoints" / "best.pt"), [])
    data = build_data(cfg, torch.device("cpu"))
    xs, ys = zip(*((b[0], b[1]) for b in data.test), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_predict_on_a_tensor_file_scores_the_test_split_as_the_run_did(
    runs: dict[str, Path], tmp_path: Path, cli_in_process: InProcessCli
) -> None:
    x, y = _test_split(runs["digits"])
    torch.save({"x": x}, tmp_path / "new.pt")  # inputs only: no labels needed
    proc = cli_in_process(["predict", str(runs["digits"]), "input=new.pt", "top_k=3", "batch_size=50"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = _read(tmp_path / "predictions.csv")
    assert len(rows) == len(x) and [r["id"] for r in rows[:3]] == ["0", "1", "2"]
    assert list(rows[0])[:8] == ["id", "prediction", "top1", "top1_prob", "top2", "top2_prob", "top3", "top3_prob"]
    probs = torch.tensor([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows])
    assert torch.allclose(probs.sum(1), torch.ones(len(rows)), atol=1e-4)
    predicted = torch.tensor([int(r["prediction"]) for r in rows])
    assert torch.equal(predicted, probs.argmax(1)) and all(r["top1"] == r["prediction"] for r in rows)
    assert all(float(r["top1_prob"]) >= float(r["top2_prob"]) >= float(r["top3_prob"]) for r in rows)
    summary = json.loads((runs["digits"] / "summary.json").read_text())
    assert (predicted == y).float().mean().item() == pytest.approx(summary["test_acc"], abs=1e-6)


def test_predict_writes_npy_and_pt_from_npy_input_in_small_batches(runs: dict[str, Path], tmp_path: Path) -> None:
    import numpy as np

    from trainkit import predict

    x, _ = _test_split(runs["digits"])
    np.save(tmp_path / "new.npy", x[:13].numpy())
    a = predict(runs["digits"] / "checkpoints" / "best.pt", str(tmp_path / "new.npy"), output=str(tmp_path / "p.npy"))
    b = predict(str(runs["digits"]), str(tmp_path / "new.npy"), output=str(tmp_path / "p.pt"), batch_size=4)
    assert a["rows"] == b["rows"] == 13 and a["task"] == "classes"
    scores = np.load(tmp_path / "p.npy")
    blob = torch.load(tmp_path / "p.pt", weights_only=True)
    assert scores.shape == (13, 10) and torch.allclose(blob["scores"], torch.from_numpy(scores), atol=1e-6)
    assert blob["ids"] == [str(i) for i in range(13)] and torch.equal(blob["prediction"], blob["scores"].argmax(1))


def test_predict_reads_the_runs_csv_columns_by_name_and_ignores_the_label(runs: dict[str, Path], tmp_path: Path) -> None:
    from trainkit import predict

    rows = [[0.1, 0.2, 0.3], [0.9, 0.8, 0.1], [0.5, 0.7, 0.9]]
    _write_csv(tmp_path / "ordered.csv", ["a", "b", "c"], rows)
    # other column order, an id column and the label column (ignored): the same predictions
    shuffled = [[f"r{i}", "no", c, a, b] for i, (a, b, c) in enumerate(rows)]
    _write_csv(tmp_path / "shuffled.csv", ["id", "label", "c", "a", "b"], shuffled)
    predict(str(runs["table"]), str(tmp_path / "ordered.csv"), output=str(tmp_path / "one.csv"))
    predict(str(runs["table"]), str(tmp_path / "shuffled.csv"), output=str(tmp_path / "two.csv"))
    one, two = _read(tmp_path / "one.csv"), _read(tmp_path / "two.csv")
    assert [r["id"] for r in one] == ["0", "1", "2"] and [r["id"] for r in two] == ["r0", "r1", "r2"]
    assert [r["prob_yes"] for r in one] == [r["prob_yes"] for r in two]  # the run's class names (data_meta)
    assert float(one[1]["prob_yes"]) > float(one[0]["prob_yes"])  # a + b > 1 is "yes"


def test_predict_regression_binary_and_multilabel(runs: dict[str, Path], tmp_path: Path) -> None:
    from trainkit import predict

    _write_csv(tmp_path / "reg.csv", ["b", "a"], [[0.0, 1.0], [1.0, 0.0]])
    predict(str(runs["regression"]), str(tmp_path / "reg.csv"), output=str(tmp_path / "r.csv"))
    reg = _read(tmp_path / "r.csv")
    assert list(reg[0]) == ["id", "prediction"] and float(reg[0]["prediction"]) > float(reg[1]["prediction"])  # 2a - b

    x, _ = _test_split(runs["binary"])
    torch.save(x[:9], tmp_path / "bc.pt")  # a bare tensor works too
    predict(str(runs["binary"]), str(tmp_path / "bc.pt"), output=str(tmp_path / "b.csv"))
    binary = _read(tmp_path / "b.csv")
    # breast_cancer's target names: class 0 malignant, class 1 benign
    assert len(binary) == 9 and list(binary[0]) == ["id", "prediction", "prob_malignant", "prob_benign"]
    for r in binary:
        assert float(r["prob_malignant"]) + float(r["prob_benign"]) == pytest.approx(1, abs=1e-5)
        assert r["prediction"] == ("benign" if float(r["prob_benign"]) > 0.5 else "malignant")

    x, _ = _test_split(runs["multilabel"])
    torch.save({"x": x[:9], "y": torch.zeros(9)}, tmp_path / "ml.pt")  # labels present: ignored
    predict(str(runs["multilabel"]), str(tmp_path / "ml.pt"), output=str(tmp_path / "m.csv"))
    ml = _read(tmp_path / "m.csv")
    assert list(ml[0]) == ["id", "prediction", "prob_even", "prob_greater_than_4", "prob_prime"]
    for r in ml:
        on = [n for n in ("even", "greater_than_4", "prime") if float(r[f"prob_{n}"]) > 0.5]
        assert r["prediction"] == ";".join(on)


def test_predict_images_through_the_runs_eval_transforms(runs: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    from trainkit import predict

    (tmp_path / "new" / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (210, 20, 20)).save(tmp_path / "new" / "sub" / "red.png")  # another size: Resize fits it
    Image.new("RGB", (20, 20), (20, 20, 210)).save(tmp_path / "blue.jpg")
    result = predict(str(runs["images"]), [str(tmp_path / "new"), str(tmp_path / "blue.jpg")], output=str(tmp_path / "i.csv"))
    rows = _read(tmp_path / "i.csv")
    assert result["rows"] == 2 and [Path(r["path"]).name for r in rows] == ["red.png", "blue.jpg"]
    assert [r["prediction"] for r in rows] == ["red", "blue"]  # ImageFolder's class names, from data_meta


BAD_PREDICT = [
    (["ckpt=nothere.pt", "input=x.pt"], "does not exist"),
    (["ckpt=corrupt.pt", "input=x.pt"], "corrupt"),
    (["RUN", "input=wrong.pt"], "each sample has shape [5] but the model expects [1, 8, 8]"),
    (["RUN", "input=x.pt", "output=preds.txt"], "must end in .csv, .pt or .npy"),
    (["RUN", "input=nothere.csv"], "input=nothere.csv does not exist"),
    (["TABLE", "input=missing.csv"], "lacks the feature columns a, c; the model expects the 3 columns a, b, c"),
    (["RUN", "input=missing.csv"], "the run trained on data=digits, not a CSV table"),
    (["RUN", "input=x.pt", "top_k=many"], "top_k=many must be a whole number"),
    (["input=x.pt"], "predict needs a checkpoint"),
]


@pytest.mark.parametrize(("args", "message"), BAD_PREDICT, ids=[m[:30] for _, m in BAD_PREDICT])
def test_bad_predict_input_is_one_line_and_writes_nothing(
    runs: dict[str, Path], tmp_path: Path, cli_in_process: InProcessCli, args: list[str], message: str
) -> None:
    torch.save({"x": torch.zeros(3, 1, 8, 8)}, tmp_path / "x.pt")
    torch.save({"x": torch.zeros(3, 5)}, tmp_path / "wrong.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    _write_csv(tmp_path / "missing.csv", ["b", "label"], [[0.5, "no"]])
    args = [str(runs["digits"]) if a == "RUN" else str(runs["table"]) if a == "TABLE" else a for a in args]
    proc = cli_in_process(["predict", *args], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not any(p.suffix in (".csv", ".npy") or p.name == "preds.txt" for p in tmp_path.iterdir() if p.name != "missing.csv")


def test_predict_refuses_a_task_without_classes_or_values(
    runs: dict[str, Path], tmp_path: Path, cli_in_process: InProcessCli
) -> None:
    torch.save(torch.zeros(3, 1, 8, 8), tmp_path / "x.pt")
    proc = cli_in_process(["predict", str(runs["pairs"]), "input=x.pt"], tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "predict does not support task=pairs" in proc.stderr and "it supports task=classification" in proc.stderr
    assert not (tmp_path / "predictions.csv").exists()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "safetensors"])
def test_export_checks_the_artefact_against_pytorch(
    runs: dict[str, Path], tmp_path: Path, cli_in_process: InProcessCli, fmt: str
) -> None:
    run = runs["digits"]
    proc = cli_in_process(["export", f"ckpt={run}", f"format={fmt}", f"output={tmp_path / 'model.bin'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"check: {fmt} vs PyTorch on 64 samples of the run's test split: max abs diff" in proc.stdout
    assert "tolerance" in proc.stdout and proc.stdout.count(": pass") == 1
    x, _ = _test_split(run)
    x = x[:5]  # not the traced batch size: the batch dimension is dynamic
    from trainkit.predict import load_model

    want = load_model(str(run)).model(x).detach()
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated
            got = torch.jit.load(str(tmp_path / "model.bin"))(x)
    elif fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp_path / "model.bin"), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    else:
        from omegaconf import OmegaConf
        from safetensors.torch import load_file

        from trainkit.build import build_model

        model = build_model(OmegaConf.load(tmp_path / "model.yaml"))  # the config written beside the weights
        model.load_state_dict(load_file(tmp_path / "model.bin"))
        got = model.eval()(x)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4)


def test_export_default_path_and_the_python_api(runs: dict[str, Path]) -> None:
    from trainkit import export

    result = export(str(runs["table"]), "torchscript")
    assert result["passed"] and result["max_abs_diff"] <= result["tolerance"] and result["samples"] == 40
    assert result["written"] == [str(runs["table"] / "export" / "best.torchscript.pt")]
    assert (runs["table"] / "export" / "best.torchscript.pt").is_file()


BAD_EXPORT = [
    (["ckpt=RUN", "format=tflite"], "format=tflite is not an export format; choose torchscript, onnx, safetensors"),
    (["ckpt=RUN"], "export needs a format"),
    (["ckpt=nothere.pt", "format=onnx"], "does not exist"),
    (["ckpt=corrupt.pt", "format=torchscript"], "is corrupt"),
    (["ckpt=RUN", "format=onnx", "input=wrong.pt"], "the model expects [1, 8, 8]"),
]


@pytest.mark.parametrize(("args", "message"), BAD_EXPORT, ids=[m[:30] for _, m in BAD_EXPORT])
def test_bad_export_input_is_one_line_and_writes_nothing(
    runs: dict[str, Path], tmp_path: Path, cli_in_process: InProcessCli, args: list[str], message: str
) -> None:
    torch.save(torch.zeros(3, 5), tmp_path / "wrong.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"garbage")
    args = [a.replace("RUN", str(runs["multilabel"])) for a in args]
    proc = cli_in_process(["export", *args, f"output={tmp_path / 'out.onnx'}"], tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out.onnx").exists() and not (runs["multilabel"] / "export").exists()


def test_export_without_the_extra_names_the_pip_command(
    runs: dict[str, Path], tmp_path: Path, cli_in_process: InProcessCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    proc = cli_in_process(["export", f"ckpt={runs['digits']}", "format=onnx", "output=m.onnx"], tmp_path)
    assert proc.returncode == 2 and "format=onnx needs onnxruntime: pip install 'trainkit[onnx]'" in proc.stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_a_model_onnx_cannot_hold_is_refused_with_the_formats_that_work(tmp_path: Path) -> None:
    """A forward that branches on the data: torch.export (ONNX) cannot follow it; TorchScript and safetensors can."""
    (tmp_path / "signnet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class SignNet(nn.Module):
            def __init__(self, in_shape, out_features, bias=True):
                super().__init__()
                self.fc = nn.Linear(int(torch.tensor(in_shape).prod()), out_features, bias=bias)

            def forward(self, x):
                x = x.flatten(1)
                return self.fc(x) if x.sum() > 0 else self.fc(-x)
    """))
    env = cli_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    proc = run_cli(["train", *ONE, "model=linear", "model._target_=signnet.SignNet", "hydra.run.dir=run"], tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(["export", "ckpt=run", "format=onnx", "--allow", "signnet."], tmp_path, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "cannot be exported to onnx: GuardOnDataDependentSymNode" in line
    assert line.endswith("formats that work for it: torchscript, safetensors")
    assert not (tmp_path / "run" / "export").exists()


def test_help_lists_predict_and_export(cli_in_process: InProcessCli, tmp_path: Path) -> None:
    proc = cli_in_process(["--help"], tmp_path)
    assert "predict predict new data" in proc.stdout and "export  export a model" in proc.stdout
    for cmd in ("predict", "export"):
        assert cli_in_process([cmd, "--help"], tmp_path).stdout.startswith(f"usage: trainkit {cmd} ckpt=PATH|RUN_DIR")


def test_predict_csv_without_the_training_table_names_columns_from_the_checkpoint(
    runs: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from trainkit import predict

    rows = [[f"r{i}", *v] for i, v in enumerate([[0.1, 0.2, 0.3], [0.9, 0.8, 0.1]])]
    _write_csv(tmp_path / "new.csv", ["id", "a", "b", "c"], rows)
    predict(str(runs["table"]), str(tmp_path / "new.csv"), output=str(tmp_path / "with.csv"))
    table = runs["root"] / "table.csv"
    table.rename(tmp_path / "away.csv")
    try:
        predict(str(runs["table"]), str(tmp_path / "new.csv"), output=str(tmp_path / "without.csv"))
    finally:
        (tmp_path / "away.csv").rename(table)
    assert "file order" not in capfd.readouterr().out  # the stored encoding names the columns
    assert _read(tmp_path / "with.csv") == _read(tmp_path / "without.csv")
