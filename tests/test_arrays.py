"""data=npy (memory-mapped arrays) and data=hf (Hugging Face datasets on disk): larger than memory, streamed, resumable."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli_env, run_cli

from trainkit.config import compose
from trainkit.data.build import build_data


def arrays(root: Path, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(0)
    y = g.integers(0, 4, n)
    x = (g.random((n, 3, 8, 8)) * 0.3).astype(np.float32)
    for i, c in enumerate(y):
        x[i, c % 3, : 4 + c] += 0.7
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    return x, y


def test_npy_over_the_budget_streams_from_the_map_and_under_it_preloads(tmp_path: Path, monkeypatch) -> None:
    x, y = arrays(tmp_path)
    args = ["data=npy", f"data.x_path={tmp_path / 'x.npy'}", f"data.y_path={tmp_path / 'y.npy'}", "data.num_workers=0"]

    from trainkit.data import build

    def never(*a: object, **k: object) -> None:
        raise AssertionError("a split over the budget was materialised")

    with monkeypatch.context() as m:
        m.setattr(build, "to_tensors", never)
        data = build_data(compose([*args, "data.memory_budget_mb=0.1"]), torch.device("cpu"))
    assert data.loader_kind == "dataloader"
    assert "auto: 0.3 MB exceeds data.memory_budget_mb=0.1" in data.info["loader_reason"]
    assert data.facts == {"input_shape": [3, 8, 8], "num_classes": 4}
    xb, yb = next(iter(data.train))
    assert xb.dtype == torch.float32 and xb.shape == (64, 3, 8, 8) and yb.dtype == torch.int64
    order = list(iter(data.train.sampler))[:64]  # the first batch: the sampler's order, read in one go
    ids = [data.train.loader.dataset.indices[k] for k in order]
    assert torch.equal(xb, torch.from_numpy(x[ids])) and yb.tolist() == y[ids].tolist()

    memory = build_data(compose(args), torch.device("cpu"))
    assert memory.loader_kind == "memory" and "fits" in memory.info["loader_reason"]
    assert torch.equal(next(iter(memory.train))[0], xb)  # the same order on both paths


def test_npy_split_files_and_missing_files(tmp_path: Path, capsys, monkeypatch) -> None:
    from test_bad_input import _refuse

    arrays(tmp_path, 100)
    np.save(tmp_path / "xv.npy", np.zeros((7, 3, 8, 8), np.float32))
    np.save(tmp_path / "yv.npy", np.zeros(7, np.int64))
    cfg = compose(["data=npy", f"data.x_path={tmp_path / 'x.npy'}", f"data.y_path={tmp_path / 'y.npy'}",
                   f"data.x_val_path={tmp_path / 'xv.npy'}", f"data.y_val_path={tmp_path / 'yv.npy'}", "data.num_workers=0"])
    assert build_data(cfg, torch.device("cpu")).sizes == {"train": 80, "val": 7, "test": 20}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    line = _refuse(["data=npy", f"data.x_path={tmp_path / 'nope.npy'}", f"data.y_path={tmp_path / 'y.npy'}"], cwd, capsys, monkeypatch)
    assert "data.x_path=" in line and "does not exist" in line


def test_hf_save_to_disk_and_parquet_files(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    x, y = arrays(tmp_path, 120)
    features = datasets.Features({"pixels": datasets.Array3D((3, 8, 8), "float32"),
                                  "label": datasets.ClassLabel(names=["a", "b", "c", "d"])})
    full = datasets.Dataset.from_dict({"pixels": x, "label": y.tolist()}, features=features)
    datasets.DatasetDict({"train": full.select(range(100)), "test": full.select(range(100, 120))}).save_to_disk(tmp_path / "saved")
    cfg = compose(["data=hf", f"data.path={tmp_path / 'saved'}", "data.x_column=pixels", "data.num_workers=0",
                   "data.memory_budget_mb=0.01"])
    data = build_data(cfg, torch.device("cpu"))
    assert data.loader_kind == "dataloader" and data.sizes == {"train": 90, "val": 10, "test": 20}
    assert data.facts == {"input_shape": [3, 8, 8], "num_classes": 4}
    xb, yb = next(iter(data.test))
    assert torch.equal(xb, torch.from_numpy(x[100:120])) and yb.tolist() == y[100:120].tolist()

    tab = datasets.Dataset.from_dict({"f1": x[:, 0, 0, 0], "f2": x[:, 1, 0, 0], "label": y.tolist()})
    tab.select(range(60)).to_parquet(str(tmp_path / "part-0.parquet"))
    tab.select(range(60, 120)).to_parquet(str(tmp_path / "part-1.parquet"))
    data = build_data(compose(["data=hf", f"data.path={tmp_path / 'part-*.parquet'}", "data.num_workers=0"]), torch.device("cpu"))
    assert data.sizes["train"] + data.sizes["val"] + data.sizes["test"] == 120 and data.facts["input_shape"] == [2]

    from trainkit.errors import DataError

    with pytest.raises(DataError, match="data.label_column=target is not a column of the data set"):
        build_data(compose(["data=hf", f"data.path={tmp_path / 'saved'}", "data.label_column=target"]), torch.device("cpu"))


@pytest.mark.slow
def test_a_data_set_larger_than_the_budget_trains_and_resumes_bit_exact(tmp_path: Path) -> None:
    arrays(tmp_path)
    args = ["train", "data=npy", "data.x_path=x.npy", "data.y_path=y.npy", "data.memory_budget_mb=0.1",
            "data.batch_size=32", "trainer.epochs=2", "trainer.checkpoint_every_n_steps=4", "trainer.progress=plain",
            "model.dropout=0.2"]
    ref = run_cli([*args, "hydra.run.dir=ref", "data.num_workers=1"], tmp_path)  # a worker reads the batches
    assert ref.returncode == 0, ref.stderr + ref.stdout
    assert "dataloader loader: auto: 0.3 MB exceeds data.memory_budget_mb=0.1" in ref.stdout
    killed = run_cli([*args, "hydra.run.dir=run", "data.num_workers=0"], tmp_path, env=cli_env(TRAINKIT_TEST_SIGNAL="13:KILL"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cli(["train", "resume=run"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "epoch 2, batch 3" in resumed.stdout  # 9 batches per epoch; the checkpoint of step 12
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
