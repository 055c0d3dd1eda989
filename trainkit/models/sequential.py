"""`model=sequential`: layers listed by name in YAML, built as nn.Sequential(OrderedDict(...)).

A layer's `in_features` / `in_channels` / `num_features` may be `auto`: it is read from the shape a
dummy input has on reaching that layer, so a YAML list needs no hand-computed sizes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainkit.errors import ConfigError

# Keyword -> which dimension of the incoming activation fills it.
_AUTO_KEYS = {"in_features": -1, "in_channels": 1, "num_features": 1, "input_size": -1, "embed_dim": -1}


def build_sequential(layers: Mapping[str, Any], in_shape: Sequence[int] | int | None = None) -> nn.Sequential:
    """nn.Sequential(OrderedDict) from a name -> {_target_: ..., kwargs} mapping, filling `auto` sizes."""
    if isinstance(layers, DictConfig):
        layers = OmegaConf.to_container(layers, resolve=True)  # type: ignore[assignment]
    if not isinstance(layers, Mapping) or not layers:
        raise ConfigError("model.layers must map layer names to {_target_: torch.nn.X, ...}, e.g. "
                          "model.layers.fc1={_target_:torch.nn.Linear,in_features:auto,out_features:64}")
    shape = [int(in_shape)] if isinstance(in_shape, int) else [int(s) for s in in_shape or []]
    x = torch.zeros(2, *shape) if shape else None
    built: OrderedDict[str, nn.Module] = OrderedDict()
    for name, spec in layers.items():
        if not isinstance(spec, Mapping) or "_target_" not in spec:
            raise ConfigError(f"model.layers.{name} needs a _target_ (e.g. torch.nn.Linear); got {spec!r}")
        kwargs = dict(spec)
        for key, dim in _AUTO_KEYS.items():
            if kwargs.get(key) == "auto":
                if x is None:
                    raise ConfigError(f"model.layers.{name}.{key}=auto needs model.in_shape; set it or give a number")
                kwargs[key] = int(x.shape[dim])
        try:
            layer = instantiate(kwargs)
        except Exception as exc:
            reason = str(exc.__cause__ or exc).splitlines()[0]
            raise ConfigError(f"cannot build model.layers.{name} ({spec['_target_']}): {reason}") from exc
        if not isinstance(layer, nn.Module):
            raise ConfigError(f"model.layers.{name} built a {type(layer).__name__}, not an nn.Module")
        built[str(name)] = layer
        if x is not None:
            try:
                with torch.no_grad():
                    x = layer.eval()(x)
            except Exception as exc:
                raise ConfigError(
                    f"model.layers.{name} ({type(layer).__name__}) cannot take input of shape {list(x.shape[1:])}: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            layer.train()
    return nn.Sequential(built)
