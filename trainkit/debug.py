"""Debug presets (Lightning's names): fewer batches per epoch, or the same few batches over and over.

`trainer.fast_dev_run=N` (N train, val and test batches, one epoch), `trainer.limit_train_batches` /
`trainer.limit_val_batches` (a count, or a fraction of the loader) and `trainer.overfit_batches=N`
(the first N training batches, fixed, as both the training and the validation data). They wrap the
loaders once, at build time: with every key null the loaders are the data's own and no step pays for them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig

from trainkit.data import Data


class LimitedLoader:
    """The first `limit` batches of `loader` per epoch; the epoch/resume contract of the loader it wraps."""

    def __init__(self, loader: Any, limit: int) -> None:
        self.loader = loader
        self.limit = min(limit, len(loader))
        self.kind = getattr(loader, "kind", "")
        self.tensors = getattr(loader, "tensors", None)  # the loop's in-memory check (no per-step .to())
        self.batch_size = getattr(loader, "batch_size", 1)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.loader.set_epoch(epoch, skip_batches)
        self._skip = skip_batches

    @property
    def num_samples(self) -> int:
        return min(int(self.loader.num_samples), self.limit * int(self.batch_size))

    def __len__(self) -> int:
        return self.limit

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = getattr(self, "_skip", 0), 0
        return itertools.islice(iter(self.loader), max(self.limit - skip, 0))


class FixedBatches:
    """The same list of batches every epoch, in the same order (trainer.overfit_batches)."""

    kind = "fixed"

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches
        self.tensors = None
        self.batch_size = len(batches[0][0]) if batches else 1
        self._skip = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self._skip = skip_batches

    @property
    def num_samples(self) -> int:
        return sum(len(b[0]) for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        return iter(self.batches[skip:])


def batch_count(value: Any, total: int) -> int | None:
    """A limit as a number of batches: an int counts batches, a float is a fraction of `total` (at least 1)."""
    if value is None:
        return None
    if isinstance(value, float):
        return max(1, math.floor(value * total))
    return int(value)


def limit_data(data: Data, trainer: DictConfig) -> list[str]:
    """Wrap the loaders of `data` as the debug keys of `trainer` ask, in place; the header lines that say so."""
    fast = trainer.get("fast_dev_run")
    overfit = trainer.get("overfit_batches")
    lines: list[str] = []
    if overfit is not None:
        data.train.set_epoch(0)
        fixed = FixedBatches(list(itertools.islice(iter(data.train), int(overfit))))
        data.train = data.val = fixed
        lines.append(f"debug: overfit_batches={overfit}: the same {len(fixed)} training batches are "
                     "the training and the validation data")
    train_limit = batch_count(trainer.get("limit_train_batches"), len(data.train))
    val_limit = batch_count(trainer.get("limit_val_batches"), len(data.val))
    test_limit = None
    if fast is not None:
        train_limit = val_limit = test_limit = int(fast)
        lines.append(f"debug: fast_dev_run={fast}: one epoch of {fast} train/val/test batches; "
                     "a smoke test, not a result (summary.json says fast_dev_run)")
    for split, limit in (("train", train_limit), ("val", val_limit), ("test", test_limit)):
        loader = getattr(data, split)
        if limit is not None and limit < len(loader):
            setattr(data, split, LimitedLoader(loader, limit))
            if fast is None:
                lines.append(f"debug: {split} limited to {limit} of {len(loader)} batches per epoch")
    return lines
