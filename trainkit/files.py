"""Writing into a run directory safely: one atomic-write helper, appends that never follow links.

A run directory may come from someone else (`eval ckpt=`, `resume=`), so a file planted there must
not redirect a write: a symlink at a path trainkit writes is refused (exit 2), temp files are
created exclusively with random names (mkstemp: O_EXCL, so a planted `NAME.tmp` link is never
opened), and logs are appended with O_NOFOLLOW. A write that fails (disk full, read-only folder)
is a WriteFault (exit 1) naming the file; the file it would have replaced is untouched.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from trainkit.errors import TrainkitError

TEMP_SUFFIX = ".tmp"
_UMASK = os.umask(0o22)  # read once (setting it is the only way to read it), then put back
os.umask(_UMASK)


class LinkRefused(TrainkitError):
    """A path trainkit would write is a symbolic link (planted or left over): exit 2."""


class WriteFault(TrainkitError):
    """The disk refused a write (full, read-only, permissions): exit 1, as a fault rather than bad input."""

    exit_code = 1


def refuse_link(path: str | os.PathLike[str]) -> None:
    """Refuse to write `path` when it is a symbolic link: writing would change the file it points at."""
    if os.path.islink(path):
        raise LinkRefused(
            f"'{path}' is a symbolic link (to '{os.readlink(path)}'); trainkit does not write through links "
            "in a run directory: remove the link (or use another run directory)"
        )


def fault(path: str | os.PathLike[str], exc: OSError, kept: str = "") -> WriteFault:
    """The one-line error for a write the disk refused."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason += "; free some space"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += "; make the folder writable"
    return WriteFault(f"could not write '{path}' ({reason}){kept}")


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[bytes]], None],
    *,
    before_replace: Callable[[Path], None] | None = None,
    kept: str = "",
) -> None:
    """Write `path` through `write(file)` into an exclusive temp file beside it, fsync, rename over it.

    A kill at any moment leaves the old file or the new one, never a torn one, and at worst an
    orphan `.NAME.XXXX.tmp` that the next start removes (`remove_orphans`). `before_replace` runs
    once the new content is safely on disk, with the temp file's path (checkpoint rotation, best.pt's link). `kept` ends the fault message.
    """
    path = Path(path)
    refuse_link(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise fault(path, exc, kept) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600: the file gets the mode open() would give
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc.__context__, KeyboardInterrupt) and not isinstance(exc, KeyboardInterrupt):
            # a second Ctrl-C inside torch.save: its zip writer's clean-up raises a RuntimeError that
            # would hide the interrupt (a traceback and exit 1 instead of stopping at once, exit 130)
            raise exc.__context__ from None
        if isinstance(exc, OSError):
            raise fault(path, exc, kept) from None
        if isinstance(exc, RuntimeError) and isinstance(exc.__cause__ or exc.__context__, OSError):
            raise fault(path, exc.__cause__ or exc.__context__, kept) from None  # type: ignore[arg-type]
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """`atomic_write` for a text file (JSON, YAML, CSV)."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """summary.json, eval.json: indented JSON through `atomic_write_text` (datetimes and paths as strings)."""
    import json

    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def nofollow_opener(path: str, flags: int) -> int:
    """`open(..., opener=nofollow_opener)`: fail (ELOOP) instead of following a symbolic link."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)


def open_append(path: str | os.PathLike[str], **kwargs: Any) -> IO[Any]:
    """Open a log for appending, refusing a symbolic link in its place (metrics.csv, train.log)."""
    refuse_link(path)
    try:
        return open(path, "a", opener=nofollow_opener, **kwargs)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_link(path)
        raise fault(path, exc) from None


class NoFollowFileHandler(logging.FileHandler):
    """logging.FileHandler that will not append train.log through a symbolic link (Hydra's job log)."""

    def _open(self) -> IO[Any]:
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, opener=nofollow_opener)


# Files trainkit (or Hydra, for a run it starts) writes in a run directory: none may be a link.
RUN_FILES = (
    "train.log", "metrics.csv", "summary.json", "record.json", "config_resolved.yaml", "cmd.txt",
    "model.txt", "test_report.json", "eval.json", "curves.png",
    "checkpoints/last.pt", "checkpoints/last.prev.pt", "checkpoints/best.pt",
    ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml",
)


def refuse_links(run_dir: str | os.PathLike[str]) -> None:
    """Before a run (or resume) starts writing: no link at any file it writes, nor at checkpoints/."""
    run_dir = Path(run_dir)
    refuse_link(run_dir / "checkpoints")
    for name in RUN_FILES:
        refuse_link(run_dir / name)


def remove_orphans(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files a killed write left (`.last.pt.XXXX.tmp`, `.last.prev.pt.link`, ...)."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name.startswith(".") and (p.name.endswith(TEMP_SUFFIX) or p.name.endswith(".link")):
                try:
                    p.unlink()  # a link is removed itself, never what it points at
                    removed.append(p)
                except OSError:
                    pass
    return removed
