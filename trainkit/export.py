"""`trainkit export`: a checkpoint's model as TorchScript, ONNX or safetensors, checked before it is written.

Each artefact is run on a batch of real inputs (the run's own test split, rebuilt from the
checkpoint's config, or `input=`) and its outputs compared with the PyTorch model's; only an
artefact that passes is written, atomically, so a failed or refused export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from trainkit import files
from trainkit.console import console
from trainkit.errors import ConfigError, TrainkitError
from trainkit.predict import Loaded, load_model, read_inputs

# format -> (file suffix, the packages it needs, the extra that installs them)
FORMATS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "torchscript": (".torchscript.pt", (), None),
    "onnx": (".onnx", ("onnx", "onnxruntime", "onnxscript"), "onnx"),
    "safetensors": (".safetensors", ("safetensors",), "safetensors"),
}
# |exported - pytorch| allowed, elementwise, scaled by the outputs' size (float32 kernels differ in rounding)
ATOL = 1e-4
RTOL = 1e-4
CHECK_SAMPLES = 64


class ExportRefused(TrainkitError):
    """The model cannot be exported to this format (an op or construct the format lacks): exit 2."""


class CheckFailed(TrainkitError):
    """The exported artefact gave other outputs than the PyTorch model: exit 1, nothing written."""

    exit_code = 1


@dataclass
class Check:
    samples: int
    max_abs_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def line(self, fmt: str, where: str) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (f"check: {fmt} vs PyTorch on {self.samples} samples of {where}: max abs diff {self.max_abs_diff:.3g}, "
                f"tolerance {self.tolerance:.3g}: {verdict}")


def require(fmt: str) -> None:
    """The format's optional packages are installed, or one line with the pip command."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not an export format; choose {', '.join(FORMATS)}")
    _, modules, extra = FORMATS[fmt]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"format={fmt} needs {', '.join(missing)}: pip install 'trainkit[{extra}]'")


def sample_batch(loaded: Loaded, inputs: Sequence[str]) -> tuple[torch.Tensor, str]:
    """Real inputs for the check: `input=` (as predict reads it) or the first test batch of the run's own data."""
    if inputs:
        data = read_inputs(inputs, loaded)
        return data.load(0, min(len(data), CHECK_SAMPLES)), data.what
    from trainkit.data import build_data

    try:
        data = build_data(loaded.cfg, torch.device("cpu"))
    except TrainkitError as exc:
        raise TrainkitError(
            f"the export is checked on the run's test split, which cannot be rebuilt ({exc}); "
            "or give the check sample inputs: input=FILE.pt"
        ) from None
    x = next(iter(data.test))[0]
    return x[:CHECK_SAMPLES], "the run's test split"


def _quiet() -> contextlib.ExitStack:
    """The exporters' own chatter (progress prints, warnings) kept off the user's terminal."""
    stack = contextlib.ExitStack()
    sink = io.StringIO()
    stack.enter_context(contextlib.redirect_stdout(sink))
    stack.enter_context(contextlib.redirect_stderr(sink))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _reason(exc: BaseException) -> str:
    """The line of an exporter's error that names the op or construct (the ONNX exporter's summary, else its first line)."""
    text = str(exc)
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", lines[0]) if lines else type(exc).__name__
    return " ".join(line.split())[:240]


def _torchscript(model: torch.nn.Module, example: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    with _quiet():
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(tmp))
        reloaded = torch.jit.load(str(tmp), map_location="cpu")
    return lambda x: reloaded(x)


def _onnx(model: torch.nn.Module, example: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime

    with _quiet():
        torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=["output"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False)
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def _safetensors(loaded: Loaded) -> Callable[[torch.nn.Module, torch.Tensor, Path], Callable[[torch.Tensor], torch.Tensor]]:
    def export(model: torch.nn.Module, example: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        from safetensors.torch import load_file, save_file

        from trainkit.build import build_model

        # clones: tied weights share memory, which safetensors refuses; loading fills both names again
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        meta = {"format": "pt", "data_meta": json.dumps(loaded.meta, default=str)}
        save_file(state, str(tmp), metadata=meta)
        fresh = build_model(loaded.cfg)  # from the config written beside the weights
        fresh.load_state_dict(load_file(str(tmp)))
        fresh.eval()
        return lambda x: fresh(x)

    return export


def _exporter(fmt: str, loaded: Loaded) -> Callable[[torch.nn.Module, torch.Tensor, Path], Callable[[torch.Tensor], torch.Tensor]]:
    return {"torchscript": _torchscript, "onnx": _onnx, "safetensors": _safetensors(loaded)}[fmt]


def _try(fmt: str, loaded: Loaded, model: torch.nn.Module, x: torch.Tensor, tmp: Path) -> Check:
    """Export to `tmp` and compare; ExportRefused naming the reason when the format cannot hold the model."""
    example = torch.cat([x, x])[:2]  # traced on 2 samples, checked on all: the batch dimension really is free
    try:
        run = _exporter(fmt, loaded)(model, example, tmp)
        with torch.inference_mode():
            got = run(x)
    except (ImportError, TrainkitError):
        raise
    except Exception as exc:
        raise ExportRefused(_reason(exc)) from exc
    with torch.inference_mode():
        want = model(x)
    got = got.float().reshape(want.shape)
    diff = float((got - want.float()).abs().max()) if want.numel() else 0.0
    return Check(len(x), diff, ATOL + RTOL * float(want.abs().max()) if want.numel() else ATOL)


def default_output(ckpt: Path, fmt: str) -> Path:
    """RUN_DIR/export/best.onnx for RUN_DIR/checkpoints/best.pt (beside the checkpoint when not in a run)."""
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run_dir / "export" / f"{ckpt.stem}{FORMATS[fmt][0]}"


def export_checkpoint(
    ckpt: str,
    fmt: str,
    output: str | None = None,
    overrides: Sequence[str] = (),
    inputs: Sequence[str] = (),
    trust: bool = False,
    allow: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Export checkpoint `ckpt` (a file or run directory) to `fmt`, check it on real inputs, then write it."""
    require(fmt)
    overrides = list(overrides)
    if not any(o.partition("=")[0] == "device" for o in overrides):
        overrides.append("device=cpu")  # the artefact and its check run on the CPU, where runtimes load it
    loaded = load_model(ckpt, overrides, trust, allow)
    loaded.model.cpu()
    path = Path(output).expanduser() if output else default_output(loaded.path, fmt)
    if path.is_dir():
        raise ConfigError(f"output={output} is a directory; give a file name such as {path / ('model' + FORMATS[fmt][0])}")
    config_path = path.with_suffix(".yaml") if fmt == "safetensors" else None
    files.refuse_link(path)
    if config_path is not None:
        files.refuse_link(config_path)
    x, where = sample_batch(loaded, inputs)
    x = x.cpu()
    with tempfile.TemporaryDirectory(prefix="trainkit-export-") as tmpdir:
        tmp = Path(tmpdir) / f"model{FORMATS[fmt][0]}"
        try:
            check = _try(fmt, loaded, loaded.model, x, tmp)
        except ExportRefused as exc:
            works = _working_formats(fmt, loaded, x, Path(tmpdir))
            raise ExportRefused(
                f"the model ({loaded.cfg.model.get('_target_')}) cannot be exported to {fmt}: {exc}; "
                f"formats that work for it: {', '.join(works) or 'none'}"
            ) from None
        console.print(check.line(fmt, where), markup=False)
        if not check.passed:
            raise CheckFailed(
                f"the {fmt} export gives other outputs than the PyTorch model (max abs diff {check.max_abs_diff:.3g} > "
                f"tolerance {check.tolerance:.3g}), so it was not written; try another format"
            )
        blob = tmp.read_bytes()
    written = []
    if config_path is not None:  # the config first: weights on disk always have theirs beside them
        files.atomic_write_text(config_path, OmegaConf.to_yaml(loaded.cfg))
        written.append(str(config_path))
    files.atomic_write(path, lambda f: f.write(blob))
    written.insert(0, str(path))
    console.print(f"wrote {' and '.join(written)}", markup=False)
    return {"checkpoint": str(loaded.path.resolve()), "format": fmt, "written": written, "samples": check.samples,
            "max_abs_diff": check.max_abs_diff, "tolerance": check.tolerance, "passed": check.passed}


def _working_formats(failed: str, loaded: Loaded, x: torch.Tensor, tmpdir: Path) -> list[str]:
    """The other formats whose export of this model passes its check (tried in the temp folder, never written)."""
    works = []
    for fmt in FORMATS:
        if fmt == failed:
            continue
        try:
            require(fmt)
            if _try(fmt, loaded, loaded.model, x, tmpdir / f"probe{FORMATS[fmt][0]}").passed:
                works.append(fmt)
        except TrainkitError:
            continue
    return works
