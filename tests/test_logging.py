"""Issue 7 (loggers and metrics): TensorBoard / MLflow / CSV loggers, the torchmetrics test report, early stopping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import FAST, cli_env, load_summary, run_cli, train_in_process
from torch import nn

from trainkit.config import compose, validate
from trainkit.early_stopping import EarlyStopping
from trainkit.errors import ConfigError
from trainkit.loggers import flatten_config
from trainkit.metrics import compute_report, summary_numbers
from trainkit.tasks import Classification

TIME_COLUMNS = {"train_time_s", "train_samples_per_s"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- end to end


def test_tensorboard_with_csv_early_stopping_and_test_report(trained_run: Path, tmp_path: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """One run exercises the TensorBoard event file, early stopping and test_report.json together."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    summary = train_in_process(["logger=[csv,tensorboard]", "trainer.epochs=4", "trainer.progress=plain",
                                "trainer.early_stopping.patience=1", "trainer.early_stopping.min_delta=100",
                                "trainer.log_every_n_steps=10"], run_dir)
    assert summary == load_summary(run_dir)

    out = capfd.readouterr().out
    # Early stopping: epoch 1 sets the best, epoch 2 cannot beat it by 100, patience 1 -> stop after epoch 2.
    assert "early stopping at epoch 2" in out
    assert summary["stopped_early"] is True and summary["stop_epoch"] == 2 and summary["epochs"] == 2
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
    rows = _rows(run_dir / "metrics.csv")
    # The loggers (graph tracing included) leave the run's numbers exactly as a plain csv run's.
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rs]  # noqa: E731
    assert strip(rows) == strip(_rows(trained_run / "metrics.csv"))
    assert load_summary(trained_run)["stopped_early"] is False

    # TensorBoard's own reader finds the scalars, the graph and the hparams session.
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "train/loss_step", "lr_step", "test/acc",
                "test/f1_macro"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in acc.Scalars("val/acc")] == [1, 2]
    assert [e.value for e in acc.Scalars("val/acc")] == pytest.approx([float(r["val_acc"]) for r in rows])
    assert [e.step for e in acc.Scalars("train/loss_step")] == [10, 20, 30, 40]  # 20 steps per epoch
    assert acc.Scalars("test/acc")[0].value == pytest.approx(summary["test_acc"])
    assert tags["graph"] is True
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")

    # test_report.json agrees with summary.json and with itself.
    report = json.loads((run_dir / "test_report.json").read_text())
    m = report["metrics"]
    assert report["task"] == "classification" and report["epoch"] == summary["best_epoch"]
    assert report["samples"] == summary["data"]["sizes"]["test"] == 359
    assert m["acc"] == summary["test_acc"] and m["loss"] == summary["test_loss"]
    for key in ("top5_acc", "f1_macro", "precision_macro", "recall_macro"):
        assert summary[f"test_{key}"] == pytest.approx(m[key])
    assert m["acc"] <= m["top5_acc"] <= 1.0
    cm = torch.tensor(report["confusion_matrix"])
    assert cm.shape == (10, 10) and int(cm.sum()) == 359
    assert cm.diagonal().sum().item() / 359 == pytest.approx(m["acc"])
    assert [c["support"] for c in report["per_class"]] == cm.sum(dim=1).tolist()
    assert [c["accuracy"] for c in report["per_class"]] == pytest.approx((cm.diagonal() / cm.sum(dim=1)).tolist())
    assert "test report (best epoch 2, 359 samples)" in out and "confusion matrix" in out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside mlflow's own SQLAlchemy store
def test_mlflow_run_lands_in_local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "outputs" / "2026-01-01" / "00-00-00"
    monkeypatch.chdir(tmp_path)  # MLflow's local default store is the working directory's
    summary = train_in_process(["logger=mlflow", *FAST, "metrics.enabled=false"], run_dir)
    assert summary == load_summary(run_dir) and summary["status"] == "completed"
    rows = _rows(run_dir / "metrics.csv")  # written whatever logger= says: resume and reports read it
    assert len(rows) == 2 and not (run_dir / "test_report.json").exists()

    db = tmp_path / "mlflow.db"  # MLflow's own local default, which `mlflow ui` opens
    assert db.is_file() and (tmp_path / "mlruns").is_dir()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("trainkit")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "/".join(run_dir.parts[-2:])
    assert run.data.tags["trainkit.run_dir"] == str(run_dir.resolve())
    assert run.data.params["optim.lr"] == "0.1" and run.data.params["model"] == "mlp"
    assert run.data.metrics["test_acc"] == pytest.approx(summary["test_acc"])
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(h.step, h.value) for h in history] == [(int(r["epoch"]), pytest.approx(float(r["val_loss"]))) for r in rows]
    assert len(client.get_metric_history(run.info.run_id, "train_loss_step")) == 0  # 40 steps < log interval 50
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "metrics.csv", "config.yaml"} <= artifacts


def test_missing_tensorboard_exits_2_with_install_hint(tmp_path: Path) -> None:
    # A finder that hides the tensorboard package, as if it were not installed.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorboard':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    env = cli_env()
    env["PYTHONPATH"] = f"{tmp_path / 'site'}:{env['PYTHONPATH']}"
    proc = run_cli(["train", "logger=[csv,tensorboard]"], tmp_path, env=env)
    assert proc.returncode == 2
    assert "logger=tensorboard needs the 'tensorboard' package" in proc.stderr
    assert "pip install 'trainkit[tensorboard]'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


# ---------------------------------------------------------------------------- config


def test_logger_options_merge_under_their_own_keys() -> None:
    cfg = compose(["logger=[csv,tensorboard,mlflow]"])
    assert set(cfg.logger) == {"csv", "tensorboard", "mlflow"}
    assert cfg.logger.mlflow.experiment_name == "trainkit" and cfg.logger.tensorboard.log_graph is True
    assert set(compose([]).logger) == {"csv"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.early_stopping.patience=0", "trainer.early_stopping.patience=0 must be an integer >= 1"),
        ("trainer.early_stopping.min_delta=-1", "trainer.early_stopping.min_delta=-1 must be a number >= 0"),
        ("metrics.top_k=[1,0]", "metrics.top_k=[1, 0] must be an integer >= 1"),
        ("metrics.average=mean", "metrics.average='mean' must be one of: macro, weighted, micro"),
        ("metrics.threshold=1.5", "metrics.threshold=1.5 must be a number between 0 and 1"),
        # the shorthand a user tries first: refused before the run, not a traceback in Run.__init__
        ("trainer.early_stopping=5", "trainer.early_stopping=5 must be a group of settings; write trainer.early_stopping.patience=5"),
    ],
)
def test_bad_metric_and_early_stopping_settings_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid config") as err:
        validate(compose([override]))
    assert message in str(err.value)


def test_missing_mlflow_is_named_in_the_config_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import trainkit.loggers as loggers

    monkeypatch.setattr(loggers, "_has_module", lambda name: name != "mlflow")
    with pytest.raises(ConfigError, match=r"logger=mlflow needs the 'mlflow' package.*pip install 'trainkit\[mlflow\]'"):
        validate(compose(["logger=mlflow"]))
    validate(compose(["logger=csv"]))  # the default never needs an extra


def test_flatten_config_gives_scalar_hparams() -> None:
    flat = flatten_config({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": 0, "x": None, "hydra": {"a": 1}},
                          {"optim": "adam", "hydra/launcher": "basic"})
    assert flat == {"optim": "adam", "optim.lr": 0.1, "optim.betas": "[0.9, 0.99]", "seed": 0, "x": "None"}


# ---------------------------------------------------------------------------- early stopping


def test_early_stopping_counts_epochs_without_improvement() -> None:
    es = EarlyStopping(patience=2, mode="min")
    assert [es.update(v) for v in (1.0, 0.9, 0.95, 0.9)] == [False, False, False, True]
    es = EarlyStopping(patience=1, min_delta=0.05, mode="max")
    assert [es.update(v) for v in (0.5, 0.6, 0.62)] == [False, False, True]  # 0.62 is not 0.05 above 0.6
    es = EarlyStopping(patience=1)
    assert [es.update(v) for v in (1.0, float("nan"))] == [False, True]
    replayed = EarlyStopping(patience=3)
    replayed.replay([1.0, 0.9, 0.95])
    assert (replayed.best, replayed.wait, replayed.seen) == (0.9, 1, 3)


# ---------------------------------------------------------------------------- test-time metrics


class Echo(nn.Module):
    """A 'model' whose output is its input, so a test chooses the predictions exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def _report(task: object, out: torch.Tensor, y: torch.Tensor, criterion: nn.Module | None = None, **settings: object) -> dict:
    batches = [(out[:3], y[:3]), (out[3:], y[3:])]  # two batches: the metrics accumulate across them
    return compute_report(Echo(), batches, task, criterion, torch.device("cpu"), cfg_metrics=settings,
                          task_metrics={"loss": 0.5})


def test_classification_report_matches_sklearn() -> None:
    from sklearn.metrics import confusion_matrix, f1_score

    y = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    logits = torch.tensor([[3, 1, 0], [0, 1, 2], [0, 0, 5], [1, 2, 0], [0, 4, 1], [2, 0, 1], [0, 1, 3]]).float()
    pred = logits.argmax(1)
    report = _report(Classification(out_features=3), logits, y, top_k=[2, 3])
    m = report["metrics"]
    assert m["loss"] == 0.5 and report["samples"] == 7
    assert m["acc"] == pytest.approx((pred == y).float().mean().item())
    assert m["top2_acc"] == pytest.approx(6 / 7)  # only sample 3 (true 2, scores 1,2,0) misses its top two
    assert "top3_acc" not in m  # k >= classes says nothing
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert report["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert [c["accuracy"] for c in report["per_class"]] == pytest.approx([1.0, 0.5, 2 / 3])
    assert summary_numbers(report)["test_f1_macro"] == pytest.approx(m["f1_macro"])


def test_regression_report_gives_mae_rmse_r2() -> None:
    from sklearn.metrics import r2_score

    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    out = torch.tensor([[1.5], [2.0], [2.0], [4.5], [5.0]])
    m = _report(Named("regression"), out, y)["metrics"]
    err = out.squeeze(1) - y
    assert m["mae"] == pytest.approx(err.abs().mean().item())
    assert m["rmse"] == pytest.approx(err.pow(2).mean().sqrt().item())
    assert m["r2"] == pytest.approx(r2_score(y, out.squeeze(1)), rel=1e-5)


def test_binary_report_reads_logits_or_probabilities_and_pm1_targets() -> None:
    from sklearn.metrics import roc_auc_score

    y01 = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    logits = torch.tensor([-2.0, 0.3, -0.1, 0.2, 3.0, -1.0])
    a = _report(Named("binary"), logits.unsqueeze(1), y01.unsqueeze(1), nn.BCEWithLogitsLoss())
    b = _report(Named("binary"), logits.sigmoid(), y01, nn.BCELoss())
    c = _report(Named("binary"), logits, y01 * 2 - 1, nn.SoftMarginLoss())  # -1/+1 targets
    for r in (a, b, c):
        assert r["metrics"]["acc"] == pytest.approx(4 / 6)
        assert r["metrics"]["auroc"] == pytest.approx(roc_auc_score(y01, logits))
        assert r["confusion_matrix"] == [[2, 1], [1, 2]]


def test_multilabel_report_exact_match_and_per_label() -> None:
    y = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    logits = torch.tensor([[2.0, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, 1]])
    r = _report(Named("multilabel"), logits, y.float(), nn.BCEWithLogitsLoss())
    assert r["metrics"]["exact_match"] == pytest.approx(3 / 4)
    assert [c["accuracy"] for c in r["per_class"]] == pytest.approx([1.0, 1.0, 0.75])
    index_form = torch.tensor([[0, 2, -1], [1, -1, -1], [0, 1, -1], [2, -1, -1]])  # MultiLabelMarginLoss targets
    r2 = _report(Named("multilabel"), logits, index_form, nn.MultiLabelMarginLoss())
    assert r2["metrics"]["exact_match"] == pytest.approx(3 / 4)


def test_a_task_can_derive_its_report_targets() -> None:
    class EvenOdd:  # multilabel targets made from class ids inside the task, as a task may do
        name = "multilabel"

        def report_batch(self, model: nn.Module, batch: tuple) -> tuple:
            y = batch[1]
            return model(batch[0]), torch.stack([y % 2 == 0, y > 4], dim=1).long()

    ids = torch.tensor([0, 7, 4, 9, 2, 5])
    logits = torch.stack([ids % 2 == 0, ids > 4], dim=1).float() * 4 - 2  # always right
    r = _report(EvenOdd(), logits, ids, nn.BCEWithLogitsLoss())
    assert r["metrics"]["exact_match"] == 1.0 and len(r["per_class"]) == 2


def test_tasks_without_a_metric_family_keep_their_own_metrics() -> None:
    r = _report(Named("triplets"), torch.zeros(6, 2), torch.zeros(6))
    assert r["metrics"] == {"loss": 0.5} and "no torchmetrics metrics for task=triplets" in r["note"]
    r = _report(Classification(), torch.zeros(6), torch.zeros(6, dtype=torch.long))
    assert r["metrics"] == {"loss": 0.5} and "skipped" in r["note"]


def test_a_report_without_a_metric_family_counts_the_test_samples() -> None:
    # It read "test report (best epoch 2, 0 samples)" for triplets, sequence and a user's own task.
    from trainkit.data.loaders import TensorLoader

    loader = TensorLoader((torch.zeros(7, 2), torch.zeros(7)), batch_size=3)
    r = compute_report(Echo(), loader, Named("triplets"), None, torch.device("cpu"), task_metrics={"loss": 0.5})
    assert r["samples"] == 7 and r["metrics"] == {"loss": 0.5}


def _torchmetrics_values(kind: str, width: int, s: dict, preds: list, targets: list) -> dict:
    """What torchmetrics (the report's engine before it was plain torch) gives for the same batches."""
    import torchmetrics.classification as tmc
    import torchmetrics.regression as tmr

    avg, thr = s["average"], s["threshold"]
    if kind == "multiclass":
        m = {"acc": tmc.MulticlassAccuracy(num_classes=width, average="micro"),
             **{f"top{k}_acc": tmc.MulticlassAccuracy(num_classes=width, top_k=k, average="micro") for k in s["top_k"]
                if 1 < k < width},
             f"f1_{avg}": tmc.MulticlassF1Score(num_classes=width, average=avg),
             f"precision_{avg}": tmc.MulticlassPrecision(num_classes=width, average=avg),
             f"recall_{avg}": tmc.MulticlassRecall(num_classes=width, average=avg),
             "_per_class": tmc.MulticlassAccuracy(num_classes=width, average=None),
             "_confusion": tmc.MulticlassConfusionMatrix(num_classes=width)}
    elif kind == "binary":
        m = {"acc": tmc.BinaryAccuracy(threshold=thr), "f1": tmc.BinaryF1Score(threshold=thr),
             "precision": tmc.BinaryPrecision(threshold=thr), "recall": tmc.BinaryRecall(threshold=thr),
             "auroc": tmc.BinaryAUROC(), "_confusion": tmc.BinaryConfusionMatrix(threshold=thr)}
    elif kind == "multilabel":
        m = {"exact_match": tmc.MultilabelExactMatch(num_labels=width, threshold=thr),
             "acc": tmc.MultilabelAccuracy(num_labels=width, threshold=thr, average="micro"),
             f"f1_{avg}": tmc.MultilabelF1Score(num_labels=width, threshold=thr, average=avg),
             "_per_class": tmc.MultilabelAccuracy(num_labels=width, threshold=thr, average=None),
             "_confusion": tmc.MultilabelConfusionMatrix(num_labels=width, threshold=thr)}
    else:
        m = {"mae": tmr.MeanAbsoluteError(), "mse": tmr.MeanSquaredError(),
             "rmse": tmr.MeanSquaredError(squared=False), "r2": tmr.R2Score()}
    for p, t in zip(preds, targets, strict=True):
        for metric in m.values():
            metric.update(p, t)
    return {k: v.compute() for k, v in m.items()}


@pytest.mark.parametrize("avg", ["macro", "weighted", "micro"])
@pytest.mark.parametrize("case", ["multiclass", "absent_class", "binary", "binary_scores", "binary_one_class",
                                  "multilabel", "regression", "regression_constant"])
def test_the_plain_torch_report_equals_torchmetrics_value_for_value(case: str, avg: str) -> None:
    from trainkit.metrics import DEFAULTS, Family

    g = torch.Generator().manual_seed(len(case) * 7 + len(avg))
    kind = case.split("_")[0].replace("absent", "multiclass")
    s = {**DEFAULTS, "average": avg, "top_k": [2, 5]}
    n, width = 53, {"multiclass": 7, "binary": 1, "multilabel": 4, "regression": 1}[kind]
    preds, targets = [], []
    for _ in range(3):  # three batches: the statistics accumulate across them
        if kind == "multiclass":
            p = torch.randn(n, width, generator=g)
            t = torch.randint(0, width, (n,), generator=g)
            if case == "absent_class":  # class 6 is neither a target nor a prediction; class 5 never predicted
                p[:, 5:] = -10.0
                t = t.clamp(max=5)
        elif kind == "binary":
            p = torch.rand(n, generator=g).round(decimals=1)  # ties in the scores
            p = p * 6 - 3 if case == "binary_scores" else p  # scores outside [0, 1]: read through a sigmoid
            t = torch.randint(0, 2, (n,), generator=g) * (0 if case == "binary_one_class" else 1)
        elif kind == "multilabel":
            p, t = torch.rand(n, width, generator=g), torch.randint(0, 2, (n, width), generator=g)
        else:
            t = torch.randn(n, generator=g) * (0 if case == "regression_constant" else 1) + 2
            p = t + 0.3 * torch.randn(n, generator=g)
        preds.append(p)
        targets.append(t)
    fam = Family(kind, width, s, torch.device("cpu"))
    for p, t in zip(preds, targets, strict=True):
        fam.update(p, t)
    ours = fam.compute()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns of a class with no samples
        theirs = _torchmetrics_values(kind, width, s, preds, targets)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key].reshape(theirs[key].shape).to(theirs[key].dtype), theirs[key]), key
