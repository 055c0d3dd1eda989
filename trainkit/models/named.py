"""Models by name from torchvision and timm, fitted to the data: channels in, classes out, no weights downloaded.

The builders are trainkit functions (not the libraries' own) so that a stored checkpoint's `_target_`
stays on trainkit's closed allow-list (trainkit/security.py), and so that every model, whatever its
library, is checked the same way at build: its name against the library's list, and a forward pass
on a zero image of the data's shape, which turns a too-small input into one line naming the smallest
square input the architecture takes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from trainkit.errors import ConfigError
from trainkit.models.nets import image_shape

# Square sizes tried, in order, to name the smallest input a model takes (224: the ImageNet size, 299: Inception's).
PROBE_SIZES = (8, 16, 28, 32, 48, 64, 75, 96, 128, 160, 192, 224, 256, 299)
LIST_HINT = {
    "torchvision": "trainkit ls model=torchvision (torchvision.models.list_models)",
    "timm": "trainkit ls model=timm (timm.list_models)",
}


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError("model=timm needs the timm package, which is not installed; "
                          "install it with: pip install 'trainkit[timm]'") from None
    return timm


def model_names(library: str) -> list[str]:
    """Every classification model name the library builds (torchvision's `list_models`, timm's architectures)."""
    if library == "torchvision":
        import torchvision

        return list(torchvision.models.list_models(module=torchvision.models))
    if library == "timm":
        return list(_timm().list_models())
    raise ConfigError(f"unknown model library '{library}'; choose torchvision or timm")


def check_name(library: str, name: Any) -> str:
    """The model name if the library knows it (timm's `arch.tag` names count by their arch), else one line."""
    names = model_names(library)
    text = str(name) if name is not None else ""
    if text in names or (library == "timm" and text.split(".")[0] in names):
        return text
    close = difflib.get_close_matches(text, names, n=5, cutoff=0.5)
    near = f"; close matches: {', '.join(close)}" if close else ""
    raise ConfigError(f"model.name={text or 'null'} is not a {library} model{near}; list them with: {LIST_HINT[library]}")


# Builder arguments that fetch or read weights: weights come only through model.pretrained (bounded, weights_only).
LOADING_KWARGS = ("weights", "progress", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path",
                  "cache_dir")


def _options(library: str, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(kwargs or {})
    loading = [k for k in options if k in LOADING_KWARGS]
    if loading:
        raise ConfigError(f"model.kwargs.{loading[0]} would make {library} fetch or read weights itself; "
                          "drop it and give local weights with model.pretrained=PATH")
    return options


def torchvision_model(
    name: str, in_shape: Sequence[int], out_features: int, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """torchvision.models.get_model(name, weights=None, num_classes=out_features), its first conv fitted to the channels."""
    import torchvision

    channels, height, width = image_shape(in_shape, "torchvision", "use model=mlp for flat features")
    options = _options("torchvision", kwargs)
    if name in ("inception_v3", "googlenet"):
        options.setdefault("aux_logits", False)  # one output in training too, as every other model
        options.setdefault("init_weights", True)
    try:
        net = torchvision.models.get_model(check_name("torchvision", name), weights=None,
                                           num_classes=int(out_features), **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build torchvision model {name} with model.kwargs={options}: {exc}") from None
    if channels != 3:
        fit_first_conv(net, channels, name)
    check_input(net, (channels, height, width), f"model=torchvision model.name={name}")
    return net


def timm_model(
    name: str, in_shape: Sequence[int], out_features: int, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """timm.create_model(name, pretrained=False, num_classes=out_features, in_chans=channels)."""
    timm = _timm()
    channels, height, width = image_shape(in_shape, "timm", "use model=mlp for flat features")
    options = _options("timm", kwargs)
    try:
        net = timm.create_model(check_name("timm", name), pretrained=False, num_classes=int(out_features),
                                in_chans=channels, **options)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"cannot build timm model {name} with model.kwargs={options}: {exc}") from None
    check_input(net, (channels, height, width), f"model=timm model.name={name}")
    return net


def fit_first_conv(net: nn.Module, channels: int, name: str) -> None:
    """Replace the first Conv2d (the stem, in every torchvision classifier) by one taking `channels` inputs."""
    for parent in net.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, child_name, nn.Conv2d(
                    channels, child.out_channels, child.kernel_size, stride=child.stride, padding=child.padding,
                    dilation=child.dilation, groups=1 if child.groups == child.in_channels else child.groups,
                    bias=child.bias is not None, padding_mode=child.padding_mode))
                return
    raise ConfigError(f"torchvision model {name} has no Conv2d to fit to {channels}-channel inputs; "
                      "give it 3-channel images")


def _forward_error(net: nn.Module, shape: Sequence[int]) -> str | None:
    """Why a zero batch of `shape` does not go through `net` (eval mode, no grad), or None if it does."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, *shape))
        return None
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        return " ".join(str(exc).split())[:160] or type(exc).__name__
    finally:
        net.train(was_training)


def check_input(net: nn.Module, shape: tuple[int, int, int], what: str, probe: Callable[..., Any] = _forward_error) -> None:
    """A zero image of the data's shape must go through; else say which smallest square size does."""
    reason = probe(net, shape)
    if reason is None:
        return
    c, h, w = shape
    low = min(h, w)  # fails
    fits = next((s for s in PROBE_SIZES if s > low and probe(net, (c, s, s)) is None), None)
    if fits is not None:  # between the last size that failed and the first that fits
        low = max([low, *(s for s in PROBE_SIZES if s < fits)])
        while fits - low > 1:
            mid = (low + fits) // 2
            low, fits = (low, mid) if probe(net, (c, mid, mid)) is None else (mid, fits)
    smallest = (f"the smallest square input it takes is {fits}x{fits}" if fits is not None
                else f"no square input from {PROBE_SIZES[0]} to {PROBE_SIZES[-1]} px goes through it")
    raise ConfigError(f"{what} cannot take {c}x{h}x{w} inputs ({reason}); {smallest}: resize the images "
                      "(data.transforms) or choose a model for small inputs (model=cnn, model=resnet18)")


__all__ = ["check_input", "check_name", "fit_first_conv", "model_names", "timm_model", "torchvision_model"]
