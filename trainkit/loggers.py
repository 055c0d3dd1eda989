"""Metric writers behind one small interface: CSV always (the run's record), others by `logger=`.

`logger=csv` (default), `logger=tensorboard`, `logger=mlflow`, or several: `logger=[csv,tensorboard]`.
Each option's YAML puts its settings under its own key (`logger.tensorboard.log_graph`), so several merge
and the run builds every entry of `cfg.logger`. A logger class is any `_target_` taking `run_dir=` and
offering some of the methods below; TensorBoard and MLflow are imported only when chosen.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainkit.files import atomic_write_text, open_append


class Logger:
    """A metrics sink. Only rank 0 creates loggers."""

    def log_hparams(self, params: dict[str, Any]) -> None:
        """The run's flattened config (`model.hidden=[128]`, `optim=sgd`), once at the start."""

    def log_graph(self, model: Any, example_input: Callable[[], Any]) -> None:
        """The model's graph; `example_input()` gives one input batch (only fetched if needed)."""

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """At each log interval (`trainer.log_every_n_steps`): values the loop has already read from the device."""

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One row per epoch (train, val, lr, timing)."""

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The run's final summary (test metrics, best epoch)."""

    def close(self) -> None:
        """Flush and release files."""


class CSVLogger(Logger):
    """`metrics.csv`: one row per epoch; a resumed run appends without duplicating epochs."""

    def __init__(self, run_dir: str | Path, filename: str = "metrics.csv", resume_epoch: int | None = None) -> None:
        self.path = Path(run_dir) / filename
        self.columns: list[str] | None = None
        if resume_epoch is not None and self.path.exists():
            self._truncate(resume_epoch)

    def _truncate(self, keep_through_epoch: int) -> None:
        """Drop rows past the checkpoint's epoch: a killed run may have logged an epoch it never saved."""
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            self.columns = list(reader.fieldnames or [])
            rows = [r for r in reader if int(r["epoch"]) <= keep_through_epoch]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def log_epoch(self, row: dict[str, Any]) -> None:
        new = self.columns is None and not self.path.exists()
        if self.columns is None:
            self.columns = list(row) if new else _header(self.path)
        with open_append(self.path, newline="") as f:  # never appended through a planted link
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """metrics.csv back as dicts of floats (ints for epoch/step)."""
    rows: list[dict[str, Any]] = []
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: (int(v) if k in ("epoch", "step") else float(v)) if v not in ("", None) else None for k, v in r.items()})
    return rows


# ---------------------------------------------------------------------------- optional loggers

#: `_target_` -> (the `logger=` option, the pip extra, modules it imports)
EXTRAS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "trainkit.loggers.TensorBoardLogger": ("tensorboard", "tensorboard", ("tensorboard",)),
    "trainkit.loggers.MLflowLogger": ("mlflow", "mlflow", ("mlflow",)),
}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(option: str, extra: str, module: str) -> str:
    """The one-line message for a logger whose optional package is not installed."""
    return (
        f"logger={option} needs the '{module}' package, which is not installed; "
        f"install it with: pip install 'trainkit[{extra}]' (or leave {option} out of logger=)"
    )


def logger_problems(cfg: Any) -> list[str]:
    """Loggers whose packages are missing, found before the run directory exists (no imports, no torch)."""
    from omegaconf import DictConfig

    node = cfg.get("logger") if isinstance(cfg, DictConfig) else None
    problems: list[str] = []
    if not isinstance(node, DictConfig):
        return problems
    for name in node:
        sub = node.get(name)
        target = sub.get("_target_") if isinstance(sub, DictConfig) else None
        if target is None:
            problems.append(f"logger.{name} has no _target_; pick loggers with logger=csv|tensorboard|mlflow or logger=[csv,tensorboard]")
            continue
        if target in EXTRAS:
            option, extra, modules = EXTRAS[target]
            problems += [missing_extra(option, extra, m) for m in modules if not _has_module(m)]
    return problems


#: URI schemes of MLflow stores on this machine; any other scheme (http, databricks, ...) sends data off it.
LOCAL_SCHEMES = ("", "file", "sqlite")


def _escapes(path: str) -> bool:
    """True for a path that leaves the directory it is relative to: absolute, ~, a drive, or with '..'."""
    import re

    text = path.replace("\\", "/")
    return text.startswith(("/", "~")) or bool(re.match(r"[A-Za-z]:/", text)) or ".." in text.split("/")


def set_by_user(key: str, keys: Sequence[str]) -> bool:
    """True when `key` (or a group above it) is one the user set on the command line."""
    return any(key == k or key.startswith(k + ".") for k in keys)


def stored_logger_problem(cfg: Any, allow_remote: bool = False, user: Sequence[str] = ()) -> str | None:
    """Why the logger settings of a config from a checkpoint may not be built as they are (None: they may).

    Stored values are data: a path a logger writes must stay inside the run directory, and a logger
    that sends the run's config and metrics to another machine (an MLflow tracking URI that is not a
    local file or SQLite store) needs the user's --allow-loggers. Keys the user set (`user`, e.g.
    `logger=csv` on the command line) are the user's own and are not checked.
    """
    from urllib.parse import urlsplit

    from omegaconf import DictConfig, OmegaConf

    node = cfg.get("logger") if isinstance(cfg, DictConfig) else None
    if not isinstance(node, DictConfig):
        return None
    plain = OmegaConf.to_container(node, resolve=True)
    for name, sub in plain.items():
        if not isinstance(sub, dict):
            continue
        for field, value in sub.items():
            key = f"logger.{name}.{field}"
            if not isinstance(value, str) or set_by_user(key, user):
                continue
            shown = value[:80]
            if field == "tracking_uri":
                parts = urlsplit(value)
                scheme = parts.scheme.lower() if len(parts.scheme) > 1 else ""  # c:/x is a drive, not a scheme
                if scheme not in LOCAL_SCHEMES or value.lower().startswith("databricks"):  # MLflow's bare "databricks"
                    if allow_remote:
                        continue
                    return (
                        f"{key}={shown} would send the run's config and metrics to another machine; "
                        "resume with --allow-loggers if you trust that store, or with logger=csv"
                    )
                value = parts.path.removeprefix("/") if scheme == "sqlite" else (parts.path if scheme else value)
            if _escapes(value):
                return (
                    f"{key}={shown} writes outside the run directory; "
                    f"resume with logger=csv (trainkit's own settings), or set {key}=... yourself"
                )
    return None


def build_loggers(cfg: Any, run_dir: Path, into: list[Logger]) -> list[Logger]:
    """Instantiate every entry of `cfg.logger` (appending to `into`, so a failure still closes the others).

    The run's own `metrics.csv` writer already exists, so a plain `csv` entry is not built twice.
    """
    from omegaconf import DictConfig

    from trainkit.errors import ConfigError
    from trainkit.instantiate import instantiate_group

    node = cfg.get("logger")
    if not isinstance(node, DictConfig):
        return into
    problems = logger_problems(cfg)
    if problems:
        raise ConfigError(problems[0])
    for name in node:
        sub = node[name]
        if sub.get("_target_") == "trainkit.loggers.CSVLogger" and sub.get("filename", "metrics.csv") == "metrics.csv":
            continue
        into.append(instantiate_group(f"logger.{name}", sub, run_dir=run_dir))
    return into


def flatten_config(cfg: Mapping[str, Any], choices: Mapping[str, str] | None = None) -> dict[str, str | int | float | bool]:
    """The config as `dotted.key: scalar` (lists as text) plus each group's chosen option: what hparams tables show."""
    out: dict[str, str | int | float | bool] = {}
    for group, option in (choices or {}).items():
        if "/" not in group and option is not None:
            out[group] = str(option)

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = str(value)

    walk("", {k: v for k, v in cfg.items() if k != "hydra"})
    return out


def _tag(key: str) -> str:
    """metrics.csv column -> TensorBoard tag: train_loss -> train/loss, so the UI groups splits."""
    for split in ("train_", "val_", "test_"):
        if key.startswith(split):
            return f"{split[:-1]}/{key[len(split):]}"
    return key


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k not in ("epoch", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _final_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The numbers a run is compared by: its test metrics and its best monitored value."""
    out = {k: float(v) for k, v in summary.items()
           if k.startswith("test_") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if isinstance(summary.get("best_value"), (int, float)):
        out[f"best_{summary.get('monitor', 'value')}"] = float(summary["best_value"])
    return out


class TensorBoardLogger(Logger):
    """torch.utils.tensorboard's SummaryWriter in the run directory: `tensorboard --logdir outputs`.

    Scalars per log interval (`train/loss_step`, `lr_step`, x = optimizer step) and per epoch (`train/loss`,
    `val/acc`, `lr`, x = epoch); at the end the hparams table (config + test metrics) and, when cheap,
    the model graph.
    """

    def __init__(self, run_dir: str | Path, log_graph: bool = True, graph_max_params: int = 10_000_000,
                 flush_secs: int = 30, subdir: str = "") -> None:
        from trainkit.errors import TrainkitError

        if not _has_module("tensorboard"):
            raise TrainkitError(missing_extra("tensorboard", "tensorboard", "tensorboard"))
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / subdir if subdir else Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=int(flush_secs))
        self.graph = bool(log_graph)
        self.graph_max_params = int(graph_max_params)
        self.params: dict[str, Any] = {}

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def log_graph(self, model: Any, example_input: Callable[[], Any]) -> None:
        """Trace one small batch in eval mode with the RNG restored after, so the run's numbers do not change."""
        if not self.graph:
            return
        import torch

        from trainkit.console import say

        n_params = sum(p.numel() for p in model.parameters())
        if n_params > self.graph_max_params:
            say(f"tensorboard: model graph skipped ({n_params:,} parameters > logger.tensorboard.graph_max_params)")
            return
        try:
            x = example_input()
            device = next(model.parameters()).device
            x = x[:2].to(device) if torch.is_tensor(x) else x
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.writer.add_graph(model, x)
        except Exception as exc:  # tracing is best effort: a model with data-dependent control flow cannot be traced
            say(f"tensorboard: model graph skipped ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(f"{_tag(key)}_step", value, global_step=step)

    def log_epoch(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        for key, value in _scalars(row).items():
            self.writer.add_scalar(_tag(key), value, global_step=epoch)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Test metrics as scalars and the hparams session (what the HPARAMS tab compares across a sweep)."""
        if summary.get("status") != "completed":
            return
        from torch.utils.tensorboard.summary import hparams

        final = {_tag(k): v for k, v in _final_metrics(summary).items()}
        step = int(summary.get("epochs") or 0)
        params = {k: v for k, v in self.params.items() if isinstance(v, (bool, int, float, str))}
        exp, ssi, sei = hparams(params, final)
        writer = self.writer._get_file_writer()
        for event in (exp, ssi, sei):
            writer.add_summary(event)
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger(Logger):
    """One MLflow run per trainkit run: params (flattened config), metrics per step and epoch, test results.

    The default store is MLflow's own local default, in the directory you launch from: `mlflow.db` (SQLite)
    for the runs and `mlruns/` for the artifacts, so a plain `mlflow ui` there shows every run with no server
    to start first. (MLflow 3 put the plain-folder `./mlruns` store in maintenance mode and refuses it unless
    MLFLOW_ALLOW_FILE_STORE=true; SQLite is the local store it supports.)
    """

    def __init__(self, run_dir: str | Path, experiment_name: str = "trainkit", tracking_uri: str | None = None,
                 run_name: str | None = None, log_artifacts: bool = True) -> None:
        from trainkit.errors import TrainkitError

        if not _has_module("mlflow"):
            raise TrainkitError(missing_extra("mlflow", "mlflow", "mlflow"))
        self.run_dir = Path(run_dir)
        self.log_artifacts = bool(log_artifacts)
        self.status = "FAILED"  # until a completed summary arrives
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        artifact_location = None
        if not uri:
            for module in ("sqlalchemy", "alembic"):
                if not _has_module(module):
                    raise TrainkitError(missing_extra("mlflow", "mlflow", module) + " (the local SQLite store needs it)")
            uri = f"sqlite:///{Path('mlflow.db').resolve().as_posix()}"
            artifact_location = Path("mlruns").resolve().as_uri()
        self.uri = uri
        import logging

        for name in ("mlflow", "alembic"):  # schema migrations log a page of INFO lines into train.log
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self._Metric, self._Param, self._RunTag = Metric, Param, RunTag
        try:
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment_name)
            if exp is None:
                try:
                    exp_id = self.client.create_experiment(experiment_name, artifact_location=artifact_location)
                except MlflowException:  # a parallel sweep job created it first
                    exp = self.client.get_experiment_by_name(experiment_name)
                    if exp is None:
                        raise
                    exp_id = exp.experiment_id
            else:
                exp_id = exp.experiment_id
            name = run_name or "/".join(self.run_dir.parts[-2:])
            run = self.client.create_run(exp_id, run_name=name, tags={"trainkit.run_dir": str(self.run_dir.resolve())})
        except MlflowException as exc:
            raise TrainkitError(
                f"logger=mlflow cannot use the tracking store {uri}: {str(exc).splitlines()[0]}; "
                "check logger.mlflow.tracking_uri (or $MLFLOW_TRACKING_URI)"
            ) from exc
        self.run_id = run.info.run_id
        self.experiment_id = exp_id

    def _metrics(self, values: Mapping[str, float], step: int) -> None:
        import time

        now = int(time.time() * 1000)
        metrics = [self._Metric(k, float(v), now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def log_hparams(self, params: dict[str, Any]) -> None:
        import re

        items = [self._Param(re.sub(r"[^\w\-. /]", "_", k)[:250], str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._metrics({f"{k}_step": v for k, v in metrics.items()}, step)

    def log_epoch(self, row: dict[str, Any]) -> None:
        self._metrics(_scalars(row), int(row["epoch"]))

    def log_summary(self, summary: dict[str, Any]) -> None:
        self._metrics(_final_metrics(summary), int(summary.get("epochs") or 0))
        tags = {k: str(summary[k]) for k in ("status", "best_epoch", "monitor", "stopped_early", "stop_epoch") if k in summary}
        self.client.log_batch(self.run_id, tags=[self._RunTag(f"trainkit.{k}", v) for k, v in tags.items()])
        self.status = "FINISHED" if summary.get("status") == "completed" else "FAILED"

    def close(self) -> None:
        """Copy the run's small files as artifacts and end the MLflow run (never masking the run's own error)."""
        from trainkit.console import say

        try:
            if self.log_artifacts:
                for name in ("summary.json", "test_report.json", "metrics.csv", ".hydra/config.yaml"):
                    path = self.run_dir / name
                    if path.is_file():
                        self.client.log_artifact(self.run_id, str(path))
            self.client.set_terminated(self.run_id, status=self.status)
        except Exception as exc:
            say(f"mlflow: could not finish run {self.run_id} in {self.uri}: {exc}", style="yellow")
