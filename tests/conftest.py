"""Shared helpers: run the real `trainkit` CLI as a subprocess on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Small, fast settings for end-to-end runs (digits, a few epochs).
FAST = ["trainer.epochs=2", "trainer.progress=plain"]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TRAINKIT_DEBUG", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m trainkit ARGS` (ARGS starts with the command, e.g. "train") in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "trainkit", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs(root: Path) -> list[Path]:
    """Every run directory (a directory holding .hydra/) under root, oldest first."""
    return sorted((p.parent for p in root.rglob(".hydra")), key=lambda p: str(p))


def load_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 2-epoch digits run, shared by the tests that only read its files."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = run_cli(["train", *FAST], cwd)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (run_dir,) = run_dirs(cwd / "outputs")
    return run_dir
