"""Turn `cfg.data` into splits and loaders; fill in what the model must know about the data."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import Dataset, Subset, TensorDataset

from trainkit.data.loaders import TensorLoader, TorchLoader
from trainkit.data.sampling import balanced_sample_weights, sampler_mode
from trainkit.errors import DataError


@dataclass
class Data:
    """The three loaders of a run and the facts about the data that the run records."""

    train: Any
    val: Any
    test: Any
    loader_kind: str
    sizes: dict[str, int]
    fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)
    train_split: Any = None  # the training Dataset (class counts for loss.weight=auto)


def split_indices(n: int, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Cut range(n) into len(fractions)+1 disjoint index sets by a seeded permutation."""
    g = torch.Generator()
    g.manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    sizes = [int(math.floor(n * f)) for f in fractions]
    head = n - sum(sizes)
    parts, start = [perm[:head]], head
    for s in sizes:
        parts.append(perm[start : start + s])
        start += s
    return parts


def _subset(ds: Dataset, idx: torch.Tensor) -> Dataset:
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[idx] for t in ds.tensors))
    return Subset(ds, idx.tolist())


def make_splits(raw: Any, val_fraction: float, test_fraction: float, seed: int) -> tuple[dict[str, Dataset], str]:
    """Normalise a dataset factory's result into train/val/test and hash the split indices."""
    h = hashlib.sha256()
    if isinstance(raw, Dataset):
        raw = {"train": raw, "val": None, "test": None}
    if not isinstance(raw, dict) or "train" not in raw:
        raise DataError("a data.dataset factory must return a Dataset or a dict with 'train' (and optional 'val', 'test')")
    train, train_eval = raw["train"], raw.get("train_eval") or raw["train"]
    val, test = raw.get("val"), raw.get("test")
    carve = [f for f, missing in ((val_fraction, val is None), (test_fraction, test is None)) if missing]
    if carve:
        parts = split_indices(len(train), carve, seed)
        for p in parts:
            h.update(p.numpy().tobytes())
        train_idx, rest = parts[0], parts[1:]
        if val is None:
            val = _subset(train_eval, rest.pop(0))
        if test is None:
            test = _subset(train_eval, rest.pop(0))
        train = _subset(train, train_idx)
    splits = {"train": train, "val": val, "test": test}
    for name, ds in splits.items():
        h.update(f"{name}:{len(ds)};".encode())
    return splits, h.hexdigest()[:16]


def dataset_nbytes(ds: Dataset) -> int:
    """Bytes the split takes as tensors (estimated from the first sample)."""
    if isinstance(ds, TensorDataset):
        return sum(t.element_size() * t.numel() for t in ds.tensors)
    if len(ds) == 0:
        return 0
    sample = ds[0]
    per = sum(t.element_size() * t.numel() if torch.is_tensor(t) else 8 for t in sample)
    return per * len(ds)


def to_tensors(ds: Dataset, num_workers: int = 0) -> tuple[torch.Tensor, ...]:
    """Materialise a split once (transforms applied once) as stacked tensors."""
    if isinstance(ds, TensorDataset):
        return tuple(ds.tensors)
    from torch.utils.data import DataLoader

    chunks: list[list[torch.Tensor]] = []
    for batch in DataLoader(ds, batch_size=1024, num_workers=num_workers):
        batch = [b if torch.is_tensor(b) else torch.as_tensor(b) for b in batch]
        chunks.append(batch)
    if not chunks:
        raise DataError("a data split is empty; lower data.val_fraction / data.test_fraction or add data")
    return tuple(torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0])))


_DETERMINISTIC_TRANSFORMS = {
    "ToTensor", "Normalize", "Resize", "CenterCrop", "Grayscale", "ConvertImageDtype", "PILToTensor",
    "ToImage", "ToDtype", "Lambda", "Pad",
}


def _random_transforms(cfg_data: DictConfig) -> bool:
    specs = cfg_data.get("transforms", {}) or {}
    for spec in specs.get("train", None) or []:
        target = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
        if target not in _DETERMINISTIC_TRANSFORMS:
            return True
    return False


def _infer_info(train: Dataset) -> dict[str, Any]:
    x, y = train[0][0], train[0][1]
    info: dict[str, Any] = {"input_shape": list(x.shape) if torch.is_tensor(x) else None}
    if isinstance(train, TensorDataset) and not torch.is_floating_point(train.tensors[1]):
        if train.tensors[1].dim() == 1:
            info["num_classes"] = int(train.tensors[1].max()) + 1
    elif isinstance(train, TensorDataset):
        info["target_dim"] = int(train.tensors[1][0].numel())  # real targets: outputs per sample
    base = train.dataset if isinstance(train, Subset) else train
    if "num_classes" not in info and getattr(base, "classes", None):  # ImageFolder and torchvision sets
        info["num_classes"] = len(base.classes)
    del y
    return info


def build_data(cfg: DictConfig, device: torch.device, rank: int = 0, world_size: int = 1) -> Data:
    """Instantiate the dataset, split it by `cfg.seed`, pick the loader and build all three."""
    d = cfg.data
    from trainkit.build import instantiate_group

    raw = instantiate_group("data.dataset", d.dataset)
    splits, fingerprint = make_splits(raw, float(d.val_fraction), float(d.test_fraction), int(cfg.seed))
    for name, ds in splits.items():
        if len(ds) == 0:
            raise DataError(f"the {name} split is empty; lower data.val_fraction / data.test_fraction or add data")

    info = _infer_info(splits["train"])
    with open_dict(d):  # data-derived facts reach the model by interpolation (${data.num_classes})
        for key, value in info.items():
            if d.get(key) is None and value is not None:
                d[key] = value

    budget = float(d.memory_budget_mb) * 2**20
    nbytes = sum(dataset_nbytes(ds) for ds in splits.values())
    choice = str(d.loader)
    if choice == "auto":
        choice = "memory" if nbytes <= budget and not _random_transforms(d) else "dataloader"
    elif choice == "memory" and nbytes > budget:
        raise DataError(
            f"data.loader=memory needs {nbytes / 2**20:.0f} MB but data.memory_budget_mb={d.memory_budget_mb}; "
            "raise the budget or use data.loader=dataloader"
        )

    bs, ebs, seed = int(d.batch_size), int(d.eval_batch_size), int(cfg.seed)
    if bool(d.drop_last) and math.ceil(len(splits["train"]) / world_size) < bs:
        raise DataError(
            f"data.batch_size={bs} is larger than the training split ({len(splits['train'])} samples) with "
            "data.drop_last=true, so no batch would run; lower data.batch_size or set data.drop_last=false"
        )
    shuffle, weighted = sampler_mode(d.get("sampler"), bool(d.shuffle))
    weights = balanced_sample_weights(splits["train"]) if weighted else None
    if choice == "memory":
        tensors = {k: tuple(t.to(device) for t in to_tensors(ds, int(d.num_workers))) for k, ds in splits.items()}
        train = TensorLoader(tensors["train"], bs, shuffle, bool(d.drop_last), seed, rank, world_size)
        train.sample_weights = weights
        val = TensorLoader(tensors["val"], ebs, False, False, seed, rank, world_size)
        test = TensorLoader(tensors["test"], ebs, False, False, seed, rank, world_size)
    else:
        pin = d.pin_memory if isinstance(d.pin_memory, bool) else device.type == "cuda"
        opts = dict(
            seed=seed, rank=rank, world_size=world_size, num_workers=int(d.num_workers), pin_memory=pin,
            persistent_workers=bool(d.persistent_workers), multiprocessing_context=d.get("multiprocessing_context"),
        )
        train = TorchLoader(splits["train"], bs, shuffle, bool(d.drop_last), sample_weights=weights, **opts)
        val = TorchLoader(splits["val"], ebs, False, False, **opts)
        test = TorchLoader(splits["test"], ebs, False, False, **opts)
    sizes = {k: len(v) for k, v in splits.items()}
    return Data(train, val, test, choice, sizes, fingerprint, info={"bytes": nbytes}, train_split=splits["train"])
