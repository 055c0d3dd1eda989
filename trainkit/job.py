"""The Hydra job: run Hydra's app (one run or a sweep) and, in each job, resume, skip or train.

Entry layer: the CLI and the Python API call `run_hydra` and get back what the runs returned.
Light at import (no torch, no Hydra) so `trainkit --help` stays instant.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainkit import autoresume
from trainkit.errors import ConfigError, TrainkitError, debug_enabled, report
from trainkit.signals import RunInterrupted, StopOnSignal

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from trainkit.resume import ResumePlan


@dataclass
class Runs:
    """What `run_hydra` hands back: each job's summary, the errors that ended jobs, the exit code.

    `stopped` is the exit a failed single run (or an interrupted sweep) asks for: the CLI raises
    SystemExit(stopped), the Python API raises the error instead.
    """

    exit_code: int = 0
    summaries: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stopped: int | None = None


class _StopHydra(SystemExit):
    """A job's own exit: leaves Hydra at once; run_hydra turns it back into `Runs.stopped`."""


def run_hydra(args: list[str], resume: ResumePlan | None = None) -> Runs:
    """Run the Hydra app (run or multirun) on `args` with trainkit's job; returns what the jobs did."""
    import hydra

    from trainkit import rundir
    from trainkit.config import config_dir

    claimed = rundir.CLAIM
    rundir.enable_claims()  # these runs claim their directories atomically (given back at the end)

    if debug_enabled():
        os.environ["HYDRA_FULL_ERROR"] = "1"
    runs = Runs()

    def task(cfg):  # type: ignore[no-untyped-def]
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        try:
            try:
                summary = run_task(cfg, resume)
            except BaseException as exc:
                runs.errors.append(exc)
                raise
        except RunInterrupted as exc:  # Ctrl-C / SIGTERM: last.pt written; stop the whole sweep too
            print(f"trainkit: {exc}", file=sys.stderr)
            if multirun:
                print("to finish the sweep, re-run it with trainer.skip_done=true "
                      f"hydra.sweep.dir={hc.sweep.dir}", file=sys.stderr)
            raise _StopHydra(exc.exit_code) from None
        except TrainkitError as exc:
            if debug_enabled():
                raise
            code = report(exc)
            if not multirun:
                raise _StopHydra(code) from None
            runs.exit_code = 1
            return float("nan")
        except Exception:  # our bug: its traceback, but the sweep's other jobs still run
            if not multirun or debug_enabled():
                raise
            import traceback

            traceback.print_exc()
            runs.exit_code = 1
            return float("nan")
        runs.summaries.append(summary)
        value = summary.get("best_value")
        return float("nan") if value is None else value

    main_fn = hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(task)
    saved = sys.argv
    sys.argv = ["trainkit", *args]
    try:
        main_fn()
    except SystemExit as exc:
        if not isinstance(exc, _StopHydra) and not runs.errors:
            raise  # Hydra's own exit (a flag it refuses): not a run's
        runs.stopped = runs.exit_code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
        rundir.enable_claims(claimed)  # an API caller's later preflight resolves without claiming
        from trainkit import owner

        owner.release_all()  # the run-directory locks this run took, however it ended
    return runs


def run_task(cfg: DictConfig, resume: ResumePlan | None = None) -> dict[str, Any]:
    """What one Hydra job does: resume, skip a finished job (skip_done), autoresume, or train; returns the summary."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    train = _import_train(Path(hc.runtime.output_dir))
    if resume is not None:
        return train(resume.cfg, resume.run_dir, resume.choices, resume_from=resume.ckpt)
    multirun = hc.mode == RunMode.MULTIRUN
    run_dir = Path(hc.runtime.output_dir)
    choices = dict(hc.runtime.choices)
    ckpt: Path | None = None
    if cfg.trainer.get("skip_done"):
        done = finished_summary(run_dir)
        if done is not None:
            from trainkit.console import say

            best = done.get("best_value")
            say(f"skipping {run_dir}: already completed (trainer.skip_done=true), best {best}")
            return done
        last = run_dir / "checkpoints" / "last.pt"
        if last.is_file():
            check_same_run(cfg, last)
            ckpt = last
    if ckpt is None and autoresume.requested(cfg.trainer):
        from trainkit.owner import is_main_process

        found = autoresume.plan(cfg, run_dir, main=is_main_process())
        if found is not None:
            ckpt, done = found
            summary = finished_summary(run_dir) if done else None
            if summary is not None:
                return _already_done(run_dir, summary)
    if multirun:
        prepare_parallel_job(cfg, hc)
    command = job_command(list(hc.overrides.task)) if multirun else None
    return train(cfg, run_dir, choices, resume_from=ckpt, command=command)


def _already_done(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """An autoresumed run that had completed: nothing to train; every rank of a group leaves it together."""
    from trainkit.console import say

    say(f"{run_dir}: already completed, nothing to continue ({autoresume.KEY}=true), best {summary.get('best_value')}")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        from trainkit import distributed

        distributed.share_run_dir(run_dir)  # the other ranks wait for rank 0's directory
        distributed.cleanup()
    return summary


def _import_train(run_dir: Path) -> Any:
    """Import the training code (torch: a second or two) with SIGTERM/SIGINT already answered.

    The run directory exists from here on, so a signal now still ends as `interrupted`, exit
    128 + signal, with a summary.json (Run.setup takes over once it starts).
    """
    import json

    from trainkit.files import atomic_write_text

    early = StopOnSignal()
    early.install(immediate="while starting, before set-up; nothing was trained yet: start the run again")
    try:
        from trainkit.run import train
    except RunInterrupted as exc:
        summary = {"status": "interrupted", "error": f"RunInterrupted: {exc}", "run_dir": str(run_dir)}
        with contextlib.suppress(OSError, TrainkitError):  # a resumed run's summary already says where it is
            if not (run_dir / "summary.json").exists():
                atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        raise
    finally:
        early.restore()
    return train


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a run that completed, or None."""
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("status") == "completed" else None


def check_same_run(cfg: DictConfig, ckpt_path: Path) -> None:
    """skip_done resumes a job only if its checkpoint holds the same config (safe keys aside)."""
    from trainkit import checkpoint as ckpt_io
    from trainkit.config import to_plain

    stored = ckpt_io.load(ckpt_path).get("config") or {}
    diffs = autoresume.unsafe_diffs(to_plain(cfg), stored)
    if diffs:
        raise ConfigError(
            f"trainer.skip_done=true: {ckpt_path} belongs to a run with another config "
            f"(differs in {', '.join(diffs[:5])}); use another hydra.sweep.dir / hydra.run.dir or delete it"
        )


def job_command(task_overrides: list[str]) -> str:
    """The command that repeats one job of a sweep on its own."""
    flags: list[str] = []
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a in ("--config-dir", "-cd") and i + 1 < len(argv):
            flags += [a, argv[i + 1]]
        elif a.startswith("--config-dir="):
            flags.append(a)
    return shlex.join(["trainkit", "train", *flags, *task_overrides])


def prepare_parallel_job(cfg: DictConfig, hc: Any) -> None:
    """Jobs launched side by side (joblib and other non-sequential launchers): a GPU each, safe workers.

    Every job would otherwise pick cuda:0 (hydra #1331, #2757); DataLoader workers inside a launcher's
    worker process need an explicit start method (hydra #964).
    """
    from omegaconf import OmegaConf, open_dict

    target = str(OmegaConf.select(hc, "launcher._target_", default="") or "")
    if not target or target.endswith("BasicLauncher"):
        return  # jobs run one after another in this process
    if cfg.device.get("index") is None and str(cfg.device.type) in ("auto", "cuda"):
        import torch

        from trainkit.sweep import job_device_index

        index = job_device_index(
            int(hc.job.num), torch.cuda.device_count() if torch.cuda.is_available() else 0
        )
        if index is not None:
            with open_dict(cfg):
                cfg.device.index = index
    if int(cfg.data.get("num_workers", 0) or 0) > 0 and cfg.data.get("multiprocessing_context") is None:
        with open_dict(cfg):
            cfg.data.multiprocessing_context = default_mp_context()


def default_mp_context() -> str:
    """fork where it exists and is safe (Linux), else spawn."""
    return "fork" if sys.platform.startswith("linux") else "spawn"
