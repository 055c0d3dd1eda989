"""Config -> objects: one small builder per group, all through `_target_` and hydra's instantiate."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from trainkit.build_extras import check_sparse, fill_steps, loss_weight, param_groups
from trainkit.errors import ConfigError
from trainkit.instantiate import instantiate_group
from trainkit.instantiate import resolve_target as _resolve_target
from trainkit.models.init import apply_init


def resolve_device(cfg: DictConfig) -> torch.device:
    """device.type auto|cpu|cuda|mps -> torch.device, refusing a device this machine lacks."""
    kind = str(cfg.device.type)
    index = cfg.device.get("index")
    if kind == "auto":
        if torch.cuda.is_available():
            kind = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            kind = "mps"
        else:
            kind = "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible to torch; use device=cpu or device=auto")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device=mps but Apple MPS is not available here; use device=cpu or device=auto")
    if kind == "cuda":
        if index is not None and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"device.index={index} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                "pick an index below that"
            )
        return torch.device("cuda", int(index) if index is not None else torch.cuda.current_device())
    return torch.device(kind)


def autocast_dtype(cfg: DictConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for device.precision, or None for full precision."""
    p = str(cfg.device.precision)
    if p == "32":
        return None
    if p == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("device.precision=bf16 is not supported on this GPU; use device.precision=16")
        return torch.bfloat16
    return torch.float16


def build_task(cfg: DictConfig) -> Any:
    return instantiate_group("task", cfg.task)


def build_model(cfg: DictConfig) -> nn.Module:
    model = instantiate_group("model", cfg.model)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_={cfg.model._target_} built a {type(model).__name__}, not an nn.Module")
    return apply_init(model, str(cfg.model.get("init", "default")))


def build_loss(cfg: DictConfig, data: Any = None) -> nn.Module:
    """The loss; loss.weight may be a per-class list or `auto` (needs `data` for the class counts)."""
    tensors: dict[str, Any] = {}
    if cfg.loss.get("weight") is not None:
        tensors["weight"] = loss_weight(cfg, data)
    if cfg.loss.get("pos_weight") is not None:  # BCEWithLogitsLoss: a list (one per output) or a number
        pos = OmegaConf.to_container(cfg.loss.pos_weight) if OmegaConf.is_list(cfg.loss.pos_weight) else [cfg.loss.pos_weight]
        tensors["pos_weight"] = torch.tensor(pos, dtype=torch.float32)
    if not tensors:
        return instantiate_group("loss", cfg.loss)
    node = cfg.loss.copy()
    with open_dict(node):
        for key in tensors:
            node.pop(key)
    return instantiate_group("loss", node, **tensors)


def build_optimizer(cfg: DictConfig, model: nn.Module, fused: bool = True) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters; `fused=False` keeps torch's own kernel choice.

    (model.freeze passes False: torch's fused SGD cannot step a group in which only some parameters
    have a momentum buffer, which is what releasing frozen parameters mid-run makes.)
    """
    params: list[Any] = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters; check model._target_ and freezing options")
    check_sparse(cfg, model, _resolve_target("optim", str(cfg.optim.get("_target_"))))
    if cfg.optim.get("param_groups"):
        params = param_groups(model, cfg.optim.param_groups)
    from trainkit.perf import fused_default  # fused SGD/Adam/AdamW kernels unless the config chose

    return instantiate_group("optim", cfg.optim, params, **(fused_default(cfg.optim, model) if fused else {}))


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> tuple[Any, str]:
    """The scheduler (or None) and when it steps: 'epoch' or 'step'."""
    node = cfg.scheduler
    interval = str(node.get("interval", "epoch"))
    if node.get("_target_") in (None, "", "null"):
        return None, interval
    return instantiate_group("scheduler", fill_steps(node, steps_per_epoch), optimizer), interval


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
