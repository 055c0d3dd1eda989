"""The other built-in models: linear, resnet18, embedding_bag, a multi-part embedding net, and a CRNN for CTC."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from trainkit.errors import ConfigError
from trainkit.models.nets import MLP, _features, image_shape


class Linear(nn.Module):
    """Flatten, then one nn.Linear: logistic (softmax) regression with a classification loss."""

    def __init__(self, in_shape: Sequence[int] | int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(_features(in_shape), int(out_features), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flatten(x))


def resnet18(in_shape: Sequence[int], out_features: int, small_input: bool | str = "auto") -> nn.Module:
    """torchvision's ResNet-18 (weights=None) with its first conv fitted to the data's channels and its head to the classes.

    Small images (<= 64 px a side, by default) get a 3x3 stride-1 stem without max-pooling, as CIFAR
    ResNets do; otherwise the 7x7 stride-2 stem stays.
    """
    from torchvision.models import resnet18 as tv_resnet18

    channels, height, width = image_shape(in_shape, "resnet18", "use model=mlp for flat features")
    net = tv_resnet18(weights=None, num_classes=int(out_features))
    small = min(height, width) <= 64 if small_input == "auto" else bool(small_input)
    if small:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


class EmbeddingBag(nn.Module):
    """Bag-of-tokens classifier: nn.EmbeddingBag(sparse=True) summing one learned vector per token.

    Integer inputs (N, L) are token ids. Float inputs are turned into tokens (feature index, quantised
    value), so `model=embedding_bag` runs on digits unchanged. A per-class bias is one more token in every
    bag, so every parameter gets a sparse gradient and `optim=sparse_adam` can train the whole model.
    """

    def __init__(
        self,
        out_features: int,
        in_shape: Sequence[int] | int | None = None,
        num_embeddings: int | None = None,
        levels: int = 17,
        mode: str = "sum",
        sparse: bool = True,
    ) -> None:
        super().__init__()
        self.levels = int(levels)
        self.features = _features(in_shape) if in_shape is not None else 0
        if num_embeddings is None:
            if not self.features:
                raise ConfigError("model=embedding_bag needs model.num_embeddings (vocabulary size) or model.in_shape")
            num_embeddings = self.features * self.levels
        self.vocab = int(num_embeddings)
        self.bag = nn.EmbeddingBag(self.vocab + 1, int(out_features), mode=mode, sparse=bool(sparse))
        nn.init.normal_(self.bag.weight, std=0.01)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(x):
            return x.long().flatten(1)
        flat = x.flatten(1).clamp(0.0, 1.0)
        value = torch.round(flat * (self.levels - 1)).long()
        return torch.arange(flat.shape[1], device=x.device) * self.levels + value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = self.tokens(x)
        bias = torch.full((ids.shape[0], 1), self.vocab, dtype=ids.dtype, device=ids.device)
        return self.bag(torch.cat([ids, bias], dim=1))


class EmbeddingNet(nn.Module):
    """A model in named parts held in an nn.ModuleDict: `body` (an MLP trunk) and `head` (a projection).

    For pairs and triplets the head's output is the embedding; parameter names (`parts.body...`,
    `parts.head...`) let optim.param_groups treat the parts differently.
    """

    def __init__(
        self,
        in_shape: Sequence[int] | int,
        out_features: int,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = list(hidden) or [128]
        body = MLP(in_shape, int(hidden[-1]), hidden[:-1], activation, dropout)
        self.parts = nn.ModuleDict({"body": body, "head": nn.Sequential(nn.ReLU(), nn.Linear(int(hidden[-1]), int(out_features)))})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts["head"](self.parts["body"](x))


class CRNN(nn.Module):
    """Conv blocks over an image strip, then a bidirectional GRU over its columns: (N, T, classes) for CTC."""

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (32, 64),
        hidden: int = 64,
    ) -> None:
        super().__init__()
        c, h, w = image_shape(in_shape, "crnn", "use data=digit_strings")
        layers: list[nn.Module] = []
        for i, out in enumerate(channels):
            # Halve the width once (at most), the height every block: columns become timesteps.
            pool = (2 if h >= 2 else 1, 2 if i == 0 and w >= 8 else 1)
            layers += [nn.Conv2d(c, int(out), 3, padding=1), nn.BatchNorm2d(int(out)), nn.ReLU(), nn.MaxPool2d(pool)]
            c, h, w = int(out), h // pool[0], w // pool[1]
        self.features = nn.Sequential(*layers)
        self.rnn = nn.GRU(c * h, int(hidden), batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * int(hidden), int(out_features))
        self.timesteps = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (N, C, H, W)
        f = f.permute(0, 3, 1, 2).flatten(2)  # (N, W, C*H): one timestep per column
        out, _ = self.rnn(f)
        return self.head(out)


def sparse_parameters(model: nn.Module) -> set[int]:
    """ids of the parameters that receive sparse gradients (nn.Embedding / nn.EmbeddingBag with sparse=True)."""
    found: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and module.sparse:
            found.add(id(module.weight))
    return found


__all__ = ["CRNN", "EmbeddingBag", "EmbeddingNet", "Linear", "resnet18", "sparse_parameters"]
