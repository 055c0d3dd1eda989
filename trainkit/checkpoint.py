"""Checkpoints: atomic writes, and loads that never run code they were handed.

A checkpoint is a plain dict of tensors and python data (the config as a plain dict), so it
always loads with `torch.load(weights_only=True)`, after `check_archive` has bounded what the
load may allocate.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainkit import files
from trainkit.errors import CheckpointError

PREVIOUS_SUFFIX = ".prev"

#: Limits on what a checkpoint's zip records may declare (`check_archive`), from the environment.
RATIO_ENV = "TRAINKIT_MAX_LOAD_RATIO"
BYTES_ENV = "TRAINKIT_MAX_LOAD_BYTES"
DEFAULT_RATIO = 10.0
DEFAULT_MAX_BYTES = 64 * 2**30
MAX_RECORDS = 1_000_000


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where `atomic_save(..., keep_previous=True)` keeps the file it replaced: last.pt -> last.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}{PREVIOUS_SUFFIX}{path.suffix}")


def atomic_save(
    obj: Any, path: str | os.PathLike[str], keep_previous: bool = False, also: tuple[Path, ...] = ()
) -> None:
    """torch.save through files.atomic_write: the old file or the new one, never a torn one.

    With `keep_previous`, the file being replaced stays as NAME.prev.pt (a hard link, so no copy is
    written), the fallback a resume offers when the newest file is unreadable. Each path in `also`
    (best.pt) becomes a hard link to the new file (a copy where links fail), made before the new file
    takes `path`'s name: one torch.save per epoch, and a kill in between leaves best.pt ahead of last.pt,
    never behind it. Every write makes a new inode, so a later rotation of `path` never changes them.
    A write the disk refuses is a WriteFault (exit 1) naming the file; the previous checkpoint is kept.
    """
    path = Path(path)
    kept = f"; the previous '{path.name}' is kept" if path.is_file() else ""

    def before_replace(tmp: Path) -> None:
        if keep_previous and path.is_file():
            _link(path, previous_path(path))  # no hard links on this filesystem: the fallback is best.pt
        for other in also:
            link_or_copy(tmp, Path(other))

    files.atomic_write(path, lambda f: torch.save(obj, f), before_replace=before_replace,
                       kept=kept or "; no checkpoint of this run was replaced")


def link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source`: a hard link, or a copy where the filesystem has none."""
    files.refuse_link(target)
    if not _link(source, target):  # some network and FAT filesystems: a copy, written atomically
        files.atomic_write(target, lambda f: f.write(source.read_bytes()))


def _link(source: Path, target: Path) -> bool:
    """Atomically make `target` a hard link to `source` (through `.NAME.link`); False where links fail."""
    tmp = target.with_name(f".{target.name}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def move_aside(path: str | os.PathLike[str]) -> Path:
    """Rename a checkpoint found corrupt to NAME.corrupt, so no later rotation makes it a fallback."""
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    return aside


def load_with_fallback(path: Path, main: bool = True) -> tuple[Path, dict[str, Any]]:
    """(file loaded, checkpoint): `path`, or, when it is missing, torn or corrupt, the one it replaced.

    The main process moves a broken `path` aside (NAME.corrupt: no later rotation makes it the
    fallback) and makes `path` the fallback again, so a kill before the next save still resumes;
    the other ranks of a process group only read the fallback. No fallback: the error is raised.
    """
    try:
        return path, load(path)
    except CheckpointError as exc:
        previous = previous_path(path)
        if not previous.is_file():
            raise
        if main and path.exists():
            aside = move_aside(path)
            print(f"trainkit: {exc}; moved it to {aside.name} and resuming from {previous}", file=sys.stderr)
        ckpt = load(previous)
    if main and not path.exists():
        link_or_copy(previous, path)
    return previous, ckpt


def alternatives(path: str | os.PathLike[str]) -> list[Path]:
    """Other checkpoints next to `path` (last.prev.pt, best.pt, last.pt), newest first."""
    path = Path(path)
    names = [previous_path(path).name, "last.prev.pt", "best.pt", "last.pt"]
    found = {p for n in names if (p := path.parent / n).is_file() and p.name != path.name}
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _offer(path: Path) -> str:
    alt = alternatives(path)
    if alt:
        return "; the previous good checkpoint may be " + " or ".join(f"'{p}'" for p in alt[:2])
    return "; use another checkpoint of the run (last.pt and best.pt are written atomically)"


def read(path: str | os.PathLike[str], trust: bool = False, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """Whatever a torch.save file holds, loaded with weights_only=True (or, only when `trust`, a full unpickle).

    Never writes anything. Every failure is a CheckpointError (exit 2) naming the file (as `what`); a
    truncated or corrupt file also names the sibling checkpoints to fall back on.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{what} '{path}' is a directory; point at a .pt file such as {path}/checkpoints/best.pt"
        )
    if not path.is_file():
        raise CheckpointError(
            f"{what} '{path}' does not exist; check the path (run dirs keep them in checkpoints/)"
        )
    kind = check_archive(path, what)
    if kind == "other" and not trust:  # the reason only: torch's message would quote the file's first byte
        raise CheckpointError(f"{what} '{path}' is corrupt: neither torch's zip format nor a pickle{_offer(path)}")
    if kind == "pickle" and not trust:
        raise CheckpointError(
            f"{what} '{path}' is not in torch's zip format (a raw pickle or a pre-1.6 torch.save), so its size "
            "cannot be checked before loading: it was refused and none of its code ran; re-save it with torch.save, "
            "or, only if you trust its author, --trust-checkpoint loads it in full"
        )
    try:
        # weights_only is passed explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD only acts when it is not.
        with warnings.catch_warnings():  # torch warns about odd pickle protocols; errors are ours to report
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if _is_truncated_or_garbage(exc):
            raise _corrupt(path, exc) from exc
        if "Unsupported operand" in str(exc):  # raw pickle bytes: garbage, or a pickle made to run code
            raise CheckpointError(
                f"{what} '{path}' is corrupt or holds pickled objects other than tensors and plain data "
                f"({_reason(exc)}), so it was refused and none of its code ran{_offer(path)}; "
                "only if you trust its author, --trust-checkpoint loads it in full"
            ) from exc
        raise CheckpointError(
            f"{what} '{path}' holds pickled objects other than tensors and plain data ({_reason(exc)}), "
            "so it was refused and none of its code ran; load it only if you trust its author, "
            "with --trust-checkpoint"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError) as exc:
        raise _corrupt(path, exc) from exc
    return obj


def load(path: str | os.PathLike[str], trust: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a trainkit checkpoint (see `read`): a dict with a 'model' state dict, or a CheckpointError."""
    obj = read(path, trust, map_location)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"'{path}' is not a trainkit checkpoint "
            f"(it holds a {type(obj).__name__}, not a dict with a 'model' state dict)"
        )
    if not isinstance(obj.get("model"), dict):
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CheckpointError(f"'{path}' is not a trainkit checkpoint (no 'model' state dict; keys: {keys})")
    return obj


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def load_limits(env: dict[str, str] | None = None) -> tuple[float, int]:
    """(ratio, bytes): how much a file may declare per byte it holds, and in all (TRAINKIT_MAX_LOAD_*)."""
    env = os.environ if env is None else env
    try:
        ratio = float(env.get(RATIO_ENV) or DEFAULT_RATIO)
        raw = (env.get(BYTES_ENV) or str(DEFAULT_MAX_BYTES)).strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(raw[-1:], 1)
        limit = int(float(raw[:-1] if scale > 1 else raw) * scale)
    except ValueError:
        raise CheckpointError(
            f"{RATIO_ENV} must be a number (e.g. 10) and {BYTES_ENV} a size (e.g. 64G or 500M)"
        ) from None
    if ratio <= 0 or limit <= 0:
        raise CheckpointError(f"{RATIO_ENV} and {BYTES_ENV} must be positive")
    return ratio, limit


def check_archive(path: str | os.PathLike[str], what: str = "checkpoint") -> str:
    """Refuse a torch zip whose records declare more than the limits allow, before anything is read.

    Reads only the zip's central directory, so a 2 GiB record deflated into 2 MB is refused in
    milliseconds. torch writes its records stored (uncompressed): a legit file declares about its own
    size. Returns "zip", or "pickle" for a raw pickle or a pre-1.6 torch.save (which cannot be
    bounded this way), or "other"; the caller decides about the last two.
    """
    path = Path(path)
    ratio, limit = load_limits()
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        return "pickle" if head[:1] == b"\x80" else "other"  # \x80: a pickle's protocol header
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _corrupt(path, exc) from exc
    if len(infos) > MAX_RECORDS:
        raise CheckpointError(f"{what} '{path}' has {len(infos)} records (the limit is {MAX_RECORDS}); refused before loading")
    total = 0
    how = f"raise {RATIO_ENV} / {BYTES_ENV} only for a file you trust"
    for info in infos:
        total += info.file_size
        packed = max(info.compress_size, 1)
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise _corrupt(path, ValueError(f"record '{info.filename}' declares two different sizes"))
        if info.file_size > ratio * packed and info.file_size > 2**20:
            raise CheckpointError(
                f"{what} '{path}' has a record ('{info.filename}') that declares {_size(info.file_size)} in "
                f"{_size(info.compress_size)} (more than {ratio:g}x): a decompression bomb, refused before loading; {how}"
            )
    if total > limit or total > ratio * size + 2**20:
        raise CheckpointError(
            f"{what} '{path}' declares {_size(total)} of data in a {_size(size)} file (limits: {ratio:g}x the file, "
            f"{_size(limit)} in all): refused before loading; {how}"
        )
    return "zip"


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:  # torch's weights_only message: the useful line names the refused global
        if "GLOBAL" in ln or "Unsupported global" in ln or "Unsupported operand" in ln:
            return ln.rstrip(".")[:160]
    if isinstance(exc, KeyError):
        return f"unreadable pickle data, {type(exc).__name__} {exc}"
    return (lines[0] if lines else type(exc).__name__)[:160]


def _is_truncated_or_garbage(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("truncated", "invalid load key", "an out of input", "EOF"))


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(f"checkpoint '{path}' is truncated or corrupt ({_reason(exc)}){_offer(path)}")


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
