"""Shared helpers: run the real `trainkit` CLI as a subprocess on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / "tests" / "hooks"  # the test-side fault injection (trainkit_faults), see its docstring

# Small, fast settings for end-to-end runs (digits, a few epochs).
FAST = ["trainer.epochs=2", "trainer.progress=plain"]


@pytest.fixture(scope="session", autouse=True)
def _fake_state_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs record their own targets in a per-user store (trainkit.trust): the suite's stay in a scratch dir."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state_home"))


def cli_env(**extra: str) -> dict[str, str]:
    """The subprocess environment: this checkout first on the path; a TRAINKIT_TEST_* fault in `extra`
    also puts tests/hooks there, whose sitecustomize installs the fault injection."""
    env = dict(os.environ)
    env.pop("TRAINKIT_DEBUG", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    paths = [str(REPO), *([str(HOOKS)] if any(k.startswith("TRAINKIT_TEST_") for k in extra) else [])]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
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


@pytest.fixture
def fault_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """trainkit_faults in this process, for in-process runs that set TRAINKIT_TEST_*; undone after the test."""
    monkeypatch.syspath_prepend(str(HOOKS))
    import trainkit_faults

    from trainkit import files, run

    monkeypatch.setattr(run, "POINTS", [*run.POINTS, trainkit_faults.signal_at])
    monkeypatch.setattr(files, "atomic_write", trainkit_faults.kill_in_write(files.atomic_write))


# --------------------------------------------------------------------------- in-process runs
# End-to-end checks where the process is not the point compose the config and call trainkit.run.train
# directly (no interpreter start, no torch import per test); signals, exit codes, torchrun and the
# installed command keep run_cli.


def cfg_train(overrides: list[str] | tuple[str, ...] = (), config_dir: str | None = None) -> tuple[DictConfig, dict[str, str]]:
    """The composed, validated run config of `trainkit train OVERRIDES` and Hydra's group choices."""
    from omegaconf import OmegaConf, open_dict

    from trainkit.config import compose, validate

    full = compose(list(overrides), user_config_dir=config_dir, return_hydra_config=True)
    choices = {str(k): str(v) for k, v in OmegaConf.to_container(full.hydra.runtime.choices).items() if v is not None}
    with open_dict(full):
        del full["hydra"]
    validate(full)
    return full, choices


def train_in_process(overrides: list[str] | tuple[str, ...], run_dir: Path, config_dir: str | None = None) -> dict:
    """Train `trainkit train OVERRIDES` into run_dir in this process; returns the summary dict.

    Writes the `.hydra/` record Hydra's job would (config.yaml, overrides.yaml), which reports,
    plots and loggers read, and trains on one CPU thread as run_cli's OMP_NUM_THREADS=1 does, so its
    numbers equal a subprocess run's to the last digit.
    """
    import torch
    from omegaconf import OmegaConf

    from trainkit.run import train

    cfg, choices = cfg_train(overrides, config_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg, run_dir, choices)
    finally:
        torch.set_num_threads(threads)


InProcessCli = Callable[[list[str], Path], "subprocess.CompletedProcess[str]"]


@pytest.fixture
def cli_in_process(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcessCli:
    """`run_cli` without the subprocess: `trainkit ARGS` through cli.main in `cwd`, same result type."""
    from trainkit import cli, rundir

    monkeypatch.setattr(rundir, "CLAIM", rundir.CLAIM)  # `train` turns claims on for this process: off again after

    def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        capfd.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse's --help / usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
