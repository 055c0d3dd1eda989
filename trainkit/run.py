"""One run: run directory, build, loop, checkpoints and summary. What `train` and `eval` call."""

from __future__ import annotations

import copy
import dataclasses
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from trainkit import checkpoint as ckpt_io
from trainkit import distributed, files, guards, owner, record, sharding, trust
from trainkit.averaging import Averaging
from trainkit.build import count_parameters, resolve_device
from trainkit.config import to_plain, validate
from trainkit.console import early_stop_line, epoch_line, fmt_metrics, say
from trainkit.defaults import fill_trainer_defaults
from trainkit.early_stopping import EarlyStopping
from trainkit.early_stopping import from_config as early_stopping_from_config
from trainkit.errors import ConfigError, TrainkitError
from trainkit.final_test import test_best_and_last
from trainkit.loggers import CSVLogger, Logger, build_loggers, flatten_config, read_metrics
from trainkit.loop import Loop, LoopState, evaluate, fit, global_totals
from trainkit.parts import build_parts, check_parts, load_weights, seed_everything, set_deterministic, versions
from trainkit.perf import compile_model, peak_memory
from trainkit.profiling import StepProfiler
from trainkit.record import resume_command
from trainkit.runinfo import changed_warnings, header_lines, model_source_hash
from trainkit.schedulers import resume_schedule
from trainkit.signals import RunInterrupted, StopOnSignal
from trainkit.sums import StepSums
from trainkit.version import __version__

# Callbacks called as hook(run, point) at named points of a run: "setup" (signal handlers installed,
# nothing built yet), "step" (after every optimizer step and its mid-epoch checkpoint; run.state.step),
# "end" (after the last epoch) and "test" (before the test). Empty in normal use: an instrumentation
# point for tools outside the package, e.g. the tests' fault injection (tests/hooks/).
POINTS: list[Callable[[Run, str], None]] = []


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
        self._sums = StepSums()  # the current epoch's sums at the last step (for a mid-epoch last.pt)
        self.ckpt_dir = run_dir / "checkpoints"
        self.loggers: list[Logger] = []
        self.device: torch.device | None = None
        self.dist = distributed.info()
        self.stop: distributed.StopSignal | None = None
        self.early_stopping: EarlyStopping | None = early_stopping_from_config(cfg.trainer)
        self.state = LoopState(early_stopping=self.early_stopping)  # its clock starts now
        self.stop_epoch: int | None = None
        self.averaging: Averaging | None = None  # trainer.ema / trainer.swa (trainkit.averaging)
        self.profiler: StepProfiler | None = None  # trainer.profile (trainkit.profiling)
        self.lr_found: dict[str, Any] | None = None  # optim.lr=auto: what the range test chose (trainkit.lr_find)

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        cfg = self.cfg
        # A signal during set-up stops at once: there is no step to finish and nothing to save yet.
        again = (f"resume with: {resume_command(self.run_dir, cfg)}" if self.resume_from is not None
                 else "nothing was trained yet: start the run again")
        self.stopper.install(immediate=f"while setting up, before the first step; {again}")
        self._at("setup")
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
        if str(cfg.optim.get("lr")) == "auto":  # before the seed: the real run starts as if the lr were given
            from trainkit.lr_find import resolve_auto_lr

            self.cfg = cfg = copy.deepcopy(cfg)
            self.lr_found = resolve_auto_lr(cfg, self.run_dir / "lr_find", dist.world_size, dist.is_main)
        seed_everything(int(cfg.seed))
        set_deterministic(bool(cfg.trainer.deterministic))
        self.device = device = dist.device or resolve_device(cfg)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.trainer.deterministic
        parts = build_parts(cfg, device, dist.rank, dist.world_size, pretrained=self.resume_from is None)
        check_parts(parts, device)
        self.cfg = cfg = parts.cfg  # with the data's facts: what config_resolved.yaml and the checkpoints hold
        self.parts, self.data, self.task, self.criterion = parts, parts.data, parts.task, parts.criterion
        self.raw_model = model = parts.model
        self._model_hash = model_source_hash(model)
        self.optimizer, self.scheduler, self.interval = parts.optimizer, parts.scheduler, parts.interval
        dtype, scaler, memory_format = parts.dtype, parts.scaler, parts.memory_format
        strategy = str(cfg.trainer.strategy)
        train_model, fallback = distributed.wrap_model(model, device, strategy)
        train_model = compile_model(train_model, device, bool(cfg.trainer.compile))
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
            on_nan=str(cfg.trainer.on_nan),
            is_main=dist.is_main,
        )
        if self.stop is not None:
            self.loop.should_stop = self.stop.check
        else:
            self.loop.should_stop = lambda: self.stopper.requested
        self.loop.on_step_end = self.on_step_end
        if parts.freeze is not None:
            self.loop.on_epoch_start = parts.freeze.at_epoch
        self._ckpt_every = int(cfg.trainer.checkpoint_every_n_steps or 0)  # read once, not every step
        if self.loop.on_nan == "skip_batch" and self.loop.needs_closure:
            raise ConfigError(
                "trainer.on_nan=skip_batch does not work with closure optimizers (LBFGS); "
                "use trainer.on_nan=stop"
            )
        self.averaging = Averaging.from_config(cfg.trainer, model, self.optimizer)
        ckpt = self.restore(self.resume_from) if self.resume_from is not None else None
        self._start_extras()
        resume_epoch = self.state.epoch if ckpt is not None else None
        self.loggers = [CSVLogger(self.run_dir, resume_epoch=resume_epoch)] if dist.is_main else []
        if dist.is_main:
            self.start_loggers(model)
        n_params = count_parameters(model)
        if dist.is_main:
            files.atomic_write_text(self.run_dir / "model.txt", f"{model}\n\nparameters: {n_params:,}\n")
        for line in header_lines(cfg, self.choices, self.run_dir, model, n_params, device, self.data, dist):
            say(line)
        if fallback:
            say(fallback, style="yellow")
        for note in parts.notes + ([self.lr_found["line"]] if self.lr_found else []):
            say(note, style="yellow")
        if self.loop.is_main:
            resumed = None if ckpt is None else (self.resume_from, self.state.epoch, self.state.step)
            record.write_run_files(self.run_dir, cfg, device=device, data=self.data, command=command,
                                   resumed=resumed, argv=sys.argv[1:])
            untrusted = trust.record(self.run_dir, to_plain(cfg))  # eval/resume of it need no --allow
            if untrusted:
                say(untrusted, style="yellow")
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
        for warning in changed_warnings(ckpt, path, self.raw_model):
            say(warning, style="yellow")
        fresh = copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None  # built for this run's epochs
        if sharding.is_sharded(self.raw_model):  # every rank shards the full state it read
            sharding.load_full(self.raw_model, self.optimizer, ckpt["model"], ckpt["optimizer"])
        else:
            load_weights(self.raw_model, ckpt["model"], path, self.cfg,
                         "if the model's code changed, restore it, or start a new run")
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            reached = int(ckpt["step"] if self.interval == "step" else ckpt["epoch"])
            rebuilt = resume_schedule(self.scheduler, fresh, ckpt["scheduler"], self.optimizer, reached)
            if rebuilt:
                say(rebuilt)
        if ckpt.get("scaler"):  # None (older checkpoints) or {} (a disabled scaler): nothing to load
            self.loop.scaler.load_state_dict(ckpt["scaler"])
        if self.averaging is not None:
            self.averaging.load_state_dict(ckpt.get("averaging"))
        if not self.state.load_state_dict(ckpt) and self.early_stopping is not None:
            self._replay_early_stopping()  # a checkpoint from before the counters were saved
        if not self.dist.is_main:  # the partial sums are all ranks' together: rank 0 carries them, once
            self.state.partial_sums = {k: 0.0 for k in self.state.partial_sums}
        if ckpt.get("rng") is None:
            raise TrainkitError(f"checkpoint '{path}' holds no RNG state, so the run cannot continue exactly")
        return ckpt

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

    # ------------------------------------------------------------------ training
    def gathered_state(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """trainer.strategy=fsdp: the full model and optimizer state on rank 0 (a collective: every rank calls it)."""
        return sharding.full_state(self.raw_model, self.optimizer) if sharding.is_sharded(self.raw_model) else None

    def checkpoint_payload(self, gathered: tuple[dict[str, Any], dict[str, Any]] | None = None) -> dict[str, Any]:
        model_state, optim_state = gathered or (self.raw_model.state_dict(), self.optimizer.state_dict())
        return {
            "model": model_state,
            "optimizer": optim_state,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.loop.scaler.state_dict(),  # {} for a disabled scaler
            **self.state.state_dict(),
            **self._model_record(),
            "rng": ckpt_io.rng_state(),
            **({"averaging": self.averaging.state_dict()} if self.averaging is not None else {}),
        }

    def _model_record(self) -> dict[str, Any]:
        """What every checkpoint carries to rebuild its model: eval, predict and export read these."""
        return {"config": to_plain(self.cfg), "data_meta": self.data.meta, "trainkit_version": __version__,
                "model_source_hash": self._model_hash}

    def save_averaged(self, models: dict[str, torch.nn.Module]) -> None:
        """checkpoints/ema.pt and swa.pt: the tested averaged weights as checkpoints of their own.

        `trainkit eval`, `predict` and `export` read them as they read best.pt (model, config, data
        facts); they hold no training state, so `resume=` refuses them (`"averaged"` names the copy).
        """
        if not self.dist.is_main or sharding.is_sharded(self.raw_model):
            return
        for name, module in models.items():
            payload = {"model": module.state_dict(), "averaged": name, "epoch": self.state.epoch, "step": self.state.step,
                       **self._model_record()}
            ckpt_io.atomic_save(payload, self.ckpt_dir / f"{name}.pt")

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        cfg, s = self.cfg.trainer, self.state
        if self.averaging is not None:  # before the monitor check: val_ema_acc may be the monitor
            self.averaging.epoch_end(int(row["epoch"]), self.loop)
            row.update(self._evaluate_copies(self.averaging.val_models(), self.data.val, "val_{}_"))
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
        val_loss = float(row["val_loss"]) if row.get("val_loss") is not None else None
        better = s.improves(value, str(cfg.monitor_mode), monitor, val_loss)  # a tie goes to the lower val_loss
        if better:
            s.best_value, s.best_epoch, s.best_val_loss = value, int(row["epoch"]), val_loss
        es = self.early_stopping  # counted before the save, so last.pt carries this epoch's count
        stop = es is not None and distributed.any_rank(es.update(value))  # every rank: the same decision
        gathered = self.gathered_state()
        if self.dist.is_main:  # every rank holds the same weights and metrics; rank 0 writes them
            # One torch.save; best.pt becomes the same file, linked before last.pt takes its name, so a
            # kill in between leaves best.pt ahead and the resume redoes this epoch.
            best = (self.ckpt_dir / "best.pt",) if better else ()
            ckpt_io.atomic_save(self.checkpoint_payload(gathered), self.ckpt_dir / "last.pt", keep_previous=True,
                                also=best)
        say(epoch_line(row, better))
        if stop:  # after the epoch's checkpoints: last.pt is the epoch it stopped at
            self.stop_epoch, s.stop = int(row["epoch"]), True
            say(early_stop_line(es, monitor, self.stop_epoch, s.best_value, s.best_epoch))

    def stopped_early_before_resume(self) -> bool:
        """A resumed run that early stopping had already ended (its counters say so): train no further epoch.

        Without this, resuming it (or a kill between its last.pt and its summary) trained one more epoch.
        """
        es, s = self.early_stopping, self.state
        if es is None or self.resume_from is None or s.batch_in_epoch or s.epoch == 0:
            return False
        if distributed.any_rank(es.should_stop()):
            self.stop_epoch = s.epoch
            return True
        return False

    def _replay_early_stopping(self) -> None:
        """Old checkpoints hold no early-stopping counters: rebuild them from rank 0's metrics.csv."""
        path = self.run_dir / "metrics.csv"
        if self.dist.is_main and path.is_file():
            monitor = str(self.cfg.trainer.monitor)
            self.early_stopping.replay(float(r[monitor]) for r in read_metrics(path)
                                       if r["epoch"] <= self.state.epoch and r.get(monitor) is not None)

    def elapsed(self) -> float:
        """Wall time of the run so far, across resumes."""
        return self.state.elapsed()

    def on_step_end(self, state: LoopState, sums: StepSums) -> None:
        """After every optimizer step: a mid-epoch last.pt every trainer.checkpoint_every_n_steps steps."""
        self._sums = sums  # the loop's own sums, read only when a checkpoint is written
        if self._ckpt_every and state.step % self._ckpt_every == 0:
            self.save_mid_epoch()
        self._at("step")

    def _start_extras(self) -> None:
        """Averaging and profiler: their per-step calls go in front of on_step_end only when they are on."""
        if self.averaging is not None:
            self.averaging.begin(self.state.epoch, self.loop)
        self.profiler = StepProfiler.from_config(self.cfg.trainer, self.run_dir, self.device, say, self.dist.is_main)
        calls = [c for c in (self.averaging and self.averaging.on_step, self.profiler and self.profiler.step) if c]
        if calls:
            after = self.loop.on_step_end

            def on_step_end(state: LoopState, sums: StepSums) -> None:
                for call in calls:
                    call()
                if after is not None:
                    after(state, sums)

            self.loop.on_step_end = on_step_end

    def _evaluate_copies(self, models: dict[str, torch.nn.Module], loader: Any, prefix: str) -> dict[str, float]:
        """Metrics of averaged copies of the model on `loader`, keyed prefix.format(name) + metric."""
        out: dict[str, float] = {}
        for name, module in models.items():
            metrics = evaluate(dataclasses.replace(self.loop, model=module), loader)
            out.update({prefix.format(name) + k: v for k, v in metrics.items()})
        return out

    def _at(self, point: str) -> None:
        """Call the POINTS callbacks (none in normal use) at a named point of the run."""
        for hook in POINTS:
            hook(self, point)

    def save_mid_epoch(self) -> None:
        """last.pt at the current step, with the epoch's partial sums so the epoch's metrics stay exact.

        Under DDP every rank calls it at the same step: the partial sums are summed over all ranks
        (one collective), so the checkpoint holds the whole run's part of the epoch, not rank 0's.
        """
        s = self.state
        if s.batch_in_epoch:
            s.partial_sums = global_totals(self._sums)
        # The loss is read only every log_every_n_steps: the weights are checked at every write,
        # so a NaN model never replaces a good last.pt or last.prev.pt (every rank: the same weights).
        guards.assert_finite_model(self.raw_model, s.epoch + 1, s.step)
        gathered = self.gathered_state()
        if not self.loop.is_main:
            return
        ckpt_io.atomic_save(self.checkpoint_payload(gathered), self.ckpt_dir / "last.pt", keep_previous=True)

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        epochs = 1 if cfg.trainer.fast_dev_run is not None else int(cfg.trainer.epochs)
        last = self.state.epoch if self.stopped_early_before_resume() else epochs
        fit(self.loop, self.data.train, self.data.val, self.state, last, str(cfg.trainer.monitor), self.on_epoch_end)
        if self.profiler is not None:
            self.profiler.stop()
        self._at("end")
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
        self._at("test")
        tested = test_best_and_last(self)  # test_* (best.pt, the contract) and last_test_* (last.pt)
        summary = self.summary("completed")
        summary.update(tested)
        if self.averaging is not None:  # the final averaged weights beside best.pt's: ema_test_acc, swa_test_acc
            models = self.averaging.test_models(self.data.train, self.device)
            copies = self._evaluate_copies(models, self.data.test, "{}_test_")
            summary.update(copies)
            say(f"test (averaged weights): {fmt_metrics(copies)}", style="bold")
            self.save_averaged(models)
        if self.dist.is_main:
            files.write_json(self.run_dir / "summary.json", summary)
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
        if self.cfg.trainer.get("fast_dev_run") is not None:
            out["fast_dev_run"] = int(self.cfg.trainer.fast_dev_run)  # a smoke test, not a result
        if self.lr_found is not None:
            out["lr_find"] = {k: v for k, v in self.lr_found.items() if k != "line"}
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
            files.write_json(self.run_dir / "summary.json", summary)
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
            files.write_json(self.run_dir / "summary.json", self.summary("interrupted"))
        say(f"stopped by signal {self.stop.received or 'on another rank'} at epoch {self.state.epoch + 1}, "
            f"step {self.state.step}; saved {self.ckpt_dir / 'last.pt'}", style="yellow")
        distributed.barrier()  # no rank leaves before last.pt is on disk
        raise SystemExit(self.stop.exit_code)

    def close(self) -> None:
        if self.profiler is not None:
            self.profiler.stop()
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
    fill_trainer_defaults(cfg)  # a resumed checkpoint's config from an older trainkit lacks newer keys
    run = Run(cfg, run_dir, choices, resume_from=resume_from, command=command)
    owns = owner.is_main_process()  # under DDP rank 0 owns the directory for the whole group
    if owns:  # before anything is written: refused here, nothing of the other run is touched
        owner.take(run_dir, resuming=resume_from is not None, overwrite=bool(cfg.trainer.overwrite),
                   retry_failed=bool(cfg.trainer.skip_done) or bool(cfg.trainer.autoresume))
    try:
        try:
            run.setup()
            return run.train()
        except torch.cuda.OutOfMemoryError as exc:
            s = getattr(run, "state", None)
            where = f"at epoch {s.epoch + 1}, step {s.step}" if s is not None else "while setting up"
            bs, acc = cfg.data.get("batch_size"), cfg.trainer.accumulate
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
