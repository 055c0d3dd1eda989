"""trainer.strategy=fsdp: shard the model's parameters, gradients and optimizer state over the ranks (FSDP2).

`torch.distributed.fsdp.fully_shard` turns each chosen submodule (by class name, trainer.fsdp.wrap, or
by size, trainer.fsdp.min_params) and then the root into a shard unit: every rank keeps 1/W of its
parameters and gathers a unit's full weights only around its forward and backward. It must run before
the optimizer is built (the parameters become DTensors), which is why parts.build_parts calls `shard`.

Checkpoints stay ordinary: `full_state` gathers the model and optimizer state with
torch.distributed.checkpoint's state-dict helpers (full_state_dict=True, cpu_offload=True) onto rank 0,
which writes one weights_only-loadable file that `trainkit eval` (or any reader of checkpoints) reads like any
other; `load_full` shards such a file back onto every rank.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainkit.errors import ConfigError

PRECISIONS = {"bf16": torch.bfloat16, "16": torch.float16}


def is_sharded(model: nn.Module) -> bool:
    """The model was sharded by `shard` (FSDP2)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def original_class(model: nn.Module) -> type:
    """The model's own class: FSDP2 swaps in a subclass named FSDP<Class>."""
    return type(model).__mro__[2] if is_sharded(model) else type(model)


def units(model: nn.Module, wrap: list[str] | None, min_params: int | None) -> list[nn.Module]:
    """The submodules that become shard units of their own, innermost first (the root comes last, always)."""
    # ModuleList/ModuleDict have no forward of their own: fully_shard needs one to gather around
    named = [(name, m) for name, m in model.named_modules() if name and type(m).forward is not nn.Module.forward]
    if wrap:
        chosen = [m for _, m in named if type(m).__name__ in wrap]
        if not chosen:
            classes = sorted({type(m).__name__ for _, m in named})
            raise ConfigError(
                f"trainer.fsdp.wrap={list(wrap)} names no module of this model; its module classes are: "
                f"{', '.join(classes) or 'none'}"
            )
    elif min_params:
        chosen = [m for _, m in named if sum(p.numel() for p in m.parameters()) >= min_params]
    else:
        chosen = []
    return sorted(chosen, key=lambda m: -_depth(model, m))


def _depth(root: nn.Module, module: nn.Module) -> int:
    for name, m in root.named_modules():
        if m is module:
            return name.count(".") + 1
    return 0


def shard(model: nn.Module, fsdp: Any) -> nn.Module:
    """fully_shard each unit (innermost first), then the root; returns the same module, now sharded."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    precision = fsdp.get("mixed_precision")
    kwargs: dict[str, Any] = {"reshard_after_forward": bool(fsdp.get("reshard_after_forward", True))}
    if precision is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=PRECISIONS[str(precision)], reduce_dtype=torch.float32)
    wrap = list(fsdp.get("wrap") or []) or None
    for unit in units(model, wrap, fsdp.get("min_params")):
        fully_shard(unit, **kwargs)
    fully_shard(model, **kwargs)
    return model


def _options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole model and optimizer state on rank 0's CPU (empty dicts elsewhere). A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    model_state = get_model_state_dict(model, options=_options(cpu_offload=True))
    optim_state = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True)) if optimizer else {}
    return model_state, optim_state


def load_full(model: nn.Module, optimizer: torch.optim.Optimizer | None, model_state: dict[str, Any],
              optim_state: dict[str, Any] | None) -> None:
    """Shard a full model (and optimizer) state that every rank holds onto this rank (resume)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, model_state, options=_options())
    if optimizer is not None and optim_state:
        set_optimizer_state_dict(model, optimizer, optim_state, options=_options())


def load_from_rank0(model: nn.Module, model_state: dict[str, Any]) -> None:
    """Shard rank 0's full weights (best.pt, read by rank 0 alone) onto every rank: no shared disk needed."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, model_state, options=_options(broadcast_from_rank0=True))
