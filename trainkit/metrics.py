"""Test-time metrics from torchmetrics on the best checkpoint: a table in the terminal and test_report.json.

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


# ---------------------------------------------------------------------------- torchmetrics objects


def build_metrics(kind: str, width: int, s: Mapping[str, Any]) -> dict[str, Any]:
    """The torchmetrics objects of one family; `width` is the class/label count (from the model's output)."""
    import torchmetrics.classification as tmc
    import torchmetrics.regression as tmr

    avg, thr = str(s["average"]), float(s["threshold"])
    m: dict[str, Any] = {}
    if kind == "multiclass":
        m["acc"] = tmc.MulticlassAccuracy(num_classes=width, average="micro")
        for k in s["top_k"]:
            if 1 < k < width:
                m[f"top{k}_acc"] = tmc.MulticlassAccuracy(num_classes=width, top_k=k, average="micro")
        m[f"f1_{avg}"] = tmc.MulticlassF1Score(num_classes=width, average=avg)
        m[f"precision_{avg}"] = tmc.MulticlassPrecision(num_classes=width, average=avg)
        m[f"recall_{avg}"] = tmc.MulticlassRecall(num_classes=width, average=avg)
        m["_per_class"] = tmc.MulticlassAccuracy(num_classes=width, average=None)
        m["_confusion"] = tmc.MulticlassConfusionMatrix(num_classes=width)
    elif kind == "binary":
        m["acc"] = tmc.BinaryAccuracy(threshold=thr)
        m["f1"] = tmc.BinaryF1Score(threshold=thr)
        m["precision"] = tmc.BinaryPrecision(threshold=thr)
        m["recall"] = tmc.BinaryRecall(threshold=thr)
        m["auroc"] = tmc.BinaryAUROC()
        m["_confusion"] = tmc.BinaryConfusionMatrix(threshold=thr)
    elif kind == "multilabel":
        m["exact_match"] = tmc.MultilabelExactMatch(num_labels=width, threshold=thr)
        m["acc"] = tmc.MultilabelAccuracy(num_labels=width, threshold=thr, average="micro")
        m[f"f1_{avg}"] = tmc.MultilabelF1Score(num_labels=width, threshold=thr, average=avg)
        m["_per_class"] = tmc.MultilabelAccuracy(num_labels=width, threshold=thr, average=None)
        m["_confusion"] = tmc.MultilabelConfusionMatrix(num_labels=width, threshold=thr)
    elif kind == "regression":
        m["mae"] = tmr.MeanAbsoluteError()
        m["mse"] = tmr.MeanSquaredError()
        m["rmse"] = tmr.MeanSquaredError(squared=False)
        m["r2"] = tmr.R2Score()
    if not s["per_class"]:
        m.pop("_per_class", None)
    if not s["confusion_matrix"] and kind != "binary":
        m.pop("_confusion", None)
    return m


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
    """One pass over `loader` with torchmetrics (state on `device`, one host read at the end)."""
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
    metrics: dict[str, Any] | None = None
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
                metrics = {k: m.to(device) for k, m in build_metrics(kind, width, s).items()}
            if real:
                for m in metrics.values():
                    m.update(preds, target)
                n += real
    finally:
        model.train(was_training)
    report["samples"] = n
    if metrics is None or n == 0:
        report["note"] = "the test split is empty"
        return report
    values = {k: m.compute() for k, m in metrics.items()}
    values = {k: v.detach().cpu() for k, v in values.items()}  # the one host read
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


def write_test_report(run: Any, test_metrics: Mapping[str, float]) -> dict[str, Any]:
    """What Run.train calls after loading best.pt: compute, print, write test_report.json; {} when disabled."""
    cfg = run.cfg
    s = settings(cfg)
    if not s["enabled"]:
        return {}
    loop = run.loop
    # Under DDP every rank measures its shard and torchmetrics' compute() gathers the states, so all ranks
    # run this; only rank 0 prints and writes.
    dist = getattr(run, "dist", None)
    report = compute_report(
        run.raw_model, run.data.test, run.task, run.criterion, run.device,
        autocast=loop.autocast if loop.dtype is not None else None,
        cfg_metrics=s, task_metrics=test_metrics,
        class_names=cfg.data.get("class_names") if cfg.get("data") is not None else None,
    )
    if dist is not None and dist.world_size > 1:
        from trainkit.distributed import all_reduce_sums

        report["samples"] = all_reduce_sums({}, int(report["samples"]))[1]
        if not dist.is_main:
            return report
    report = {"split": "test", "checkpoint": "checkpoints/best.pt", "epoch": run.state.best_epoch, **report,
              "settings": {k: s[k] for k in ("top_k", "average", "threshold")}}
    print_report(report, f"test report (best epoch {run.state.best_epoch}, {report['samples']} samples)")
    write_report(run.run_dir / "test_report.json", report)
    return report
