"""Resource facts a run records: peak host memory (RSS) and peak device memory."""

from __future__ import annotations

import sys
from typing import Any


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil

            info = psutil.Process().memory_info()
            return round(getattr(info, "peak_wset", info.rss) / 2**20, 1)
        except Exception:
            return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / 2**20 if sys.platform == "darwin" else rss / 1024, 1)  # macOS: bytes, Linux: KiB


def peak_device_mb(device: Any) -> float | None:
    """Peak memory torch allocated on a CUDA device in MiB; None on CPU/MPS (RSS covers the CPU)."""
    if device is None or getattr(device, "type", None) != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def peak_memory(device: Any) -> dict[str, float | None]:
    """The summary.json keys: peak_rss_mb, peak_gpu_mem_mb."""
    return {"peak_rss_mb": peak_rss_mb(), "peak_gpu_mem_mb": peak_device_mb(device)}


def compile_model(model: Any, device: Any, enabled: bool) -> Any:
    """torch.compile the training model, or say why not and train eagerly (never a crash at step 1)."""
    if not enabled:
        return model
    import os
    import shutil

    import torch

    from trainkit.console import say

    if not hasattr(torch, "compile"):
        say("trainer.compile=true needs torch>=2.0; training without torch.compile", style="yellow")
        return model
    if device.type == "cpu":
        compilers = (os.environ.get("CXX"), "g++", "c++", "clang++")
        if not any(c and shutil.which(c) for c in compilers):
            say("trainer.compile=true: torch.compile's CPU backend needs a C++ compiler (g++/clang++), none "
                "was found; training without torch.compile", style="yellow")
            return model
        say("trainer.compile=true on the CPU: the first steps compile for tens of seconds and small models "
            "often run slower than without it (docs/performance.md)", style="yellow")
    return torch.compile(model)


def wants_channels_last(model: Any, device: Any) -> bool:
    """channels_last memory format for conv nets on CUDA (tensor cores read NHWC); never on the CPU."""
    if getattr(device, "type", None) != "cuda":
        return False
    from torch import nn

    return any(isinstance(m, nn.Conv2d) for m in model.modules())


_FUSABLE = {"torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW",
            "torch.optim.sgd.SGD", "torch.optim.adam.Adam", "torch.optim.adamw.AdamW"}


def fused_default(node: Any, model: Any) -> dict[str, bool]:
    """{"fused": True} where torch has a fused kernel and the config left the implementation open.

    The loop a user writes by hand runs SGD/Adam/AdamW's default per-parameter Python loop on the
    CPU; the fused kernel does the same update in one call (measured: SGD's step 284 -> 157 us on an
    MLP, ~5% of a small model's step; docs/performance.md). Results differ from the for-loop kernel
    in the last bits (~1e-7 after 200 steps). `+optim.fused=false` or any `optim.foreach` keeps
    torch's choice.
    """
    if str(node.get("_target_", "")) not in _FUSABLE:
        return {}
    if any(key in node for key in ("fused", "foreach", "differentiable", "capturable")):
        return {}
    from torch import nn

    params = [p for p in model.parameters() if p.requires_grad]
    if not params or any(p.device.type not in ("cpu", "cuda") or not p.is_floating_point() for p in params):
        return {}
    if len({p.device for p in params}) > 1:
        return {}
    if any(type(p).__name__ == "DTensor" for p in params):
        return {}  # sharded (trainer.strategy=fsdp): the fused kernels have no sharding rule for DTensors
    if any(isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse for m in model.modules()):
        return {}  # sparse gradients: no fused kernel
    return {"fused": True}
