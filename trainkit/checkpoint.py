"""Checkpoints: atomic writes, and loads that never run code they were handed.

A checkpoint is a plain dict of tensors and python data (the config as a plain dict), so it
always loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainkit.errors import CheckpointError


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write to a temp file in the same directory, fsync, rename over `path`, fsync the directory.

    A kill at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load(path: str | os.PathLike[str], trust: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True (or, only when `trust`, a full unpickle)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' is a directory; point at a .pt file such as {path}/checkpoints/best.pt")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; check the path (run dirs keep them in checkpoints/)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint '{path}' holds objects other than tensors and plain data, so it was not loaded "
            "(its code never ran); load it only if you trust its author, with --trust-checkpoint"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint '{path}' is truncated or corrupt ({str(exc).splitlines()[0][:120]}); "
            "use another checkpoint (last.pt and best.pt are written atomically)"
        ) from exc
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"'{path}' is not a trainkit checkpoint (no 'model' state dict in it)")
    return obj


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain data (weights_only-safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _tuples_to_lists(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy(), *np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples_to_lists(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_tuples_to_lists(o) for o in obj]
    return obj
