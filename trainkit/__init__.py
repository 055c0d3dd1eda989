"""trainkit: config-driven PyTorch training from a YAML recipe to a checkpointed model.

Importing the package stays light (no torch) so the CLI starts instantly; `train`, `evaluate`,
`predict` and `export` import the heavy parts on first use.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from trainkit.version import __version__

# configs/hydra/launcher/submitit_*.yaml keep the submitit plugin's names (`hydra/launcher=submitit_slurm`
# gets trainkit's defaults). Hydra 1.3 checks them against the plugin's schema of the same name (good) but
# warns that matching by name is deprecated; the YAML files are complete, so they work without it too.
# Here, not in config.py: a SLURM job composes its sweep config before it imports anything else of ours.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against Config")

__all__ = ["__version__", "train", "evaluate", "predict", "export", "tune_lr"]


def train(overrides: list[str] | None = None, config_dir: str | None = None) -> dict[str, Any]:
    """Run exactly what `trainkit train OVERRIDES` runs and return its summary dict."""
    from trainkit.api import train as _train

    return _train(overrides or [], config_dir=config_dir)


def evaluate(ckpt: str, overrides: list[str] | None = None, allow: list[str] | None = None) -> dict[str, Any]:
    """Run exactly what `trainkit eval ckpt=CKPT OVERRIDES` runs and return its metrics."""
    from trainkit.api import evaluate as _evaluate

    return _evaluate(ckpt, overrides or [], allow=allow)


def tune_lr(overrides: list[str] | None = None, config_dir: str | None = None) -> dict[str, Any]:
    """Run `trainkit tune lr OVERRIDES` (the lr range test) and return {"lr", "dir", "steps", "stopped"}."""
    from trainkit.api import tune_lr as _tune_lr

    return _tune_lr(overrides or [], config_dir=config_dir)


def predict(ckpt: str, input: str | list[str], output: str | None = None, **options: Any) -> dict[str, Any]:  # noqa: A002
    """Run exactly what `trainkit predict ckpt=CKPT input=INPUT` runs; options: overrides, top_k, batch_size, allow, trust."""
    from trainkit.api import predict as _predict

    return _predict(ckpt, input, output, **options)


def export(ckpt: str, format: str, output: str | None = None, **options: Any) -> dict[str, Any]:  # noqa: A002
    """Run exactly what `trainkit export ckpt=CKPT format=FORMAT` runs; options: overrides, input, allow, trust."""
    from trainkit.api import export as _export

    return _export(ckpt, format, output, **options)


# The functions whose names are also submodules (trainkit.evaluate, trainkit.predict, trainkit.export).
_FUNCTIONS = ("evaluate", "predict", "export")


class _Package(types.ModuleType):
    """Importing a submodule such as trainkit.evaluate would rebind `trainkit.evaluate` to it: keep the function.

    (After the first `trainkit.evaluate(...)` the name was a module and a second call failed.) The
    module's own names are reached with `from trainkit.evaluate import ...`, as everywhere in trainkit.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return  # the module stays in sys.modules["trainkit.evaluate"], where imports find it
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
