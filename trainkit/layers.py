"""`trainkit check --layers`: every layer's output shape, parameter count and forward FLOPs on one batch.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, counted as
2 per multiply-add; element-wise ops count 0), for one forward pass of the real batch, per module
and for the whole model; the shapes from forward hooks on the same pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def human_count(n: float) -> str:
    """12_300_000 -> '12.3M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _shape(out: Any) -> str:
    if torch.is_tensor(out):
        return str(list(out.shape))
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return str(list(out[0].shape)) + (f" (+{len(out) - 1})" if len(out) > 1 else "")
    return type(out).__name__


def layer_table(model: nn.Module, inputs: torch.Tensor) -> tuple[list[dict[str, Any]], int]:
    """(one row per module: name, type, output shape, parameters, FLOPs; the model's total FLOPs)."""
    shapes: dict[str, str] = {}

    def record(name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:  # returns None: the output is left alone
            shapes.setdefault(name, _shape(out))

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if name]
    was = model.training
    model.eval()  # one batch's statistics must not move BatchNorm's running averages
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(inputs)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    root = type(model).__name__
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        rows.append({
            "name": name, "type": type(module).__name__, "output": shapes.get(name, "-"),
            "parameters": sum(p.numel() for p in module.parameters()),
            "flops": flops.get(f"{root}.{name}", 0), "depth": name.count("."),
        })
    return rows, int(counter.get_total_flops())


def format_table(rows: list[dict[str, Any]], total_flops: int, total_params: int) -> list[str]:
    width = max([len("  " * r["depth"] + r["name"]) for r in rows] + [5])
    kind = max([len(r["type"]) for r in rows] + [4])
    out = [f"{'layer':<{width}}  {'type':<{kind}}  {'output':<20} {'params':>9} {'FLOPs':>9}"]
    for r in rows:
        label = "  " * r["depth"] + r["name"]
        out.append(f"{label:<{width}}  {r['type']:<{kind}}  {r['output']:<20} {human_count(r['parameters']):>9} "
                   f"{human_count(r['flops']):>9}")
    out.append(f"{'total':<{width}}  {'':<{kind}}  {'':<20} {human_count(total_params):>9} {human_count(total_flops):>9}"
               "  (forward, one batch)")
    return out
