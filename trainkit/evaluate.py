"""`trainkit eval`: rebuild a model from the config stored in its checkpoint and evaluate a split.

The stored config is treated as a stranger's: its `_target_`s are checked before anything is built.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from trainkit import checkpoint as ckpt_io
from trainkit import distributed, files, guards
from trainkit.build import resolve_device
from trainkit.config import GROUPS, validate
from trainkit.console import console, fmt_metrics, say
from trainkit.defaults import fill_trainer_defaults
from trainkit.errors import ConfigError, TrainkitError
from trainkit.loop import Loop, evaluate
from trainkit.parts import build_parts, load_weights, seed_everything
from trainkit.trust import run_dir_of, trusted_targets


def apply_eval_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply `key=value` and `group=option` overrides to a config stored in a checkpoint."""
    from trainkit.config import compose

    dotlist = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep:
            raise ConfigError(f"cannot parse override '{ov}'; write key=value")
        if key.lstrip("+~") in SPLIT_KEYS:
            raise ConfigError(
                f"{key} cannot change in eval: it decides which samples are the run's test split, so another value "
                "would test on training data; evaluate other data with a new config instead"
            )
        if key in GROUPS and "." not in key:
            node = compose([f"{key}={value}"])[key]
            cfg[key] = node
        else:
            if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
                raise ConfigError(f"unknown config key '{key}' in the checkpoint's config")
            dotlist.append(ov)
    if dotlist:
        from trainkit.resume import merge_dotlist

        before = {k: OmegaConf.select(cfg, f"data.{k}", default=None) for k in DATA_LOCATIONS}
        merge_dotlist(cfg, dotlist)
        _follow_data_location(cfg, before)
    return cfg


# Where a data option's files are: `data.dataset.root: ${data.root}` was resolved when the run stored its
# config, so a new `data.root=` on eval is carried into the dataset's own key (which held the old value).
DATA_LOCATIONS = ("root", "path")


def _follow_data_location(cfg: DictConfig, before: dict[str, Any]) -> None:
    dataset = cfg.data.get("dataset") if "data" in cfg else None
    for key, old in before.items():
        new = OmegaConf.select(cfg, f"data.{key}", default=None)
        if new == old or not isinstance(dataset, DictConfig):
            continue
        if dataset.get(key) != old:
            raise ConfigError(
                f"data.{key}={new} cannot change in eval: the checkpoint's data.dataset does not read data.{key}; "
                f"set data.dataset.{key} instead, if it has one"
            )
        dataset[key] = new


_MISSING = object()
# What picks the held-out samples: eval keeps the run's values so its test split is the run's.
SPLIT_KEYS = ("seed", "data.val_fraction", "data.test_fraction")


def read_checkpoint(
    ckpt_path: str, overrides: list[str], trust: bool = False, allow: list[str] | None = None
) -> tuple[dict[str, Any], DictConfig]:
    """The checkpoint (bounded `weights_only` load) and its stored config, checked and validated.

    What `eval`, `predict` and `export` all rebuild a model from. The stored config is a stranger's
    (trainkit.security): it is read as bounded, uninterpolated data with downloads off, and its
    `_target_`s are checked against the closed allow-list (trainkit's own configs plus `allow`, the
    user's --allow) before anything is imported or built.
    """
    from trainkit.security import allowed_prefixes, checked_config

    prefixes = allowed_prefixes(allow or ())
    ckpt = ckpt_io.load(ckpt_path, trust=trust)
    if not isinstance(ckpt.get("config"), dict):
        raise TrainkitError(f"checkpoint '{ckpt_path}' carries no config, so its model cannot be rebuilt")
    source = f"the config stored in checkpoint '{ckpt_path}'"
    prefixes += trusted_targets(run_dir_of(ckpt_path), ckpt["config"])  # a run of yours, made here
    cfg = checked_config(ckpt["config"], source, overrides, apply_eval_overrides, prefixes)
    fill_trainer_defaults(cfg)  # a checkpoint from an older trainkit lacks newer trainer keys
    validate(cfg)
    return ckpt, cfg


def evaluate_checkpoint(
    ckpt_path: str,
    overrides: list[str],
    split: str = "test",
    trust: bool = False,
    allow: list[str] | None = None,
) -> dict[str, Any]:
    """Rebuild the model from the checkpoint's own config (`read_checkpoint`), evaluate a split, write eval.json."""
    if split not in ("test", "val", "train"):
        raise ConfigError(f"split={split} is not a split; choose test, val or train")
    ckpt, cfg = read_checkpoint(ckpt_path, overrides, trust, allow)
    seed_everything(int(cfg.seed))
    # Under torchrun each process evaluates its shard of the split; the sums are all-reduced (loop.evaluate).
    group = distributed.init(str(cfg.device.type)) if distributed.launched_by_torchrun() else distributed.info()
    try:
        return _evaluate(ckpt, ckpt_path, cfg, split, group)
    finally:
        distributed.cleanup()


def _evaluate(ckpt: dict[str, Any], ckpt_path: str, cfg: DictConfig, split: str,
              group: distributed.DistInfo) -> dict[str, Any]:
    device = group.device or resolve_device(cfg)
    meta = ckpt.get("data_meta")
    parts = build_parts(cfg, device, group.rank, group.world_size, train=False,
                        data_meta=meta if isinstance(meta, dict) else None)
    data = parts.data
    load_weights(parts.model, ckpt["model"], ckpt_path, parts.cfg, "drop any model override")
    loop = Loop(model=parts.model, criterion=parts.criterion, optimizer=None, scheduler=None, interval="epoch",
                task=parts.task, device=device, dtype=parts.dtype, memory_format=parts.memory_format)
    t0 = time.perf_counter()
    try:
        metrics = evaluate(loop, getattr(data, split))
    except torch.cuda.OutOfMemoryError as exc:
        raise guards.oom_error(exc, cfg.data.get("eval_batch_size"), None, device, f"evaluating {split}") from exc
    result = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "split": split,
        "epoch": ckpt.get("epoch"),
        "samples": data.sizes[split],
        "device": str(device),
        "world_size": group.world_size,
        "time_s": time.perf_counter() - t0,
        **{f"{split}_{k}": v for k, v in metrics.items()},
    }
    names = stored_class_names(ckpt)
    if names:
        result["class_names"] = names
    if not group.is_main:  # rank 0 writes eval.json and prints
        return result
    ckpt_file = Path(ckpt_path).resolve()
    run_dir = run_dir_of(ckpt_file)
    # One file per checkpoint and split (eval_best_test.json), and eval.json as the latest, as before.
    own = run_dir / f"eval_{_file_part(ckpt_file.stem)}_{split}.json"
    try:
        files.write_json(own, result)
        files.write_json(run_dir / "eval.json", result)
        result["written"] = str(own)
    except OSError as exc:
        say(f"could not write {own.name} in {run_dir}: {exc}", style="yellow")
    console.print(f"{split} ({data.sizes[split]} samples, epoch {ckpt.get('epoch')}): {fmt_metrics(metrics)}")
    if names:
        shown = ", ".join(f"{i} {n}" for i, n in enumerate(names[:20])) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        console.print(f"classes: {shown}", markup=False, highlight=False)
    return result


def stored_class_names(ckpt: dict[str, Any]) -> list[str] | None:
    """data_meta["class_names"] of a checkpoint (a stranger's file: only a list of strings is taken)."""
    meta = ckpt.get("data_meta")
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return names
    return None


def _file_part(stem: str) -> str:
    """A checkpoint's name as part of a file name: letters, digits, '-', '_' and '.' only."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "checkpoint"
