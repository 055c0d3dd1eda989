"""The run record (record.json): what is needed to repeat a run besides its config, and the command that continues it."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any

from trainkit.files import atomic_write_text
from trainkit.version import __version__


def versions() -> dict[str, Any]:
    """trainkit, python, torch, CUDA/cuDNN and the libraries that shape a run."""
    import numpy
    import omegaconf
    import torch

    out: dict[str, Any] = {
        "trainkit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,  # the CUDA torch was built with (None on CPU-only builds)
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": numpy.__version__,
        "omegaconf": omegaconf.__version__,
    }
    try:
        import hydra

        out["hydra"] = hydra.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def device_info(device: Any) -> dict[str, Any]:
    """The device a run used, with the GPU's name and driver-visible count when it is CUDA."""
    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    if getattr(device, "type", None) == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["gpu"] = torch.cuda.get_device_name(index)
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
        info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    info["torch_threads"] = torch.get_num_threads()
    return info


def git_state(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the repository holding `cwd` (None when there is none or no git)."""
    cwd = str(cwd or os.getcwd())

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    if root is None:
        return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"root": root, "commit": commit, "dirty": bool(status) if status is not None else None}


def build_record(*, cfg: Any, device: Any, data: Any, command: str, deterministic: bool) -> dict[str, Any]:
    """Everything record.json holds for a fresh run."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "cwd": os.getcwd(),
        "seed": int(cfg.seed),
        "deterministic": bool(deterministic),
        "versions": versions(),
        "device": device_info(device),
        "git": git_state(),
        "data": {
            "sizes": dict(data.sizes),
            "fingerprint": data.fingerprint,  # hash of the split indices and sizes
            "loader": data.loader_kind,
        },
        "hostname": platform.node(),
        "resumed": [],
    }


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "record.json", json.dumps(record, indent=2, default=str) + "\n")


def write_resolved_config(run_dir: Path, cfg: Any) -> None:
    """config_resolved.yaml: the config with every interpolation filled in, as the run used it.

    Hydra's .hydra/config.yaml keeps interpolations such as ${data.num_classes}.
    """
    from omegaconf import OmegaConf

    atomic_write_text(run_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def write_run_files(run_dir: Path, cfg: Any, *, device: Any, data: Any, command: str,
                    resumed: tuple[Any, int, int] | None, argv: list[str]) -> None:
    """config_resolved.yaml and record.json for a fresh run (kept on resume); a resume is noted in record.json.

    `resumed` is (checkpoint, epoch, step) when continuing; `argv` is this invocation's arguments.
    """
    if resumed is None or not (run_dir / "config_resolved.yaml").exists():
        write_resolved_config(run_dir, cfg)
    if resumed is None or not (run_dir / "record.json").exists():
        write_record(run_dir, build_record(cfg=cfg, device=device, data=data, command=command,
                                           deterministic=bool(cfg.trainer.get("deterministic"))))
    if resumed is not None:
        checkpoint, epoch, step = resumed
        note_resume(run_dir, command=shlex.join(["trainkit", "train", *argv]), checkpoint=str(checkpoint),
                    epoch=epoch, step=step, device=device)


def note_resume(run_dir: Path, *, command: str, checkpoint: str, epoch: int, step: int, device: Any) -> None:
    """Append a resume to record.json (a record written by an older trainkit is started afresh)."""
    path = run_dir / "record.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    record.setdefault("resumed", []).append(
        {
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "checkpoint": checkpoint,
            "epoch": epoch,
            "step": step,
            "versions": versions(),
            "device": str(device),
            "git": git_state(),
        }
    )
    write_record(run_dir, record)


def resume_command(run_dir: Path | str, cfg: Any = None) -> str:
    """The command that continues `run_dir` (relative to the current directory when it is below it).

    With the run's config, it also allows its own `_target_`s (a model of the user's, from --config-dir)
    that resume= would otherwise refuse as foreign code, unless you already trusted them for this run
    (`trainkit.trust`: a run you started here), and its own remote logger (--allow-loggers).
    """
    from omegaconf import DictConfig, OmegaConf

    from trainkit.security import allow_entry, is_allowed, iter_targets

    path = Path(run_dir).resolve()
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    allow: list[str] = []
    flags: list[str] = []
    if cfg is not None:
        from trainkit.config import to_plain
        from trainkit.loggers import stored_logger_problem
        from trainkit.trust import trusted_targets

        plain = to_plain(cfg) if isinstance(cfg, DictConfig) else cfg
        trusted = set(trusted_targets(Path(run_dir).resolve(), plain))
        for _, target in iter_targets(plain):
            if isinstance(target, str) and not is_allowed(target) and target not in trusted:
                entry = allow_entry(target)
                if entry not in allow:
                    allow.append(entry)
        node = OmegaConf.create({"logger": plain.get("logger")}) if isinstance(plain, dict) else None
        if node is not None and stored_logger_problem(node) and not stored_logger_problem(node, allow_remote=True):
            flags.append("--allow-loggers")  # the run's own MLflow server
    return shlex.join(["trainkit", "train", f"resume={path}", *(a for p in allow for a in ("--allow", p)), *flags])
