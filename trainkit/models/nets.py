"""The seeds' models: an MLP (hidden layers in an nn.ModuleList) and a LeNet-like CNN."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from trainkit.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by its snake_case name."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown activation '{name}'; choose one of: {', '.join(ACTIVATIONS)}"
        ) from None


def _features(in_shape: Sequence[int] | int) -> int:
    if isinstance(in_shape, int):
        return in_shape
    return math.prod(int(s) for s in in_shape)


def image_shape(in_shape: Sequence[int], model: str, hint: str) -> tuple[int, int, int]:
    """(channels, height, width) of an image model's input, or a config error saying what fits."""
    if len(in_shape) != 3:
        raise ConfigError(
            f"model={model} needs image input (channels, height, width), got input shape {list(in_shape)}; {hint}"
        )
    c, h, w = (int(s) for s in in_shape)
    return c, h, w


class MLP(nn.Module):
    """Flatten, then Linear + activation (+ dropout) per hidden size, then a Linear head."""

    def __init__(
        self,
        in_shape: Sequence[int] | int,
        out_features: int,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.ModuleList()
        width = _features(in_shape)
        for h in hidden:
            block = [nn.Linear(width, int(h)), make_activation(activation)]
            if dropout:
                block.append(nn.Dropout(dropout))
            self.hidden.append(nn.Sequential(*block))
            width = int(h)
        self.head = nn.Linear(width, int(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for layer in self.hidden:
            x = layer(x)
        return self.head(x)


class CNN(nn.Module):
    """LeNet-like: [Conv2d, ReLU, MaxPool2d] per channel count, then Linear, ReLU, Linear."""

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = image_shape(in_shape, "cnn", "use model=mlp for flat features")
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, int(out), kernel_size, padding=kernel_size // 2), nn.ReLU()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = int(out)
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(c * h * w, int(hidden)), nn.ReLU()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(int(hidden), int(out_features)))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
