"""trainkit.loop, unit by unit: the optimizer-step helper and the accumulation boundaries (issue 13)."""

from __future__ import annotations

import torch
from torch import nn

from trainkit.loop import Loop, LoopState, _optimizer_step, train_one_epoch
from trainkit.tasks import Classification


def _loop(model: nn.Module, **kw: object) -> Loop:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Loop(model=model, criterion=nn.CrossEntropyLoss(), optimizer=opt, scheduler=None, interval="epoch",
                task=Classification(), device=torch.device("cpu"), progress="none", **kw)  # type: ignore[arg-type]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def test_a_non_finite_step_is_skipped_under_skip_batch() -> None:
    model = _model()
    loop = _loop(model, on_nan="skip_batch")
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, float("inf"))
    _optimizer_step(loop, torch.tensor(float("nan")))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())  # zeroed for the next step


def test_grad_clip_bounds_the_step() -> None:
    model = _model()
    loop = _loop(model, grad_clip=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    _optimizer_step(loop, torch.tensor(1.0))
    moved = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters(), strict=True)])
    assert abs(torch.linalg.vector_norm(moved).item() - 0.1 * 0.5) < 1e-6  # lr * the clipped norm, not lr * 10*sqrt(15)


def test_the_disabled_scaler_step_equals_a_plain_step_bit_for_bit() -> None:
    x, y = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 3
    plain = _model()
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    nn.CrossEntropyLoss()(plain(x), y).backward()
    opt.step()
    model = _model()
    loop = _loop(model)
    assert not loop.scaler.is_enabled()
    loss, _ = loop.task.step(model, loop.criterion, (x, y))
    loop.scaler.scale(loss).backward()
    _optimizer_step(loop, loss)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters(), strict=True))


def test_accumulate_2_steps_at_every_second_batch_and_the_last() -> None:
    model = _model()
    seen: list[tuple[int, int]] = []
    loop = _loop(model, accumulate=2, on_step_end=lambda s, _sums: seen.append((s.step, s.batch_in_epoch)))
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(4, 4, generator=g), torch.arange(4) % 3) for _ in range(5)]
    state = LoopState()
    metrics = train_one_epoch(loop, batches, state, epoch=0, epochs=1)
    assert seen == [(1, 2), (2, 4), (3, 5)]  # steps after batches 2, 4 and the epoch's odd last one
    assert state.step == 3 and state.batch_in_epoch == 5
    assert metrics["loss"] > 0
