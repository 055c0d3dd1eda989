"""A newcomer's first hour (issue 18): their own data, eval overrides, class names, the progress line."""

from __future__ import annotations

import json
from pathlib import Path

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
