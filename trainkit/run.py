"""One run: run directory, build, loop, checkpoints and summary. What `train` and `eval` call."""

from __future__ import annotations

import json
import os
import platform
import random
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import trainkit
from trainkit import checkpoint as ckpt_io
from trainkit import distributed, files, guards, owner, record
from trainkit.build import (
    autocast_dtype,
    build_loss,
    build_model,
    build_optimizer,
    build_scheduler,
    build_task,
    count_parameters,
    resolve_device,
)
from trainkit.config import GROUPS, to_plain, validate
from trainkit.console import fmt_metrics, say
from trainkit.data import Data, build_data
from trainkit.early_stopping import EarlyStopping
from trainkit.early_stopping import from_config as early_stopping_from_config
from trainkit.errors import CheckpointError, ConfigError, TrainkitError
from trainkit.loggers import CSVLogger, Logger, build_loggers, flatten_config, read_metrics
from trainkit.loop import Loop, LoopState, evaluate, fit, read_sums
from trainkit.metrics import summary_numbers, write_test_report
from trainkit.monitor import describe as describe_monitor
from trainkit.perf import compile_model, peak_memory, wants_channels_last
from trainkit.resume import resume_command
from trainkit.signals import RunInterrupted, StopOnSignal, injected_signal
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
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "trainkit": trainkit.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """summary.json, eval.json: atomically, never through a planted link (trainkit.files)."""
    files.atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def model_source_hash(model: torch.nn.Module) -> str | None:
    """A hash of the model class's source: resume warns when the user's model code changed."""
    import hashlib
    import inspect

    try:
        source = inspect.getsource(type(model))
    except (OSError, TypeError):  # defined in a REPL or a built module: nothing to compare
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def describe_config(cfg: DictConfig, choices: dict[str, str]) -> list[str]:
    """One compact line per group: the option chosen and its settings."""
    lines = []
    for group in GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        plain = OmegaConf.to_container(node, resolve=True)
        items = []
        if isinstance(plain, dict):
            for k, v in plain.items():
                if k == "_target_" or v is None or isinstance(v, (dict, list)) and len(str(v)) > 40:
                    continue  # compact: unset options and long nested settings are in .hydra/config.yaml
                items.append(f"{k}={v}")
        lines.append(f"  {group:<10}{choices.get(group, ''):<16}{' '.join(items)}")
    lines.append(f"  {'seed':<10}{cfg.seed}")
    lines.append(f"  {'monitor':<10}{describe_monitor(cfg, choices.get('task'))}")
    return lines


class Run:
    """A training run in `run_dir`: builds everything from `cfg`, trains, tests, summarises."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        choices: dict[str, str] | None = None,
        resume_from: Path | None = None,
        command: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.choices = choices or {}
        self.resume_from = resume_from
        self.command = command
        self.stopper = StopOnSignal()  # one process; under a process group distributed.StopSignal instead
        self._sums: dict[str, torch.Tensor] = {}
        self._seen_step = 0  # the optimizer step at the last batch end (step boundaries are where it changes)
        self._at_boundary = True
        self._signal_at = injected_signal()
        self.ckpt_dir = run_dir / "checkpoints"
        self.start = time.perf_counter()
        self.earlier_time_s = 0.0  # time spent before the last resume (from the checkpoint)
        self.loggers: list[Logger] = []
        self.device: torch.device | None = None
        self.dist = distributed.info()
        self.stop: distributed.StopSignal | None = None
        self.early_stopping: EarlyStopping | None = early_stopping_from_config(cfg.trainer)
        self.stop_epoch: int | None = None

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        cfg = self.cfg
        # A signal during set-up stops at once: there is no step to finish and nothing to save yet.
        again = (f"resume with: {resume_command(self.run_dir, cfg)}" if self.resume_from is not None
                 else "nothing was trained yet: start the run again")
        self.stopper.install(immediate=f"while setting up, before the first step; {again}")
        self._inject("setup")
        validate(cfg)
        self.dist = dist = distributed.setup_run(cfg, self.run_dir)  # torchrun/SLURM: one group, one run dir
        if dist.is_main:  # only rank 0 writes into the run directory
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self.ckpt_dir.mkdir(exist_ok=True)
            except OSError as exc:
                raise files.fault(self.ckpt_dir, exc) from None
        command = self.command or shlex.join(["trainkit", "train", *sys.argv[1:]])
        if dist.is_main and (self.resume_from is None or not (self.run_dir / "cmd.txt").exists()):
            files.atomic_write_text(self.run_dir / "cmd.txt", command + "\n")
        seed_everything(int(cfg.seed))
        set_deterministic(bool(cfg.trainer.get("deterministic")))
        self.device = device = dist.device or resolve_device(cfg)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.trainer.get("deterministic")
        self.data: Data = build_data(cfg, device, dist.rank, dist.world_size)
        self.task = build_task(cfg)
        model = build_model(cfg).to(device)
        memory_format = torch.channels_last if wants_channels_last(model, device) else None
        if memory_format is not None:
            model = model.to(memory_format=memory_format)
        self.criterion = build_loss(cfg, self.data).to(device)
        self.task.check_criterion(self.criterion)
        self._check_data(model)
        self.raw_model = model
        self._model_hash = model_source_hash(model)
        self.optimizer = build_optimizer(cfg, model)
        steps_per_epoch = max(1, -(-len(self.data.train) // int(cfg.trainer.accumulate)))
        self.scheduler, self.interval = build_scheduler(cfg, self.optimizer, steps_per_epoch)
        dtype = autocast_dtype(cfg, device)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        strategy = str(cfg.trainer.get("strategy", "auto"))
        train_model, fallback = distributed.wrap_model(model, device, strategy)
        train_model = compile_model(train_model, device, bool(cfg.trainer.get("compile")))
        if dist.world_size > 1:  # a signal on any rank stops all ranks at the same step
            every = 1 if dist.backend == "gloo" else int(cfg.trainer.log_every_n_steps)
            self.stopper.restore()
            self.stop = distributed.StopSignal(every).install()
        self.loop = Loop(
            model=train_model,
            criterion=self.criterion,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            interval=self.interval,
            task=self.task,
            device=device,
            dtype=dtype,
            scaler=scaler,
            grad_clip=cfg.trainer.grad_clip,
            accumulate=int(cfg.trainer.accumulate),
            log_every=int(cfg.trainer.log_every_n_steps),
            progress=str(cfg.trainer.progress),
            memory_format=memory_format,
            on_nan=str(cfg.trainer.get("on_nan", "stop")),
            is_main=dist.is_main,
        )
        if self.stop is not None:
            self.loop.should_stop = self.stop.check
        else:
            self.loop.should_stop = lambda: self.stopper.requested and self._at_boundary
        self.loop.on_step_end = self.on_step_end
        if self.loop.on_nan == "skip_batch" and self.loop.needs_closure:
            raise ConfigError(
                "trainer.on_nan=skip_batch does not work with closure optimizers (LBFGS); "
                "use trainer.on_nan=stop"
            )
        self.state = LoopState()
        ckpt = self.restore(self.resume_from) if self.resume_from is not None else None
        resume_epoch = self.state.epoch if ckpt is not None else None
        self.loggers = [CSVLogger(self.run_dir, resume_epoch=resume_epoch)] if dist.is_main else []
        if dist.is_main:
            self.start_loggers(model)
        n_params = count_parameters(model)
        if dist.is_main:
            files.atomic_write_text(self.run_dir / "model.txt", f"{model}\n\nparameters: {n_params:,}\n")
        say(f"trainkit {trainkit.__version__}  run dir: {self.run_dir}")
        for line in describe_config(cfg, self.choices):
            say(line)
        say(str(model))
        why = self.data.info.get("loader_reason")
        say(f"parameters: {n_params:,}   device: {device}   precision: {cfg.device.precision}   "
            f"data: train {self.data.sizes['train']}, val {self.data.sizes['val']}, test {self.data.sizes['test']} "
            f"({self.data.loader_kind} loader{': ' + why if why else ''})")
        if dist.enabled:
            bs = int(cfg.data.batch_size)
            say(f"distributed: {dist.world_size} processes ({dist.backend}), data.batch_size={bs} "
                f"per process, global batch {bs * dist.world_size}")
        if fallback:
            say(fallback, style="yellow")
        if self.loop.is_main:
            if ckpt is None or not (self.run_dir / "config_resolved.yaml").exists():
                record.write_resolved_config(self.run_dir, cfg)
            if ckpt is None or not (self.run_dir / "record.json").exists():
                record.write_record(self.run_dir, record.build_record(
                    cfg=cfg, device=device, data=self.data, command=command,
                    deterministic=bool(cfg.trainer.get("deterministic"))))
            if ckpt is not None:
                record.note_resume(
                    self.run_dir, command=shlex.join(["trainkit", "train", *sys.argv[1:]]),
                    checkpoint=str(self.resume_from), epoch=self.state.epoch, step=self.state.step,
                    device=device,
                )
        if ckpt is not None:
            s = self.state
            where = f"end of epoch {s.epoch}"
            if s.batch_in_epoch:
                where = f"epoch {s.epoch + 1}, batch {s.batch_in_epoch}"
            say(f"resumed from {self.resume_from} at {where} (step {s.step})")
            # Last of all: the RNGs continue exactly where the checkpoint left them.
            ckpt_io.set_rng_state(ckpt["rng"])
        self.stopper.immediate = None  # from here a signal stops at the next step boundary, with last.pt

    def restore(self, path: Path) -> dict[str, Any]:
        """Load model, optimizer, scheduler, scaler and counters from a checkpoint (RNGs: end of setup)."""
        ckpt = ckpt_io.load(path, map_location=self.device)
        try:
            self.raw_model.load_state_dict(ckpt["model"])
        except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
            from trainkit.evaluate import _brief  # eval words a misfit the same way

            raise CheckpointError(
                f"the weights in checkpoint '{path}' do not fit the model built from its config "
                f"(model._target_={self.cfg.model.get('_target_')}): {_brief(exc)}; if the model's code changed, "
                "restore it, or start a new run"
            ) from None
        self._warn_if_changed(ckpt, path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.loop.scaler is not None and ckpt.get("scaler") is not None:
            self.loop.scaler.load_state_dict(ckpt["scaler"])
        self.state = LoopState(
            epoch=int(ckpt["epoch"]),
            step=int(ckpt["step"]),
            batch_in_epoch=int(ckpt.get("batch_in_epoch") or 0),
            best_value=ckpt.get("best_value"),
            best_epoch=ckpt.get("best_epoch"),
            partial_sums=dict(ckpt.get("partial_sums") or {}),
            epoch_lr=ckpt.get("epoch_lr"),
        )
        if not self.dist.is_main:  # the partial sums are all ranks' together: rank 0 carries them, once
            self.state.partial_sums = {k: 0.0 for k in self.state.partial_sums}
        self._seen_step = self.state.step
        self.earlier_time_s = float(ckpt.get("wall_time_s") or 0.0)
        if ckpt.get("rng") is None:
            raise TrainkitError(f"checkpoint '{path}' holds no RNG state, so the run cannot continue exactly")
        return ckpt

    def _warn_if_changed(self, ckpt: dict[str, Any], path: Path) -> None:
        """One yellow line each when the checkpoint was made by another trainkit or another model code."""
        made_by = ckpt.get("trainkit_version")
        if made_by is not None and str(made_by) != trainkit.__version__:
            say(f"warning: {path} was written by trainkit {made_by}, this is {trainkit.__version__}; "
                "the run continues, but numbers may differ from an uninterrupted run", style="yellow")
        stored, now = ckpt.get("model_source_hash"), model_source_hash(self.raw_model)
        if stored is not None and now is not None and stored != now:
            say(f"warning: the code of {type(self.raw_model).__name__} changed since {path} was written; "
                "the weights still fit, but the run may not continue as it began", style="yellow")

    def start_loggers(self, model: torch.nn.Module) -> None:
        """Build the `logger=` entries, hand them the config and graph, and hook the loop's log interval."""
        build_loggers(self.cfg, self.run_dir, into=self.loggers)
        params = flatten_config(to_plain(self.cfg), self.choices)
        for logger in self.loggers:
            logger.log_hparams(params)
            logger.log_graph(model, lambda: next(iter(self.data.val))[0])
        self.loop.on_log = self.log_step

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log_step(step, metrics)

    def _check_data(self, model: torch.nn.Module) -> None:
        """Labels in range and shapes that fit, before the first step rather than mid-epoch."""
        for split in ("train", "val", "test"):
            loader = getattr(self.data, split)
            if getattr(loader, "kind", "") == "memory":
                tensors = loader.tensors
                if torch.is_floating_point(tensors[0]) and not bool(torch.isfinite(tensors[0]).all()):
                    raise TrainkitError(f"the {split} inputs contain NaN or infinite values; clean the data first")
                if len(tensors) > 1:
                    self.task.check_targets(tensors[1], split)
            else:
                guards.check_loader_data(self.task, loader, split)
        first = next(iter(self.data.val))
        guards.check_finite_inputs(first[0], "val")
        batch = tuple(t.to(self.device) for t in first)
        sums = self.task.check_batch(model, self.criterion, batch)
        check_monitor(self.task, sums, len(batch[0]), str(self.cfg.trainer.monitor))

    # ------------------------------------------------------------------ training
    def checkpoint_payload(self) -> dict[str, Any]:
        s = self.state
        return {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.loop.scaler.state_dict() if self.loop.scaler is not None else None,
            "epoch": s.epoch,
            "step": s.step,
            "batch_in_epoch": s.batch_in_epoch,
            "best_value": s.best_value,
            "best_epoch": s.best_epoch,
            "partial_sums": dict(s.partial_sums) if s.batch_in_epoch else {},
            "epoch_lr": s.epoch_lr,
            "wall_time_s": self.elapsed(),
            "config": to_plain(self.cfg),
            "rng": ckpt_io.rng_state(),
            "trainkit_version": trainkit.__version__,
            "model_source_hash": self._model_hash,
        }

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        cfg, s = self.cfg.trainer, self.state
        monitor = str(cfg.monitor)
        if monitor not in row:
            raise ConfigError(
                f"trainer.monitor={monitor} is not a metric of this run; choose one of: "
                + ", ".join(k for k in row if k.startswith(("train_", "val_")) and not k.endswith(("_s", "_per_s")))
            )
        value = float(row[monitor])
        for logger in self.loggers:
            logger.log_epoch(row)
        guards.assert_finite_epoch(self.raw_model, row)  # never save (or call best) a NaN model; every rank
        better = s.best_value is None or (value < s.best_value if cfg.monitor_mode == "min" else value > s.best_value)
        if better:
            s.best_value, s.best_epoch = value, int(row["epoch"])
        if self.dist.is_main:  # every rank holds the same weights and metrics; rank 0 writes them
            payload = self.checkpoint_payload()
            if better:  # best.pt first: a kill between the two saves then redoes this epoch on resume
                ckpt_io.atomic_save(payload, self.ckpt_dir / "best.pt")
            ckpt_io.atomic_save(payload, self.ckpt_dir / "last.pt", keep_previous=True)
        self.check_early_stop(value, int(row["epoch"]))  # every rank sees the same global metrics: same decision
        parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
        parts += [f"train {k[6:]} {row[k]:.3f}" for k in row if k.startswith("train_") and k not in
                  ("train_loss", "train_time_s", "train_samples_per_s")]
        parts += [f"val loss {row['val_loss']:.4f}"]
        parts += [f"val {k[4:]} {row[k]:.3f}" for k in row if k.startswith("val_") and k != "val_loss"]
        parts += [f"lr {row['lr']:.3g}", f"time {row['train_time_s']:.2f} sec", f"{row['train_samples_per_s']:,.0f} samples/s"]
        say(", ".join(parts) + (" *" if better else ""))
        if self.stop_epoch is not None:
            es = self.early_stopping
            say(f"early stopping at epoch {self.stop_epoch}: {monitor} did not improve by more than {es.min_delta:g} "
                f"for {es.wait} epoch(s) (patience {es.patience}); best {s.best_value:.4f} at epoch {s.best_epoch}")

    def stopped_early_before_resume(self) -> bool:
        """A resumed run that early stopping had already ended (same patience): train no further epoch.

        Without this, resuming it (or a kill between its last.pt and its summary) trained one more epoch.
        """
        es, s = self.early_stopping, self.state
        if es is None or self.resume_from is None or s.batch_in_epoch or s.epoch == 0 or es.seen:
            return False
        stop = False
        if self.dist.is_main and (self.run_dir / "metrics.csv").is_file():
            monitor = str(self.cfg.trainer.monitor)
            es.replay(float(r[monitor]) for r in read_metrics(self.run_dir / "metrics.csv")
                      if r["epoch"] <= s.epoch and r.get(monitor) is not None)
            stop = es.wait >= es.patience
        if distributed.any_rank(stop):
            self.stop_epoch = s.epoch
            return True
        return False

    def check_early_stop(self, value: float, epoch: int) -> None:
        """After the epoch's checkpoints: count epochs without improvement; ask fit() to stop at patience."""
        es = self.early_stopping
        if es is None:
            return
        resumed = es.seen == 0 and epoch > 1 and (self.run_dir / "metrics.csv").is_file()
        if resumed and self.dist.is_main:  # replay the epochs before the resume from rank 0's metrics.csv
            monitor = str(self.cfg.trainer.monitor)
            es.replay(float(r[monitor]) for r in read_metrics(self.run_dir / "metrics.csv")
                      if r["epoch"] < epoch and r.get(monitor) is not None)
        if distributed.any_rank(es.update(value)):  # all ranks stop at the same epoch
            self.stop_epoch = epoch
            self.state.stop = True

    def elapsed(self) -> float:
        """Wall time of the run so far, across resumes."""
        return self.earlier_time_s + time.perf_counter() - self.start

    def on_step_end(self, state: LoopState, sums: dict[str, torch.Tensor]) -> None:
        """After every batch: mid-epoch checkpoints every trainer.checkpoint_every_n_steps optimizer steps."""
        self._sums = sums
        self._at_boundary = state.step != self._seen_step
        if not self._at_boundary:
            return  # inside a gradient accumulation: not a point a run can stop or resume at
        self._seen_step = state.step
        every = self.cfg.trainer.get("checkpoint_every_n_steps")
        if every and state.step % int(every) == 0:
            self.save_mid_epoch()
        if self._signal_at is not None and state.step == self._signal_at[0]:
            os.kill(os.getpid(), self._signal_at[1])

    def _inject(self, phase: str) -> None:
        """TRAINKIT_TEST_SIGNAL=setup|end|test:NAME: the test hook's signal at a phase outside the loop."""
        if self._signal_at is not None and self._signal_at[0] == phase:
            os.kill(os.getpid(), self._signal_at[1])

    def save_mid_epoch(self) -> None:
        """last.pt at the current step, with the epoch's partial sums so the epoch's metrics stay exact.

        Under DDP every rank calls it at the same step: the partial sums are summed over all ranks
        (one collective), so the checkpoint holds the whole run's part of the epoch, not rank 0's.
        """
        s = self.state
        if s.batch_in_epoch:
            sums = {k: v for k, v in self._sums.items() if k != "count"}
            count = int(self._sums["count"]) if "count" in self._sums else 0
            s.partial_sums = read_sums(*distributed.all_reduce_sums(sums, count))
        # The loss is read only every log_every_n_steps: the weights are checked at every write,
        # so a NaN model never replaces a good last.pt or last.prev.pt (every rank: the same weights).
        guards.assert_finite_model(self.raw_model, s.epoch + 1, s.step)
        if not self.loop.is_main:
            return
        ckpt_io.atomic_save(self.checkpoint_payload(), self.ckpt_dir / "last.pt", keep_previous=True)

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        epochs = int(cfg.trainer.epochs)
        last = self.state.epoch if self.stopped_early_before_resume() else epochs
        fit(self.loop, self.data.train, self.data.val, self.state, last, str(cfg.trainer.monitor), self.on_epoch_end)
        self._inject("end")
        if self.stop is not None and self.stop.stopped:
            self.interrupted()
        resume_with = f"resume with: {resume_command(self.run_dir, self.cfg)}"
        if self.stopper.requested:  # mid-epoch, or during the last epoch's validation: still interrupted
            finished = self.state.epoch >= epochs and not self.state.batch_in_epoch
            if not finished:
                self.save_mid_epoch()
            self.stopper.restore()
            name = signal.Signals(self.stopper.signum).name
            where = (f"after the last epoch ({self.state.epoch}), before the test" if finished
                     else f"at epoch {self.state.epoch + 1}, step {self.state.step}")
            raise RunInterrupted(
                f"{name}: stopped {where}; wrote {self.ckpt_dir / 'last.pt'}\n{resume_with}",
                int(self.stopper.signum),
            )
        # Training is over and last.pt holds it: a signal now stops the test at once (resume re-runs it).
        self.stopper.immediate = f"during the test, after training finished ({self.ckpt_dir / 'last.pt'}); {resume_with}"
        self._inject("test")
        if self.dist.is_main:
            best = ckpt_io.load(self.ckpt_dir / "best.pt")
            self.raw_model.load_state_dict(best["model"])
        distributed.broadcast_module(self.raw_model)  # the other ranks get best.pt's weights from rank 0
        test = evaluate(self.loop, self.data.test)
        say(f"test (best epoch {self.state.best_epoch}): {fmt_metrics(test)}", style="bold")
        report = write_test_report(self, test)
        summary = self.summary("completed")
        summary.update({f"test_{k}": v for k, v in test.items()})
        for key, value in summary_numbers(report).items():
            summary.setdefault(key, value)
        if self.dist.is_main:
            write_json(self.run_dir / "summary.json", summary)
            self.log_summary(summary)
        say(f"run dir: {self.run_dir}")
        return summary

    def summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        s = self.state if hasattr(self, "state") else LoopState()
        out: dict[str, Any] = {
            "status": status,
            "monitor": str(self.cfg.trainer.monitor),
            "monitor_mode": str(self.cfg.trainer.monitor_mode),
            "best_value": s.best_value,
            "best_epoch": s.best_epoch,
            "epochs": s.epoch,
            "steps": s.step,
            "wall_time_s": self.elapsed(),
            "seed": int(self.cfg.seed),
            "world_size": self.dist.world_size,
            "device": str(self.device) if self.device is not None else None,
            "precision": str(self.cfg.device.precision),
            "run_dir": str(self.run_dir),
            "versions": versions(),
            "stopped_early": self.stop_epoch is not None,
            "stop_epoch": self.stop_epoch,
        }
        if hasattr(self, "data"):
            out["data"] = {"sizes": self.data.sizes, "fingerprint": self.data.fingerprint, "loader": self.data.loader_kind,
                           "loader_reason": self.data.info.get("loader_reason")}
        out.update(peak_memory(self.device))
        if error is not None:
            out["error"] = error
        return out

    def fail(self, error: BaseException, status: str = "failed") -> None:
        """Leave a summary that says the run failed and why (sweeps and reports show it)."""
        if not self.dist.is_main or getattr(self, "_stopped", False):
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            message = str(error).splitlines()[0] if str(error) else ""
            message = message or ("interrupted" if isinstance(error, KeyboardInterrupt) else "no message")
            summary = self.summary(status, f"{type(error).__name__}: {message}")
            write_json(self.run_dir / "summary.json", summary)
        except (OSError, TrainkitError):  # disk full or a planted link: the error itself is what to report
            return
        self.log_summary(summary)

    def log_summary(self, summary: dict[str, Any]) -> None:
        for logger in self.loggers:
            try:
                logger.log_summary(summary)
            except Exception as exc:  # a failing sink must not hide the run's result or its error
                say(f"{type(logger).__name__}: could not log the summary: {exc}", style="yellow")

    def interrupted(self) -> None:
        """A signal stopped all ranks at one step: rank 0 saves last.pt and summary; all exit 128+signal."""
        assert self.stop is not None
        self._stopped = True
        finite = guards.model_is_finite(self.raw_model)  # the same weights on every rank
        if finite:  # a NaN model is never saved, even on a signal
            self.save_mid_epoch()  # every rank: the epoch's partial sums up to this step, summed over ranks
        if self.dist.is_main:
            if not finite:
                say("the weights are NaN/inf: last.pt keeps the last good epoch", style="yellow")
            write_json(self.run_dir / "summary.json", self.summary("interrupted"))
        say(f"stopped by signal {self.stop.received or 'on another rank'} at epoch {self.state.epoch + 1}, "
            f"step {self.state.step}; saved {self.ckpt_dir / 'last.pt'}", style="yellow")
        distributed.barrier()  # no rank leaves before last.pt is on disk
        raise SystemExit(self.stop.exit_code)

    def close(self) -> None:
        self.stopper.restore()
        for logger in self.loggers:
            logger.close()
        if self.stop is not None:
            self.stop.restore()
        distributed.cleanup()


def train(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict[str, str] | None = None,
    resume_from: Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train from a composed config into `run_dir` (continuing `resume_from` if given).

    On failure leave a failed (or interrupted) summary and re-raise.
    """
    run = Run(cfg, run_dir, choices, resume_from=resume_from, command=command)
    owns = owner.is_main_process()  # under DDP rank 0 owns the directory for the whole group
    if owns:  # before anything is written: refused here, nothing of the other run is touched
        owner.take(run_dir, resuming=resume_from is not None, overwrite=bool(cfg.trainer.get("overwrite")),
                   retry_failed=bool(cfg.trainer.get("skip_done")))
    try:
        try:
            run.setup()
            return run.train()
        except torch.cuda.OutOfMemoryError as exc:
            s = getattr(run, "state", None)
            where = f"at epoch {s.epoch + 1}, step {s.step}" if s is not None else "while setting up"
            bs, acc = cfg.data.get("batch_size"), cfg.trainer.get("accumulate")
            raise guards.oom_error(exc, bs, acc, run.device, where) from exc
    except RunInterrupted as exc:
        run.fail(exc, status="interrupted")
        raise
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        run.close()
        if owns:
            owner.release(run_dir)
