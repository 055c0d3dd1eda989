"""Weight initialisation by name through torch.nn.init (the notes' `torch.nn.init.~(net.weight)`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainkit.errors import ConfigError

_WEIGHT_INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "orthogonal": nn.init.orthogonal_,
    "normal": lambda w: nn.init.normal_(w, mean=0.0, std=0.01),
    "zeros": nn.init.zeros_,
}
INITS = ("default", *_WEIGHT_INITS)


def apply_init(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every Linear/Conv weight with `scheme` and zero their biases; 'default' keeps PyTorch's."""
    if scheme == "default":
        return model
    if scheme not in _WEIGHT_INITS:
        raise ConfigError(f"unknown model.init '{scheme}'; choose one of: {', '.join(INITS)}")
    fn = _WEIGHT_INITS[scheme]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                fn(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model
