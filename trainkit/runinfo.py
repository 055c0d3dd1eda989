"""What a run says about itself: the header it prints, and the warnings when a resume meets changed code.

Kept out of `trainkit.run` so the orchestrator does not change when a line of the header does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from trainkit.config import GROUPS
from trainkit.monitor import describe as describe_monitor


def model_source_hash(model: torch.nn.Module) -> str | None:
    """A hash of the model class's source: resume warns when the user's model code changed."""
    import hashlib
    import inspect

    from trainkit.sharding import original_class

    try:
        source = inspect.getsource(original_class(model))  # FSDP2 swaps in a subclass of its own
    except (OSError, TypeError):  # defined in a REPL or a built module: nothing to compare
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def describe_config(cfg: DictConfig, choices: dict[str, str]) -> list[str]:
    """One compact line per group: the option chosen and its settings."""
    lines = []
    for group in GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        plain = OmegaConf.to_container(node, resolve=True)
        items = []
        if isinstance(plain, dict):
            for k, v in plain.items():
                if k == "_target_" or v is None or isinstance(v, (dict, list)) and len(str(v)) > 40:
                    continue  # compact: unset options and long nested settings are in .hydra/config.yaml
                items.append(f"{k}={v}")
        lines.append(f"  {group:<10}{choices.get(group, ''):<16}{' '.join(items)}")
    lines.append(f"  {'seed':<10}{cfg.seed}")
    lines.append(f"  {'monitor':<10}{describe_monitor(cfg, choices.get('task'))}")
    return lines


def header_lines(cfg: DictConfig, choices: dict[str, str], run_dir: Path, model: torch.nn.Module, n_params: int,
                 device: torch.device, data: Any, dist: Any) -> list[str]:
    """The lines a run prints before its first epoch: version, config, model, sizes, distribution."""
    from trainkit.version import __version__

    lines = [f"trainkit {__version__}  run dir: {run_dir}", *describe_config(cfg, choices), str(model)]
    why = data.info.get("loader_reason")
    lines.append(f"parameters: {n_params:,}   device: {device}   precision: {cfg.device.precision}   "
                 f"data: train {data.sizes['train']}, val {data.sizes['val']}, test {data.sizes['test']} "
                 f"({data.loader_kind} loader{': ' + why if why else ''})")
    if dist.enabled:
        bs = int(cfg.data.batch_size)
        lines.append(f"distributed: {dist.world_size} processes ({dist.backend}), data.batch_size={bs} "
                     f"per process, global batch {bs * dist.world_size}")
    return lines


def changed_warnings(ckpt: dict[str, Any], path: Path, model: torch.nn.Module) -> list[str]:
    """One line each when the checkpoint was made by another trainkit or another model code."""
    from trainkit.version import __version__

    out = []
    made_by = ckpt.get("trainkit_version")
    if made_by is not None and str(made_by) != __version__:
        out.append(f"warning: {path} was written by trainkit {made_by}, this is {__version__}; "
                   "the run continues, but numbers may differ from an uninterrupted run")
    stored, now = ckpt.get("model_source_hash"), model_source_hash(model)
    if stored is not None and now is not None and stored != now:
        out.append(f"warning: the code of {type(model).__name__} changed since {path} was written; "
                   "the weights still fit, but the run may not continue as it began")
    return out
