"""Continue runs exactly: `resume=`, `trainer.skip_done`, Ctrl-C/SIGTERM at a step boundary.

What makes a resume bit-identical lives in the checkpoint (run.py writes it): model, optimizer,
scheduler, scaler, every RNG, the epoch, the step, the batch reached in the epoch and the epoch's
partial metric sums. The loaders' order is a function of (seed, epoch), so skipping the batches
already trained puts the data exactly where it was.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from trainkit.errors import ConfigError, TrainkitError
from trainkit.record import resume_command  # noqa: F401 - where run.py and the tests find it

# Overrides a resumed run may take: they change how long it runs, what it logs and how fast it loads
# data, never the numbers it computes. Anything else would silently continue a different run.
SAFE_KEYS = (
    "trainer.epochs",
    "trainer.progress",
    "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps",
    "trainer.skip_done",
    "trainer.autoresume",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.multiprocessing_context",
    "data.download",
    "trainer.early_stopping.patience",
    "trainer.early_stopping.min_delta",
)
SAFE_GROUPS = ("logger", "metrics")  # where metrics go; which test metrics are reported


# The config keys that tie a schedule's length to trainer.epochs
# (configs/scheduler/ interpolate them). A resumed run's stored config holds them resolved.
HORIZON_KEYS = ("T_max", "epochs", "max_epochs", "total_iters")


def stretch_horizon(node: Any, old_epochs: int, new_epochs: int) -> list[str]:
    """Set the scheduler keys that equalled the old trainer.epochs to the new one; the keys changed.

    The stored config is resolved, so `T_max: ${trainer.epochs}` reads as the old number: a key whose
    value is the old epochs is taken to follow trainer.epochs (a fixed horizon of another length stays).
    """
    changed = []
    for key in HORIZON_KEYS:
        value = node.get(key) if node is not None else None
        if isinstance(value, int) and not isinstance(value, bool) and value == old_epochs != new_epochs:
            node[key] = new_epochs
            changed.append(key)
    return changed


def horizon_problem(node: Any, epochs: int) -> str | None:
    """Why a schedule cannot run `epochs` epochs (OneCycleLR raises once past its last step), or None."""
    target = str(node.get("_target_") or "") if node is not None else ""
    if not target.endswith("OneCycleLR"):
        return None
    if node.get("total_steps") is not None:
        return (f"scheduler OneCycleLR has a fixed scheduler.total_steps={node.total_steps}, so it cannot be "
                f"stretched to trainer.epochs={epochs}")
    if node.get("epochs") is not None and int(node.epochs) < epochs:
        return (f"scheduler OneCycleLR ends after scheduler.epochs={node.epochs} (set apart from trainer.epochs), "
                f"so it cannot run trainer.epochs={epochs}")
    return None


# --------------------------------------------------------------------------- resume=


def split_resume(args: list[str]) -> tuple[str | None, list[str]]:
    """Pull `resume=...` out of a train argument list."""
    spec, rest = None, []
    for a in args:
        if a.startswith("resume="):
            spec = a.split("=", 1)[1]
        else:
            rest.append(a)
    return spec, rest


def locate(spec: str) -> tuple[Path, Path]:
    """RUN_DIR or PATH/last.pt -> (run directory, checkpoint)."""
    path = Path(spec).expanduser()
    if not spec:
        raise TrainkitError("resume= needs a run directory: trainkit train resume=outputs/DATE/TIME")
    if path.is_dir():
        ckpt = path / "checkpoints" / "last.pt"
        if not ckpt.is_file():
            if (path / "last.pt").is_file():
                return (
                    path.parent.resolve() if path.name == "checkpoints" else path.resolve(),
                    path / "last.pt",
                )
            if (path / "multirun.yaml").is_file():  # a sweep's root, not one of its runs
                raise TrainkitError(
                    f"resume={spec} is a sweep directory; resume one of its jobs (resume={spec.rstrip('/')}/0) "
                    f"or re-run the sweep with trainer.skip_done=true hydra.sweep.dir={spec.rstrip('/')}"
                )
            raise TrainkitError(
                f"resume={spec}: no checkpoints/last.pt in that directory; the run stopped before its first "
                "checkpoint, so start it again (or give the path of a .pt file)"
            )
        return path.resolve(), ckpt
    if path.is_file():
        parent = path.resolve().parent
        return (parent.parent if parent.name == "checkpoints" else parent), path
    raise TrainkitError(
        f"resume={spec} does not exist; give a run directory (outputs/DATE/TIME) or its checkpoints/last.pt"
    )


def is_safe_override(key: str) -> bool:
    key = key.lstrip("+")
    return key in SAFE_KEYS or key.split(".")[0] in SAFE_GROUPS


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply the safe overrides of a resume to the checkpoint's config; refuse the others with the reason."""
    from trainkit.config import compose

    dotlist = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if ov.startswith("-"):
            raise TrainkitError(f"option '{ov}' cannot be used with resume=; see 'trainkit train --help'")
        if not sep:
            raise ConfigError(f"cannot parse override '{ov}'; write key=value")
        if key.startswith("hydra."):
            raise ConfigError(f"{key} cannot change on resume: the run continues in its own directory")
        if not is_safe_override(key):
            raise ConfigError(
                f"{key}={value} cannot change on resume: the run would no longer continue the same training; "
                f"resume changes only {', '.join(SAFE_KEYS[:4])} and logger (start a new run to change {key})"
            )
        bare = key.lstrip("+")
        if bare in SAFE_GROUPS:  # logger=tensorboard: the group's option, composed from our configs
            with open_dict(cfg):
                cfg[bare] = compose([f"{bare}={value}"])[bare]
        else:
            dotlist.append(f"{bare}={value}")
    if dotlist:
        old_epochs = int(cfg.trainer.epochs)
        with open_dict(cfg):
            merge_dotlist(cfg, dotlist)
            if cfg.get("scheduler") is not None:  # a schedule that follows trainer.epochs follows the new length
                stretch_horizon(cfg.scheduler, old_epochs, int(cfg.trainer.epochs))
    return cfg


def merge_dotlist(cfg: DictConfig, dotlist: list[str]) -> None:
    """Merge `key=value` overrides into a stored config; broken syntax is a one-line user error."""
    for ov in dotlist:
        try:
            cfg.merge_with(OmegaConf.from_dotlist([ov]))
        except Exception as exc:  # yaml/omegaconf parse or merge error: the user's typo, not our bug
            reason = " ".join(str(exc).split("\n")[0].split())
            raise ConfigError(
                f"cannot parse override '{ov}' ({reason}); write key=value, lists as key=[a,b], "
                "and quote values with spaces or special characters"
            ) from exc


@dataclass
class ResumePlan:
    """A run to continue: where, from which checkpoint, with which config."""

    run_dir: Path
    ckpt: Path
    cfg: DictConfig
    choices: dict[str, str] = field(default_factory=dict)

    def hydra_args(self) -> list[str]:
        """Hydra runs the job in the run's own directory and leaves its original .hydra/ record alone."""
        args = [f"hydra.run.dir={_hydra_quote(str(self.run_dir))}", "hydra.output_subdir=null"]
        if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 writes train.log
            args.append("hydra/job_logging=disabled")
        return args


def _hydra_quote(value: str) -> str:
    if all(c.isalnum() or c in "/._-:" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def plan(
    spec: str, overrides: list[str], allow: list[str] | tuple[str, ...] = (), allow_loggers: bool = False
) -> ResumePlan:
    """Check a `resume=` request and build its config: the checkpoint's, plus the safe overrides.

    The stored config is a stranger's (trainkit.security): read as bounded, uninterpolated data with
    downloads off; only allowed `_target_`s; logger outputs stay in the run directory, and a logger
    that sends data to another machine is built only with `allow_loggers` (--allow-loggers).
    Takes the run directory's lock (released on a refusal; else by the caller, after the run).
    """
    from trainkit import owner
    from trainkit.security import allowed_prefixes

    allowed_prefixes(allow)  # a malformed --allow is refused before anything is read
    run_dir, ckpt_path = locate(spec)
    if not owner.is_main_process():  # torchrun: every rank plans, rank 0 owns the directory
        return _plan(run_dir, ckpt_path, overrides, allow, allow_loggers)
    # One owner from here to the run's end (the CLI releases it): a second resume of the run is refused.
    owner.take(run_dir, resuming=True)
    try:
        return _plan(run_dir, ckpt_path, overrides, allow, allow_loggers)
    except BaseException:
        owner.release(run_dir)
        raise


def _plan(
    run_dir: Path, ckpt_path: Path, overrides: list[str], allow: list[str] | tuple[str, ...], allow_loggers: bool
) -> ResumePlan:
    from trainkit import checkpoint as ckpt_io
    from trainkit import owner
    from trainkit.config import validate

    ckpt_path, ckpt = ckpt_io.load_with_fallback(ckpt_path, main=owner.is_main_process())  # torn last.pt: last.prev.pt
    if ckpt.get("averaged"):  # ema.pt / swa.pt: weights to evaluate, no optimizer or RNG state to continue
        raise ConfigError(
            f"'{ckpt_path}' holds the run's {ckpt['averaged']} weights, not a training state; resume the run "
            f"from its directory (resume={run_dir}) or its checkpoints/last.pt"
        )
    check_counters(ckpt, ckpt_path)
    cfg = stored_run_config(ckpt, ckpt_path, overrides, allow, allow_loggers)
    validate(cfg)
    done = int(ckpt.get("epoch", 0)) + (1 if ckpt.get("batch_in_epoch") else 0)
    if int(cfg.trainer.epochs) < done:
        raise ConfigError(
            f"trainer.epochs={cfg.trainer.epochs} but the checkpoint has already reached epoch {done}; "
            f"resume can only add epochs (trainer.epochs >= {done})"
        )
    old_epochs = (ckpt["config"].get("trainer") or {}).get("epochs")
    longer = old_epochs is not None and int(cfg.trainer.epochs) != old_epochs
    problem = horizon_problem(cfg.get("scheduler"), int(cfg.trainer.epochs)) if longer else None
    if problem and ckpt.get("scheduler") is not None:
        raise ConfigError(f"{problem}; resume without changing trainer.epochs, or start a new run")
    return ResumePlan(run_dir, ckpt_path, cfg, _choices(run_dir))


def stored_run_config(
    ckpt: dict[str, Any], ckpt_path: Path, overrides: list[str], allow: Sequence[str], allow_loggers: bool
) -> DictConfig:
    """The stored config plus the safe overrides, checked as a stranger's (trainkit.security) before any use."""
    from trainkit import trust
    from trainkit.loggers import stored_logger_problem
    from trainkit.security import allowed_prefixes, checked_config, user_keys

    if not isinstance(ckpt.get("config"), dict):
        raise TrainkitError(f"checkpoint '{ckpt_path}' carries no config, so the run cannot be continued")
    source = f"the config stored in checkpoint '{ckpt_path}'"
    prefixes = allowed_prefixes(allow) + trust.trusted_targets(trust.run_dir_of(ckpt_path), ckpt["config"])
    cfg = checked_config(ckpt["config"], source, overrides, apply_overrides, prefixes)
    keys = user_keys(overrides)
    problem = stored_logger_problem(cfg, allow_remote=allow_loggers, user=keys)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return cfg


def check_counters(ckpt: dict[str, Any], path: Path) -> None:
    """epoch, step and batch_in_epoch must be non-negative integers, or resume cannot say where it is."""
    from trainkit.errors import CheckpointError

    for key, default in (("epoch", None), ("step", 0), ("batch_in_epoch", 0)):
        value = ckpt.get(key)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(
                f"checkpoint '{path}' stores {key}={value!r}, not a count of {key.replace('_', ' ')}s; it was not "
                "written by trainkit's train (or was edited): resume another checkpoint or start a new run"
            )


def _choices(run_dir: Path) -> dict[str, str]:
    """The run's group choices from .hydra/hydra.yaml: plain strings only, nothing resolved (a stranger's file)."""
    import yaml

    from trainkit.security import plain_data_problem

    path = run_dir / ".hydra" / "hydra.yaml"
    try:
        if path.stat().st_size > 4 * 2**20:
            return {}
        choices = yaml.safe_load(path.read_text())["hydra"]["runtime"]["choices"]
        if not isinstance(choices, dict) or plain_data_problem(choices):
            return {}
        return {str(k): str(v) for k, v in choices.items() if isinstance(v, str) or v is None}
    except Exception:
        return {}
