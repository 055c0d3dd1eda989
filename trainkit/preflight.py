"""The pre-flight check of `trainkit train`: every way a config can be refused, before Hydra makes a run directory.

cli.py calls `check_train` for every way of starting a run (one run, `-m`, `hydra.mode=MULTIRUN`,
`-p/--package`); it composes each job, validates it (config.validate: no torch), then builds
the cheap parts a run would build (device, task, trainkit's own model, optimizer and scheduler,
file paths of trainkit's data sources), and probes the directory the run will really write.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainkit.errors import ConfigError, TrainkitError

#: Hydra plugins behind trainkit's extras: (group=option prefix, module that provides it, extra).
PLUGINS = (
    ("hydra/launcher=submitit", "hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher=joblib", "hydra_plugins.hydra_joblib_launcher", "joblib"),
    ("hydra/sweeper=optuna", "hydra_plugins.hydra_optuna_sweeper", "optuna"),
    ("hparams_search=optuna", "hydra_plugins.hydra_optuna_sweeper", "optuna"),
)

# Groups whose keys only trainkit reads: a `+key` there that the config lacks is a typo nothing would read.
OWNED = ("trainer", "device", "metrics")


def run_mode(overrides: Sequence[str], multirun: bool) -> bool:
    """True for a sweep: `-m`, or `hydra.mode=MULTIRUN` given as an override (Hydra honours both)."""
    for ov in overrides:
        key, _, value = ov.lstrip("+").partition("=")
        if key == "hydra.mode":
            return value.strip("'\"").upper() == "MULTIRUN"
    return multirun


def plugin_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_plugins(overrides: Sequence[str]) -> None:
    """A launcher or sweeper whose extra is missing: name the extra (Hydra: 'Unknown plugin class' traceback)."""
    for ov in overrides:
        for prefix, module, extra in PLUGINS:
            if ov.lstrip("+").startswith(prefix) and not plugin_installed(module):
                raise ConfigError(
                    f"'{ov}' needs Hydra's plugin {module.split('.')[-1]}, which is not installed; "
                    f"install it with: pip install 'trainkit[{extra}]'"
                )
        if ov.lstrip("+").startswith("hydra/launcher=submitit_slurm") and shutil.which("srun") is None:
            raise ConfigError(  # submitit: 'Could not detect "srun"' traceback, after the sweep dir is made
                f"'{ov}' submits the jobs to SLURM, but this machine has no 'srun' (not a SLURM login node); "
                "run it where SLURM is, or try the sweep here with hydra/launcher=submitit_local"
            )


def check_train(overrides: list[str], config_dir: str | None, multirun: bool) -> str:
    """Refuse a bad `trainkit train` before anything is written; return the directory the run will use."""
    from trainkit.config import compose, expand_sweep, validate

    check_plugins(overrides)
    if multirun:
        jobs = list(expand_sweep(overrides, user_config_dir=config_dir))
        if not jobs and _sweep_is_discrete(overrides):
            raise ConfigError("the sweep selects no job; give each swept key at least one value")
    else:
        jobs = [overrides]
    # A SLURM launcher runs the jobs on other machines: this one's GPUs say nothing about theirs.
    remote = any(ov.lstrip("+").startswith("hydra/launcher=submitit_slurm") for ov in overrides)
    models: dict[str, Any] = {}  # a sweep over lr builds its model once
    again: list[DictConfig] = []  # the jobs that ask for trainer.autoresume
    for job in jobs:
        cfg = compose(job, user_config_dir=config_dir)
        validate(cfg)
        check_added_keys(job, config_dir)
        check_build(cfg, check_device=not remote, models=models)
        if OmegaConf.select(cfg, "trainer.autoresume", default=False) is True:
            again.append(cfg)
    if multirun:
        _check_interval_sweeps(overrides, config_dir)
    elif (strategy := str(OmegaConf.select(cfg, "trainer.strategy", default="auto"))) in ("ddp", "fsdp") and not (
        "RANK" in os.environ and "WORLD_SIZE" in os.environ
    ):  # one plain process asked for DDP: refuse before Hydra makes a run directory (as Run.setup would)
        raise ConfigError(
            f"trainer.strategy={strategy} needs one process per device: launch with "
            "'torchrun --nproc_per_node=N -m trainkit train ...' (or use the default trainer.strategy=auto)"
        )
    where = output_dir(overrides, config_dir, multirun, autoresume=bool(again))
    if again and len(again) == len(jobs):
        _check_autoresume(again, where, multirun)
    return where


def _check_autoresume(cfgs: list[DictConfig], where: str, multirun: bool) -> None:
    """A checkpoint of another run in a job's directory: refused before Hydra writes anything there.

    A sweep's job N runs in SWEEP_DIR/N (the order expand_sweep lists them in). Nothing is moved or
    written here; the job itself reads the directory again under its lock.
    """
    from pathlib import Path

    from trainkit.autoresume import plan

    for i, cfg in enumerate(cfgs):
        plan(cfg, Path(where) / str(i) if multirun else Path(where), main=False)


def _sweep_is_discrete(overrides: Sequence[str]) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return all(not ov.is_sweep_override() or ov.is_discrete_sweep() for ov in parsed)


def check_added_keys(overrides: Sequence[str], config_dir: str | None) -> None:
    """`+trainer.fast_dev_run=true`: a new key under a group only trainkit reads, or at the top level, is refused.

    Keys added under model/optim/loss/scheduler/task go to their `_target_` and are checked against its
    signature (check_build); hydra.* and data.dataset.*/data.transforms.* are passed on as given.
    """
    from trainkit.config import GROUPS, compose, group_options

    for ov in overrides:
        if not ov.startswith("+"):
            continue
        key = ov.lstrip("+").split("=", 1)[0]
        head = key.split(".")[0]
        if head == "hydra" or "/" in key or "@" in key or group_options(key, config_dir):
            continue  # a config group added (+experiment=...), or Hydra's own settings
        parent = key.rpartition(".")[0]
        if not (head in OWNED or parent in ("", "data")) or (parent == "" and head in GROUPS):
            continue
        if any("${" + key in o for o in overrides if o is not ov):
            continue  # `+my_lr=0.1 optim.lr=${my_lr}`: read through the interpolation
        base = compose([o for o in overrides if o is not ov], user_config_dir=config_dir)
        node = OmegaConf.select(base, parent) if parent else base
        if not isinstance(node, DictConfig) or key.rpartition(".")[2] in node:
            continue
        known = [str(k) for k in node if not parent or not str(k).startswith("_")]
        from trainkit.errors import suggest

        where = f"under '{parent}' " if parent else "at the top level "
        raise ConfigError(
            f"'{ov}': trainkit reads no key {key}{suggest(key.rpartition('.')[2], known)}; the keys {where}are: "
            f"{', '.join(known)}"
        )


def check_build(cfg: DictConfig, check_device: bool = True, models: dict[str, Any] | None = None) -> None:
    """Build what is cheap and certain to be built by the run, so its mistakes cost no run directory.

    The device (a cuda device on a machine without one), the task and its metric names (trainer.monitor),
    the data source's files, and trainkit's own model with the optimizer and scheduler on it (on the CPU:
    trainkit's models are small). A user's own model is only imported and its arguments checked.
    """
    from trainkit import build, instantiate

    if check_device and str(cfg.device.type) in ("cuda", "mps"):
        build.resolve_device(cfg)
    task = _quietly(lambda: build.build_task(cfg))
    if task is not None:
        check_monitor_name(task, str(cfg.trainer.monitor))
    _check_data_source(cfg)
    _check_augment(cfg)
    for group in ("loss", "optim", "scheduler"):  # `+loss.nokey=1`: named now, not after the data is loaded
        node = cfg.get(group)
        if isinstance(node, DictConfig) and node.get("_target_") not in (None, "", "null"):
            kw = instantiate.target_kwargs(group, node)
            provided = {"optim": ("params",), "scheduler": ("optimizer",)}.get(group, ())
            kw = {k: v for k, v in kw.items() if k != "_target_" and (group != "loss" or k not in ("weight", "pos_weight"))}
            instantiate.check_signature(group, instantiate.resolve_target(group, str(node._target_)), kw, provided)
    _check_in_shape(cfg)
    _check_model_name(cfg)
    model_cfg = cfg.model
    target = str(model_cfg.get("_target_", ""))
    kwargs = instantiate.target_kwargs("model", model_cfg)
    resolved = instantiate.resolve_target("model", target)
    instantiate.check_signature("model", resolved, {k: v for k, v in kwargs.items() if k != "_target_"})
    if not target.startswith("trainkit.") or any(v is None for k, v in kwargs.items() if k in ("in_shape", "out_features")):
        return  # a user's model may be big or need the data: the run builds it once
    key = OmegaConf.to_yaml(model_cfg, resolve=True)
    models = {} if models is None else models
    if key not in models:
        models[key] = _quietly(lambda: build.build_model(cfg))
    model = models[key]
    if model is not None:
        _check_finetune(cfg, model)
    if model is None or cfg.optim.get("param_groups") or str(cfg.optim.get("lr")) == "auto":  # auto: the run picks it
        return
    optimizer = _quietly(lambda: build.build_optimizer(cfg, model))
    if optimizer is not None:
        _quietly(lambda: build.build_scheduler(cfg, optimizer, 1))


# model=torchvision / model=timm: the builder whose model.name is checked against its library's list.
NAMED_MODELS = {"trainkit.models.torchvision_model": "torchvision", "trainkit.models.timm_model": "timm"}


def _check_model_name(cfg: DictConfig) -> None:
    """model.name of a library model, and the fine-tuning files and keys that need no model to check."""
    from trainkit import finetune

    library = NAMED_MODELS.get(str(cfg.model.get("_target_", "")))
    if library is not None:
        from trainkit.models.named import check_name

        check_name(library, cfg.model.get("name"))
    if cfg.model.get("pretrained") not in (None, ""):
        finetune.weights_path(cfg.model.pretrained)
    finetune.check_unfreeze(finetune.patterns_of(cfg.model), cfg.trainer.get("unfreeze_at_epoch"))


def _check_finetune(cfg: DictConfig, model: Any) -> None:
    """The weights fit (model.pretrained_strict) and every model.freeze pattern names a parameter of `model`."""
    from trainkit import finetune

    finetune.load_pretrained(model, cfg.model, quiet=True)
    frozen = finetune.freeze(model, finetune.patterns_of(cfg.model))
    for p in frozen.params if frozen is not None else ():
        p.requires_grad_(True)  # the model is shared by a sweep's jobs: leave it as built


def _check_in_shape(cfg: DictConfig) -> None:
    """An explicit model.in_shape that does not hold the data's inputs (the run failed in its first batch)."""
    import math

    if OmegaConf.is_interpolation(cfg.model, "in_shape") if "in_shape" in cfg.model else True:
        return
    model_shape, data_shape = cfg.model.get("in_shape"), cfg.data.get("input_shape")
    if model_shape is None or data_shape is None:
        return
    as_list = [int(s) for s in (model_shape if OmegaConf.is_list(model_shape) else [model_shape])]
    data_list = [int(s) for s in data_shape]
    if math.prod(as_list) != math.prod(data_list):
        raise ConfigError(
            f"model.in_shape={as_list} does not fit the data's inputs {data_list} (data.input_shape); "
            "drop model.in_shape (it follows ${data.input_shape}) or give one that holds "
            f"{math.prod(data_list)} values"
        )


def _quietly(fn: Any) -> Any:
    """Run a builder: a TrainkitError is the user's and is raised; anything else is left for the run to report."""
    try:
        return fn()
    except TrainkitError:
        raise
    except Exception:
        return None


def check_monitor_name(task: Any, monitor: str) -> None:
    """trainer.monitor must be a column trainkit's task will log (the run found out after its first epoch)."""
    from trainkit.tasks import Task

    if not isinstance(task, Task) or not type(task).__module__.startswith("trainkit."):
        return
    names = {"loss", *task.metrics}
    with contextlib.suppress(Exception):  # a finalize that needs its own sums: the declared metrics suffice
        names.update(task.finalize({"count": 1.0}))
    columns = [f"{split}_{name}" for split in ("train", "val") for name in sorted(names)]
    if monitor not in columns and monitor not in ("train_time_s", "train_samples_per_s"):
        from trainkit.errors import suggest

        raise ConfigError(
            f"trainer.monitor={monitor} is not a metric of task={getattr(task, 'name', type(task).__name__)}"
            f"{suggest(monitor, columns)}; choose one of: {', '.join(columns)}"
        )


def _check_data_source(cfg: DictConfig) -> None:
    """The files of trainkit's own data sources exist (a missing file cost a failed run directory)."""
    from trainkit import instantiate
    from trainkit.data import arrays
    from trainkit.data.files import check_source

    node = cfg.data.get("dataset")
    if isinstance(node, DictConfig):
        target, kwargs = str(node.get("_target_", "")), OmegaConf.to_container(node, resolve=True)
        check_source(target, kwargs)
        arrays.check_source(target, kwargs)
        if target and not target.startswith("trainkit."):  # a Dataset of the user's: imported, arguments checked
            kw = {k: v for k, v in instantiate.target_kwargs("data.dataset", node).items() if k != "_target_"}
            instantiate.check_signature("data.dataset", instantiate.resolve_target("data.dataset", target), kw)


def _check_augment(cfg: DictConfig) -> None:
    """data.augment names transforms torchvision has, that fit the data's shape; mixup/cutmix a loss that takes probabilities."""
    d = cfg.data
    specs, mixup, cutmix = d.get("augment"), d.get("mixup_alpha"), d.get("cutmix_alpha")
    if not specs and not mixup and not cutmix:
        return
    from trainkit.data.augment import BatchAugment

    plain = OmegaConf.to_container(specs, resolve=True) if OmegaConf.is_config(specs) else specs
    aug = BatchAugment(plain, mixup or 0.0, cutmix or 0.0, d.get("num_classes") or 2)
    shape = d.get("input_shape")
    aug.check_shape(list(shape) if shape is not None else None)
    task, loss = str(cfg.task.get("_target_", "")), str(cfg.loss.get("_target_", ""))
    takes_probabilities = task.endswith(".SoftTargets") or (task.endswith(".Classification") and loss.endswith("CrossEntropyLoss"))
    if (mixup or cutmix) and not takes_probabilities:
        raise ConfigError(
            "data.mixup_alpha / data.cutmix_alpha turn the labels into class probabilities, which only "
            "task=classification with loss=cross_entropy, or task=soft_targets, take; change the task or loss, or set them to 0"
        )


def _check_interval_sweeps(overrides: Sequence[str], config_dir: str | None) -> None:
    """`key=interval(a,b)` needs a sampling sweeper (Optuna); Hydra's basic one fails with a traceback."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from trainkit.config import compose

    parsed = OverridesParser.create().parse_overrides(list(overrides))  # already parsed by expand_sweep
    intervals = [ov.input_line for ov in parsed if ov.is_sweep_override() and not ov.is_discrete_sweep()]
    if not intervals:
        return
    fixed = [ov.input_line for ov in parsed if not ov.is_sweep_override()]
    hydra_cfg = compose(fixed, user_config_dir=config_dir, return_hydra_config=True).hydra
    if str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        raise TrainkitError(
            f"{intervals[0]}: Hydra's basic sweeper cannot sample an interval; list values (a,b,c), "
            "use range(start,stop,step), or search with hparams_search=optuna"
        )


def output_dir(overrides: Sequence[str], config_dir: str | None, multirun: bool, autoresume: bool = False) -> str:
    """The run (sweep) directory as Hydra will resolve it: `${now:...}` and `${trainkit.unique_dir:...}` included.

    Resolved without claiming anything (rundir.CLAIM is off here); falls back to the text before
    the first interpolation when the value needs what only a running Hydra job knows. With
    `autoresume` (trainer.autoresume=true) the directory must be one a re-run finds again.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from trainkit.config import compose
    from trainkit.guards import output_dir_from_overrides

    key = "sweep.dir" if multirun else "run.dir"
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    fixed = [ov.input_line for ov in parsed if not ov.is_sweep_override()]
    hydra_cfg = compose(fixed, user_config_dir=config_dir, return_hydra_config=True).hydra
    from trainkit.owner import check_dangling, literal_head

    raw_dir = OmegaConf.to_container(hydra_cfg, resolve=False)[key.split(".")[0]].get("dir", "")
    check_dangling(literal_head(str(raw_dir)), f"hydra.{key}")  # outputs -> /gone: say so, not a resolver's error
    if autoresume:
        from trainkit.autoresume import check_fixed_dir

        check_fixed_dir(str(raw_dir), f"hydra.{key}", str(OmegaConf.select(hydra_cfg, "launcher._target_", default="")))
    try:
        value = OmegaConf.select(hydra_cfg, key, throw_on_resolution_failure=True)
    except Exception as exc:
        if "HydraConfig was not set" not in str(exc):  # ${hydra:...}: known only inside the job
            from trainkit.rules import first_line

            raw: Any = OmegaConf.to_container(hydra_cfg, resolve=False)
            for part in key.split("."):
                raw = raw.get(part) if isinstance(raw, dict) else raw
            raise ConfigError(
                f"hydra.{key}={raw} "
                f"cannot be resolved ({first_line(str(exc)).split(' full_key:')[0]}); give a directory such as "
                f"hydra.{key}=outputs/my_run"
            ) from None
        value = None
    return str(value) if value else output_dir_from_overrides(list(overrides), multirun)
