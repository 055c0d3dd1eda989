"""Batch iterators with a deterministic, resumable order: a function of (seed, epoch, position).

`TensorLoader` is the fast path: the split lives as tensors on the training device and batches
are shuffled index slices (no per-sample Python, no collate). `TorchLoader` wraps a DataLoader
for data that does not fit. Both shard across ranks like DistributedSampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from trainkit.data.sampling import weighted_order

Batch = tuple[torch.Tensor, ...]


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The sample order of one epoch; the same on every rank and every resume."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return torch.randperm(n, generator=g)


class TensorLoader:
    """Yield batches from in-memory tensors by slicing a per-epoch permutation."""

    kind = "memory"
    #: per-sample weights for data.sampler=weighted (drawn with replacement per (seed, epoch)); None: permute
    sample_weights: torch.Tensor | None = None
    #: data.augment / mixup: (batch, epoch, batch index) -> batch, on the batch's device; None: as stored
    augment: Callable[[Batch, int, int], Batch] | None = None

    def __init__(
        self,
        tensors: Batch,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip_batches = 0
        self.dataset_size = len(tensors[0])

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's order; `skip_batches` resumes mid-epoch."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (padded to equal shards, as DistributedSampler does)."""
        return math.ceil(self.dataset_size / self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def _indices(self) -> torch.Tensor | None:
        n = self.dataset_size
        if self.sample_weights is not None:
            perm = weighted_order(self.sample_weights, self.seed, self.epoch)
        elif not self.shuffle and self.world_size == 1:
            return None  # contiguous slices are views: no gather at all
        else:
            perm = epoch_permutation(n, self.seed, self.epoch, self.shuffle)
        if self.world_size > 1:
            total = self.num_samples * self.world_size
            if total > n:
                perm = torch.cat([perm, perm[: total - n]])
            perm = perm[self.rank : total : self.world_size]
        return perm.to(self.tensors[0].device)

    def __iter__(self) -> Iterator[Batch]:
        idx = self._indices()
        count = self.num_samples
        bs = self.batch_size
        for b in range(self.skip_batches, len(self)):
            start = b * bs
            stop = min(start + bs, count)
            if idx is None:
                batch = tuple(t[start:stop] for t in self.tensors)
            else:
                sel = idx[start:stop]
                batch = tuple(t.index_select(0, sel) for t in self.tensors)
            yield batch if self.augment is None else self.augment(batch, self.epoch, b)
        self.skip_batches = 0


class _SkippingSampler(DistributedSampler):
    """DistributedSampler whose epoch order can start part-way through (mid-epoch resume)."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        it = super().__iter__()
        if self.skip:
            it = iter(list(it)[self.skip :])
            self.skip = 0
        return it


class _WeightedSampler(_SkippingSampler):
    """data.sampler=weighted for a DataLoader: class-balanced draws per (seed, epoch), sharded like the others."""

    weights: torch.Tensor

    def __iter__(self) -> Iterator[int]:
        order = weighted_order(self.weights, self.seed, self.epoch).tolist()
        total = self.num_samples * self.num_replicas
        order = (order + order[: total - len(order)])[:total][self.rank : total : self.num_replicas]
        skip, self.skip = self.skip, 0
        return iter(order[skip:])


class TorchLoader:
    """A torch DataLoader with the same epoch/resume contract as TensorLoader."""

    kind = "dataloader"
    augment: Callable[[Batch, int, int], Batch] | None = None  # as TensorLoader's, after collation
    _skip_batches = 0

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        multiprocessing_context: str | None = None,
        sample_weights: torch.Tensor | None = None,
    ) -> None:
        sampler_cls = _SkippingSampler if sample_weights is None else _WeightedSampler
        self.sampler = sampler_cls(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        if sample_weights is not None:
            self.sampler.weights = sample_weights
        self.batch_size = batch_size
        self.dataset_size = len(dataset)  # type: ignore[arg-type]
        generator = torch.Generator()
        generator.manual_seed(seed)  # the loader's own RNG: iterating it never touches the global one
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
            generator=generator,
            multiprocessing_context=multiprocessing_context if num_workers > 0 else None,
        )

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.sampler.skip = skip_batches * self.batch_size
        self._skip_batches = skip_batches

    @property
    def num_samples(self) -> int:
        return self.sampler.num_samples

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        first, self._skip_batches = self._skip_batches, 0
        for b, batch in enumerate(self.loader, start=first):
            yield tuple(batch) if self.augment is None else self.augment(tuple(batch), self.sampler.epoch, b)
