"""Today's trainer defaults for the trainer keys a config lacks, so every reader uses attribute reads.

A config lacks a trainer key when it comes from a checkpoint an older trainkit wrote (resume, eval
rebuild from the stored config) or when the user deleted it (~trainer.overwrite). The values are
configs/trainer/default.yaml's, read once; interpolated ones (monitor, monitor_mode) are left out:
validate requires them, checkpoints have always carried them, and nothing of a stored config is resolved.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from trainkit.config import config_dir


@functools.cache
def trainer_defaults() -> dict[str, Any]:
    raw = OmegaConf.to_container(OmegaConf.load(config_dir() / "trainer" / "default.yaml"), resolve=False)
    assert isinstance(raw, dict)
    raw.pop("defaults", None)
    return {str(k): v for k, v in raw.items() if not (isinstance(v, str) and "${" in v)}


def fill_trainer_defaults(cfg: DictConfig) -> DictConfig:
    """Add each trainer key `cfg` lacks with today's default, in place (a `???` or a null stays as it is)."""
    trainer = cfg.get("trainer")
    if isinstance(trainer, DictConfig):
        _fill(trainer, trainer_defaults())
    return cfg


def _fill(node: DictConfig, defaults: dict[str, Any]) -> None:
    keys = set(node.keys())
    with open_dict(node):
        for key, value in defaults.items():
            if key not in keys:
                node[key] = copy.deepcopy(value)
            elif isinstance(value, dict) and isinstance(node._get_node(key), DictConfig):
                _fill(node[key], value)
