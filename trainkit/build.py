"""Config -> objects: one small builder per group, all through `_target_` and hydra's instantiate."""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from torch import nn

from trainkit.errors import ConfigError, TrainkitError, suggest
from trainkit.models.init import apply_init

# Keys of a group that steer trainkit rather than being passed to the `_target_`.
RESERVED = {
    "model": ("init",),
    "optim": ("param_groups",),
    "scheduler": ("interval",),
    "loss": (),
    "task": (),
}


def _target_kwargs(group: str, node: DictConfig) -> dict[str, Any]:
    """The group's keys minus trainkit's own, resolved to plain data."""
    plain = OmegaConf.to_container(node, resolve=True)
    assert isinstance(plain, dict)
    for key in RESERVED.get(group, ()):
        plain.pop(key, None)
    return plain


def _resolve_target(group: str, path: str) -> Any:
    # get_method takes classes and functions alike (get_class logs an error for a function).
    try:
        return get_method(path)
    except Exception:
        raise ConfigError(
            f"{group}._target_={path} cannot be imported; check the spelling and that its package is installed "
            "(for a module of your own, run from its folder with PYTHONPATH=.)"
        ) from None


def _check_signature(group: str, target: Any, kwargs: dict[str, Any], provided: tuple[str, ...] = ()) -> None:
    """Name a misspelt argument before the run starts, as hydra-zen's builds() does."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for key in kwargs:
        if key.startswith("_") or key in params:
            continue
        raise ConfigError(
            f"{group}.{key} is not an argument of {getattr(target, '__qualname__', target)}"
            f"{suggest(key, params)}; its arguments: {', '.join(k for k in params if k not in provided and k != 'self')}"
        )


def instantiate_group(group: str, node: DictConfig, *args: Any, **extra: Any) -> Any:
    """Instantiate `cfg.<group>` with a clear error naming the group when it fails."""
    kwargs = _target_kwargs(group, node)
    target_path = kwargs.get("_target_")
    if not target_path:
        raise ConfigError(f"{group} has no _target_; set {group}._target_=package.Class")
    target = _resolve_target(group, str(target_path))
    _check_signature(group, target, {k: v for k, v in kwargs.items() if k != "_target_"}, tuple(extra))
    try:
        # _convert_=all: plain lists reach the target (a ListConfig in optimizer state breaks weights_only loads).
        return instantiate(kwargs, *args, _convert_="all", **extra)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, TrainkitError):
            raise cause from exc
        reason = str(cause).splitlines()[0] if cause else str(exc).splitlines()[-1]
        raise ConfigError(f"cannot build {group} ({target_path}): {reason}") from exc
    except TrainkitError:
        raise


def resolve_device(cfg: DictConfig) -> torch.device:
    """device.type auto|cpu|cuda|mps -> torch.device, refusing a device this machine lacks."""
    kind = str(cfg.device.type)
    index = cfg.device.get("index")
    if kind == "auto":
        if torch.cuda.is_available():
            kind = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            kind = "mps"
        else:
            kind = "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible to torch; use device=cpu or device=auto")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device=mps but Apple MPS is not available here; use device=cpu or device=auto")
    if kind == "cuda":
        if index is not None and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"device.index={index} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                "pick an index below that"
            )
        return torch.device("cuda", int(index) if index is not None else torch.cuda.current_device())
    return torch.device(kind)


def autocast_dtype(cfg: DictConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for device.precision, or None for full precision."""
    p = str(cfg.device.precision)
    if p == "32":
        return None
    if p == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("device.precision=bf16 is not supported on this GPU; use device.precision=16")
        return torch.bfloat16
    return torch.float16


def build_task(cfg: DictConfig) -> Any:
    return instantiate_group("task", cfg.task)


def build_model(cfg: DictConfig) -> nn.Module:
    model = instantiate_group("model", cfg.model)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_={cfg.model._target_} built a {type(model).__name__}, not an nn.Module")
    return apply_init(model, str(cfg.model.get("init", "default")))


def build_loss(cfg: DictConfig, data: Any = None) -> nn.Module:
    """The loss; loss.weight may be a per-class list or `auto` (needs `data` for the class counts)."""
    if "weight" in cfg.loss and cfg.loss.get("weight") is not None:
        weight = loss_weight(cfg, data)
        node = cfg.loss.copy()
        with open_dict(node):
            node.pop("weight")
        return instantiate_group("loss", node, weight=weight)
    return instantiate_group("loss", cfg.loss)


def build_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    params: list[Any] = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters; check model._target_ and freezing options")
    check_sparse(cfg, model, _resolve_target("optim", str(cfg.optim.get("_target_"))))
    if cfg.optim.get("param_groups"):
        params = param_groups(model, cfg.optim.param_groups)
    return instantiate_group("optim", cfg.optim, params)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> tuple[Any, str]:
    """The scheduler (or None) and when it steps: 'epoch' or 'step'."""
    node = cfg.scheduler
    interval = str(node.get("interval", "epoch"))
    if node.get("_target_") in (None, "", "null"):
        return None, interval
    return instantiate_group("scheduler", fill_steps(node, steps_per_epoch), optimizer), interval


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- optimizer and loss extras


def param_groups(model: nn.Module, groups: Any) -> list[dict[str, Any]]:
    """optim.param_groups -> torch param groups: each entry's `params` (a name pattern or list of them) picks
    parameters by fnmatch on their names; the first matching entry wins, the rest use the optimizer's options.

    e.g. [{params: "features.*", lr: 0.01}, {params: ["*.bias", "*norm*"], weight_decay: 0.0}]
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    specs = OmegaConf.to_container(groups, resolve=True) if isinstance(groups, (DictConfig, ListConfig)) else groups
    if not isinstance(specs, list):
        raise ConfigError("optim.param_groups must be a list like [{params: 'features.*', lr: 0.01}]")
    taken: set[str] = set()
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "params" not in spec:
            raise ConfigError(f"optim.param_groups[{i}] needs 'params': a parameter-name pattern like 'features.*'")
        patterns = spec["params"] if isinstance(spec["params"], list) else [spec["params"]]
        chosen = [(n, p) for n, p in named if n not in taken and any(fnmatch.fnmatchcase(n, str(pat)) for pat in patterns)]
        if not chosen:
            names = ", ".join(n for n, _ in named[:8]) + (", ..." if len(named) > 8 else "")
            raise ConfigError(
                f"optim.param_groups[{i}].params={patterns} matches no parameter (or only ones an earlier group took); "
                f"this model's parameter names: {names}"
            )
        taken.update(n for n, _ in chosen)
        options = {k: v for k, v in spec.items() if k != "params"}
        out.append({"params": [p for _, p in chosen], **options})
    rest = [p for n, p in named if n not in taken]
    if rest:
        out.append({"params": rest})
    return out


def check_sparse(cfg: DictConfig, model: nn.Module, optimizer_cls: Any) -> None:
    """SparseAdam takes only sparse gradients and most optimizers take none: say so before the first step."""
    from trainkit.models.extra import sparse_parameters

    sparse = sparse_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    dense = [p for p in params if id(p) not in sparse]
    name = getattr(optimizer_cls, "__name__", str(optimizer_cls))
    if isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.SparseAdam) and dense:
        raise ConfigError(
            f"optim=sparse_adam needs a model whose parameters all get sparse gradients, but model._target_="
            f"{cfg.model.get('_target_')} has {len(dense)} dense parameter tensor(s); use model=embedding_bag "
            "with optim=sparse_adam, or optim=adam for this model"
        )
    if sparse and isinstance(optimizer_cls, type) and not issubclass(
        optimizer_cls, (torch.optim.SparseAdam, torch.optim.SGD, torch.optim.Adagrad)
    ):
        raise ConfigError(
            f"the model has sparse gradients (an embedding with sparse=true) which {name} cannot take; use "
            "optim=sparse_adam, optim=sgd or optim=adagrad, or set model.sparse=false"
        )


def loss_weight(cfg: DictConfig, data: Any) -> torch.Tensor | None:
    """loss.weight: null, a list of per-class weights, or `auto` (inverse class frequency of the training split)."""
    weight = cfg.loss.get("weight")
    if weight is None:
        return None
    if isinstance(weight, str):
        if weight != "auto":
            raise ConfigError(f"loss.weight={weight} must be a list of per-class weights, auto or null")
        if data is None or getattr(data, "train_split", None) is None:
            raise ConfigError("loss.weight=auto needs the training data to count classes")
        from trainkit.data.sampling import class_counts

        counts = class_counts(data.train_split, cfg.data.get("num_classes"))
        # sklearn's "balanced": n_samples / (n_classes * count); an absent class gets weight 0.
        w = counts.sum() / (len(counts) * counts.clamp_min(1.0))
        return torch.where(counts > 0, w, torch.zeros_like(w)).float()
    values = OmegaConf.to_container(weight, resolve=True) if isinstance(weight, ListConfig) else weight
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"loss.weight={weight} must be a list of numbers (one per class), auto or null")
    classes = cfg.data.get("num_classes")
    if classes is not None and len(values) != int(classes):
        raise ConfigError(f"loss.weight has {len(values)} entries but data.num_classes={classes}; give one weight per class")
    return torch.tensor(values, dtype=torch.float32)


def fill_steps(node: DictConfig, steps_per_epoch: int) -> DictConfig:
    """Schedulers that step per batch (onecycle) learn the steps per epoch here, where the loader is known."""
    if "steps_per_epoch" in node and node.get("steps_per_epoch") is None:
        node = node.copy()
        with open_dict(node):
            node.steps_per_epoch = int(steps_per_epoch)
    return node
