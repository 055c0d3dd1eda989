"""After training: the best and the last checkpoint, both on the test split.

`best.pt` (by trainer.monitor) is the run's contract: its numbers are `test_*` in summary.json and the
top of test_report.json. The last epoch's weights are what a hand-written loop reports, so they are
tested too (`last_test_*`, test_report.json's `last`), and the final lines show both side by side.
When the best epoch is the last one, the checkpoint is tested once and its numbers reused.
"""

from __future__ import annotations

from typing import Any

from trainkit import checkpoint as ckpt_io
from trainkit import distributed, sharding
from trainkit.console import fmt_metrics, say
from trainkit.loop import evaluate
from trainkit.metrics import summary_numbers, test_report, write_test_report


def _test(run: Any, name: str, epoch: int | None) -> tuple[dict[str, float], dict[str, Any]]:
    """Load checkpoints/`name` (rank 0 reads it, the others get its weights), evaluate, build its report."""
    state = ckpt_io.load(run.ckpt_dir / name)["model"] if run.dist.is_main else {}
    if sharding.is_sharded(run.raw_model):
        sharding.load_from_rank0(run.raw_model, state)  # rank 0's full weights, sharded onto every rank
    else:
        if run.dist.is_main:
            run.raw_model.load_state_dict(state)
        distributed.broadcast_module(run.raw_model)
    test = evaluate(run.loop, run.data.test)
    return test, test_report(run, test, f"checkpoints/{name}", epoch)


def numbers(test: dict[str, float], report: dict[str, Any], prefix: str) -> dict[str, float]:
    """The task's test metrics, then the report's further scalars, as `<prefix>loss`, `<prefix>f1_macro`, ..."""
    out = {f"{prefix}{k}": v for k, v in test.items()}
    for key, value in summary_numbers(report).items():
        out.setdefault(prefix + key[len("test_"):], value)
    return out


def side_by_side(best: dict[str, float], last: dict[str, float], best_epoch: Any, last_epoch: Any) -> list[str]:
    """The final block: one row per metric, the best checkpoint's column beside the last one's."""
    heads = ("test", f"best (epoch {best_epoch})", f"last (epoch {last_epoch})")
    rows = [(k, f"{v:.4f}", f"{last[k]:.4f}" if k in last else "-") for k, v in best.items()]
    w0 = max(len(heads[0]), *(len(r[0]) for r in rows))
    w1 = max(len(heads[1]), *(len(r[1]) for r in rows))
    w2 = max(len(heads[2]), *(len(r[2]) for r in rows))
    return [f"{a:<{w0}}  {b:>{w1}}  {c:>{w2}}" for a, b, c in (heads, *rows)]


def test_best_and_last(run: Any) -> dict[str, float]:
    """Test last.pt, then best.pt (the weights left loaded); print, write test_report.json; summary numbers."""
    best_epoch, last_epoch = run.state.best_epoch, run.state.epoch
    same = best_epoch == last_epoch
    if not same:
        last_test, last_report = _test(run, "last.pt", last_epoch)
    test, report = _test(run, "best.pt", best_epoch)
    if same:
        last_test, last_report = test, {**report, "checkpoint": "checkpoints/last.pt"}
    say(f"test (best epoch {best_epoch}): {fmt_metrics(test)}", style="bold")
    if last_report:
        last_report["same_as_best"] = same
    if run.dist.is_main:
        write_test_report(run.run_dir, report, last_report)
    best_numbers, last_numbers = numbers(test, report, ""), numbers(last_test, last_report, "")
    for line in side_by_side(best_numbers, last_numbers, best_epoch, last_epoch):
        say(line)
    if same:
        say(f"the best epoch is the last one ({last_epoch}): one checkpoint, tested once")
    return {**{f"test_{k}": v for k, v in best_numbers.items()},
            **{f"last_test_{k}": v for k, v in last_numbers.items()}}
