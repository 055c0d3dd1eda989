"""The run record (record.json): what is needed to repeat a run besides its config and command."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
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


def command_line(argv: list[str] | None = None) -> str:
    """The command as the user can paste it again."""
    return shlex.join(["trainkit", "train", *(sys.argv[1:] if argv is None else argv)])


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
