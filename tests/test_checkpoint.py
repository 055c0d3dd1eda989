"""checkpoint.atomic_save: one torch.save per epoch, best.pt a hard link (or a copy) that rotation never changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trainkit import checkpoint as ckpt_io


def _epoch(path: Path) -> int:
    return int(ckpt_io.load(path)["epoch"])


def test_best_is_linked_to_the_new_last_and_survives_its_rotation(tmp_path: Path) -> None:
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt_io.atomic_save({"model": {"w": torch.ones(2)}, "epoch": 1}, last, keep_previous=True, also=(best,))
    assert os.stat(best).st_ino == os.stat(last).st_ino  # one file on disk, two names
    ckpt_io.atomic_save({"model": {"w": torch.zeros(2)}, "epoch": 2}, last, keep_previous=True)
    # last.pt is a new inode; best.pt and last.prev.pt keep epoch 1's file
    assert (_epoch(last), _epoch(best), _epoch(tmp_path / "last.prev.pt")) == (2, 1, 1)
    assert os.stat(best).st_ino != os.stat(last).st_ino
    ckpt_io.atomic_save({"model": {"w": torch.zeros(2)}, "epoch": 3}, last, keep_previous=True, also=(best,))
    assert (_epoch(last), _epoch(best), _epoch(tmp_path / "last.prev.pt")) == (3, 3, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.prev.pt", "last.pt"]  # no temp left


def test_best_is_copied_where_the_filesystem_has_no_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt_io.atomic_save({"model": {"w": torch.ones(2)}, "epoch": 1}, last, keep_previous=True, also=(best,))
    ckpt_io.atomic_save({"model": {"w": torch.ones(2)}, "epoch": 2}, last, keep_previous=True)
    assert (_epoch(last), _epoch(best)) == (2, 1)
    assert os.stat(best).st_ino != os.stat(last).st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no .link or .tmp left


def test_training_state_round_trips_through_state_dict() -> None:
    from trainkit.early_stopping import EarlyStopping
    from trainkit.state import LoopState

    es = EarlyStopping(patience=3)
    es.replay([0.5, 0.6])
    s = LoopState(epoch=2, step=40, batch_in_epoch=5, best_value=0.5, best_epoch=1,
                  partial_sums={"loss": 1.5, "count": 3.0}, epoch_lr=0.1, early_stopping=es, earlier_time_s=7.0)
    saved = s.state_dict()
    assert saved["wall_time_s"] >= 7.0 and saved["early_stopping"] == {"best": 0.5, "wait": 1, "seen": 2}
    back = LoopState(early_stopping=EarlyStopping(patience=3))
    assert back.load_state_dict(saved)
    assert (back.epoch, back.step, back.batch_in_epoch, back.best_value, back.best_epoch, back.epoch_lr) == (
        2, 40, 5, 0.5, 1, 0.1)
    assert back.partial_sums == {"loss": 1.5, "count": 3.0} and back.earlier_time_s == saved["wall_time_s"]
    assert (back.early_stopping.best, back.early_stopping.wait, back.early_stopping.seen) == (0.5, 1, 2)
    # at an epoch's end no partial sums are kept
    assert LoopState(epoch=2, partial_sums={"loss": 1.0}).state_dict()["partial_sums"] == {}
