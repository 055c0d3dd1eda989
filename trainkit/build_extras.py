"""What build.py adds to the plain `_target_` builds: optimizer param groups by name pattern, the sparse-gradient
checks, loss.weight (a list or `auto`), and the steps per epoch a per-step scheduler needs."""

from __future__ import annotations

import fnmatch
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from torch import nn

from trainkit.errors import ConfigError


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
