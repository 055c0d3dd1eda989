"""Fine-tuning: start a model from weights on disk (`model.pretrained`) and freeze parts of it (`model.freeze`).

Weights are read as a stranger's: a torch file through checkpoint.read (bounded, weights_only), a
.safetensors file through safetensors (no code in that format). Whatever fits by name and shape is
loaded; a tensor whose shape differs (the head of a model with other classes, a stem for other
channels) keeps the new model's initialisation, and the run says so in one table with the missing and
unexpected keys. Frozen parameters stay in the optimizer's param groups with requires_grad=False (no
gradient, so no step and no optimizer state), so `trainer.unfreeze_at_epoch` needs no new optimizer
and a resume restores the same optimizer whichever side of the unfreeze it stops on.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from trainkit.checkpoint import read
from trainkit.console import say
from trainkit.errors import ConfigError

SHOWN = 6  # keys named per kind in the table and in an error line


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def weights_path(path: str | Path) -> Path:
    """model.pretrained as a path to an existing file, or one line saying what to give."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"model.pretrained={path} {why}; give a weights file (.pt, .pth, .safetensors) "
                          "or a run's checkpoints/best.pt")
    return path


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a .safetensors file, a torch.save'd state dict, or a trainkit checkpoint's "model" entry."""
    path = weights_path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(f"model.pretrained={path} needs the safetensors package, which is not installed; "
                              "install it with: pip install 'trainkit[safetensors]'") from None
        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:
            raise ConfigError(f"model.pretrained={path} is not a readable safetensors file: {str(exc)[:160]}") from None
    obj = read(path, what="model.pretrained weights file")
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):  # a trainkit checkpoint; a common wrapper of other tools
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        kind = type(obj).__name__ if not isinstance(obj, dict) else "a dict of other values"
        raise ConfigError(f"model.pretrained={path} holds {kind}, not a state dict (parameter name -> tensor); "
                          "save one with torch.save(model.state_dict(), PATH)")
    return {str(k): v for k, v in obj.items()}


def map_prefix(state: dict[str, torch.Tensor], spec: Any) -> dict[str, torch.Tensor]:
    """Rename keys by `model.pretrained_prefix`: "module." strips it, "+model." adds it, "old.->new." replaces it.

    A list applies its entries in order.
    """
    rules = _plain(spec)
    for rule in [] if rules is None else rules if isinstance(rules, list) else [rules]:
        rule = str(rule)
        if "->" in rule:
            old, new = rule.split("->", 1)
            state = {new + k[len(old):] if k.startswith(old) else k: v for k, v in state.items()}
        elif rule.startswith("+"):
            state = {rule[1:] + k: v for k, v in state.items()}
        elif rule:
            state = {k.removeprefix(rule): v for k, v in state.items()}
    return state


@dataclass
class Fit:
    """How a state dict meets a model: what loads, what keeps its new values, and why."""

    loaded: dict[str, torch.Tensor] = field(default_factory=dict)
    reshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, file, model
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    head: tuple[str, ...] = ()  # the model's last weight and bias: a head, when the file's shape differs

    @property
    def exact(self) -> bool:
        return not (self.reshaped or self.missing or self.unexpected)

    def table(self, path: Any, total: int) -> list[str]:
        """One line per key not loaded as is, under a line of counts."""
        rows = [("head replaced: shape differs" if k in self.head else "replaced: shape differs, kept new",
                 k, f"file {list(a)}, model {list(b)}") for k, a, b in self.reshaped]
        rows += [("missing: not in the file, kept new", k, "") for k in self.missing]
        rows += [("unexpected: not in the model, ignored", k, "") for k in self.unexpected]
        lines = [f"pretrained {path}: {len(self.loaded)} of {total} model tensors loaded"]
        if rows:
            shown = rows[: SHOWN * 3]
            w0, w1 = (max(len(r[i]) for r in shown) for i in (0, 1))
            lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in shown]
            if len(rows) > len(shown):
                lines.append(f"  ... and {len(rows) - len(shown)} more")
        return lines


def match(model: nn.Module, state: dict[str, torch.Tensor]) -> Fit:
    own = model.state_dict()
    fit = Fit(head=tuple(list(own)[-2:]))
    for key, value in state.items():
        if key not in own:
            fit.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            fit.reshaped.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            fit.loaded[key] = value
    fit.missing = [k for k in own if k not in state]
    return fit


def _names(keys: Sequence[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (f", ... ({len(keys)} in all)" if len(keys) > SHOWN else "")


def load_pretrained(model: nn.Module, node: DictConfig, quiet: bool = False) -> Fit | None:
    """Load `model.pretrained` into `model` (after it is built, before the optimizer): what fits, told in a table."""
    path = node.get("pretrained")
    if path in (None, ""):
        return None
    state = map_prefix(read_weights(path), node.get("pretrained_prefix"))
    fit = match(model, state)
    own = list(model.state_dict())
    if not fit.loaded:
        raise ConfigError(
            f"none of the {len(state)} tensors in model.pretrained={path} fits the model (file keys: "
            f"{_names(list(state))}; model keys: {_names(own)}); map the names with model.pretrained_prefix "
            "(e.g. module. to strip, +model. to add, old.->new. to rename)")
    if bool(node.get("pretrained_strict", False)) and not fit.exact:
        parts = [f"{len(fit.reshaped)} of another shape ({_names([k for k, _, _ in fit.reshaped])})" if fit.reshaped else "",
                 f"{len(fit.missing)} missing ({_names(fit.missing)})" if fit.missing else "",
                 f"{len(fit.unexpected)} unexpected ({_names(fit.unexpected)})" if fit.unexpected else ""]
        raise ConfigError(
            f"model.pretrained={path} does not fit the model exactly: {'; '.join(p for p in parts if p)}; "
            "map names with model.pretrained_prefix, or set model.pretrained_strict=false to load what fits")
    with torch.no_grad():
        model.load_state_dict(fit.loaded, strict=False)
    if not quiet:
        for line in fit.table(path, len(own)):
            say(line)
    return fit


@dataclass
class Freeze:
    """The parameters `model.freeze` names, frozen until epoch `until` (0-based; None: for the whole run)."""

    names: list[str]
    params: list[nn.Parameter]
    until: int | None

    def describe(self) -> str:
        when = f"trained again after epoch {self.until}" if self.until is not None else "for the whole run"
        return f"frozen: {len(self.params)} parameter tensors ({_names(self.names)}), {when}"

    def at_epoch(self, epoch: int) -> None:
        """Before training epoch `epoch` (0-based): frozen before `until`, trainable from it on."""
        trainable = self.until is not None and epoch >= self.until
        for p in self.params:
            p.requires_grad_(trainable)


def patterns_of(node: DictConfig) -> list[str]:
    value = _plain(node.get("freeze"))
    return [] if value in (None, "") else [str(p) for p in (value if isinstance(value, list) else [value])]


def check_unfreeze(patterns: Sequence[str], until: int | None) -> None:
    if until is not None and not patterns:
        raise ConfigError(f"trainer.unfreeze_at_epoch={until} needs model.freeze patterns to release, "
                          "e.g. model.freeze='[features.*]'")


def freeze(model: nn.Module, patterns: Iterable[str], until: int | None = None) -> Freeze | None:
    """Freeze every parameter whose name matches one of the fnmatch `patterns` (as optim.param_groups matches)."""
    patterns = list(patterns)
    check_unfreeze(patterns, until)
    if not patterns:
        return None
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n, _ in named):
            raise ConfigError(f"model.freeze pattern '{pattern}' matches no parameter (fnmatch on names); "
                              f"this model's parameter names: {_names([n for n, _ in named])}")
    chosen = [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if len(chosen) == len(named):
        raise ConfigError(f"model.freeze={patterns} freezes every parameter, so nothing would train; "
                          "leave some (the head) out of the patterns")
    frozen = Freeze([n for n, _ in chosen], [p for _, p in chosen], until)
    frozen.at_epoch(0)
    return frozen


__all__ = [
    "Fit", "Freeze", "check_unfreeze", "freeze", "load_pretrained", "map_prefix", "match", "patterns_of",
    "read_weights", "weights_path",
]
