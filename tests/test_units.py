"""Unit tests of the core pieces: splits, loader order, atomic saves, config validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainkit.checkpoint import atomic_save, load
from trainkit.config import compose, validate
from trainkit.data.build import split_indices
from trainkit.data.loaders import TensorLoader
from trainkit.errors import CheckpointError, ConfigError


def test_split_is_deterministic_disjoint_and_complete() -> None:
    a = split_indices(1797, [0.1, 0.2], seed=0)
    b = split_indices(1797, [0.1, 0.2], seed=0)
    c = split_indices(1797, [0.1, 0.2], seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert [len(p) for p in a] == [1260, 179, 359] or sum(len(p) for p in a) == 1797
    assert torch.equal(torch.sort(torch.cat(a)).values, torch.arange(1797))


def test_tensor_loader_order_depends_only_on_seed_and_epoch() -> None:
    x = torch.arange(100).float().unsqueeze(1)
    y = torch.arange(100)
    loader = TensorLoader((x, y), batch_size=16, shuffle=True, seed=3)
    loader.set_epoch(0)
    first = torch.cat([b[1] for b in loader])
    loader.set_epoch(1)
    second = torch.cat([b[1] for b in loader])
    loader.set_epoch(0)
    again = torch.cat([b[1] for b in loader])
    assert torch.equal(first, again) and not torch.equal(first, second)
    assert torch.equal(torch.sort(first).values, y)
    loader.set_epoch(0, skip_batches=2)
    assert torch.equal(torch.cat([b[1] for b in loader]), first[32:])
    assert len(loader) == 7


def test_tensor_loader_shards_like_distributed_sampler() -> None:
    x = torch.arange(10).float()
    shards = []
    for rank in range(3):
        loader = TensorLoader((x, x), batch_size=4, shuffle=True, seed=0, rank=rank, world_size=3)
        loader.set_epoch(0)
        shards.append(torch.cat([b[0] for b in loader]))
    assert all(len(s) == 4 for s in shards)
    assert set(torch.cat(shards).tolist()) == set(range(10))


def test_atomic_save_and_weights_only_load(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    atomic_save({"model": {"w": torch.ones(2)}, "config": {"a": 1}}, path)
    assert load(path)["config"] == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(path)


def test_compose_defaults_and_validation() -> None:
    cfg = compose([])
    assert cfg.data.name == "digits" and cfg.optim._target_ == "torch.optim.SGD"
    assert cfg.model.out_features == 10  # from ${task.out_features} -> ${data.num_classes}
    validate(cfg)
    with pytest.raises(ConfigError, match="trainer.epochs=0 must be an integer >= 1"):
        validate(compose(["trainer.epochs=0"]))
    with pytest.raises(ConfigError) as err:
        validate(compose(["optim.lr=-1", "data.batch_size=0"]))
    assert "optim.lr=-1" in str(err.value) and "data.batch_size=0" in str(err.value)  # all problems at once
