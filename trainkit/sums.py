"""An epoch's metric sums: recorded on the device every step, added up on the host every few steps.

A step's statistics are a few 0-dim tensors (the mean loss, the task's counts). Adding each into a
running device sum costs an in-place add per statistic, plus a multiply for the loss, every step:
on a small model that is ~5% of the step (measured by `benchmarks/overhead.py --shape digits`).
Here a step only appends its tensors to a list. At a log interval, a checkpoint or the epoch's end,
one stack per statistic and one host read turn the list into numbers, added one by one, in step
order, in float64: exactly the sequence of float64 adds a running sum does, so the totals do not
depend on when they were read (a mid-epoch checkpoint and its resume continue them bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

__all__ = ["Matches", "StepSums", "read_sums", "settle"]


class Matches(NamedTuple):
    """A batch statistic counted when read: how many elements of `predicted` equal `target`.

    What a classification task's "correct" is. Comparing and summing per step are two more ops
    a step (a few us each on a small model); kept this way, one comparison covers all the steps
    since the last read. The count is an integer, so when it is made changes nothing.
    """

    predicted: torch.Tensor
    target: torch.Tensor

    def count(self) -> torch.Tensor:
        return (self.predicted == self.target).sum()


Stat = torch.Tensor | Matches


def settle(stats: dict[str, Stat]) -> dict[str, torch.Tensor]:
    """The same statistics, each a 0-dim tensor now (for code that reads one batch's sums)."""
    return {k: v.count() if isinstance(v, Matches) else v for k, v in stats.items()}


#: steps kept on the device before a read; the loop reads at every log interval anyway, this only
#: bounds the list when trainer.log_every_n_steps is large (or during a long evaluation)
MAX_PENDING = 256


class StepSums:
    """The running sums of one epoch (or one evaluation) and its sample count."""

    def __init__(self, start: Mapping[str, float] | None = None) -> None:
        start = dict(start or {})
        self.count = int(start.pop("count", 0))  # samples added so far (host side: no device tensor)
        self._totals: dict[str, float] = {k: float(v) for k, v in start.items()}
        self._pending: list[dict[str, Stat]] = []
        self._sizes: list[int] = []

    def add(self, stats: dict[str, Stat], n: int) -> None:
        """One batch of `n` samples: its `"loss"` is the batch's mean loss, every other entry a batch
        sum (a 0-dim tensor) or `Matches` to count."""
        self._pending.append(stats)
        self._sizes.append(n)
        self.count += n
        if len(self._pending) >= MAX_PENDING:
            self._read()

    def _read(self) -> None:
        pending, sizes = self._pending, self._sizes
        if not pending:
            return
        self._pending, self._sizes = [], []
        keys = list(dict.fromkeys(k for s in pending for k in s))  # the same keys every step, as a rule
        columns = []
        for key in keys:
            values = [s.get(key) for s in pending]
            if all(isinstance(v, Matches) for v in values):  # one comparison for all the steps
                hits = torch.cat([v.predicted.reshape(-1) for v in values]) == torch.cat([v.target.reshape(-1) for v in values])
                columns.append(hits.sum().reshape(1).to(torch.float64))
                continue
            column = torch.stack([_value(v, pending[0]) for v in values]).to(torch.float64)
            if key == "loss":  # the batch's loss sum: its mean times its size, in float64
                column = column * torch.tensor(sizes, dtype=torch.float64, device=column.device)
            columns.append(column)
        flat = torch.cat(columns).tolist()  # the one host read
        at = 0
        for key, column in zip(keys, columns, strict=True):
            total = self._totals.get(key, 0.0)
            for v in flat[at : at + len(column)]:  # in step order: the same adds as a running sum
                total += v
            self._totals[key] = total
            at += len(column)

    def totals(self) -> dict[str, float]:
        """Every sum so far as a number, plus `count`."""
        self._read()
        return {**self._totals, "count": float(self.count)}

    def total(self, key: str) -> float:
        self._read()
        return self._totals.get(key, 0.0)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The sums as float64 tensors (what `distributed.all_reduce_sums` reduces across ranks)."""
        self._read()
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in self._totals.items()}


def _value(value: Stat | None, first: dict[str, Stat]) -> torch.Tensor:
    if value is None:  # a statistic only some batches gave: zero for the others
        device = next(v for v in first.values() if isinstance(v, torch.Tensor)).device
        return torch.zeros((), dtype=torch.float64, device=device)
    if isinstance(value, Matches):
        return value.count()
    return value if value.dim() == 0 else value.reshape(())  # no view op for what is already 0-dim


def read_sums(sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
    """One host sync for all of a dict of 0-dim sums, plus `count`."""
    if not sums:
        return {"count": float(count)}
    keys = list(sums)
    values = torch.stack([sums[k].reshape(()).to(torch.float64) for k in keys]).tolist()
    out = dict(zip(keys, values, strict=True))
    out["count"] = float(count)
    return out
