"""A run directory has one owner: a lock for the run's whole life, and no silent reuse of a finished run.

The lock is `fcntl.flock` on RUN_DIR/.trainkit.lock (which names the pid and host holding it): the
kernel drops it when the process ends however it ends (SIGKILL included), so a stale lock file never
blocks anyone. Re-taking a directory this process already holds is a no-op (the CLI takes it before
Hydra writes anything; the run takes it again). Under DDP only rank 0 takes it: the ranks are one run.
No torch import: the Hydra callback below runs before Hydra writes into the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from trainkit import files
from trainkit.errors import TrainkitError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, the reuse check still holds
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".trainkit.lock"

# What a fresh start clears from a directory it may reuse (metrics rows of a run that never saved
# a checkpoint, a summary of a set-up that was interrupted) or, with trainer.overwrite=true, replaces.
RUN_OUTPUTS = (
    "metrics.csv", "summary.json", "test_report.json", "eval.json", "record.json", "config_resolved.yaml",
    "cmd.txt", "model.txt", "curves.png",
)
RUN_OUTPUT_PATTERNS = ("eval_*.json",)  # trainkit eval's one file per checkpoint and split

_HELD: dict[str, list[Any]] = {}  # realpath -> [file object holding the flock, times taken]


class RunDirInUse(TrainkitError):
    """Another process holds the run directory: exit 2."""


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def acquire(run_dir: str | os.PathLike[str]) -> bool:
    """Lock `run_dir` for this process; False when this process already held it (then only counted)."""
    run_dir = Path(run_dir)
    key = _key(run_dir)
    if key in _HELD:
        _HELD[key][1] += 1
        return False
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise files.fault(run_dir, exc) from None
    path = run_dir / LOCK_NAME
    files.refuse_link(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise files.fault(path, exc) from None
    f = os.fdopen(fd, "r+")
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f.read().strip() or "another process"
            f.close()
            raise RunDirInUse(
                f"run directory '{run_dir}' is in use by {holder} (lock {path}); wait for that run to end, "
                "or use another hydra.run.dir"
            ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
    f.flush()
    _HELD[key] = [f, 1]
    return True


def release(run_dir: str | os.PathLike[str]) -> None:
    """Give back one `acquire`; the last one unlocks (the lock file stays: removing it would race)."""
    key = _key(Path(run_dir))
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        held[0].close()


def release_all() -> None:
    """Give back every lock this process holds (the CLI, once its runs are over)."""
    for held in _HELD.values():
        held[0].close()
    _HELD.clear()


def holds(run_dir: str | os.PathLike[str]) -> bool:
    return _key(Path(run_dir)) in _HELD


def take(run_dir: str | os.PathLike[str], *, resuming: bool, overwrite: bool = False,
         retry_failed: bool = False) -> None:
    """Own `run_dir` for a run: lock it, refuse to replace a run in it, clear what a fresh start must not mix.

    A fresh start (not `resuming`) into a directory holding a completed or failed run, or a
    checkpoint, is refused unless `overwrite` (trainer.overwrite=true), which clears the old run
    first; `retry_failed` (trainer.skip_done) lets a failed job start again. Either way orphan temp
    files of killed writes are removed and no file the run writes may be a symbolic link.
    """
    run_dir = Path(run_dir)
    acquire(run_dir)
    try:
        files.refuse_links(run_dir)
        files.remove_orphans(run_dir)
        if not resuming:
            _start_fresh(run_dir, overwrite, retry_failed)
    except BaseException:
        release(run_dir)
        raise


def is_main_process() -> bool:
    """Rank 0 (or no process group): the process that owns the run directory.

    Read from the launcher's environment, since the lock is taken before the group is joined:
    torchrun's RANK, SLURM's task id, submitit's local task id.
    """
    for var in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"):
        if var in os.environ:
            return os.environ[var] == "0"
    return True


def _start_fresh(run_dir: Path, overwrite: bool, retry_failed: bool) -> None:
    status = _status(run_dir)
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").is_dir() else []
    if not overwrite:
        if status == "completed" or (status == "failed" and not retry_failed):
            raise TrainkitError(
                f"'{run_dir}' already holds a {status} run; use another hydra.run.dir, or add "
                "trainer.overwrite=true to replace it"
            )
        if ckpts:
            from trainkit.record import resume_command

            raise TrainkitError(
                f"'{run_dir}' holds an unfinished run (checkpoints/{ckpts[0]}); continue it with "
                f"'{resume_command(run_dir)}', or add trainer.overwrite=true to start over"
            )
    if (run_dir / "checkpoints").is_dir():
        shutil.rmtree(run_dir / "checkpoints")
    for name in RUN_OUTPUTS:  # e.g. metrics rows of a run killed before its first checkpoint
        (run_dir / name).unlink(missing_ok=True)
    for pattern in RUN_OUTPUT_PATTERNS:  # an old run's eval results would pass for the new run's
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)


def _status(run_dir: Path) -> str | None:
    try:
        return str(json.loads((run_dir / "summary.json").read_text()).get("status"))
    except (OSError, ValueError, AttributeError):
        return None


def dangling_link(path: str | os.PathLike[str]) -> Path | None:
    """The first part of `path` that is a symbolic link to nothing (`outputs -> /gone`), or None."""
    p = Path(path)
    for part in [*reversed(p.parents), p]:
        try:
            if part.is_symlink() and not part.exists():
                return part
        except OSError:  # a name too long to stat: the probe of the run dir says so in its own words
            return None
    return None


def check_dangling(path: str | os.PathLike[str], key: str) -> None:
    """A run or sweep directory below a dangling link: one line instead of Hydra's traceback."""
    bad = dangling_link(path)
    if bad is not None:
        raise TrainkitError(
            f"cannot make the run directory '{path}': '{bad}' is a symbolic link to '{os.readlink(bad)}', "
            f"which does not exist; create its target, remove the link, or set {key}=DIR"
        )


def literal_head(raw: str) -> str:
    """The part of a hydra.*.dir value before its first interpolation (inside ${trainkit.unique_dir:...})."""
    from trainkit.rundir import UNIQUE_DIR_RESOLVER

    prefix = "${" + UNIQUE_DIR_RESOLVER + ":"
    if raw.startswith(prefix):
        raw = raw[len(prefix):]
    return raw.split("${", 1)[0] or "."


class RunDirOwner(Callback):
    """Hydra callback: before Hydra writes .hydra/ or opens train.log, own a fixed hydra.run.dir.

    A directory with an interpolation (the default outputs/DATE/TIME, claimed atomically) is new
    by construction; the run itself takes its lock. Errors end the process as the CLI would; the CLI
    gives the lock back when Hydra returns (owner.release_all).
    """

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._guard(config, "run")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._guard(config, "sweep")

    def _guard(self, config: Any, mode: str) -> None:
        from omegaconf import OmegaConf

        from trainkit.errors import debug_enabled, report

        raw = str(OmegaConf.to_container(config.hydra[mode], resolve=False).get("dir", ""))
        key = f"hydra.{mode}.dir"
        try:
            check_dangling(literal_head(raw), key)
            if mode == "run" and "${" not in raw and not holds(raw) and is_main_process():
                trainer = config.get("trainer") or {}
                # skip_done and autoresume may resume what is there: the job decides, under this lock
                again = bool(trainer.get("skip_done")) or bool(trainer.get("autoresume"))
                take(raw, resuming=again, overwrite=bool(trainer.get("overwrite")), retry_failed=again)
        except TrainkitError as exc:
            if debug_enabled():
                raise
            raise SystemExit(report(exc)) from None
