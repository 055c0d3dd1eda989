"""data.augment, data.mixup_alpha, data.cutmix_alpha: random augmentation of whole training batches on their device.

Items of `data.augment` name torchvision.transforms.v2 transforms: `RandomHorizontalFlip` or
`{name: RandomCrop, size: 32, padding: 4}`. A v2 transform called on a batch tensor draws ONE set of
random parameters for the whole batch; here every sample gets its own: flips and padded crops are
vectorised (one draw per sample, one copy for the batch), the others run sample by sample. MixUp
and CutMix mix the batch as torchvision's do (one mixing weight per batch, by design) and turn the
labels into class probabilities, which cross-entropy and task=soft_targets take.

The random numbers are a function of (data seed, epoch, batch index) only, drawn from a generator
of their own and, for torchvision's transforms, a forked global RNG: an interrupted run resumed
mid-epoch augments its remaining batches exactly as the uninterrupted run did, and the global RNG
(dropout, init) is untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainkit.errors import ConfigError, DataError

#: The transforms data.augment takes: torchvision.transforms.v2 names, all random, all on (C, H, W) images.
TRANSFORMS = (
    "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomResizedCrop", "ColorJitter",
    "RandomErasing", "RandomRotation", "RandomAffine", "RandomGrayscale", "GaussianBlur", "RandomInvert",
    "RandomAutocontrast", "RandomEqualize", "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness",
)


def parse_specs(specs: Any) -> list[tuple[str, dict[str, Any]]]:
    """data.augment -> [(name, kwargs)]; a name or argument torchvision does not take is a ConfigError."""
    if specs is None:
        return []
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
        raise ConfigError("data.augment must be a list, e.g. data.augment=[RandomHorizontalFlip,{name:RandomCrop,size:32,padding:4}]")
    out = []
    for i, spec in enumerate(specs):
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping) and "name" in spec:
            name, kwargs = str(spec["name"]), {str(k): v for k, v in spec.items() if k != "name"}
        else:
            raise ConfigError(
                f"data.augment[{i}] must be a transform's name or {{name: NAME, ...its arguments}}, "
                "e.g. {name: RandomCrop, size: 32, padding: 4}"
            )
        if name not in TRANSFORMS:
            from trainkit.errors import closest

            best = closest(name, TRANSFORMS)
            raise ConfigError(f"data.augment[{i}]: {name} is not one of the batch augmentations"
                              f"{f' (did you mean {best}?)' if best else ''}; choose from: {', '.join(TRANSFORMS)}")
        out.append((name, _plain(kwargs)))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (not isinstance(value, str) and isinstance(value, Sequence)):
        return [_plain(v) for v in value]
    return value


def build_transform(name: str, kwargs: dict[str, Any], index: int) -> Any:
    from torchvision.transforms import v2

    try:
        return getattr(v2, name)(**kwargs)
    except (TypeError, ValueError) as exc:
        why = " ".join(str(exc).split())[:160]
        raise ConfigError(f"data.augment[{index}]: {name}({', '.join(f'{k}={v}' for k, v in kwargs.items())}) is refused "
                          f"by torchvision ({why}); fix its arguments") from None


class BatchAugment:
    """Augment a training batch (x, y, ...) in place of the per-sample DataLoader transforms."""

    def __init__(self, specs: Any = None, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 num_classes: int | None = None, seed: int = 0) -> None:
        self.steps = [(name, build_transform(name, kw, i)) for i, (name, kw) in enumerate(parse_specs(specs))]
        self.seed = int(seed)
        self.rank = 0  # each rank of a distributed run draws its own numbers for its own samples
        self.mix = None
        self.cutmix = bool(cutmix_alpha)
        mixup_alpha, cutmix_alpha = float(mixup_alpha or 0.0), float(cutmix_alpha or 0.0)
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ConfigError("data.mixup_alpha and data.cutmix_alpha must be >= 0 (0: off)")
        if mixup_alpha or cutmix_alpha:
            if not num_classes:
                raise DataError("data.mixup_alpha / data.cutmix_alpha need class labels; set data.num_classes")
            from torchvision.transforms import v2

            mixes = ([v2.MixUp(alpha=mixup_alpha, num_classes=int(num_classes))] if mixup_alpha else []) + (
                [v2.CutMix(alpha=cutmix_alpha, num_classes=int(num_classes))] if cutmix_alpha else [])
            self.mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)

    def __bool__(self) -> bool:
        return bool(self.steps) or self.mix is not None

    def describe(self) -> str:
        """For the run header."""
        parts = [f"augment per sample on the batch: {', '.join(n for n, _ in self.steps)}"] if self.steps else []
        if self.mix is not None:
            parts.append("mixup/cutmix on the batch (soft targets)")
        return "; ".join(parts)

    def check_shape(self, input_shape: Sequence[int] | None) -> None:
        """An augmentation that cannot apply to the data's samples: refused before training (DataError)."""
        if input_shape is None:
            return
        shape = [int(s) for s in input_shape]
        names = [n for n, _ in self.steps] + (["CutMix"] if self.cutmix else [])
        if names and len(shape) != 3:
            raise DataError(
                f"data.augment={names[0]} works on images (channels, height, width), but this data's samples are "
                f"{shape}; drop data.augment{' and data.cutmix_alpha' if 'CutMix' in names else ''} for this data"
            )
        for (name, t) in self.steps:
            size = getattr(t, "size", None)
            if name == "RandomCrop" and size is not None and not getattr(t, "pad_if_needed", False):
                pad = _padding(t)
                if size[0] > shape[1] + pad[1] + pad[3] or size[1] > shape[2] + pad[0] + pad[2]:
                    raise DataError(f"data.augment RandomCrop size {list(size)} is larger than the (padded) images "
                                    f"{shape[1:]}; give a smaller size, or padding")

    def __call__(self, batch: tuple[torch.Tensor, ...], epoch: int, index: int) -> tuple[torch.Tensor, ...]:
        """The augmented batch number `index` of `epoch` (the same numbers whenever it is drawn)."""
        x, rest = batch[0], list(batch[1:])
        seed = _mix_seed(self.seed, epoch, index, self.rank)
        g = torch.Generator(device="cpu")
        g.manual_seed(seed)
        if self.mix is None and all(_vectorised(name, t) for name, t in self.steps):
            for name, t in self.steps:  # only our own generator: no global RNG to fork
                x = _apply(name, t, x, g)
            return (x, *rest)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for name, t in self.steps:
                x = _apply(name, t, x, g)
            if self.mix is not None and rest:
                x, rest[0] = self.mix(x, rest[0])
        return (x, *rest)


def _mix_seed(seed: int, epoch: int, index: int, rank: int = 0) -> int:
    """Distinct seeds per (seed, epoch, batch, rank): different from the loader's shuffle seed (seed + epoch)."""
    return (seed * 1_000_003 + epoch * 65_537 + index * 7919 + rank * 104_729 + 0x5EED) % (2**63 - 1)


def _vectorised(name: str, t: Any) -> bool:
    """Done for the whole batch at once, drawing from our generator only."""
    if name in ("RandomHorizontalFlip", "RandomVerticalFlip"):
        return True
    return name == "RandomCrop" and not t.pad_if_needed and isinstance(t.fill, (int, float))


def _apply(name: str, t: Any, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if name in ("RandomHorizontalFlip", "RandomVerticalFlip"):
        flip = (torch.rand(len(x), generator=g) < float(t.p)).to(x.device)
        out = x.clone()  # only the chosen samples are flipped (cheaper than a where over two full copies)
        out[flip] = x[flip].flip(-1 if name == "RandomHorizontalFlip" else -2)
        return out
    if _vectorised(name, t):
        return _random_crop(t, x, g)
    # one sample at a time: each draws its own parameters from the (forked, seeded) global RNG
    return torch.stack([t(s) for s in x])


def _padding(t: Any) -> list[int]:
    """RandomCrop's padding as [left, top, right, bottom]."""
    p = t.padding
    if not p:
        return [0, 0, 0, 0]
    p = [int(v) for v in (p if isinstance(p, (list, tuple)) else [p])]
    return p * 4 if len(p) == 1 else (p * 2 if len(p) == 2 else p)


def _random_crop(t: Any, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """RandomCrop for the whole batch: each sample its own offset."""
    left, top, right, bottom = _padding(t)
    if any((left, top, right, bottom)):
        mode = {"edge": "replicate"}.get(t.padding_mode, t.padding_mode)
        if mode == "constant":
            x = torch.nn.functional.pad(x, (left, right, top, bottom), mode="constant", value=float(t.fill))
        else:
            x = torch.nn.functional.pad(x, (left, right, top, bottom), mode=mode)
    x = x.contiguous()
    n, c, h, w = x.shape
    th, tw = t.size
    i = (torch.rand(n, generator=g) * (h - th + 1)).floor().long().clamp_max(h - th)
    j = (torch.rand(n, generator=g) * (w - tw + 1)).floor().long().clamp_max(w - tw)
    # one gather over the flattened images: window element (r, s) of sample k is at (i_k + r) * w + j_k + s
    window = (torch.arange(th, device=x.device)[:, None] * w + torch.arange(tw, device=x.device)).view(1, 1, -1)
    index = (window + (i * w + j).to(x.device).view(n, 1, 1)).expand(n, c, th * tw)
    return x.view(n, c, h * w).gather(2, index).view(n, c, th, tw)
