"""data.augment / data.mixup_alpha / data.cutmix_alpha: per-sample augmentation of whole batches, resumable."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from conftest import cli_env, run_cli

from trainkit.data.augment import BatchAugment
from trainkit.errors import ConfigError, DataError


def test_each_sample_gets_its_own_draw_and_the_same_batch_the_same_draw() -> None:
    x = torch.arange(3 * 8 * 8, dtype=torch.float32).view(1, 3, 8, 8).repeat(64, 1, 1, 1)
    y = torch.zeros(64, dtype=torch.long)
    before = torch.random.get_rng_state()
    aug = BatchAugment(["RandomHorizontalFlip", {"name": "RandomCrop", "size": 8, "padding": 2}], seed=3)
    out, _ = aug((x, y), epoch=1, index=4)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG (dropout, init) untouched
    assert out.shape == x.shape
    assert len({tuple(o.flatten().tolist()) for o in out}) > 20  # 64 equal images, many different results
    padded = torch.nn.functional.pad(x[0], (2, 2, 2, 2))
    windows = [padded[:, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
    windows += [w.flip(-1) for w in windows]
    assert all(any(torch.equal(o, w) for w in windows) for o in out)  # each result a (flipped) padded crop
    assert torch.equal(aug((x, y), 1, 4)[0], out) and not torch.equal(aug((x, y), 1, 5)[0], out)
    jitter = BatchAugment([{"name": "ColorJitter", "brightness": 0.5}, "RandomErasing"], seed=0)((x / x.max(), y), 0, 0)[0]
    assert len({round(float(o.mean()), 6) for o in jitter}) > 50  # per-sample parameters, not one for the batch


def test_mixup_and_cutmix_give_class_probabilities() -> None:
    x, y = torch.rand(32, 3, 8, 8), torch.randint(0, 5, (32,))
    xm, ym = BatchAugment(None, mixup_alpha=0.4, cutmix_alpha=1.0, num_classes=5, seed=0)((x, y), 0, 0)
    assert ym.shape == (32, 5) and torch.allclose(ym.sum(1), torch.ones(32)) and xm.shape == x.shape


def test_bad_augmentations_are_named() -> None:
    refused = r"RandomCropp is not one of the batch augmentations \(did you mean RandomCrop\?\); choose from: RandomCrop, "
    with pytest.raises(ConfigError, match=refused):
        BatchAugment(["RandomCropp"])
    with pytest.raises(ConfigError, match=r"data.augment\[0\]: RandomCrop\(sizes=3\) is refused by torchvision"):
        BatchAugment([{"name": "RandomCrop", "sizes": 3}])
    with pytest.raises(DataError, match=r"works on images \(channels, height, width\), but this data's samples are \[64\]"):
        BatchAugment(["RandomHorizontalFlip"]).check_shape([64])
    with pytest.raises(DataError, match="larger than the"):
        BatchAugment([{"name": "RandomCrop", "size": 40}]).check_shape([3, 32, 32])


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 CIFAR-shaped (3x16x16) images whose class is where a bright patch sits."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (160,), generator=g)
    x = torch.rand(160, 3, 16, 16, generator=g) * 0.3
    for i, c in enumerate(y.tolist()):
        x[i, :, (c // 2) * 8 : (c // 2) * 8 + 8, (c % 2) * 8 : (c % 2) * 8 + 8] += 0.7
    path = tmp_path_factory.mktemp("img") / "img.pt"
    torch.save({"x": x, "y": y}, path)
    return path


AUG = ["data=tensor_file", "data.batch_size=16", "trainer.epochs=2", "trainer.progress=plain", "device=cpu",
       "trainer.checkpoint_every_n_steps=3",
       "data.augment=[RandomHorizontalFlip,{name:RandomCrop,size:16,padding:2},{name:ColorJitter,brightness:0.3}]",
       "data.mixup_alpha=0.2", "data.cutmix_alpha=1.0"]


@pytest.mark.slow
def test_mid_epoch_resume_with_augmentation_is_bit_identical(images: Path, tmp_path: Path) -> None:
    args = [*AUG, f"data.path={images}"]
    ref = run_cli(["train", *args, "hydra.run.dir=ref"], tmp_path)
    assert ref.returncode == 0, ref.stderr + ref.stdout
    assert "augment per sample on the batch: RandomHorizontalFlip, RandomCrop, ColorJitter" in ref.stdout
    killed = run_cli(["train", *args, "hydra.run.dir=run"], tmp_path, env=cli_env(TRAINKIT_TEST_SIGNAL="10:KILL"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["batch_in_epoch"]) == (1, 2)  # step 9: epoch 2 (7 batches per epoch), batch 2
    resumed = run_cli(["train", "resume=run"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("extra", "words"), [
    (["data.augment=[RandomHorizontalFlip]"], "works on images (channels, height, width), but this data's samples are [64]"),
    (["data.augment=[Flip]"], "Flip is not one of the batch augmentations"),
    (["data.augment=[{name:RandomCrop,size:9}]"], "RandomCrop size [9, 9] is larger than the (padded) images [8, 8]"),
    (["data.mixup_alpha=0.2", "loss=nll"], "only task=classification with loss=cross_entropy, or task=soft_targets"),
])
def test_an_augmentation_that_does_not_apply_is_refused_before_the_run(tmp_path, capsys, monkeypatch, extra, words) -> None:
    from test_bad_input import _refuse

    shape = ["data.input_shape=[64]"] if "RandomHorizontalFlip" in extra[0] else []
    assert words in _refuse(["data=digits", *shape, *extra], tmp_path, capsys, monkeypatch)
