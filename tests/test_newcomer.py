"""A newcomer's first hour (issue 18): their own data, eval overrides, class names, the progress line."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import FAST, InProcessCli, train_in_process

FOUR = '''
import torch
from torch.utils.data import Dataset


class Four(Dataset):
    """4 features, 3 classes: not the digits' [1, 8, 8] x 10 the default data option describes."""

    def __init__(self, n=200):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])
'''


@pytest.fixture
def four(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "tk_four_data.py").write_text(FOUR)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    return "data.dataset._target_=tk_four_data.Four"


def test_a_users_dataset_of_another_shape_trains_with_its_own_shape(four: str, tmp_path: Path) -> None:
    import yaml

    summary = train_in_process([four, *FAST[1:], "trainer.epochs=1"], tmp_path / "run")
    assert summary["status"] == "completed"
    resolved = yaml.safe_load((tmp_path / "run" / "config_resolved.yaml").read_text())
    assert resolved["data"]["input_shape"] == [4] and resolved["model"]["in_shape"] == [4]
    assert resolved["data"]["num_classes"] == 10  # the config said 10 (digits'): kept, with a note
    assert "data.input_shape [1, 8, 8] -> [4]" in summary["data"]["loader_reason"]
    assert "set data.num_classes=3" in summary["data"]["loader_reason"]
    # With the class count left to the data, the labels decide it.
    summary = train_in_process([four, *FAST[1:], "trainer.epochs=1", "data.num_classes=null"], tmp_path / "run2")
    resolved = yaml.safe_load((tmp_path / "run2" / "config_resolved.yaml").read_text())
    assert resolved["data"]["num_classes"] == 3 and resolved["task"]["out_features"] == 3


def test_a_model_that_does_not_fit_the_data_is_one_line_before_training(
    four: str, tmp_path: Path, cli_in_process: InProcessCli
) -> None:
    proc = cli_in_process(["train", four, "model._target_=torch.nn.Linear", "~model.hidden", "~model.activation",
                           "~model.dropout", "~model.init", "~model.in_shape", "~model.out_features",
                           "+model.in_features=64", "+model.out_features=10", "trainer.epochs=1"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "trainkit: error: the model cannot take the input batch [20, 4]: mat1 and mat2 shapes cannot be multiplied "
        "(20x4 and 64x10); check the model's sizes against data.input_shape"]
    assert "Traceback" not in proc.stderr + proc.stdout
    (summary_file,) = tmp_path.rglob("summary.json")
    assert json.loads(summary_file.read_text())["status"] == "failed"


def _table(path: Path, n: int, seed: int = 0) -> Path:
    """A CSV of n rows, 3 features and text labels emu/cat/dog (class ids in sorted order: cat 0, dog 1, emu 2)."""
    import random

    rng = random.Random(seed)
    rows = ["a,b,c,label"]
    for i in range(n):
        k = i % 3
        rows.append(f"{k + rng.random():.3f},{rng.random():.3f},{-k + rng.random():.3f},{('emu', 'cat', 'dog')[k]}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch run on a CSV with text labels, trained once for the tests that evaluate it."""
    tmp_path = tmp_path_factory.mktemp("table")
    run_dir = tmp_path / "run"
    table = _table(tmp_path / "animals.csv", 150)
    summary = train_in_process(["data=csv", f"data.path={table}", "model.hidden=[16]", *FAST[1:]], run_dir)
    assert summary["status"] == "completed"
    return run_dir


def test_class_names_of_a_table_reach_the_checkpoint_the_report_and_eval(
    table_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from trainkit.evaluate import evaluate_checkpoint

    names = ["cat", "dog", "emu"]  # trainkit's class ids: the labels in sorted order
    for name in ("best.pt", "last.pt"):
        assert torch.load(table_run / "checkpoints" / name, weights_only=True)["data_meta"]["class_names"] == names
    report = json.loads((table_run / "test_report.json").read_text())
    assert report["class_names"] == names
    assert [row["class"] for row in report["per_class"]] == names
    assert sum(row["support"] for row in report["per_class"]) == report["samples"] == 30
    capsys.readouterr()
    result = evaluate_checkpoint(str(table_run / "checkpoints" / "best.pt"), [], split="test")
    assert result["class_names"] == names
    assert "classes: 0 cat, 1 dog, 2 emu" in capsys.readouterr().out


def test_class_names_of_bundled_sets_and_image_folders(tmp_path: Path) -> None:
    from PIL import Image

    from trainkit.data import build
    from trainkit.data.embedded import breast_cancer, digits
    from trainkit.data.files import image_folder

    assert build.class_names(digits()) == [str(i) for i in range(10)]
    assert build.class_names(breast_cancer()) == ["malignant", "benign"]
    for cls in ("owl", "bat"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (4, 4), (i * 50, 0, 0)).save(tmp_path / "img" / cls / f"{i}.png")
    assert build.class_names(image_folder(str(tmp_path / "img"))) == ["bat", "owl"]  # ImageFolder's sorted classes
    assert build.class_names({"train": torch_tensor_dataset()}) is None


def torch_tensor_dataset():  # a Dataset without names: class ids stay numbers
    import torch
    from torch.utils.data import TensorDataset

    return TensorDataset(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))


def test_eval_applies_data_path_and_refuses_a_missing_file(
    table_run: Path, tmp_path: Path, cli_in_process: InProcessCli
) -> None:
    best = table_run / "checkpoints" / "best.pt"
    other = _table(tmp_path / "more.csv", 300, seed=1)
    proc = cli_in_process(["eval", f"ckpt={best}", f"data.path={other}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((table_run / "eval.json").read_text())
    assert result["samples"] == 60  # the test split of the new file (300 rows x 0.2), not the run's 30
    proc = cli_in_process(["eval", f"ckpt={best}", "data.path=does_not_exist.csv"], tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("trainkit: error: data.path=does_not_exist.csv does not exist")
    assert json.loads((table_run / "eval.json").read_text())["samples"] == 60  # not replaced by an old result


def test_eval_keeps_one_file_per_checkpoint_and_split(table_run: Path, tmp_path: Path, cli_in_process: InProcessCli) -> None:
    ckpts = table_run / "checkpoints"
    assert cli_in_process(["eval", f"ckpt={ckpts / 'best.pt'}"], tmp_path).returncode == 0
    assert cli_in_process(["eval", f"ckpt={ckpts / 'last.pt'}", "split=val"], tmp_path).returncode == 0
    best = json.loads((table_run / "eval_best_test.json").read_text())
    last = json.loads((table_run / "eval_last_val.json").read_text())
    assert best["split"] == "test" and best["samples"] == 30 and best["checkpoint"].endswith("best.pt")
    assert last["split"] == "val" and last["samples"] == 15 and last["checkpoint"].endswith("last.pt")
    assert json.loads((table_run / "eval.json").read_text()) == last  # eval.json: the latest, as before


def test_eval_data_root_reaches_the_datasets_own_resolved_key() -> None:
    from omegaconf import OmegaConf

    from trainkit.errors import ConfigError
    from trainkit.evaluate import apply_eval_overrides

    stored = {"data": {"root": "data", "dataset": {"_target_": "trainkit.data.vision.torchvision_dataset", "root": "data"}}}
    cfg = apply_eval_overrides(OmegaConf.create(stored), ["data.root=/mnt/sets"])
    assert cfg.data.root == cfg.data.dataset.root == "/mnt/sets"  # stored resolved: `${data.root}` was "data"
    odd = {"data": {"root": "data", "dataset": {"_target_": "my.Set", "root": "elsewhere"}}}
    with pytest.raises(ConfigError, match=r"data.root=/mnt/sets cannot change in eval.*data.dataset.root"):
        apply_eval_overrides(OmegaConf.create(odd), ["data.root=/mnt/sets"])


TUTORIAL_NET = '''
import torch


class Net(torch.nn.Module):  # the tutorial's model: no constructor arguments at all
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x)
'''


def test_a_tutorial_net_is_told_every_key_to_drop_at_once_and_then_trains(
    tmp_path: Path, cli_in_process: InProcessCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tk_tutorial_net.py").write_text(TUTORIAL_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    proc = cli_in_process(["train", "model._target_=tk_tutorial_net.Net"], tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    drops = ["'~model.in_shape'", "'~model.out_features'", "'~model.hidden'", "'~model.activation'", "'~model.dropout'"]
    assert line == ("trainkit: error: 5 keys are not arguments of Net: model.in_shape, model.out_features, model.hidden, "
                    f"model.activation, model.dropout; its arguments: none (to drop the keys: {' '.join(drops)})")
    assert not (tmp_path / "outputs").exists()
    # The one retry the message asks for is enough.
    proc = cli_in_process(["train", "model._target_=tk_tutorial_net.Net", *(d.strip("'") for d in drops), *FAST[1:],
                           "trainer.epochs=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_misspelt_key_among_several_gets_its_did_you_mean() -> None:
    import torch

    from trainkit.errors import ConfigError
    from trainkit.instantiate import check_signature

    with pytest.raises(ConfigError, match=r"2 keys are not arguments of SGD: optim.momentm \(did you mean 'momentum'\?\), "
                                          r"optim.hidden; .*'~optim.momentm' '~optim.hidden'"):
        check_signature("optim", torch.optim.SGD, {"lr": 0.1, "momentm": 0.9, "hidden": 3}, ("params",))


def test_a_users_dataset_that_cannot_be_imported_or_built_costs_no_run_dir(four: str, tmp_path: Path) -> None:
    from tests.conftest import cli_env, run_cli

    env = cli_env()
    env["PYTHONPATH"] = str(tmp_path / "code") + ":" + env["PYTHONPATH"]
    proc = run_cli(["train", "data.dataset._target_=tk_four_data.Nope"], tmp_path, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [  # Hydra's own log of the failed import is not shown
        "trainkit: error: data.dataset._target_=tk_four_data.Nope cannot be imported; check the spelling and that its "
        "package is installed (for a module of your own, run from its folder with PYTHONPATH=.)"]
    proc = run_cli(["train", four, "+data.dataset.size=3"], tmp_path, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("trainkit: error: data.dataset.size is not an argument of Four; its arguments: n "
                                   "(to drop the key: '~data.dataset.size')")
    assert not (tmp_path / "outputs").exists()


def test_device_gpu_suggests_cuda() -> None:
    from trainkit.config import compose
    from trainkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown option 'gpu' for config group 'device' \(did you mean 'cuda'\?\)"):
        compose(["device=gpu"])


def test_the_progress_line_shows_one_loss_when_both_agree_and_an_eta(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainkit import console

    clock = iter([100.0, 110.0, 130.0])  # started at 100 s; reports at 110 s and 130 s
    monkeypatch.setattr(console, "time", SimpleNamespace(perf_counter=lambda: next(clock)))  # this module's clock only
    bar = console.EpochProgress("plain", 1, 3, batches=40)
    bar.update(1, 64)
    bar.update(10, 640)
    bar.report(10, 0.5, 0.5, 0.1)  # the first interval: the recent loss is the epoch's mean
    bar.update(20, 1280)
    bar.report(20, 0.25, 0.375, 0.1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  epoch 1 [10/40] loss 0.5000  64 samples/s  lr 1.00e-01  eta 0:30"  # 30 batches at 1 s each
    assert lines[1] == "  epoch 1 [20/40] loss 0.2500 (epoch mean 0.3750)  43 samples/s  lr 1.00e-01  eta 0:30"
    assert bar.eta(40, 1.0) == "0:00" and bar.eta(1, 7200.0) == "78:00:00"


def test_a_resumed_epoch_counts_its_eta_from_the_batches_this_process_ran() -> None:
    from trainkit.console import EpochProgress

    bar = EpochProgress("none", 2, 3, batches=100)
    bar.update(81, 0)  # resumed at batch 80: 20 batches left, 1 run so far
    assert bar.eta(90, 10.0) == "0:10"  # 10 batches in 10 s, 10 to go
