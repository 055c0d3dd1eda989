"""Averaged weights beside the raw ones: an EMA after every optimizer step, SWA over the last epochs.

Both are `torch.optim.swa_utils.AveragedModel`s of the run's raw model (not its DDP/compiled wrapper).
`trainer.ema.decay` averages every step (`get_ema_multi_avg_fn`, buffers too, as timm's model EMA
does); `trainer.swa.start_epoch=K` switches the schedule to `SWALR` for epochs K.. and averages each
of their final weights, with BatchNorm statistics recomputed (`update_bn`) before the test. Their
state travels in the checkpoint under "averaging" (tensors and plain numbers: weights_only loads).
Built only when asked for: a run without them has no object here and no per-step call.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn


class Averaging:
    """The run's EMA and/or SWA copies of `model`, and the SWA phase's schedule."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema_decay: float | None = None,
                 swa_start: int | None = None, swa_lr: float | None = None, anneal_epochs: int = 1) -> None:
        self.model, self.optimizer = model, optimizer
        self.ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
                    if ema_decay is not None else None)
        self.swa = AveragedModel(model) if swa_start is not None else None
        self.swa_start, self.swa_lr, self.anneal_epochs = swa_start, swa_lr, anneal_epochs
        self.swa_scheduler: SWALR | None = None
        self._scheduler_state: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, trainer: DictConfig, model: nn.Module, optimizer: Any) -> Averaging | None:
        """None unless trainer.ema.decay or trainer.swa.start_epoch is set (read once, at set-up)."""
        decay, start = trainer.ema.decay, trainer.swa.start_epoch
        if decay is None and start is None:
            return None
        return cls(model, optimizer, None if decay is None else float(decay), None if start is None else int(start),
                   None if trainer.swa.lr is None else float(trainer.swa.lr), int(trainer.swa.anneal_epochs))

    def on_step(self) -> None:
        """After every optimizer step: the EMA takes in the new weights."""
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def epoch_end(self, epoch: int, loop: Any) -> None:
        """After epoch `epoch` (1-based): SWA averages it once in its phase; the phase starts after epoch K-1."""
        if self.swa is None:
            return
        if epoch >= self.swa_start:
            self.swa.update_parameters(self.model)
        if epoch + 1 >= self.swa_start:
            self.start_swa(loop)

    def start_swa(self, loop: Any) -> None:
        """The SWA phase's schedule replaces the run's own (its state stays in the checkpoint's "scheduler")."""
        if self.swa_scheduler is None:
            lr = self.swa_lr if self.swa_lr is not None else float(self.optimizer.param_groups[0]["lr"])
            self.swa_scheduler = SWALR(self.optimizer, swa_lr=lr, anneal_epochs=self.anneal_epochs)
            if self._scheduler_state is not None:  # resumed inside the phase
                self.swa_scheduler.load_state_dict(self._scheduler_state)
            else:  # epoch K is the first of the anneal: with anneal_epochs=1 it trains at swa.lr
                with warnings.catch_warnings():  # "step() before optimizer.step()": on purpose, between epochs
                    warnings.simplefilter("ignore", UserWarning)
                    self.swa_scheduler.step()
        loop.scheduler, loop.interval = self.swa_scheduler, "epoch"

    def val_models(self) -> dict[str, nn.Module]:
        """The copies validated after every epoch (SWA's needs its BatchNorm pass first: tested only)."""
        return {"ema": self.ema.module} if self.ema is not None else {}

    def test_models(self, train_loader: Any, device: torch.device) -> dict[str, nn.Module]:
        """The copies to test at the end: the EMA, and the SWA average once it holds an epoch."""
        out = self.val_models()
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            update_bn(train_loader, self.swa, device)  # a no-op for models without BatchNorm
            out["swa"] = self.swa.module
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "swa": self.swa.state_dict() if self.swa is not None else None,
            "swa_scheduler": self.swa_scheduler.state_dict() if self.swa_scheduler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """The copies from a checkpoint's "averaging"; the SWA schedule's state waits for `begin`."""
        state = state or {}
        for name in ("ema", "swa"):
            copy = getattr(self, name)
            if copy is not None and state.get(name) is not None:
                copy.load_state_dict(state[name])
        self._scheduler_state = state.get("swa_scheduler")

    def begin(self, epochs_done: int, loop: Any) -> None:
        """At set-up (fresh or resumed after `epochs_done` epochs): inside the SWA phase, its schedule runs."""
        if self.swa is not None and epochs_done + 1 >= self.swa_start:
            self.start_swa(loop)
