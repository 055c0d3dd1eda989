"""Test-time metrics on the best and the last checkpoint: a table in the terminal and test_report.json.

The per-epoch train/val numbers stay the cheap on-device sums of trainkit.tasks; this pass runs once, after
training, over the test split with the best weights loaded, and measures what one epoch's sums cannot:

- classification: accuracy, top-k accuracy, macro F1 / precision / recall, per-class accuracy, confusion matrix
- binary: accuracy, F1, precision, recall, AUROC, per-class accuracy, 2x2 confusion matrix
- multilabel: exact match, per-label accuracy, macro F1, per-label confusion matrices
- regression: MAE, MSE, RMSE, R2

Which family applies is chosen by the task's `name` (or a `report_kind` attribute on a custom task). Other
tasks get a report with their own test metrics only. A task whose targets are not simply `batch[1]` can
define `report_batch(model, batch) -> (outputs, targets)`. Settings live under `metrics:` in the config.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainkit.distributed import without_padding
from trainkit.files import atomic_write_text

log = logging.getLogger("trainkit")

#: task name -> metric family
KINDS = {"classification": "multiclass", "binary": "binary", "multilabel": "multilabel", "regression": "regression"}

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "top_k": [5],
    "average": "macro",
    "threshold": 0.5,
    "per_class": True,
    "confusion_matrix": True,
}

#: above this many classes the terminal shows no confusion matrix or per-class table (the JSON has them)
MAX_PRINTED_CLASSES = 20


def settings(cfg: Any) -> dict[str, Any]:
    """`cfg.metrics` over the defaults; `top_k` as a sorted list of ints."""
    out = dict(DEFAULTS)
    node = cfg.get("metrics") if hasattr(cfg, "get") else None
    if node is not None:
        from omegaconf import OmegaConf

        plain = OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else node
        out.update(plain or {})
    k = out.get("top_k")
    out["top_k"] = sorted({int(v) for v in ([] if k is None else [k] if isinstance(k, int) else k)})
    return out


def kind_of(task: Any) -> str | None:
    return getattr(task, "report_kind", None) or KINDS.get(getattr(task, "name", ""))


# ---------------------------------------------------------------------------- preparing outputs


def _probabilities(out: torch.Tensor, criterion: nn.Module | None) -> torch.Tensor:
    """Binary/multilabel outputs as probabilities: BCELoss already takes them, the other losses take scores."""
    out = out.float()
    return out if isinstance(criterion, nn.BCELoss) else out.sigmoid()


def _multilabel_target(y: torch.Tensor, n_labels: int, criterion: nn.Module | None) -> torch.Tensor:
    if isinstance(criterion, nn.MultiLabelMarginLoss):
        # Index format: label ids, padded with -1 after the last one.
        valid = (y >= 0).long().cumprod(dim=1)
        hits = torch.zeros(y.shape[0], n_labels, dtype=torch.long, device=y.device)
        return (hits.scatter_add_(1, y.clamp(min=0), valid) > 0).long()
    return (y > 0).long()


def prepare(kind: str, out: torch.Tensor, y: torch.Tensor, criterion: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor] | str:
    """(preds, target) in the form torchmetrics takes, or a reason why this batch does not fit the family."""
    if kind == "multiclass":
        if out.dim() != 2 or y.dim() != 1:
            return f"outputs {list(out.shape)} and targets {list(y.shape)} are not (N, classes) and (N,)"
        return out.float(), y.long()
    if kind == "binary":
        if out.numel() != y.numel():
            return f"outputs {list(out.shape)} do not pair one-to-one with targets {list(y.shape)}"
        return _probabilities(out, criterion).reshape(-1), (y.reshape(-1) > 0).long()
    if kind == "multilabel":
        if out.dim() != 2 or y.shape != out.shape:
            return f"outputs {list(out.shape)} and targets {list(y.shape)} are not both (N, labels)"
        return _probabilities(out, criterion), _multilabel_target(y, out.shape[1], criterion)
    if kind == "regression":
        if out.numel() != y.numel():
            return f"outputs {list(out.shape)} do not pair one-to-one with targets {list(y.shape)}"
        return out.float().reshape(-1), y.float().reshape(-1)
    return f"no metrics for kind {kind}"


# ---------------------------------------------------------------------------- the metric families
# Plain torch, computed as torchmetrics computes them (its classification and regression metrics,
# op for op in float32, so every value in test_report.json is the one torchmetrics gave; the tests
# compare the two): importing torchmetrics cost a run 1.5-2 CPU seconds, more than a small run's training.


def _div(num: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """num / denom in float32, 0 where denom is 0 (torchmetrics' _safe_divide)."""
    num, denom = num.float(), denom.float()
    return torch.where(denom != 0, num / denom, torch.zeros((), dtype=num.dtype, device=num.device))


def _average(score: torch.Tensor, avg: str, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor,
             multilabel: bool) -> torch.Tensor:
    """Macro or weighted mean over classes; macro skips classes absent from targets and predictions."""
    if avg == "weighted":
        weights = tp + fn
    else:
        weights = torch.ones_like(score)
        if not multilabel:
            weights[tp + fp + fn == 0] = 0.0
    return _div(weights * score, weights.sum(-1, keepdim=True)).sum(-1)


def _fbeta(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, avg: str, multilabel: bool) -> torch.Tensor:
    if avg == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        return _div(2.0 * tp, 2.0 * tp + 1.0 * fn + fp)
    return _average(_div(2.0 * tp, 2.0 * tp + 1.0 * fn + fp), avg, tp, fp, fn, multilabel)


def _ratio(tp: torch.Tensor, other: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, avg: str) -> torch.Tensor:
    """Precision (other=fp) or recall (other=fn) of a multiclass confusion."""
    if avg == "micro":
        return _div(tp.sum(), tp.sum() + other.sum())
    return _average(_div(tp, tp + other), avg, tp, fp, fn, False)


def _as_probabilities(p: torch.Tensor) -> torch.Tensor:
    # As torchmetrics: a batch with values outside [0, 1] holds scores, read through a sigmoid.
    return p if bool(((p >= 0) & (p <= 1)).all()) else p.sigmoid()


def _auroc(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact binary AUROC: the ROC curve over every distinct score, trapezoids; 0 when a class is absent."""
    order = torch.argsort(p, descending=True)
    p, t = p[order], t[order]
    distinct = torch.where(p[1:] - p[:-1])[0]
    idx = torch.nn.functional.pad(distinct, [0, 1], value=t.size(0) - 1)
    tps = torch.cumsum((t == 1).long() * 1.0, dim=0)[idx]
    fps = 1 + idx - tps
    tps = torch.cat([torch.zeros(1, dtype=tps.dtype, device=tps.device), tps])
    fps = torch.cat([torch.zeros(1, dtype=fps.dtype, device=fps.device), fps])
    fpr = fps / fps[-1] if fps[-1] > 0 else torch.zeros_like(fps)
    tpr = tps / tps[-1] if tps[-1] > 0 else torch.zeros_like(tps)
    return torch.trapz(tpr, fpr)


class Family:
    """The running statistics of one metric family on the device: `update` per batch, `compute` once."""

    def __init__(self, kind: str, width: int, s: Mapping[str, Any], device: torch.device) -> None:
        self.kind, self.width, self.s, self.device = kind, width, s, device
        self.avg, self.thr = str(s["average"]), float(s["threshold"])
        self.top_k = [k for k in s["top_k"] if 1 < k < width] if kind == "multiclass" else []
        zeros = lambda *shape, dtype=torch.long: torch.zeros(*shape, dtype=dtype, device=device)  # noqa: E731
        self.n = 0
        if kind == "multiclass":
            self.confusion, self.hits = zeros(width, width), {k: zeros(()) for k in self.top_k}
        elif kind == "binary":
            self.preds: list[torch.Tensor] = []
            self.targets: list[torch.Tensor] = []
        elif kind == "multilabel":
            self.tp, self.fp, self.tn, self.fn, self.exact = (zeros(width), zeros(width), zeros(width), zeros(width),
                                                              zeros(()))
        elif kind == "regression":
            f32 = torch.float32
            self.sae, self.sse, self.sum_obs, self.sum_sq_obs, self.rss = (zeros((), dtype=f32) for _ in range(5))

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.n += int(target.shape[0])
        if self.kind == "multiclass":
            c = self.width
            pred = preds.argmax(dim=1)
            self.confusion += torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)
            for k in self.top_k:
                self.hits[k] += (preds.topk(k, dim=1).indices == target[:, None]).any(1).sum()
        elif self.kind == "binary":
            self.preds.append(_as_probabilities(preds))
            self.targets.append(target)
        elif self.kind == "multilabel":
            hard = (_as_probabilities(preds) > self.thr).long()
            right, pos = hard == target, target == 1
            self.tp += (right & pos).sum(0)
            self.fn += (~right & pos).sum(0)
            self.fp += (~right & ~pos).sum(0)
            self.tn += (right & ~pos).sum(0)
            self.exact += ((hard == target).sum(1) == self.width).sum()
        elif self.kind == "regression":
            diff = preds - target
            self.sae += torch.sum(torch.abs(diff))
            self.sse += torch.sum(diff * diff)
            self.sum_obs += torch.sum(target, dim=0)
            self.sum_sq_obs += torch.sum(target * target, dim=0)
            self.rss += torch.sum((target - preds) ** 2, dim=0)

    def _sync(self) -> None:
        """Under DDP: every rank's statistics summed (the binary scores gathered), as torchmetrics' compute did."""
        from trainkit.distributed import info

        if info().world_size <= 1:
            return
        import torch.distributed as dist

        if self.kind == "binary":
            shards: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(shards, (torch.cat(self.preds).cpu(), torch.cat(self.targets).cpu()))
            self.preds, self.targets = [s[0] for s in shards], [s[1] for s in shards]
        else:
            for name in ("confusion", "tp", "fp", "tn", "fn", "exact", "sae", "sse", "sum_obs", "sum_sq_obs", "rss"):
                if hasattr(self, name):
                    dist.all_reduce(getattr(self, name))
            for t in self.hits.values() if self.kind == "multiclass" else ():
                dist.all_reduce(t)
        n = torch.tensor([self.n], dtype=torch.long, device=self.device)
        dist.all_reduce(n)
        self.n = int(n.item())

    def compute(self) -> dict[str, torch.Tensor]:
        """The family's values, keyed as test_report.json names them (`_per_class`, `_confusion`: the tables)."""
        self._sync()
        s, avg, m = self.s, self.avg, {}
        if self.kind == "multiclass":
            cm = self.confusion
            tp = cm.diagonal()
            fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
            m["acc"] = _div(tp.sum(), tp.sum() + fn.sum())
            for k in self.top_k:
                m[f"top{k}_acc"] = _div(self.hits[k], torch.tensor(self.n, device=tp.device))
            m[f"f1_{avg}"] = _fbeta(tp, fp, fn, avg, False)
            m[f"precision_{avg}"] = _ratio(tp, fp, fp, fn, avg)
            m[f"recall_{avg}"] = _ratio(tp, fn, fp, fn, avg)
            m["_per_class"] = _div(tp, tp + fn)
            m["_confusion"] = cm
        elif self.kind == "binary":
            p, t = torch.cat(self.preds), torch.cat(self.targets)
            hard = (p > self.thr).long()
            right, pos = hard == t, t == 1
            tp, fn = (right & pos).sum(), (~right & pos).sum()
            fp, tn = (~right & ~pos).sum(), (right & ~pos).sum()
            m["acc"] = _div(tp + tn, tp + tn + fp + fn)
            m["f1"] = _div(2.0 * tp, 2.0 * tp + 1.0 * fn + fp)
            m["precision"] = _div(tp, tp + fp)
            m["recall"] = _div(tp, tp + fn)
            m["auroc"] = _auroc(p, t)
            m["_confusion"] = torch.stack([torch.stack([tn, fp]), torch.stack([fn, tp])])
        elif self.kind == "multilabel":
            tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
            m["exact_match"] = _div(self.exact, torch.tensor(self.n, device=tp.device))
            m["acc"] = _div(tp.sum() + tn.sum(), tp.sum() + tn.sum() + fp.sum() + fn.sum())
            m[f"f1_{avg}"] = _fbeta(tp, fp, fn, avg, True)
            m["_per_class"] = _div(tp + tn, tp + tn + fp + fn)
            m["_confusion"] = torch.stack([torch.stack([tn, fp], -1), torch.stack([fn, tp], -1)], -2)
        elif self.kind == "regression":
            n = self.n
            m["mae"], m["mse"], m["rmse"] = self.sae / n, self.sse / n, torch.sqrt(self.sse / n)
            m["r2"] = self._r2()
        if not s["per_class"]:
            m.pop("_per_class", None)
        if not s["confusion_matrix"] and self.kind != "binary":
            m.pop("_confusion", None)
        return m

    def _r2(self) -> torch.Tensor:
        if self.n < 2:
            raise ValueError("Needs at least two samples to calculate r2 score.")
        rss = self.rss
        tss = self.sum_sq_obs - self.sum_obs * (self.sum_obs / self.n)
        near0 = lambda v: torch.isclose(v, torch.zeros_like(v), atol=1e-4)  # noqa: E731 (near-constant targets)
        if not near0(rss):
            return 1 - rss / tss if not near0(tss) else torch.zeros_like(rss)
        return torch.ones_like(rss)


def _class_names(n: int, names: Any) -> list[str]:
    if names is not None and len(names) == n:
        return [str(v) for v in names]
    return [str(i) for i in range(n)]


@torch.inference_mode()
def compute_report(
    model: nn.Module,
    loader: Any,
    task: Any,
    criterion: nn.Module | None,
    device: torch.device,
    autocast: Any = None,
    cfg_metrics: Mapping[str, Any] | None = None,
    task_metrics: Mapping[str, float] | None = None,
    class_names: Any = None,
) -> dict[str, Any]:
    """One pass over `loader` (the statistics on `device`, one host read at the end)."""
    import contextlib

    s = {**DEFAULTS, **(cfg_metrics or {})}
    kind = kind_of(task)
    report: dict[str, Any] = {"task": getattr(task, "name", type(task).__name__), "kind": kind, "samples": 0,
                              "metrics": {k: v for k, v in (task_metrics or {}).items()}}
    if kind is None:
        report["note"] = f"no torchmetrics metrics for task={report['task']}; the report holds the task's own test metrics"
        report["samples"] = int(getattr(loader, "num_samples", 0))  # what the task's own test pass measured
        return report
    report_batch = getattr(task, "report_batch", None)
    was_training = model.training
    model.eval()
    metrics: Family | None = None
    n = 0
    try:
        for batch, real in without_padding(loader):  # under DDP: each sample of the split counted once
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            with autocast() if autocast is not None else contextlib.nullcontext():
                if report_batch is not None:  # a task that derives its targets (e.g. multilabel from class ids)
                    out, y = report_batch(model, batch)
                else:
                    out, y = model(batch[0]), batch[1]
            # report_batch gives scores (logits) and plain 0/1 or class targets, whatever the loss wanted.
            prepared = prepare(kind, out, y, None if report_batch is not None else criterion)
            if isinstance(prepared, str):
                report["note"] = f"torchmetrics metrics skipped for task={report['task']}: {prepared}"
                return report
            preds, target = prepared
            if metrics is None:
                width = out.shape[1] if kind in ("multiclass", "multilabel") else 1
                metrics = Family(kind, width, s, preds.device)
            if real:
                metrics.update(preds, target)
                n += real
    finally:
        model.train(was_training)
    report["samples"] = n
    if metrics is None or n == 0:
        report["note"] = "the test split is empty"
        return report
    values = {k: v.detach().cpu() for k, v in metrics.compute().items()}  # the one host read
    for k, v in values.items():
        if not k.startswith("_"):  # a number the task already gave (loss, acc) stays exactly as in summary.json
            report["metrics"].setdefault(k, float(v))
    confusion = values.get("_confusion")
    if kind in ("multiclass", "binary") and confusion is not None:
        width = confusion.shape[0]
        support = confusion.sum(dim=1)
        correct = confusion.diagonal()
        per_class = values.get("_per_class", correct / support.clamp(min=1))
        names = _class_names(width, class_names) if kind == "multiclass" else ["0", "1"]
        if s["per_class"]:
            report["per_class"] = [
                {"class": names[i], "accuracy": float(per_class[i]), "support": int(support[i])} for i in range(width)
            ]
        if s["confusion_matrix"]:
            report["confusion_matrix"] = confusion.long().tolist()
            report["class_names"] = names
    elif kind == "multilabel":
        if "_per_class" in values:
            width = values["_per_class"].shape[0]
            names = _class_names(width, class_names)
            positives = values["_confusion"].sum(dim=2)[:, 1] if confusion is not None else None
            report["per_class"] = [
                {"class": names[i], "accuracy": float(values["_per_class"][i]),
                 **({"positives": int(positives[i])} if positives is not None else {})}
                for i in range(width)
            ]
        if confusion is not None:
            report["confusion_matrix"] = confusion.long().tolist()  # (labels, 2, 2): [[tn, fp], [fn, tp]]
    return report


def summary_numbers(report: Mapping[str, Any]) -> dict[str, float]:
    """The report's scalars as summary.json keys (`test_f1_macro`, `test_top5_acc`, ...)."""
    return {f"test_{k}": float(v) for k, v in report.get("metrics", {}).items() if isinstance(v, (int, float))}


# ---------------------------------------------------------------------------- output


def print_report(report: Mapping[str, Any], title: str) -> None:
    """The report as rich tables (metrics, per class, confusion matrix) and plain lines in train.log."""
    from rich.table import Table

    from trainkit.console import console

    table = Table(title=title, title_justify="left", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in report.get("metrics", {}).items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    log.info("%s: %s", title, ", ".join(f"{k} {v:.4f}" for k, v in report.get("metrics", {}).items()
                                         if isinstance(v, float)))
    per_class = report.get("per_class")
    if per_class and len(per_class) > MAX_PRINTED_CLASSES:
        worst = sorted(per_class, key=lambda r: r["accuracy"])[:5]
        console.print(f"per class: {len(per_class)} classes in test_report.json; lowest accuracy: "
                      + ", ".join(f"{r['class']} {r['accuracy']:.4f}" for r in worst), markup=False)
    elif per_class:
        pc = Table(title="per class", title_justify="left")
        cols = [c for c in per_class[0] if c != "class"]
        pc.add_column("class")
        for c in cols:
            pc.add_column(c, justify="right")
        for row in per_class:
            pc.add_row(row["class"], *(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in cols))
        console.print(pc)
        log.info("per class accuracy: %s", ", ".join(f"{r['class']} {r['accuracy']:.4f}" for r in per_class))
    cm = report.get("confusion_matrix")
    names = report.get("class_names")
    if cm and names and len(names) <= MAX_PRINTED_CLASSES and report.get("kind") in ("multiclass", "binary"):
        t = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
        t.add_column("")
        for name in names:
            t.add_column(name, justify="right")
        for name, row in zip(names, cm, strict=False):
            t.add_row(name, *(str(v) for v in row))
        console.print(t)
    if report.get("note"):
        console.print(report["note"], style="yellow", markup=False)
        log.info(report["note"])


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Indented JSON with each list of numbers (a confusion-matrix row) on one line, written atomically."""
    text = json.dumps(report, indent=2)
    text = re.sub(r"\[\s*(-?[\d.]+(?:,\s*-?[\d.]+)*)\s*\]", lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text)
    atomic_write_text(path, text + "\n")


def test_report(run: Any, test_metrics: Mapping[str, float], checkpoint: str, epoch: int | None) -> dict[str, Any]:
    """The report of the weights now in `run.raw_model` (those of `checkpoint`); {} when disabled.

    Under DDP every rank measures its shard and compute() gathers the states, so all ranks run this.
    """
    cfg = run.cfg
    s = settings(cfg)
    if not s["enabled"]:
        return {}
    loop = run.loop
    dist = getattr(run, "dist", None)
    report = compute_report(
        run.raw_model, run.data.test, run.task, run.criterion, run.device,
        autocast=loop.autocast if loop.dtype is not None else None,
        cfg_metrics=s, task_metrics=test_metrics,
        class_names=run.data.meta.get("class_names") or (cfg.data.get("class_names") if cfg.get("data") is not None else None),
    )
    if dist is not None and dist.world_size > 1:
        from trainkit.distributed import all_reduce_sums

        report["samples"] = all_reduce_sums({}, int(report["samples"]))[1]
    return {"split": "test", "checkpoint": checkpoint, "epoch": epoch, **report,
            "settings": {k: s[k] for k in ("top_k", "average", "threshold")}}


def write_test_report(run_dir: Path, best: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    """Print the best checkpoint's report and write test_report.json: best's keys at the top, `last` beside.

    `last` is the last checkpoint's report (its own `checkpoint`, `epoch`, `same_as_best`), or None.
    """
    if not best:
        return {}
    print_report(best, f"test report (best epoch {best['epoch']}, {best['samples']} samples)")
    out = dict(best)
    if last:
        out["last"] = {k: v for k, v in last.items() if k not in ("split", "task", "kind", "settings")}
    write_report(run_dir / "test_report.json", out)
    return out
