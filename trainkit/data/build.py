"""Turn `cfg.data` into splits and loaders, and say what the model must know about the data (`Data.facts`)."""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig
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
    facts: dict[str, Any] = field(default_factory=dict)  # input_shape, num_classes, target_dim: for the builder
    # What `eval` and `predict` need to treat new data as this run did, stored in every checkpoint as
    # "data_meta" (plain str/number/list/dict values only, so it loads with weights_only=True):
    # "class_names" (list[str], index = class id) and "preprocessing" (a table's fitted column transforms).
    meta: dict[str, Any] = field(default_factory=dict)


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


def to_tensors(
    ds: Dataset, num_workers: int = 0, limit_bytes: float | None = None
) -> tuple[torch.Tensor, ...]:
    """Materialise a split once (transforms applied once) as stacked tensors.

    The output is preallocated from the first batch's shapes, so the split never takes more than
    its final size (no list of chunks plus a concatenated copy), and `limit_bytes` is checked
    before anything big is allocated (raises MemoryBudgetExceeded).
    """
    if isinstance(ds, TensorDataset):
        return tuple(ds.tensors)
    fast = vision_tensors(ds, limit_bytes)
    if fast is not None:
        return fast
    from torch.utils.data import DataLoader

    n = len(ds)  # type: ignore[arg-type]
    out: list[torch.Tensor] | None = None
    pos = 0
    for batch in DataLoader(ds, batch_size=1024, num_workers=num_workers):
        batch = [b if torch.is_tensor(b) else torch.as_tensor(b) for b in batch]
        if out is None:
            need = sum(b[0].numel() * b.element_size() for b in batch) * n
            if limit_bytes is not None and need > limit_bytes:
                raise MemoryBudgetExceeded(need)
            out = [torch.empty((n, *b.shape[1:]), dtype=b.dtype) for b in batch]
        for o, b in zip(out, batch, strict=True):
            o[pos : pos + len(b)] = b
        pos += len(batch[0])
    if out is None:
        raise DataError("a data split is empty; lower data.val_fraction / data.test_fraction or add data")
    return tuple(out)


class MemoryBudgetExceeded(DataError):
    """Materialising a split would pass data.memory_budget_mb."""

    def __init__(self, nbytes: float) -> None:
        super().__init__(f"the data needs {nbytes / 2**20:,.0f} MB in memory")
        self.nbytes = nbytes


def vision_tensors(ds: Dataset, limit_bytes: float | None = None) -> tuple[torch.Tensor, ...] | None:
    """Batched ToTensor(+Normalize) for torchvision's MNIST-family and CIFAR sets (uint8 images in `.data`).

    Applies the same element-wise arithmetic as the per-sample transforms (so the values are
    identical) to the whole array at once, skipping 70,000 PIL round trips. None: not applicable.
    """
    base, idx = ds, None
    if isinstance(ds, Subset):
        base, idx = ds.dataset, torch.as_tensor(list(ds.indices), dtype=torch.long)
    if not _is_plain_vision_set(base):
        return None
    data, targets, transform = base.data, base.targets, base.transform  # type: ignore[attr-defined]
    if transform is None or getattr(base, "target_transform", None) is not None:
        return None
    steps = list(getattr(transform, "transforms", [transform]))
    names = [f"{type(t).__module__}.{type(t).__name__}" for t in steps]
    v1 = "torchvision.transforms.transforms."
    if names[0] != v1 + "ToTensor" or any(name != v1 + "Normalize" for name in names[1:]):
        return None
    x = torch.as_tensor(data)
    if x.dtype != torch.uint8 or x.dim() not in (3, 4):
        return None
    n = len(idx) if idx is not None else len(x)
    need = (x[0].numel() * 4 + 8) * n
    if limit_bytes is not None and need > limit_bytes:
        raise MemoryBudgetExceeded(need)
    if idx is not None:
        x = x.index_select(0, idx)
    # ToTensor: HW or HWC -> CHW (reordered while still uint8: the float copy is the only big one)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()
    x = x.to(torch.float32).div_(255)
    for t in steps[1:]:
        mean = torch.as_tensor(t.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.as_tensor(t.std, dtype=x.dtype).view(-1, 1, 1)
        x.sub_(mean).div_(std)
    y = torch.as_tensor(targets, dtype=torch.int64)
    if idx is not None:
        y = y.index_select(0, idx)
    return x, y


def _is_plain_vision_set(ds: Any) -> bool:
    """MNIST-family and CIFAR sets: their samples are exactly `.data[i]` (HW or HWC uint8), `.targets[i]`.

    Only these classes themselves: a subclass (or QMNIST, SVHN, STL10) may build samples differently.
    """
    if "torchvision" not in sys.modules:
        return False
    import torchvision.datasets as tvd

    plain = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST", "CIFAR10", "CIFAR100")
    return any(type(ds) is getattr(tvd, name, None) for name in plain)


def choose_loader(
    requested: str, nbytes: float, budget_mb: float, random_transforms: bool
) -> tuple[str, str]:
    """data.loader auto|memory|dataloader -> (the loader, why), the why shown in the run header."""
    mb = nbytes / 2**20
    size, budget = f"{mb:,.1f} MB" if mb < 100 else f"{mb:,.0f} MB", f"data.memory_budget_mb={budget_mb:g}"
    if requested == "dataloader":
        return "dataloader", "set by data.loader"
    if requested == "memory":
        if nbytes > budget_mb * 2**20:
            raise DataError(
                f"data.loader=memory needs {size} but {budget}; "
                "raise the budget or use data.loader=dataloader"
            )
        return "memory", f"set by data.loader, {size} of {budget}"
    if random_transforms:
        return "dataloader", "auto: the train transforms are random, so they run per sample"
    if nbytes > budget_mb * 2**20:
        return "dataloader", f"auto: {size} exceeds {budget}"
    return "memory", f"auto: {size} fits {budget}"


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
    elif "num_classes" not in info and not isinstance(train, TensorDataset) and getattr(base, "targets", None) is not None:
        info.update(_label_count((torch.empty(0), torch.as_tensor(base.targets))))  # a Dataset's own label array
    del y
    return info


def class_names(raw: Any) -> list[str] | None:
    """The names of the class ids, index = id, from the dataset's `classes` (ImageFolder, torchvision sets,
    trainkit's CSV tables and bundled sets set it); None when it has none."""
    train = raw.get("train") if isinstance(raw, dict) else raw
    base = train.dataset if isinstance(train, Subset) else train
    names = getattr(base, "classes", None)
    if not isinstance(names, (list, tuple)) or not names or len(names) > 100_000:
        return None
    return [str(n) for n in names]


def _label_count(tensors: tuple[torch.Tensor, ...]) -> dict[str, int]:
    """num_classes from a split's integer class labels (one per sample), else nothing."""
    if len(tensors) < 2 or torch.is_floating_point(tensors[1]) or tensors[1].dim() != 1 or not tensors[1].numel():
        return {}
    return {"num_classes": int(tensors[1].max()) + 1}


def _facts(train: Dataset, d: DictConfig) -> tuple[dict[str, Any], str]:
    """The facts the config leaves null, from the first sample and the labels; and a note for the header.

    A Dataset of the user's own (`data.dataset._target_` outside trainkit) set on top of a built-in data
    option keeps that option's `input_shape` (digits' [1, 8, 8]), which describes another dataset: there
    the first sample's shape wins, and the note says so.
    """
    inferred = {k: v for k, v in _infer_info(train).items() if v is not None}
    facts = {k: v for k, v in inferred.items() if d.get(k) is None}
    configured, seen = d.get("input_shape"), inferred.get("input_shape")
    own = not str(d.dataset.get("_target_", "")).startswith("trainkit.")
    if own and configured is not None and seen is not None and list(configured) != seen:
        facts["input_shape"] = seen
        return facts, f"data.input_shape {list(configured)} -> {seen} (your dataset's first sample)"
    return facts, ""


def _fit_inputs(splits: dict[str, Dataset], cfg: DictConfig) -> str:
    """Integer or bool inputs in a tensor dataset become float32 for models that take features (not embeddings).

    Returns the note the run header shows ('' when nothing changed).
    """
    target = str(cfg.model.get("_target_", ""))
    source = str(cfg.data.dataset.get("_target_", ""))
    if "Embedding" in target or source != "trainkit.data.files.tensor_file":  # only a user's tensor file
        return ""
    note = ""
    for name, ds in splits.items():
        if isinstance(ds, TensorDataset) and not torch.is_floating_point(ds.tensors[0]) and not ds.tensors[0].is_complex():
            note = f"inputs converted from {str(ds.tensors[0].dtype).removeprefix('torch.')} to float32"
            splits[name] = TensorDataset(ds.tensors[0].float(), *ds.tensors[1:])
    return note


def _encode_table(raw: Any, splits: dict[str, Dataset], meta: dict[str, Any], stored: Any = None) -> str:
    """A table's columns encoded now that the split is cut (fitted on the training rows only); the note for the header.

    The fitted encoding goes to meta["preprocessing"], so eval and predict encode new rows alike;
    `stored` (a checkpoint's) is applied as it is instead of fitting again.
    """
    from trainkit.data import tables

    table = raw.get("table") if isinstance(raw, dict) else None
    if isinstance(table, tables.Table):
        meta["preprocessing"], note = tables.encode_splits(splits, table, stored if isinstance(stored, dict) else None)
        return note
    names = getattr(raw, "feature_names", None)
    if isinstance(names, list) and isinstance(splits["train"], TensorDataset):  # a numbers-only table, used as it is
        meta["preprocessing"] = tables.fit_numbers(names, splits["train"].tensors[0])
    return ""


def _batch_augment(d: DictConfig, facts: dict[str, Any], seed: int) -> Any:
    """data.augment / data.mixup_alpha / data.cutmix_alpha for the training batches (None when all are off)."""
    from omegaconf import OmegaConf

    specs = d.get("augment")
    specs = OmegaConf.to_container(specs, resolve=True) if OmegaConf.is_config(specs) else specs
    mixup, cutmix = d.get("mixup_alpha"), d.get("cutmix_alpha")
    if not specs and not mixup and not cutmix:
        return None
    from trainkit.data.augment import BatchAugment

    aug = BatchAugment(specs, mixup or 0.0, cutmix or 0.0, d.get("num_classes") or facts.get("num_classes"), seed)
    aug.check_shape(d.get("input_shape") or facts.get("input_shape"))
    return aug


def _check_labels(splits: dict[str, Dataset], cfg: DictConfig) -> None:
    """Class labels a classifier can use: integers, and none in val/test beyond what train has (when inferred)."""
    task = str(cfg.task.get("_target_", ""))
    train = splits["train"]
    if not (task.endswith(".Classification") and isinstance(train, TensorDataset) and len(train.tensors) > 1):
        return
    y = train.tensors[1]
    if torch.is_floating_point(y):
        frac = y[y != y.round()] if y.numel() else y
        example = f" (e.g. {float(frac[0]):g})" if frac.numel() else ""
        raise DataError(
            f"task=classification needs integer class labels but the labels are {str(y.dtype).removeprefix('torch.')}"
            f"{example}; save them as y.long(), or use task=regression for real-valued targets"
        )
    if cfg.data.get("num_classes") is not None or y.dim() != 1 or not y.numel():
        return
    top = int(y.max())
    for name in ("val", "test"):
        ds = splits[name]
        if isinstance(ds, TensorDataset) and len(ds.tensors) > 1 and ds.tensors[1].numel():
            extra = sorted({int(v) for v in ds.tensors[1].unique() if int(v) > top})
            if extra:
                raise DataError(
                    f"the {name} split has label{'s' if len(extra) > 1 else ''} {', '.join(map(str, extra[:10]))} that the "
                    f"training split never has (its labels go up to {top}); add training examples of "
                    f"{'them' if len(extra) > 1 else 'it'}, or set data.num_classes={max(extra) + 1} if that is intended"
                )


def build_data(cfg: DictConfig, device: torch.device, rank: int = 0, world_size: int = 1,
               fitted: dict[str, Any] | None = None) -> Data:
    """Instantiate the dataset, split it by `cfg.seed`, pick the loader and build all three.

    `fitted`: a checkpoint's data_meta; a table is then encoded with its stored preprocessing (eval), not refitted.
    """
    d = cfg.data
    from trainkit.instantiate import instantiate_group

    # _convert_="all": factories and transforms get plain lists, not ListConfig (Normalize read its
    # ListConfig mean/std through OmegaConf on every sample: 3x slower than the seeds' loop).
    raw = instantiate_group("data.dataset", d.dataset, _convert_="all")
    names = class_names(raw)
    splits, fingerprint = make_splits(raw, float(d.val_fraction), float(d.test_fraction), int(cfg.seed))
    for name, ds in splits.items():
        if len(ds) == 0:
            raise DataError(f"the {name} split is empty; lower data.val_fraction / data.test_fraction or add data")

    skipped = int(raw.get("skipped_files") or 0) if isinstance(raw, dict) else 0
    meta: dict[str, Any] = {}
    table_note = _encode_table(raw, splits, meta, (fitted or {}).get("preprocessing"))
    converted = _fit_inputs(splits, cfg)
    _check_labels(splits, cfg)
    facts, shape_note = _facts(splits["train"], d)

    budget_mb = float(d.memory_budget_mb)
    nbytes = sum(dataset_nbytes(ds) for ds in splits.values())
    choice, reason = choose_loader(str(d.loader), nbytes, budget_mb, _random_transforms(d))
    host: dict[str, tuple[torch.Tensor, ...]] = {}
    if choice == "memory":  # materialise now, checking the real size against the budget as it is built
        try:
            for k, ds in splits.items():
                used = sum(t.element_size() * t.numel() for ts in host.values() for t in ts)
                left = budget_mb * 2**20 - used
                host[k] = to_tensors(ds, int(d.num_workers), limit_bytes=left)
        except MemoryBudgetExceeded as exc:
            if str(d.loader) == "memory":
                raise DataError(
                    f"data.loader=memory: {exc} (more than the estimate) but "
                    f"data.memory_budget_mb={budget_mb:g}; raise the budget or use data.loader=dataloader"
                ) from None
            host = {}
            choice, reason = "dataloader", f"auto: {exc}, more than data.memory_budget_mb={budget_mb:g}"
        else:
            nbytes = sum(t.element_size() * t.numel() for ts in host.values() for t in ts)
            counted = _label_count(host["train"]).get("num_classes")  # a Dataset's labels, now in hand
            if counted and "num_classes" not in facts and d.get("num_classes") is None:
                facts["num_classes"] = counted
            elif counted and shape_note and int(d.get("num_classes") or 0) > counted:
                shape_note += (f"; data.num_classes={d.num_classes} but its labels go up to {counted - 1}: "
                               f"set data.num_classes={counted} unless classes are missing from it")

    bs, ebs, seed = int(d.batch_size), int(d.eval_batch_size), int(cfg.seed)
    if bool(d.drop_last) and math.ceil(len(splits["train"]) / world_size) < bs:
        raise DataError(
            f"data.batch_size={bs} is larger than the training split ({len(splits['train'])} samples) with "
            "data.drop_last=true, so no batch would run; lower data.batch_size or set data.drop_last=false"
        )
    shuffle, weighted = sampler_mode(d.get("sampler"), bool(d.shuffle))
    weights = balanced_sample_weights(splits["train"]) if weighted else None
    if choice == "memory":
        tensors = {k: tuple(t.to(device) for t in ts) for k, ts in host.items()}
        del host
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
    augment = _batch_augment(d, facts, seed)
    if augment:
        augment.rank = rank
        train.augment = augment
        reason += f"; {augment.describe()}"
    if table_note:
        reason += f"; {table_note}"
    if shape_note:
        reason += f"; {shape_note}"
    if converted:
        reason += f"; {converted}"
    if skipped:
        reason += f"; skipped {skipped} bad image file{'s' if skipped != 1 else ''} (data.skip_bad_files=true)"
    sizes = {k: len(v) for k, v in splits.items()}
    if names:
        meta["class_names"] = names
    return Data(train, val, test, choice, sizes, fingerprint, info={"bytes": nbytes, "loader_reason": reason},
                train_split=splits["train"], facts=facts, meta=meta)
