"""The run's parts, built once for `train`, `check` and `eval`, and the checks made before the first step.

`build_parts` is the one place the build order lives (data, task, model, loss, optimizer, schedule,
precision), so the three commands cannot drift apart. What the model and task need from the data
(input shape, class count) comes back from `build_data` as facts and reaches them through a copy of
the config (`Parts.cfg`), never by `build_data` writing into the caller's config.
"""

from __future__ import annotations

import copy
import os
import platform
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict
from torch import nn

from trainkit import distributed, guards, sharding
from trainkit.build import (
    autocast_dtype,
    build_loss,
    build_model,
    build_optimizer,
    build_scheduler,
    build_task,
)
from trainkit.console import say
from trainkit.data import Data, build_data
from trainkit.debug import limit_data
from trainkit.errors import ConfigError, TrainkitError
from trainkit.finetune import Freeze, freeze, load_pretrained, patterns_of
from trainkit.perf import wants_channels_last
from trainkit.tasks import check_monitor


def set_deterministic(on: bool) -> None:
    """trainer.deterministic: deterministic kernels (or an error naming the op that has none).

    Set both ways: it is process-wide, and jobs of a sweep share the process. cuBLAS needs
    CUBLAS_WORKSPACE_CONFIG before its first use for deterministic matmuls on CUDA >= 10.2.
    """
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    if on:
        torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict[str, Any]:
    """The versions summary.json records (record.json keeps the longer list)."""
    from trainkit.version import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "trainkit": __version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


@dataclass
class Parts:
    """Everything a run, a check or an eval is made of."""

    cfg: DictConfig  # the config with the data's facts filled in: what the run writes and checkpoints
    data: Data
    task: Any
    model: nn.Module  # on the device (channels_last where that is faster)
    criterion: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    interval: str = "epoch"
    dtype: torch.dtype | None = None
    scaler: Any = None  # a GradScaler, enabled for float16 autocast (None when built without training)
    memory_format: torch.memory_format | None = None
    data_s: float = 0.0  # time build_data took (check reports it)
    notes: list[str] = field(default_factory=list)  # header lines: the debug limits in force (trainkit.debug)
    freeze: Freeze | None = None  # model.freeze: its at_epoch runs before every training epoch

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.data.train) // int(self.cfg.trainer.accumulate)))


def with_facts(cfg: DictConfig, facts: dict[str, Any]) -> DictConfig:
    """A copy of `cfg` with the data's facts in `data.*` where the config left them null.

    The model and task configs read them by interpolation (`${data.num_classes}`); the copy keeps the
    resolved config and the checkpoint's config complete, so eval and resume rebuild the same model.
    """
    if not facts:
        return cfg
    filled = copy.deepcopy(cfg)
    with open_dict(filled.data):
        for key, value in facts.items():
            filled.data[key] = value
    return filled


def build_parts(
    cfg: DictConfig, device: torch.device, rank: int = 0, world_size: int = 1, *, train: bool = True,
    data_meta: dict[str, Any] | None = None,
    pretrained: bool = True,
) -> Parts:
    """Build data, task, model, loss and (with `train`) optimizer, schedule and scaler, in that order.

    `data_meta`: a checkpoint's, so a table is encoded as that run encoded it (eval).
    With `train` and `pretrained` (not when resuming: the checkpoint has the weights), model.pretrained is
    loaded into the built model before the optimizer is made; model.freeze is applied after it, so the
    optimizer holds every parameter and trainer.unfreeze_at_epoch only flips requires_grad.
    """
    t0 = time.perf_counter()
    data = build_data(cfg, device, rank, world_size, fitted=data_meta)
    data_s = time.perf_counter() - t0
    notes = limit_data(data, cfg.trainer) if train else []  # debug limits: train and check, never eval
    cfg = with_facts(cfg, data.facts)
    task = build_task(cfg)
    model = build_model(cfg)
    if train and pretrained:
        load_pretrained(model, cfg.model)
    model = model.to(device)
    memory_format = torch.channels_last if wants_channels_last(model, device) else None
    if memory_format is not None:
        model = model.to(memory_format=memory_format)
    if train and str(cfg.trainer.get("strategy", "auto")) == "fsdp" and distributed.info().enabled:
        model = sharding.shard(model, cfg.trainer.fsdp)  # before the optimizer: the parameters become DTensors
    criterion = build_loss(cfg, data).to(device)
    task.check_criterion(criterion)
    parts = Parts(cfg=cfg, data=data, task=task, model=model, criterion=criterion,
                  dtype=autocast_dtype(cfg, device), memory_format=memory_format, data_s=data_s, notes=notes)
    if train:
        parts.optimizer = build_optimizer(cfg, model, fused=not patterns_of(cfg.model))
        until = cfg.trainer.get("unfreeze_at_epoch")
        if until is not None and world_size > 1:
            raise ConfigError("trainer.unfreeze_at_epoch does not work with several processes yet (DDP fixes the "
                              "trained parameters when it wraps the model); train on one process, or drop it")
        parts.freeze = freeze(model, patterns_of(cfg.model), None if until is None else int(until))
        if parts.freeze is not None:
            say(parts.freeze.describe())
        parts.scheduler, parts.interval = build_scheduler(cfg, parts.optimizer, parts.steps_per_epoch)
        # float16 autocast needs loss scaling; elsewhere a disabled scaler passes everything through
        parts.scaler = torch.amp.GradScaler(device.type, enabled=parts.dtype == torch.float16)
    return parts


def check_data(task: Any, data: Data) -> None:
    """Labels in range and finite inputs in every split, before the first step rather than mid-epoch."""
    for split in ("train", "val", "test"):
        loader = getattr(data, split)
        if getattr(loader, "kind", "") == "memory":
            tensors = loader.tensors
            if torch.is_floating_point(tensors[0]) and not guards.all_finite(tensors[0]):
                raise TrainkitError(f"the {split} inputs contain NaN or infinite values; clean the data first")
            if len(tensors) > 1:
                task.check_targets(tensors[1], split)
        else:
            guards.check_loader_data(task, loader, split)


def first_val_batch(data: Data, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The first validation batch on the device, its inputs checked for NaN/inf."""
    first = next(iter(data.val))
    guards.check_finite_inputs(first[0], "val")
    return tuple(t.to(device) for t in first)


def check_batch(parts: Parts, batch: tuple[torch.Tensor, ...]) -> None:
    """One validation batch through model and loss: shapes fit and the monitored metric exists."""
    sums = parts.task.check_batch(parts.model, parts.criterion, batch)
    check_monitor(parts.task, sums, len(batch[0]), str(parts.cfg.trainer.monitor))


def check_parts(parts: Parts, device: torch.device) -> None:
    """All the checks a run makes before its first step (`check` makes the same, in the same order)."""
    check_data(parts.task, parts.data)
    check_batch(parts, first_val_batch(parts.data, device))


def load_weights(model: nn.Module, state: dict[str, Any], path: Any, cfg: DictConfig, fix: str) -> None:
    """Load a checkpoint's weights into the model built from its config, or say in one line why they do not fit."""
    from trainkit.errors import CheckpointError

    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        brief = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(
            f"the weights in checkpoint '{path}' do not fit the model built from its config "
            f"(model._target_={cfg.model.get('_target_')}): {brief}; {fix}"
        ) from exc
