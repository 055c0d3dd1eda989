"""Models by name (model=torchvision, model=timm) and fine-tuning from weights on disk (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import InProcessCli, load_summary, train_in_process

from trainkit.errors import ConfigError
from trainkit.finetune import freeze, load_pretrained, map_prefix, read_weights
from trainkit.models import CNN, timm_model, torchvision_model

FEW = ["trainer.epochs=1", "trainer.progress=plain", "data.batch_size=8", "metrics.enabled=false"]


def images(path: Path, n: int = 24, channels: int = 3, size: int = 32, classes: int = 3) -> Path:
    """A tensor_file of tiny images whose brightness gives the class."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.rand(n, channels, size, size, generator=g) * 0.3 + (y.float() / classes).view(-1, 1, 1, 1)
    torch.save({"x": x, "y": y}, path)
    return path


def cfg_node(**keys: object):
    from omegaconf import OmegaConf

    return OmegaConf.create({"pretrained": None, "pretrained_prefix": None, "pretrained_strict": False, **keys})


@pytest.mark.slow
@pytest.mark.parametrize(("library", "name"), [("torchvision", "resnet18"), ("torchvision", "mobilenet_v3_small"),
                                               ("timm", "test_resnet")])
def test_a_library_model_by_name_trains_an_epoch_and_its_checkpoint_evaluates(
    library: str, name: str, tmp_path: Path, cli_in_process: InProcessCli
) -> None:
    data = images(tmp_path / "imgs.pt")
    summary = train_in_process([f"model={library}", f"model.name={name}", "data=tensor_file", f"data.path={data}", *FEW],
                               tmp_path / "run")
    assert summary["status"] == "completed" and summary["epochs"] == 1
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["config"]["model"]["_target_"] == f"trainkit.models.{library}_model"
    head = [v for k, v in ckpt["model"].items() if v.dim() == 2][-1]
    assert head.shape[0] == 3  # num_classes from the data
    if name == "resnet18":  # the stored _target_ is on the allow-list: eval rebuilds it from the checkpoint
        proc = cli_in_process(["eval", f"ckpt={tmp_path / 'run' / 'checkpoints' / 'best.pt'}"], tmp_path)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_one_channel_images_get_a_fitted_first_conv_and_timm_in_chans() -> None:
    net = torchvision_model("mobilenet_v3_small", [1, 28, 28], 4)
    assert net.features[0][0].in_channels == 1
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 4)
    assert torchvision_model("resnet18", [1, 8, 8], 10)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert timm_model("test_resnet", [1, 32, 32], 5)(torch.zeros(2, 1, 32, 32)).shape == (2, 5)


def test_an_unknown_name_and_a_too_small_input_are_one_line_each() -> None:
    with pytest.raises(ConfigError, match=r"model.name=mobilenet_v3_smal is not a torchvision model; close matches: "
                                          r"mobilenet_v3_small"):
        torchvision_model("mobilenet_v3_smal", [3, 32, 32], 2)
    with pytest.raises(ConfigError, match="model.kwargs.weights would make torchvision fetch or read weights itself"):
        torchvision_model("resnet18", [3, 32, 32], 2, kwargs={"weights": "DEFAULT"})  # a stranger's stored config too
    with pytest.raises(ConfigError, match="model.kwargs.checkpoint_path would make timm"):
        timm_model("test_resnet", [3, 32, 32], 2, kwargs={"checkpoint_path": "x.pth"})
    with pytest.raises(ConfigError, match="close matches: convnext_nano"):
        timm_model("convnext_nan", [3, 32, 32], 2)
    with pytest.raises(ConfigError, match=r"squeezenet1_1 cannot take 3x16x16 inputs .*smallest square input it takes is 17x17"):
        torchvision_model("squeezenet1_1", [3, 16, 16], 2)
    with pytest.raises(ConfigError, match="cannot take 1x28x28 inputs .* smallest square input it takes is 32x32"):
        timm_model("test_convnext", [1, 28, 28], 2)


def test_weights_load_by_prefix_from_every_format_and_a_new_head_is_said(tmp_path: Path, capsys) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = CNN([1, 8, 8], 10)
    state = source.state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    torch.save({"model": state, "optimizer": {}, "epoch": 3}, tmp_path / "ckpt.pt")
    for path, prefix in ((tmp_path / "ddp.pt", "module."), (tmp_path / "w.safetensors", None), (tmp_path / "ckpt.pt", None)):
        target = CNN([1, 8, 8], 10)
        fit = load_pretrained(target, cfg_node(pretrained=str(path), pretrained_prefix=prefix, pretrained_strict=True))
        assert fit is not None and fit.exact
        assert all(torch.equal(target.state_dict()[k], v) for k, v in state.items())
    two = CNN([1, 8, 8], 2)  # another data set's classes: its head cannot take the file's
    fresh = two.classifier[3].weight.clone()
    fit = load_pretrained(two, cfg_node(pretrained=str(tmp_path / "ckpt.pt")))
    assert [k for k, _, _ in fit.reshaped] == ["classifier.3.weight", "classifier.3.bias"]
    assert torch.equal(two.classifier[3].weight, fresh) and torch.equal(two.features[0].weight, state["features.0.weight"])
    out = capsys.readouterr().out
    assert "6 of 8 model tensors loaded" in out
    assert "head replaced: shape differs  classifier.3.weight  file [10, 128], model [2, 128]" in out
    with pytest.raises(ConfigError, match=r"does not fit the model exactly: 2 of another shape \(classifier.3.weight"):
        load_pretrained(CNN([1, 8, 8], 2), cfg_node(pretrained=str(tmp_path / "ckpt.pt"), pretrained_strict=True))
    with pytest.raises(ConfigError, match="none of the 8 tensors .* fits the model .*model.pretrained_prefix"):
        load_pretrained(CNN([1, 8, 8], 10), cfg_node(pretrained=str(tmp_path / "ddp.pt")))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="holds list, not a state dict"):
        read_weights(tmp_path / "list.pt")
    assert list(map_prefix({"a.x": 1, "b": 2}, ["a.->net.", "+m."])) == ["m.net.x", "m.b"]


def test_freeze_patterns_and_their_release() -> None:
    net = CNN([1, 8, 8], 10)
    frozen = freeze(net, ["features.*"], until=2)
    assert frozen is not None and frozen.names == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"]
    assert not net.features[0].weight.requires_grad and net.classifier[1].weight.requires_grad
    frozen.at_epoch(1)
    assert not net.features[0].weight.requires_grad
    frozen.at_epoch(2)
    assert net.features[0].weight.requires_grad
    with pytest.raises(ConfigError, match="pattern 'head.*' matches no parameter .*features.0.weight"):
        freeze(CNN([1, 8, 8], 10), ["head.*"])


def test_sgd_with_momentum_steps_parameters_released_mid_run(tmp_path: Path) -> None:
    """Released parameters have no momentum buffer yet while the others do (torch's fused SGD refuses that)."""
    summary = train_in_process(["model=cnn", "model.channels=[8,8]", "model.hidden=16", "model.freeze=[features.*]",
                                "trainer.unfreeze_at_epoch=1", "trainer.epochs=2", "trainer.progress=plain",
                                "metrics.enabled=false"], tmp_path / "run")
    assert summary["status"] == "completed" and summary["epochs"] == 2


@pytest.mark.slow
def test_frozen_then_released_trains_as_said_and_resumes_exactly_across_the_unfreeze(
    tmp_path: Path, cli_in_process: InProcessCli
) -> None:
    """Adam holds every parameter from the start; frozen ones get no step (and no state) until the unfreeze."""
    torch.manual_seed(3)
    start = CNN([1, 8, 8], 10, channels=[8, 8], hidden=16).state_dict()
    torch.save(start, tmp_path / "start.pt")
    args = ["model=cnn", "model.channels=[8,8]", "model.hidden=16", "optim=adam", "optim.lr=0.01",
            f"model.pretrained={tmp_path / 'start.pt'}", "model.freeze=[features.*]", "trainer.unfreeze_at_epoch=1",
            "trainer.progress=plain", "metrics.enabled=false", "data.val_fraction=0.5", "data.test_fraction=0.3"]

    def train(run: str, epochs: int) -> dict:
        proc = cli_in_process(["train", *args, f"trainer.epochs={epochs}", f"hydra.run.dir={run}"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "frozen: 4 parameter tensors (features.0.weight" in proc.stdout
        return torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)

    one = train("one", 1)
    assert all(torch.equal(one["model"][k], start[k]) for k in start if k.startswith("features."))
    assert not torch.equal(one["model"]["classifier.1.weight"], start["classifier.1.weight"])
    assert len(one["optimizer"]["param_groups"][0]["params"]) == len(start)  # all held, frozen too
    assert len(one["optimizer"]["state"]) == 4  # the classifier's only
    whole = train("whole", 3)
    assert not torch.equal(whole["model"]["features.0.weight"], start["features.0.weight"])
    assert len(whole["optimizer"]["state"]) == len(start)
    train("two", 2)
    for run in ("one", "two"):  # stopped before the unfreeze, and after it
        proc = cli_in_process(["train", f"resume={tmp_path / run}", "trainer.epochs=3"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "model tensors loaded" not in proc.stdout  # a resume takes the checkpoint's weights, not the file's
        resumed = torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)
        assert all(torch.equal(resumed["model"][k], v) for k, v in whole["model"].items()), run
        assert load_summary(tmp_path / run)["best_value"] == load_summary(tmp_path / "whole")["best_value"]
