"""Hostile files, bad data and faults: refused clearly, nothing executed, no work lost.

Unit tests cover the many cases on the functions; a few subprocess tests run the real CLI on the
real paths (a malicious pickle, a truncated checkpoint, a stranger's `_target_`, divergence, bad
labels, an unwritable output dir).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import FAST, load_summary, run_cli, run_dirs
from torch.utils.data import TensorDataset

from trainkit import checkpoint as ckpt_io
from trainkit import guards
from trainkit.config import compose, to_plain
from trainkit.errors import CheckpointError, ConfigError, DataError, TrainingDiverged, TrainkitError
from trainkit.security import DEFAULT_ALLOWED, allowed_prefixes, check_config_targets, check_stored_config


class _Payload:
    """Pickles as a call that creates the file PWNED: it must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _malicious_checkpoints(tmp_path: Path) -> tuple[list[Path], Path]:
    marker = tmp_path / "PWNED"
    zip_format = tmp_path / "evil_zip.pt"
    torch.save({"model": {}, "extra": _Payload(marker)}, zip_format)
    raw_pickle = tmp_path / "evil_raw.pt"
    raw_pickle.write_bytes(pickle.dumps({"model": _Payload(marker)}, protocol=2))
    return [zip_format, raw_pickle], marker


@functools.lru_cache(maxsize=1)
def _default_config() -> dict:
    return to_plain(compose(["trainer.progress=plain"]))


def _stored_config(**changes: object) -> dict:
    """The default run config as a checkpoint stores it, with `a__b=value` changes."""
    cfg = copy.deepcopy(_default_config())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


# --------------------------------------------------------------------------- checkpoints (unit)


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    files, marker = _malicious_checkpoints(tmp_path)
    for path in files:
        with pytest.raises(CheckpointError) as info:
            ckpt_io.load(path)
        assert str(path) in str(info.value) and "--trust-checkpoint" in str(info.value)
    assert not marker.exists()


def test_truncated_or_garbage_checkpoint_names_the_file_and_the_previous_good_one(tmp_path: Path) -> None:
    ckpt_dir = tmp_path / "checkpoints"
    good = {"model": {"w": torch.ones(3)}, "epoch": 1}
    ckpt_io.atomic_save(good, ckpt_dir / "last.pt", keep_previous=True)
    ckpt_io.atomic_save({**good, "epoch": 2}, ckpt_dir / "last.pt", keep_previous=True)
    assert ckpt_io.load(ckpt_dir / "last.prev.pt")["epoch"] == 1  # the file it replaced is kept
    data = (ckpt_dir / "last.pt").read_bytes()
    (ckpt_dir / "last.pt").write_bytes(data[: len(data) // 2])
    before = sorted(p.name for p in ckpt_dir.iterdir())
    with pytest.raises(CheckpointError) as info:
        ckpt_io.load(ckpt_dir / "last.pt")
    msg = str(info.value)
    assert "truncated or corrupt" in msg and str(ckpt_dir / "last.pt") in msg and "last.prev.pt" in msg
    for content in (b"", b"not a checkpoint at all" * 5):
        (ckpt_dir / "bad.pt").write_bytes(content)
        with pytest.raises(CheckpointError, match="bad.pt' is (truncated or )?corrupt"):
            ckpt_io.load(ckpt_dir / "bad.pt")
    (ckpt_dir / "bad.pt").unlink()
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before  # loading never writes


def test_checkpoint_that_is_not_a_dict_of_weights_is_refused(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "nomodel.pt")
    with pytest.raises(CheckpointError, match="list.pt' is not a trainkit checkpoint .*holds a list"):
        ckpt_io.load(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no .model. state dict"):
        ckpt_io.load(tmp_path / "nomodel.pt")


def test_failing_write_mid_save_leaves_the_last_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    ckpt_io.atomic_save({"model": {"w": torch.zeros(2)}, "epoch": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - torch.save fails part-way: a lambda does not pickle
        ckpt_io.atomic_save({"model": {"w": torch.ones(2)}, "bad": lambda: 0}, path, keep_previous=True)
    assert ckpt_io.load(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file, no .prev left over


def test_second_ctrl_c_during_a_checkpoint_write_is_a_keyboard_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The impatient second Ctrl-C lands while last.pt is written: torch's zip writer then raised a
    # RuntimeError that hid the interrupt (a traceback, exit 1); it must stay a KeyboardInterrupt (exit 130).
    import io

    path = tmp_path / "last.pt"
    ckpt_io.atomic_save({"model": {"w": torch.zeros(2)}, "epoch": 1}, path)

    class CtrlCOnThirdWrite(io.FileIO):
        writes = 0

        def write(self, b):  # type: ignore[no-untyped-def]
            CtrlCOnThirdWrite.writes += 1
            if CtrlCOnThirdWrite.writes == 3:
                raise KeyboardInterrupt
            return super().write(b)

    monkeypatch.setattr(ckpt_io.os, "fdopen", lambda fd, mode: CtrlCOnThirdWrite(fd, "wb"))
    with pytest.raises(KeyboardInterrupt):
        ckpt_io.atomic_save({"model": {"w": torch.ones(10_000)}, "epoch": 2}, path, keep_previous=True)
    monkeypatch.undo()
    assert ckpt_io.load(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_broken_syntax_in_eval_and_resume_overrides_is_a_one_line_error() -> None:
    from omegaconf import OmegaConf

    from trainkit.evaluate import apply_eval_overrides
    from trainkit.resume import apply_overrides

    for bad in ("data.batch_size=[1,2", "data.batch_size='a", "data.batch_size={a:"):
        with pytest.raises(ConfigError, match="cannot parse override"):
            apply_eval_overrides(OmegaConf.create({"data": {"batch_size": 8}}), [bad])
    with pytest.raises(ConfigError, match=r"cannot parse override 'trainer.epochs=\[1,2'"):
        apply_overrides(OmegaConf.create({"trainer": {"epochs": 2}}), ["trainer.epochs=[1,2"])


def test_deleting_a_whole_config_group_is_refused_before_the_run() -> None:
    # ~optim passed validation and failed mid-build with an omegaconf traceback in a new run directory.
    from trainkit.config import validate

    for group in ("model", "loss", "optim", "scheduler", "task"):
        with pytest.raises(ConfigError, match=f"missing {group} \\(deleted with ~\\?\\)"):
            validate(compose([f"~{group}"]))


# --------------------------------------------------------------------------- _target_ allow-list (unit)


def test_stored_config_may_only_name_allowed_targets() -> None:
    cfg = _stored_config()
    check_config_targets(cfg, DEFAULT_ALLOWED)  # trainkit's own configs pass
    for target in ("os.system", "subprocess.Popen", "builtins.eval", "torchevil.Net", "torch.hub.load",
                   "torch.utils.cpp_extension.load_inline", "trainkit.checkpoint.load", "torch.load", "x;y"):
        bad = _stored_config(model___target_=target)
        with pytest.raises(ConfigError) as info:
            check_config_targets(bad, DEFAULT_ALLOWED)
        shown = target if target != "x;y" else repr(target)  # a name that is not dotted is quoted
        assert f"model._target_={shown}" in str(info.value) and "nothing was imported" in str(info.value)
    nested = _stored_config(data__transforms={"train": [{"_target_": "evil.Transform"}]})
    with pytest.raises(ConfigError, match=r"data.transforms.train\[0\]._target_=evil.Transform"):
        check_config_targets(nested, DEFAULT_ALLOWED)


def test_user_allowed_prefixes_extend_the_list() -> None:
    cfg = _stored_config(model___target_="my_pkg.nets.Net")
    with pytest.raises(ConfigError, match="--allow my_pkg."):
        check_config_targets(cfg, allowed_prefixes([], env={}))
    check_config_targets(cfg, allowed_prefixes(["my_pkg."], env={}))
    check_config_targets(cfg, allowed_prefixes([], env={"TRAINKIT_ALLOW": "other., my_pkg.nets."}))
    with pytest.raises(ConfigError):  # "my_pkg" without a dot does not allow my_pkg_evil
        check_config_targets(_stored_config(model___target_="my_pkg_evil.Net"),
                             allowed_prefixes(["my_pkg"], env={}))
    with pytest.raises(ConfigError, match="not a package prefix"):
        allowed_prefixes(["os.system; rm"], env={})


def test_interpolated_target_is_resolved_before_the_check() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(_stored_config(model___target_="${seed_target}", seed_target="os.system"))
    with pytest.raises(ConfigError, match="model._target_=os.system"):
        check_stored_config(cfg, DEFAULT_ALLOWED)


# --------------------------------------------------------------------------- data and faults (unit)


def test_labels_out_of_range_on_the_dataloader_path() -> None:
    from trainkit.data.loaders import TorchLoader
    from trainkit.tasks import Classification

    ds = TensorDataset(torch.randn(20, 4), torch.tensor([0, 1, 2, 12] * 5))
    loader = TorchLoader(torch.utils.data.Subset(ds, list(range(20))), batch_size=4)
    with pytest.raises(DataError, match=r"train labels range over \[0, 12\] but must lie in \[0, 10\)"):
        guards.check_loader_data(Classification(out_features=10), loader, "train")
    with pytest.raises(DataError, match="NaN or infinite"):
        guards.check_finite_inputs(torch.tensor([1.0, float("nan")]), "val")


def test_empty_split_and_batch_larger_than_split_are_refused() -> None:
    from trainkit.data import build_data

    cpu = torch.device("cpu")
    with pytest.raises(DataError, match="the val split is empty"):
        build_data(compose(["data.val_fraction=0.0"]), cpu)
    with pytest.raises(DataError, match="data.batch_size=5000 is larger than the training split"):
        build_data(compose(["data.batch_size=5000", "data.drop_last=true"]), cpu)


def test_skip_batch_skips_exactly_the_non_finite_batch_without_a_host_sync() -> None:
    from trainkit.loop import Loop, LoopState, train_one_epoch
    from trainkit.tasks import Classification

    torch.manual_seed(0)
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    x_bad = x.clone()
    x_bad[4] = float("nan")  # poisons the second batch of 4

    def run(batches: list[tuple[torch.Tensor, torch.Tensor]], on_nan: str) -> tuple[torch.nn.Module, dict]:
        torch.manual_seed(1)
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: a zero-gradient step changes nothing
        loop = Loop(model=model, criterion=torch.nn.CrossEntropyLoss(), optimizer=opt, scheduler=None,
                    interval="epoch", task=Classification(3), device=torch.device("cpu"), progress="none",
                    on_nan=on_nan, log_every=1)
        loader = _ListLoader(batches)
        return model, train_one_epoch(loop, loader, LoopState(), 0, 1)

    poisoned = [(x_bad[i : i + 4], y[i : i + 4]) for i in (0, 4, 8)]
    clean = [(x[i : i + 4], y[i : i + 4]) for i in (0, 8)]
    skipped_model, metrics = run(poisoned, "skip_batch")
    reference, _ = run(clean, "stop")
    assert metrics["skipped_batches"] == 1.0
    for a, b in zip(skipped_model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(TrainingDiverged, match="epoch 1, step 2"):
        run(poisoned, "stop")


class _ListLoader:
    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.batches)


def test_nan_weights_are_never_checkpointed() -> None:
    model = torch.nn.Linear(2, 2)
    guards.assert_finite_epoch(model, {"epoch": 1, "step": 5, "val_loss": 0.5})
    with pytest.raises(TrainingDiverged, match="validation loss became nan at epoch 1"):
        guards.assert_finite_epoch(model, {"epoch": 1, "step": 5, "val_loss": float("nan")})
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="weights became NaN or infinite by epoch 3, step 9"):
        guards.assert_finite_epoch(model, {"epoch": 3, "step": 9, "val_loss": 0.5})


def test_out_of_memory_message_names_the_batch_size_and_what_to_try() -> None:
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory")
    err = guards.oom_error(oom, 256, 1, "cuda:0", "at epoch 2, step 40")
    msg = str(err)
    assert isinstance(err, TrainkitError) and err.exit_code == 1
    assert "data.batch_size=256" in msg and "epoch 2" in msg
    assert "data.batch_size=128 trainer.accumulate=2" in msg


def test_output_dir_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "AFILE").write_text("x")
    with pytest.raises(TrainkitError, match="is a file, not a directory"):
        guards.check_output_dir(tmp_path / "AFILE" / "run")
    guards.check_output_dir(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # the check creates nothing
    assert guards.output_dir_from_overrides(["hydra.run.dir=x/${now:%H}"], False) == "x/"
    assert guards.output_dir_from_overrides(["hydra.sweep.dir=sw"], True) == "sw"


# --------------------------------------------------------------------------- the real CLI


def test_eval_refuses_malicious_and_truncated_checkpoints(tmp_path: Path) -> None:
    (evil, _), marker = _malicious_checkpoints(tmp_path)
    proc = run_cli(["eval", f"ckpt={evil}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "evil_zip.pt' holds pickled objects" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()

    ckpt_dir = tmp_path / "run" / "checkpoints"
    ckpt_io.atomic_save({"model": {}}, ckpt_dir / "best.pt")
    (ckpt_dir / "last.pt").write_bytes((ckpt_dir / "best.pt").read_bytes()[:300])
    proc = run_cli(["eval", f"ckpt={ckpt_dir / 'last.pt'}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "last.pt' is truncated or corrupt" in line and "best.pt" in line


def test_eval_refuses_a_stored_target_outside_the_allow_list_and_imports_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "IMPORTED"
    (tmp_path / "strangers_pkg.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nclass Net:\n    pass\n"
    )
    cfg = _stored_config(model___target_="strangers_pkg.Net")
    ckpt_io.atomic_save({"model": {}, "config": cfg, "epoch": 1}, tmp_path / "best.pt")
    proc = run_cli(["eval", f"ckpt={tmp_path / 'best.pt'}", "device=cpu"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "model._target_=strangers_pkg.Net" in proc.stderr and "--allow strangers_pkg." in proc.stderr
    assert not marker.exists()
    # The module is importable from here: with --allow the same checkpoint reaches the import.
    allow = ["--allow", "strangers_pkg."]
    proc = run_cli(["eval", f"ckpt={tmp_path / 'best.pt'}", "device=cpu", *allow], tmp_path)
    assert marker.exists(), proc.stderr


def test_divergence_exits_1_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    # Epoch 1 trains at lr 0.1; StepLR then multiplies it by 1e9 (lr 1e8), which diverges in epoch 2.
    schedule = ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=1e9"]
    proc = run_cli(["train", *FAST, "trainer.epochs=3", *schedule], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "training loss became nan at epoch 2" in proc.stderr and "Traceback" not in proc.stderr
    (run_dir,) = run_dirs(tmp_path / "outputs")
    summary = load_summary(run_dir)
    assert summary["status"] == "failed" and "TrainingDiverged" in summary["error"]
    last = ckpt_io.load(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 1
    assert all(bool(torch.isfinite(t).all()) for t in last["model"].values())


def test_labels_out_of_range_on_the_dataloader_path_are_refused_before_training(tmp_path: Path) -> None:
    # digits' labels are 0..9; claiming 5 classes makes them out of range. data.loader=dataloader keeps
    # the data in a DataLoader, whose labels are read from the dataset without loading the inputs.
    proc = run_cli(["train", *FAST, "data.num_classes=5", "data.loader=dataloader"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "labels range over [0, 9] but must lie in [0, 5)" in proc.stderr
    assert "Traceback" not in proc.stderr and "epoch 1" not in proc.stdout
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert load_summary(run_dir)["status"] == "failed"
    assert not list((run_dir / "checkpoints").glob("*.pt"))


def test_unwritable_output_dir_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "AFILE").write_text("not a directory")
    proc = run_cli(["train", *FAST, "hydra.run.dir=AFILE/run"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "'AFILE' is a file, not a directory" in proc.stderr and "hydra.run.dir" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["AFILE"]  # nothing else was written


@pytest.mark.parametrize("error", [RuntimeError("boom: a bug of ours"), KeyboardInterrupt()])
def test_a_crash_at_any_point_leaves_a_failed_summary(tmp_path: Path, error: BaseException) -> None:
    from trainkit.run import Run

    run = Run(compose(["trainer.progress=plain"]), tmp_path / "run")  # crashed before set-up finished
    run.fail(error)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] in ("RuntimeError: boom: a bug of ours", "KeyboardInterrupt: interrupted")


def test_eval_refuses_a_stored_config_or_weights_that_do_not_fit(tmp_path: Path) -> None:
    from trainkit.evaluate import evaluate_checkpoint

    cfg = _stored_config(device__type="cpu")
    ckpt_io.atomic_save({"model": {}, "config": {**cfg, "seed": torch.ones(2)}}, tmp_path / "tensor_cfg.pt")
    with pytest.raises(CheckpointError, match="tensor_cfg.pt' is not plain config data"):
        evaluate_checkpoint(str(tmp_path / "tensor_cfg.pt"), [])
    ckpt_io.atomic_save({"model": {"fc.weight": torch.ones(2)}, "config": cfg}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="weights in checkpoint .*other.pt' do not fit the model"):
        evaluate_checkpoint(str(tmp_path / "other.pt"), [])
