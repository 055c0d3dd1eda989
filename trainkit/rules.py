"""The range rules of the config's values, and `validate`, which applies them all in one message.

Composition (trainkit.config) rejects a wrong type through the schemas; what remains is the ranges,
the keys a run cannot do without, and interpolations that cannot resolve. No torch here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainkit.errors import ConfigError
from trainkit.schema import type_phrase


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines()[:2] if ln.strip()]
    return re.sub(r"\s*See https?://\S+ for details\.?", "", " ".join(lines))


Check = Callable[[Any], "str | None"]


def _int(minimum: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer >= {minimum}"
        return None if v >= minimum else f"must be an integer >= {minimum}"

    return check


def _positive_number(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        return "must be a positive number"
    return None


def _nonneg_number(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return "must be a number >= 0"
    return None


def _fraction(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        return "must be a fraction in [0, 1)"
    return None


def _optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def _one_of(*choices: Any) -> Check:
    shown = ", ".join(dict.fromkeys(str(c) for c in choices))

    def check(v: Any) -> str | None:
        return None if v in choices and not isinstance(v, bool) else "must be one of: " + shown

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _bool_or_auto(v: Any) -> str | None:
    return None if isinstance(v, bool) or v == "auto" else "must be true, false or auto"


def _top_k(v: Any) -> str | None:
    values = v if isinstance(v, list) else [] if v is None else [v]
    ok = all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in values)
    return None if ok else "must be an integer >= 1 or a list of them, e.g. [1,5]"


def _early_stopping(v: Any) -> str | None:
    if isinstance(v, dict):
        return None
    return f"must be a group of settings; write trainer.early_stopping.patience={v} (and optionally .min_delta)"


def _group(example: str) -> Check:
    """A group of settings given one value (trainer.ema=0.999): name the key the user meant."""

    def check(v: Any) -> str | None:
        return None if isinstance(v, dict) else f"must be a group of settings; write {example.format(v=v)}"

    return check


def _batches(v: Any) -> str | None:
    """limit_*_batches: a count of batches >= 1, or a fraction in (0, 1]."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "must be a number of batches >= 1 or a fraction in (0, 1], e.g. 10 or 0.25"
    if isinstance(v, int):
        return None if v >= 1 else "must be a number of batches >= 1 or a fraction in (0, 1], e.g. 10 or 0.25"
    return None if 0 < v <= 1 else "must be a number of batches >= 1 or a fraction in (0, 1], e.g. 10 or 0.25"


def _lr(v: Any) -> str | None:
    """optim.lr: a positive number, or auto (the lr range test picks it: trainkit.lr_find)."""
    return None if v == "auto" else _positive_number(v)


def _open_unit(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
    return None if ok else "must be a number between 0 and 1"


def _is_int(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _seed(v: Any) -> str | None:
    # torch.manual_seed takes at most 2**64 - 1, and the data order adds the epoch to the seed.
    return None if _is_int(v, 0) and v < 2**63 else "must be an integer in [0, 2**63)"


def _sizes(v: Any) -> str | None:
    """model.hidden / model.channels: one size or a list of them, each >= 1 (nn.Linear(-1) is a traceback)."""
    values = v if isinstance(v, list) else [v]
    return None if values and all(_is_int(s, 1) for s in values) else "must be an integer >= 1 or a list of them, e.g. [128,64]"


def _shape(v: Any) -> str | None:
    values = v if isinstance(v, list) else [v]
    return None if values and all(_is_int(s, 1) for s in values) else "must be a list of sizes >= 1, e.g. [1,8,8]"


def _betas(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v
    )
    return None if ok else "must be two numbers in [0, 1), e.g. [0.9,0.999]"


def _name(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a name, e.g. relu"


def _milestones(v: Any) -> str | None:
    ok = isinstance(v, list) and all(_is_int(m, 1) for m in v)
    return None if ok else "must be a list of epochs >= 1, e.g. [10,15]"


def _class_names(v: Any) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(n, str) and n.isidentifier() for n in v)
    return None if ok else "must be a list of module class names, e.g. [Linear] or [MyBlock]"


# Keys whose values we know; anything a group's _target_ takes is checked against its signature at build time.
RULES: dict[str, Check] = {
    "seed": _seed,
    "trainer.epochs": _int(1),
    "trainer.accumulate": _int(1),
    "trainer.grad_clip": _optional(_positive_number),
    "trainer.log_every_n_steps": _int(1),
    "trainer.monitor_mode": _one_of("min", "max"),
    "trainer.progress": _one_of("auto", "rich", "plain", "none"),
    "trainer.compile": _bool,
    "trainer.deterministic": _bool,
    "trainer.checkpoint_every_n_steps": _optional(_int(1)),
    "trainer.skip_done": _bool,
    "trainer.overwrite": _bool,
    "trainer.on_nan": _one_of("stop", "skip_batch"),
    "trainer.strategy": _one_of("auto", "ddp", "dp", "fsdp"),
    "trainer.autoresume": _bool,
    "trainer.fsdp.wrap": _optional(_class_names),
    "trainer.fsdp.min_params": _optional(_int(1)),
    "trainer.fsdp.reshard_after_forward": _bool,
    "trainer.fsdp.mixed_precision": _optional(_one_of("bf16", 16, "16")),
    "data.batch_size": _int(1),
    "data.eval_batch_size": _int(1),
    "data.num_workers": _int(0),
    "data.val_fraction": _fraction,
    "data.test_fraction": _fraction,
    "data.shuffle": _bool,
    "data.drop_last": _bool,
    "data.persistent_workers": _bool,
    "data.pin_memory": _bool_or_auto,
    "data.loader": _one_of("auto", "memory", "dataloader"),
    "data.sampler": _optional(_one_of("random", "sequential", "weighted")),
    "data.memory_budget_mb": _positive_number,
    "data.download": _bool,
    "data.skip_bad_files": _bool,
    "optim.lr": _lr,
    "tune.steps": _int(10),
    "tune.min_lr": _positive_number,
    "tune.max_lr": _positive_number,
    "optim.momentum": _nonneg_number,
    "optim.weight_decay": _nonneg_number,
    "device.type": _one_of("auto", "cpu", "cuda", "mps"),
    "device.index": _optional(_int(0)),
    "device.precision": _one_of(32, "32", "bf16", 16, "16"),
    "scheduler.interval": _one_of("epoch", "step"),
    "trainer.early_stopping": _optional(_early_stopping),
    "trainer.early_stopping.patience": _optional(_int(1)),
    "trainer.early_stopping.min_delta": _nonneg_number,
    "trainer.fast_dev_run": _optional(_int(1)),
    "trainer.limit_train_batches": _optional(_batches),
    "trainer.limit_val_batches": _optional(_batches),
    "trainer.overfit_batches": _optional(_int(1)),
    "trainer.ema": _group("trainer.ema.decay={v}"),
    "trainer.ema.decay": _optional(_open_unit),
    "trainer.swa": _group("trainer.swa.start_epoch={v} (and optionally .lr)"),
    "trainer.swa.start_epoch": _optional(_int(1)),
    "trainer.swa.lr": _optional(_positive_number),
    "trainer.swa.anneal_epochs": _int(1),
    "trainer.profile": _bool,
    "trainer.profile_schedule.wait": _int(0),
    "trainer.profile_schedule.warmup": _int(0),
    "trainer.profile_schedule.active": _int(1),
    "trainer.unfreeze_at_epoch": _optional(_int(1)),  # fine-tuning (trainkit/finetune.py)
    "model.pretrained_strict": _bool,
    "metrics.enabled": _bool,
    "metrics.top_k": _top_k,
    "metrics.average": _one_of("macro", "weighted", "micro"),
    "metrics.threshold": _open_unit,
    "metrics.per_class": _bool,
    "metrics.confusion_matrix": _bool,
    # Keys of the built-in components (a mistake here was a torch traceback mid-build).
    "model.hidden": _optional(_sizes),
    "model.channels": _optional(_sizes),
    "model.in_shape": _optional(_shape),
    "model.dropout": _fraction,
    "model.activation": _name,
    "task.out_features": _optional(_int(1)),
    "optim.betas": _betas,
    "optim.eps": _nonneg_number,
    "scheduler.step_size": _int(1),
    "scheduler.gamma": _positive_number,
    "scheduler.T_max": _int(1),
    "scheduler.milestones": _milestones,
    "scheduler.warmup_epochs": _int(0),
    "scheduler.max_epochs": _int(1),
}


# Keys the run reads unconditionally: deleting one (~key) is refused here rather than failing mid-build.
REQUIRED = (
    "seed", "trainer.epochs", "trainer.accumulate", "trainer.log_every_n_steps", "trainer.monitor",
    "trainer.monitor_mode", "trainer.progress", "data.batch_size", "data.eval_batch_size",
    "data.val_fraction", "data.test_fraction", "device.type", "device.precision",
    "model", "loss", "optim", "scheduler", "task",  # whole groups: ~optim failed mid-build with a traceback
    "model._target_", "loss._target_", "optim._target_", "task._target_", "data.dataset", "data.dataset._target_",
    "data.memory_budget_mb", "data.loader", "data.num_workers", "data.shuffle", "data.drop_last",
)


def validate(cfg: DictConfig) -> None:
    """Check every known key's type and range; gather all problems into one message."""
    problems: list[str] = []
    raw = OmegaConf.to_container(cfg, resolve=False)
    missing = [k for k in REQUIRED if not _exists(raw, k)]  # present but unresolvable: _resolution_problems
    missing = [k for k in missing if not any(k.startswith(m + ".") for m in missing)]  # ~model: not model._target_ too
    if missing:
        problems.append(f"missing {', '.join(missing)} (deleted with ~?); trainkit needs them: set KEY=VALUE")
    else:
        problems = _resolution_problems(cfg)
    if problems:  # the root cause: every check below would only repeat it
        raise ConfigError("invalid config: " + "; ".join(problems))
    unset = _unset_keys(raw)  # `???`: data=tensor_file needs data.path
    if unset:
        problems.append(f"{', '.join(unset)} has no value (???); give it on the command line, e.g. {unset[0]}=...")
    for key, check in RULES.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True, default=ABSENT)
        except Exception as exc:  # interpolation to a missing key, mandatory value, ...
            problems.append(f"{key}: {first_line(str(exc))}")
            continue
        if value is ABSENT or key in unset:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        msg = check(value)
        if msg:
            problems.append(f"{key}={show_value(value, key)} {msg}")
    val, test = (OmegaConf.select(cfg, f"data.{k}_fraction", default=0) for k in ("val", "test"))
    if not _fraction(val) and not _fraction(test) and val + test >= 1:
        problems.append(f"data.val_fraction={val} plus data.test_fraction={test} leave no training data; keep their sum below 1")
    if OmegaConf.select(cfg, "trainer.autoresume", default=False) is True and OmegaConf.select(
        cfg, "trainer.overwrite", default=False
    ) is True:
        problems.append("trainer.autoresume=true continues the run in its directory and trainer.overwrite=true "
                        "replaces it; choose one")
    monitor = OmegaConf.select(cfg, "trainer.monitor", default=None)
    if monitor is not None and not re.fullmatch(r"(train|val)_\w+", str(monitor)):
        problems.append(f"trainer.monitor={monitor} must name a train_ or val_ metric, e.g. val_loss or val_acc")
    from trainkit.loggers import logger_problems  # no torch: finds missing optional packages by name

    problems += logger_problems(cfg)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


ABSENT = object()


def _resolution_problems(cfg: DictConfig) -> list[str]:
    """Interpolations that cannot resolve (a deleted key they point to, a cycle), named by key.

    `???` values are reported by validate itself; the hydra node is Hydra's business.
    """
    problems: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            full = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix.rstrip('.')}[{key}]"
            if full == "hydra" or OmegaConf.is_missing(node, key):
                continue
            if OmegaConf.is_interpolation(node, key):
                raw = str(node._get_node(key)._value())
                try:
                    value = node[key]
                except RecursionError:
                    problems.append(f"{full}={raw} refers to itself (directly or through other keys); give it a value")
                    continue
                except Exception as exc:
                    text = first_line(str(exc)).split(" full_key:")[0]
                    if "Missing mandatory value" in text:
                        continue  # it points to a `???`: validate names that key itself
                    if "Recursive interpolation" in text:
                        problems.append(f"{full}={raw} refers to itself (directly or through other keys); give it a value")
                    elif "not found" in text:
                        problems.append(f"{full}={raw} points to a key that does not exist ({text}); "
                                        "set that key or give this one a value")
                    else:
                        problems.append(f"{full}={raw} cannot be resolved ({text})")
                    continue
                if isinstance(value, (DictConfig, ListConfig)):
                    walk(value, full + ".")
            else:
                child = node._get_node(key)
                if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
                    walk(child, full + ".")

    walk(cfg, "")
    return problems


def _unset_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is still `???` (not resolved: an interpolation to one would raise)."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _unset_keys(v, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if node == "???" else []


def _exists(node: Any, key: str) -> bool:
    """The dotted key is in the unresolved container (its value may still be an interpolation)."""
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def show_value(value: Any, key: str = "") -> str:
    """The value as the user wrote it: `trainer.grad_clip=0` reads 0, not the float node's 0.0."""
    group, _, rest = key.partition(".")
    if isinstance(value, float) and value.is_integer() and type_phrase(group, rest) == "must be a number":
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)
