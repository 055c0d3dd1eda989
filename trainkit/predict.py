"""`trainkit predict`: a checkpoint's model on data its run never saw, written as predictions.csv (or .pt/.npy).

The model comes from the config stored in the checkpoint, read exactly as `trainkit eval` reads it
(`evaluate.read_checkpoint`: bounded `weights_only` load, the closed allow-list); only the model is
built, so the run's training data need not be there. New inputs get the treatment the run gave its
own: the same CSV feature columns, the run's deterministic (eval) image transforms.
"""

from __future__ import annotations

import csv as csv_module
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainkit import files
from trainkit.build import build_model, build_task, resolve_device
from trainkit.console import CountProgress, console, say
from trainkit.errors import ConfigError, DataError, TrainkitError
from trainkit.evaluate import read_checkpoint
from trainkit.parts import load_weights

OUTPUT_SUFFIXES = (".csv", ".pt", ".npy")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's
PROGRESS_FROM = 8  # batches: fewer finish before a bar would be worth drawing
# Task classes predict knows how to turn outputs into answers, by their class name.
CLASS_TASKS = ("Classification", "SoftTargets")
SUPPORTED = ("classification", "soft_targets", "binary", "multilabel", "regression")


@dataclass
class Loaded:
    """A checkpoint's model rebuilt for inference: what predict and export need."""

    path: Path
    cfg: DictConfig
    model: nn.Module  # eval mode, on `device`
    task: Any
    device: torch.device
    meta: dict[str, Any] = field(default_factory=dict)  # the checkpoint's "data_meta"

    @property
    def input_shape(self) -> list[int] | None:
        shape = self.cfg.data.get("input_shape")
        return [int(v) for v in shape] if shape is not None else None

    @property
    def class_names(self) -> list[str] | None:
        names = self.meta.get("class_names")
        return [str(n) for n in names] if isinstance(names, list) and names else None


def checkpoint_path(path: str) -> Path:
    """`ckpt=` as given: a .pt file, or a run directory (its checkpoints/best.pt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for best in (p / "checkpoints" / "best.pt", p / "best.pt"):
            if best.is_file():
                return best
        raise TrainkitError(f"run directory '{path}' has no checkpoints/best.pt; give the checkpoint file: ckpt=PATH.pt")
    return p


def load_model(
    ckpt: str, overrides: Sequence[str] = (), trust: bool = False, allow: Sequence[str] | None = None
) -> Loaded:
    """The model of checkpoint `ckpt` (a file or run directory) with its weights, in eval mode, on its device."""
    path = checkpoint_path(ckpt)
    stored, cfg = read_checkpoint(str(path), list(overrides), trust, list(allow or []))
    device = resolve_device(cfg)
    task = build_task(cfg)
    model = build_model(cfg)
    load_weights(model, stored["model"], path, cfg, "drop any model override")
    meta = stored.get("data_meta") if isinstance(stored.get("data_meta"), dict) else {}
    return Loaded(path, cfg, model.to(device).eval(), task, device, meta)


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """New samples: their ids (row number or file path) and a way to load any slice of them as a batch."""

    ids: list[str]
    id_column: str  # "id" or "path"
    load: Callable[[int, int], torch.Tensor]
    what: str  # for messages: "input.pt", "12 images"

    def __len__(self) -> int:
        return len(self.ids)


def read_inputs(specs: Sequence[str], loaded: Loaded) -> Inputs:
    """`input=` values: one tensor file (.pt/.npy), one CSV, or image files and folders (any number)."""
    if not specs:
        raise ConfigError("predict needs inputs: input=FILE.pt|FILE.npy|FILE.csv|IMAGE_DIR|IMAGE.png")
    paths = [Path(s).expanduser() for s in specs]
    for p in paths:
        if not p.exists():
            raise DataError(f"input={p} does not exist; give a tensor file, a CSV, an image or a folder of images")
    tables = [p for p in paths if p.is_file() and p.suffix.lower() in (".pt", ".npy", ".csv")]
    if tables and len(paths) > 1:
        raise ConfigError("give one tensor or CSV file per predict (several input= are for image files and folders)")
    if tables:
        p = tables[0]
        if p.suffix.lower() == ".csv":
            x, ids = table_features(p, loaded.cfg, loaded.meta)
        else:
            x = tensor_inputs(p, loaded.cfg)
            ids = [str(i) for i in range(len(x))]
        check_shape(x.shape[1:], loaded, str(p))
        return Inputs(ids, "id", lambda a, b: x[a:b], p.name)
    images = image_files(paths)
    return image_inputs(images, loaded)


def check_shape(sample: Sequence[int], loaded: Loaded, what: str) -> None:
    """One line naming the shape the model expects (the run's data.input_shape) when a sample has another."""
    expected = loaded.input_shape
    if expected is not None and list(sample) != expected:
        raise DataError(
            f"{what}: each sample has shape {list(sample)} but the model expects {expected} "
            f"(data.input_shape of the run, data={loaded.cfg.data.get('name')}); reshape the inputs to (N, {', '.join(map(str, expected))})"
        )


def tensor_inputs(path: Path, cfg: DictConfig) -> torch.Tensor:
    """A .pt file (a tensor, or a dict with 'x'; 'y' is ignored) loaded tensors-only, or a .npy array without pickles."""
    if path.suffix.lower() == ".npy":
        import numpy as np

        try:
            x = torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"input={path} is not a .npy array of numbers ({str(exc).splitlines()[0][:100]})") from None
    else:
        from trainkit.checkpoint import check_archive
        from trainkit.errors import CheckpointError

        try:
            kind = check_archive(path, "input")
        except CheckpointError as exc:
            raise DataError(f"input={path} is not a torch.save file of tensors (truncated or corrupt): {exc}") from None
        if kind != "zip":
            raise DataError(f"input={path} is not a torch.save file of tensors in torch's zip format; re-save it with torch.save")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the reason only: torch's message can quote the file's bytes
            raise DataError(f"input={path} is not a torch.save file of tensors ({type(exc).__name__})") from None
        x = blob.get("x") if isinstance(blob, dict) else blob
        if not torch.is_tensor(x):
            keys = list(blob) if isinstance(blob, dict) else type(blob).__name__
            raise DataError(f"input={path} must hold a tensor of inputs, or a dict with tensor 'x'; got {keys}")
    if x.dim() == 0 or x.is_complex():
        raise DataError(f"input={path} holds a {'scalar' if x.dim() == 0 else 'complex tensor'}; give (N, ...) real inputs")
    if not torch.is_floating_point(x) and "Embedding" not in str(cfg.model.get("_target_", "")):
        x = x.float()  # as training converts a tensor file's integer inputs (data.build._fit_inputs)
    return x.float() if torch.is_floating_point(x) else x


def table_features(path: Path, cfg: DictConfig, meta: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
    """A CSV's rows as the run's feature columns, encoded as the run encoded its table; the label column is ignored.

    A run that trained on a table keeps its fitted encoding (checkpoint "data_meta"["preprocessing"],
    `trainkit.data.tables`): the rows go through that same `transform`, by column name. Older runs
    (raw float features, no stored encoding) are read as their CSV source read them.
    """
    preprocessing = meta.get("preprocessing")
    if preprocessing:
        return _encoded_rows(path, cfg, preprocessing)
    source = str(cfg.data.get("dataset", {}).get("_target_", ""))
    if source != "trainkit.data.files.csv":
        raise DataError(
            f"input={path} is a CSV but the run trained on data={cfg.data.get('name')}, not a CSV table; give the "
            "inputs as the model sees them in a tensor file (input=FILE.pt with 'x')"
        )
    delimiter = str(cfg.data.get("delimiter", ","))
    label = str(cfg.data.get("label_column", "label"))
    header, rows = _read_table(path, delimiter)
    expected = _training_columns(cfg, delimiter, label)
    if expected is None:  # the training file is gone: the columns by count, in order, the label left out
        shape = cfg.data.get("input_shape")
        width = int(shape[0]) if shape else None
        expected = [h for h in header if h != label]
        if width is not None and len(expected) == width + 1 and "id" in expected:
            expected.remove("id")  # the rows' names, not a feature
        say(f"note: the run's training table (data.path={cfg.data.get('path')}) is not there to name its feature "
            f"columns, so {path}'s are taken in file order: {', '.join(expected[:12])}", style="yellow")
        if width is not None and len(expected) != width:
            raise DataError(
                f"input={path} has {len(expected)} feature columns but the model expects {width} "
                f"(the run's CSV without its label column '{label}')"
            )
    _check_columns(path, header, expected, label)
    at = [header.index(c) for c in expected]
    ids_at = header.index("id") if "id" in header and "id" not in expected else None
    features, ids = [], []
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {n} has {len(row)} fields but the header has {len(header)}")
        try:
            features.append([float(row[i]) for i in at])
        except ValueError:
            from trainkit.data.files import _is_number

            bad = next(expected[k] for k, i in enumerate(at) if not _is_number(row[i]))
            raise DataError(f"{path} line {n}, column {bad}: a feature is not a number") from None
        ids.append(row[ids_at].strip() if ids_at is not None else str(n - 2))
    if not features:
        raise DataError(f"input={path} has a header but no data rows")
    return torch.tensor(features, dtype=torch.float32), ids


def _check_columns(path: Path, header: list[str], expected: list[str], label: str, hint: str = "") -> None:
    """Every column the model reads is in the input's header, else one line naming the missing ones."""
    missing = [c for c in expected if c not in header]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise DataError(
            f"input={path} lacks the feature column{'s' if len(missing) > 1 else ''} {shown}; the model expects "
            f"the {len(expected)} columns {', '.join(expected[:12])}{' ...' if len(expected) > 12 else ''} "
            f"({hint}the label column '{label}' may be there or not)"
        )


def _encoded_rows(path: Path, cfg: DictConfig, preprocessing: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
    """The rows through the run's fitted table encoding: every column it used must be there (by name)."""
    from trainkit.data.tables import transform

    label = str(cfg.data.get("label_column", "label"))
    header, rows = _read_table(path, str(cfg.data.get("delimiter", ",")))
    expected = [str(c["name"]) for c in preprocessing["columns"]]
    _check_columns(path, header, expected, label, "empty cells may stay empty; ")
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {n} has {len(row)} fields but the header has {len(header)}")
    if not rows:
        raise DataError(f"input={path} has a header but no data rows")
    columns = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    ids = [c.strip() for c in columns["id"]] if "id" in columns and "id" not in expected else [str(i) for i in range(len(rows))]
    return transform(columns, preprocessing), ids


def _read_table(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv_module.reader(fh, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv_module.Error) as exc:
        raise DataError(f"input={path} cannot be read as a CSV table ({type(exc).__name__})") from None
    if not rows:
        raise DataError(f"input={path} is empty; give a header row and data rows")
    return [h.strip() for h in rows[0]], [r for r in rows[1:] if r]


def _training_columns(cfg: DictConfig, delimiter: str, label: str) -> list[str] | None:
    """The training CSV's feature columns (its header without the label), or None when the file is not there."""
    from trainkit.data.files import _label_index

    train_path = Path(str(cfg.data.get("path", ""))).expanduser()
    if not train_path.is_file():
        return None
    try:
        with train_path.open(newline="") as fh:
            header = [h.strip() for h in next(csv_module.reader(fh, delimiter=delimiter), [])]
    except (OSError, UnicodeDecodeError, csv_module.Error):
        return None
    if not header:
        return None
    col = _label_index(cfg.data.get("label_column", "label"), header, str(train_path))
    return [h for i, h in enumerate(header) if i != col]


def image_files(paths: Sequence[Path]) -> list[Path]:
    """Image files given directly, and those under folders (recursively, sorted)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
        else:
            raise DataError(
                f"input={p} is not a tensor file (.pt, .npy), a CSV (.csv), an image ({', '.join(IMAGE_SUFFIXES)}) or a folder"
            )
    if not found:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(map(str, paths))}")
    return found


def image_inputs(images: list[Path], loaded: Loaded) -> Inputs:
    """Images through the run's deterministic transforms (its eval transforms, random ones left out)."""
    from trainkit.data.build import _DETERMINISTIC_TRANSFORMS
    from trainkit.data.vision import compose_transforms

    d = loaded.cfg.data
    specs = d.get("dataset", {}).get("eval_transforms") or (d.get("transforms") or {}).get("eval")
    if not specs:
        raise DataError(
            f"the run trained on data={d.get('name')}, which has no image transforms, so images cannot be fed to "
            "its model; give the inputs as a tensor file (input=FILE.pt with 'x')"
        )
    specs = OmegaConf.to_container(specs, resolve=True) if OmegaConf.is_config(specs) else specs
    kept = [s for s in specs if str(s.get("_target_", "")).rsplit(".", 1)[-1] in _DETERMINISTIC_TRANSFORMS]
    transform = compose_transforms(kept)
    shape = loaded.input_shape
    mode = "L" if shape and shape[0] == 1 else "RGB"

    def load(a: int, b: int) -> torch.Tensor:
        from PIL import Image

        batch = []
        for path in images[a:b]:
            try:
                with Image.open(path) as im:
                    x = transform(im.convert(mode)) if transform is not None else im.convert(mode)
            except Exception as exc:
                why = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
                raise DataError(f"input image {path} cannot be read ({why})") from None
            if not torch.is_tensor(x):
                raise DataError(f"the run's eval transforms turn {path} into a {type(x).__name__}, not a tensor; they need ToTensor")
            check_shape(x.shape, loaded, str(path))
            batch.append(x)
        return torch.stack(batch)

    return Inputs([str(p) for p in images], "path", load, f"{len(images)} image{'s' if len(images) != 1 else ''}")


# --------------------------------------------------------------------------- outputs


@dataclass
class Answers:
    """The model's outputs turned into what predictions.csv shows."""

    kind: str  # classes, binary, multilabel, regression
    outputs: torch.Tensor  # raw model outputs (N, k)
    scores: torch.Tensor  # probabilities (N, classes or labels), or the values for regression
    prediction: torch.Tensor  # class index (N,), 0/1 label matrix (N, labels), or values (N, k)
    names: list[str]  # the classes or labels (column names of `scores`)


def task_kind(task: Any) -> str:
    name = type(task).__name__
    if name in CLASS_TASKS:
        return "classes"
    if name in ("Binary", "Multilabel", "Regression"):
        return name.lower()
    raise ConfigError(
        f"predict does not support task={getattr(task, 'name', name)} (its outputs are not classes or values); "
        f"it supports task={', task='.join(SUPPORTED)}; use trainkit eval to score such a model"
    )


def answers(kind: str, task: Any, out: torch.Tensor, class_names: list[str] | None) -> Answers:
    """Per-task probabilities and predictions: softmax/argmax, sigmoid at 0.5, per-label sigmoid, or the values."""
    out = out.float().reshape(len(out), -1)
    if kind == "classes":
        scores = torch.softmax(out, dim=1)
        names = class_names if class_names and len(class_names) == out.shape[1] else [str(i) for i in range(out.shape[1])]
        return Answers(kind, out, scores, scores.argmax(1), names)
    if kind == "binary":
        p = out[:, 0] if getattr(task, "output", "logit") == "probability" else torch.sigmoid(out[:, 0])
        names = class_names if class_names and len(class_names) == 2 else ["0", "1"]
        return Answers(kind, out, torch.stack([1 - p, p], dim=1), (p > 0.5).long(), names)
    if kind == "multilabel":
        scores = torch.sigmoid(out)
        return Answers(kind, out, scores, (out > 0).long(), [str(n) for n in task.labels])
    return Answers(kind, out, out, out, [f"prediction_{i}" for i in range(out.shape[1])] if out.shape[1] > 1 else ["prediction"])


def csv_text(ids: list[str], id_column: str, a: Answers, top_k: int | None) -> str:
    """predictions.csv: one row per input: its id or path, the prediction, then top-k and per-class probabilities."""
    buf = io.StringIO()
    w = csv_module.writer(buf, lineterminator="\n")
    header = [id_column]
    if a.kind == "regression":
        header += a.names
    else:
        header.append("prediction")
    k = min(top_k or 0, len(a.names)) if a.kind in ("classes", "binary") else 0
    for i in range(1, k + 1):
        header += [f"top{i}", f"top{i}_prob"]
    if a.kind != "regression":
        header += [f"prob_{n}" for n in a.names]
    w.writerow(header)
    top = torch.topk(a.scores, k, dim=1) if k else None
    for r, ident in enumerate(ids):
        row: list[Any] = [ident]
        if a.kind == "regression":
            row += [f"{float(v):.8g}" for v in a.prediction[r]]
        elif a.kind == "multilabel":
            row.append(";".join(n for n, on in zip(a.names, a.prediction[r].tolist(), strict=True) if on))
        else:
            row.append(a.names[int(a.prediction[r])])
        if top is not None:
            for v, i in zip(top.values[r].tolist(), top.indices[r].tolist(), strict=True):
                row += [a.names[i], f"{v:.6g}"]
        if a.kind != "regression":
            row += [f"{float(v):.6g}" for v in a.scores[r]]
        w.writerow(row)
    return buf.getvalue()


def output_path(output: str | None) -> Path:
    """output=FILE: .csv (the default predictions.csv), .pt or .npy; checked before any work is done."""
    path = Path(output or "predictions.csv").expanduser()
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"output={output} must end in .csv, .pt or .npy (predictions.csv by default)")
    if path.is_dir():
        raise ConfigError(f"output={output} is a directory; give a file name such as {path / 'predictions.csv'}")
    files.refuse_link(path)
    return path


def write_answers(path: Path, ids: list[str], id_column: str, a: Answers, top_k: int | None) -> None:
    """Atomically: a half-written predictions file is never left behind."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        files.atomic_write_text(path, csv_text(ids, id_column, a, top_k))
    elif suffix == ".pt":
        blob = {id_column + "s": ids, "prediction": a.prediction, "scores": a.scores, "outputs": a.outputs, "names": a.names}
        files.atomic_write(path, lambda f: torch.save(blob, f))
    else:
        import numpy as np

        files.atomic_write(path, lambda f: np.save(f, a.scores.numpy(), allow_pickle=False))


def run_model(loaded: Loaded, inputs: Inputs, batch_size: int) -> torch.Tensor:
    """The model's outputs for every input, `batch_size` at a time on the model's device, with a bar for big jobs."""
    n, outs = len(inputs), []
    batches = -(-n // batch_size)
    bar = CountProgress("predict", batches, enabled=batches >= PROGRESS_FROM)
    try:
        with torch.inference_mode():
            for a in range(0, n, batch_size):
                x = inputs.load(a, min(a + batch_size, n)).to(loaded.device)
                try:
                    out = loaded.model(x)
                except (RuntimeError, ValueError, IndexError) as exc:
                    raise DataError(
                        f"the model cannot take {inputs.what} (batch {list(x.shape)}): {str(exc).splitlines()[0][:160]}; "
                        f"it expects samples of shape {loaded.input_shape}"
                    ) from None
                outs.append(out.detach().float().cpu())
                bar.advance()
    finally:
        bar.close()
    return torch.cat(outs)


def predict_checkpoint(
    ckpt: str,
    inputs: Sequence[str],
    output: str | None = None,
    overrides: Sequence[str] = (),
    top_k: int | None = None,
    batch_size: int | None = None,
    trust: bool = False,
    allow: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Predict for `inputs` with checkpoint `ckpt` (a file or run directory) and write `output` (predictions.csv)."""
    path = output_path(output)
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k={top_k} must be a positive number of classes")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be at least 1")
    loaded = load_model(ckpt, overrides, trust, allow)
    kind = task_kind(loaded.task)
    data = read_inputs(inputs, loaded)
    if not len(data):
        raise DataError(f"{data.what} holds no samples")
    size = batch_size or int(loaded.cfg.data.get("eval_batch_size") or 256)
    result = answers(kind, loaded.task, run_model(loaded, data, size), loaded.class_names)
    write_answers(path, data.ids, data.id_column, result, top_k)
    console.print(f"predicted {len(data)} sample{'s' if len(data) != 1 else ''} ({data.what}) with {loaded.path} "
                  f"on {loaded.device}: wrote {path}", markup=False)
    return {"checkpoint": str(loaded.path.resolve()), "written": str(path), "rows": len(data), "task": kind,
            "names": result.names, "device": str(loaded.device)}
