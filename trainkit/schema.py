"""The types of the config groups trainkit itself reads: trainer, metrics, device and data's shared keys.

Each dataclass is the one statement of its keys' types; the values stay in the YAML options. They are
registered in Hydra's ConfigStore as `schema/<group>`, and each built-in option lists its schema after
`_self_` (`- /schema/trainer@_here_`): merging a schema whose values are all `???` onto the option keeps
the option's values and key order and makes each node typed, so `trainer.epochs=abc` fails on the
override itself, naming the key, and `trainkit show` prints the options as they are written.

A schema is stored as an open DictConfig of typed nodes, not as a dataclass node: a dataclass node
refuses deletion (`~trainer.epochs` must still reach validate's "missing ... (deleted with ~?)") and
refuses keys it does not declare (every data option has its own: path, root, transforms, ...).
Booleans stay untyped: OmegaConf's bool takes 1, 2 and 'yes' silently where trainkit wants true or
false, so rules.RULES checks them, as it checks every range. No torch here.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING, DictConfig
from omegaconf.nodes import AnyNode, FloatNode, IntegerNode, StringNode

# ruff: noqa: UP045  (Optional[X] reads as "may be null" next to the YAML's null)


@dataclass
class EarlyStoppingSchema:
    patience: Optional[int]
    min_delta: float


@dataclass
class EmaSchema:
    decay: Optional[float]


@dataclass
class SwaSchema:
    start_epoch: Optional[int]
    lr: Optional[float]
    anneal_epochs: int


@dataclass
class ProfileScheduleSchema:
    wait: int
    warmup: int
    active: int


@dataclass
class FsdpSchema:
    wrap: Any  # a list of module class names, or null
    min_params: Optional[int]
    reshard_after_forward: Any  # bool: rules.RULES checks it
    mixed_precision: Any  # null, bf16 or 16


@dataclass
class TrainerSchema:
    epochs: int
    accumulate: int
    grad_clip: Optional[float]
    monitor: str
    monitor_mode: str
    log_every_n_steps: int
    progress: str
    on_nan: str
    compile: bool
    strategy: str
    deterministic: bool
    checkpoint_every_n_steps: Optional[int]
    skip_done: bool
    overwrite: bool
    autoresume: bool
    fsdp: Optional[FsdpSchema]
    early_stopping: Optional[EarlyStoppingSchema]
    fast_dev_run: Optional[int]
    limit_train_batches: Any  # a count (int) or a fraction (float): rules.RULES checks it
    limit_val_batches: Any
    overfit_batches: Optional[int]
    ema: EmaSchema
    swa: SwaSchema
    profile: bool
    profile_schedule: ProfileScheduleSchema
    unfreeze_at_epoch: Optional[int]  # fine-tuning: model.freeze released after this many epochs


@dataclass
class MetricsSchema:
    enabled: bool
    top_k: Any  # one k or a list of them
    average: str
    threshold: float
    per_class: bool
    confusion_matrix: bool


@dataclass
class DeviceSchema:
    type: str
    index: Optional[int]
    precision: Any  # 32, bf16 or 16: an int or a string


@dataclass
class DataSchema:
    """The keys every data option has; each adds its own (path, root, transforms, ...)."""

    name: str
    dataset: Any  # {_target_: ...}: what the data builders call
    input_shape: Any  # a list of sizes, or null: filled from the data
    num_classes: Optional[int]  # null: filled from the data
    val_fraction: float
    test_fraction: float
    batch_size: int
    eval_batch_size: int
    shuffle: bool
    sampler: Optional[str]
    drop_last: bool
    num_workers: int
    pin_memory: Any  # true, false or auto
    persistent_workers: bool
    loader: str
    memory_budget_mb: Any  # a number; a float node would show 2048 as 2048.0
    augment: Any  # a list of torchvision.transforms.v2 names or {name: ..., arguments}
    mixup_alpha: float
    cutmix_alpha: float


SCHEMAS: dict[str, type] = {"trainer": TrainerSchema, "metrics": MetricsSchema, "device": DeviceSchema, "data": DataSchema}

_NODES = {int: IntegerNode, float: FloatNode, str: StringNode}


def _unwrap(kind: Any) -> tuple[Any, bool]:
    """(the type, whether null is allowed) of an annotation such as Optional[int]."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Union and len(args) == 1:
        return args[0], True
    return kind, False


def open_node(schema: type) -> DictConfig:
    """The schema as an open DictConfig of typed nodes whose values are all `???` (see the docstring)."""
    content: dict[str, Any] = {}
    for name, kind in typing.get_type_hints(schema).items():
        base, optional = _unwrap(kind)
        if dataclasses.is_dataclass(base):
            content[name] = open_node(base)  # type: ignore[arg-type]
        elif base in _NODES:
            content[name] = _NODES[base](MISSING, is_optional=optional)
        else:  # Any, bool: rules.RULES checks them
            content[name] = AnyNode(MISSING)
    return DictConfig(content)


def type_phrase(group: str, key: str) -> str | None:
    """What the schema asks of `group.key` in words ("must be an integer"), or None if it is untyped."""
    kind: Any = SCHEMAS.get(group)
    for part in key.split("."):
        if not dataclasses.is_dataclass(kind):
            return None
        kind, _ = _unwrap(typing.get_type_hints(kind).get(part))
    if dataclasses.is_dataclass(kind):
        return "must be a group of settings"
    return {int: "must be an integer", float: "must be a number", str: "must be a string"}.get(kind)


def register() -> None:
    """Store every schema in Hydra's ConfigStore as `schema/<group>` (storing again replaces it)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group="schema", name=group, node=open_node(schema))
