"""Fault injection for the interruption and kill tests: a real signal or SIGKILL at an exact point.

Test-side only; trainkit itself reads no test variable. Two environment variables, read at each point
(so a test may set and unset them between in-process runs):

- TRAINKIT_TEST_SIGNAL=STEP:NAME sends this process signal NAME (TERM, INT, KILL) right after
  optimizer step STEP (and its mid-epoch checkpoint); STEP may also be a phase outside the loop:
  `setup` (handlers installed, nothing built), `end` (after the last epoch), `test` (before the test).
- TRAINKIT_TEST_KILL_IN_WRITE=N SIGKILLs this process inside its N-th checkpoint (.pt) write, after
  the temp file is on disk and before it replaces the old one.

Subprocesses get it through `sitecustomize.py` beside this file (put this folder on PYTHONPATH);
in-process tests call `install` on the imported modules.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

VARIABLES = ("TRAINKIT_TEST_SIGNAL", "TRAINKIT_TEST_KILL_IN_WRITE")
_WRITES = [0]  # checkpoint writes of this process so far


def signal_at(run: Any, point: str) -> None:
    """A trainkit.run.POINTS callback: the TRAINKIT_TEST_SIGNAL signal when `point` is the one named."""
    spec = os.environ.get("TRAINKIT_TEST_SIGNAL")
    if not spec:
        return
    at, _, name = spec.partition(":")
    hit = (at.isdigit() and int(at) == run.state.step) if point == "step" else at == point
    if hit:
        name = name.upper()
        os.kill(os.getpid(), int(getattr(signal, name if name.startswith("SIG") else "SIG" + name)))


def kill_in_write(atomic_write: Any) -> Any:
    """Wrap trainkit.files.atomic_write: SIGKILL inside the TRAINKIT_TEST_KILL_IN_WRITE-th .pt write."""

    @functools.wraps(atomic_write)
    def wrapped(path: Any, write: Any, *, before_replace: Any = None, **kwargs: Any) -> None:
        def kill_then(tmp: Path) -> None:
            spec = os.environ.get("TRAINKIT_TEST_KILL_IN_WRITE")
            if spec and Path(path).suffix == ".pt":
                _WRITES[0] += 1
                if int(spec) == _WRITES[0]:
                    os.kill(os.getpid(), signal.SIGKILL)
            if before_replace is not None:
                before_replace(tmp)

        atomic_write(path, write, before_replace=kill_then, **kwargs)

    return wrapped


def patch_run(module: ModuleType) -> None:
    if signal_at not in module.POINTS:
        module.POINTS.append(signal_at)


def patch_files(module: ModuleType) -> None:
    if not getattr(module.atomic_write, "_faults", False):
        module.atomic_write = kill_in_write(module.atomic_write)
        module.atomic_write._faults = True


PATCHES = {"trainkit.run": patch_run, "trainkit.files": patch_files}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patch trainkit.run / trainkit.files as they are imported, so a process that never trains pays nothing."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def install_on_import() -> None:
    """At interpreter start (sitecustomize): patch the modules when they are first imported."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
