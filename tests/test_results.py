"""Results users can trust: the task's own monitor, runs grouped over seeds, tables and plots that read well."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

import pytest
from conftest import load_summary, run_cli, run_dirs

from trainkit import cli
from trainkit.grouping import pm

# ------------------------------------------------------------------------------ the task's monitor


@pytest.mark.parametrize(
    ("overrides", "monitor", "mode", "why"),
    [
        ([], "val_acc", "max", "the classification task's default"),
        (["task=binary", "loss=bce_with_logits"], "val_acc", "max", "the binary task's default"),
        (["task=multilabel", "loss=multilabel_soft_margin"], "val_acc", "max", "the multilabel task's default"),
        (["task=sequence", "loss=ctc"], "val_acc", "max", "the sequence task's default"),
        (["task=regression", "loss=mse"], "val_rmse", "min", "the regression task's default"),
        (["task=pairs", "loss=margin_ranking", "model=embedding_net"], "val_acc", "max", "the pairs task's default"),
        (["task=triplets", "loss=triplet_margin", "model=embedding_net"], "val_acc", "max", "the triplets task's default"),
        # An explicit monitor always wins, and keeps the mode it always had (min) unless the mode is given too.
        (["trainer.monitor=val_loss"], "val_loss", "min", "set by trainer.monitor"),
        (["task=regression", "trainer.monitor=val_loss"], "val_loss", "min", "set by trainer.monitor"),
        (["trainer.monitor=val_acc"], "val_acc", "max", "the classification task's default"),
        (["trainer.monitor=val_acc", "trainer.monitor_mode=min"], "val_acc", "min", "set by trainer.monitor_mode"),
        (["trainer.monitor=train_loss", "trainer.monitor_mode=max"], "train_loss", "max", "set by trainer.monitor"),
    ],
)
def test_each_task_names_its_own_monitor_and_an_explicit_one_wins(
    overrides: list[str], monitor: str, mode: str, why: str
) -> None:
    from trainkit.config import compose
    from trainkit.early_stopping import from_config
    from trainkit.monitor import describe

    cfg = compose([*overrides, "scheduler=plateau", "trainer.early_stopping.patience=2"])
    assert (cfg.trainer.monitor, cfg.trainer.monitor_mode) == (monitor, mode)
    assert describe(cfg) == f"{monitor} ({mode}, {why})"
    # Early stopping and ReduceLROnPlateau follow the same monitor's direction.
    assert from_config(cfg.trainer).mode == mode and cfg.scheduler.mode == mode


def test_a_task_config_without_a_monitor_keeps_val_loss(tmp_path: Path) -> None:
    from trainkit.config import compose
    from trainkit.monitor import describe

    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "mine.yaml").write_text("_target_: trainkit.tasks.Classification\nout_features: 10\n")
    cfg = compose(["task=mine"], user_config_dir=str(tmp_path))
    assert (cfg.trainer.monitor, cfg.trainer.monitor_mode) == ("val_loss", "min")
    assert describe(cfg, "mine") == "val_loss (min, trainkit's default; the mine task names none)"


def test_show_and_optuna_follow_the_tasks_monitor(capsys: pytest.CaptureFixture[str]) -> None:
    from trainkit.config import compose

    assert cli.main(["show", "task=regression"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "monitor: val_rmse (min, the regression task's default)"
    assert cli.main(["show", "trainer.monitor=val_loss"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "monitor: val_loss (min, set by trainer.monitor)"
    hc = compose(["hparams_search=optuna"], return_hydra_config=True)
    assert hc.hydra.sweeper.direction == "maximize"  # the study maximises val_acc, which the task returns


# ------------------------------------------------------------------------------ runs over seeds


def fake_run(d: Path, overrides: list[str], **summary: object) -> None:
    """A run directory as trainkit leaves it: .hydra/overrides.yaml and summary.json."""
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (d / "summary.json").write_text(json.dumps({"status": "completed", "monitor": "val_acc", "monitor_mode": "max",
                                                "epochs": 2, "best_epoch": 2, "wall_time_s": 1.0, **summary}))


def test_runs_that_differ_only_in_seed_are_grouped_with_mean_std_and_n(tmp_path: Path) -> None:
    from trainkit.report import collect, columns

    for i, (seed, lr, acc) in enumerate([(0, 0.1, 0.90), (1, 0.1, 0.94), (2, 0.1, 0.95), (0, 0.01, 0.80), (1, 0.01, 0.70)]):
        fake_run(tmp_path / str(i), [f"seed={seed}", f"optim.lr={lr}"], seed=seed, best_value=acc + 0.01, test_acc=acc)
    fake_run(tmp_path / "5", ["seed=2", "optim.lr=0.01"], seed=2, status="failed", best_value=None)  # not in the stats
    rows = collect(tmp_path)
    by_job = {r["job"]: r for r in rows}
    high = by_job["0"]
    assert (high["group"], high["group_n"], high["group_seeds"]) == ("optim.lr=0.1", 3, "0 1 2")
    assert high["mean_test_acc"] == pytest.approx(statistics.fmean([0.90, 0.94, 0.95]))
    assert high["std_test_acc"] == pytest.approx(statistics.stdev([0.90, 0.94, 0.95]))
    low = by_job["5"]
    assert (low["group"], low["group_n"], low["group_seeds"]) == ("optim.lr=0.01", 2, "0 1")
    assert low["mean_best_value"] == pytest.approx(0.76) and low["std_best_value"] == pytest.approx(statistics.stdev([0.81, 0.71]))
    cols = columns(rows)  # the existing columns first, in their order; the group ones after run_dir
    assert cols[: cols.index("run_dir") + 1] == [
        "job", "status", "overrides", "monitor", "best_value", "best_epoch", "epochs", "wall_time_s", "test_acc", "run_dir"]
    assert cols[cols.index("run_dir") + 1 :][:5] == ["group", "group_n", "group_seeds", "mean_best_value", "std_best_value"]


def test_runs_with_other_differences_are_not_grouped_and_keep_their_columns(tmp_path: Path) -> None:
    from trainkit.report import collect, columns, to_markdown

    fake_run(tmp_path / "0", ["optim.lr=0.1"], seed=0, best_value=0.9, test_acc=0.89)
    fake_run(tmp_path / "1", ["optim.lr=0.01"], seed=0, best_value=0.8, test_acc=0.79)
    rows = collect(tmp_path)
    assert "group" not in rows[0] and columns(rows)[-1] == "run_dir"
    assert "Over seeds" not in to_markdown(rows)


@pytest.mark.slow
def test_a_sweep_over_seeds_and_lr_groups_by_lr_in_every_format(tmp_path: Path) -> None:
    proc = run_cli(["train", "-m", "seed=0,1", "optim.lr=0.1,0.05", "trainer.epochs=1", "trainer.progress=none",
                    "metrics.enabled=false", "hydra.sweep.dir=sweep"], tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    sweep = tmp_path / "sweep"
    summaries = {}
    for job in run_dirs(sweep):
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        lr = "0.1" if "optim.lr=0.1\n" in overrides else "0.05"
        summaries.setdefault(lr, []).append(load_summary(job))
    expected = {}
    for lr, runs in summaries.items():
        accs = [s["test_acc"] for s in runs]
        assert len(accs) == 2 and accs[0] != accs[1]  # two seeds, two results
        expected[f"optim.lr={lr}"] = (statistics.fmean(accs), statistics.stdev(accs))

    with (sweep / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for r in rows:
        mean, std = expected[r["group"].split(" ")[0]]  # the group: optim.lr=X and the overrides all jobs share
        assert r["group_n"] == "2" and r["group_seeds"] == "0 1"
        assert float(r["mean_test_acc"]) == pytest.approx(mean) and float(r["std_test_acc"]) == pytest.approx(std)
    # The end-of-sweep table shows the groups too.
    assert "over seeds: mean ± std of 2 groups" in proc.stdout
    for label, (mean, std) in expected.items():
        assert re.search(rf"{re.escape(label)}\s.*{re.escape(pm(mean, std))}", proc.stdout), (label, proc.stdout)

    # The same numbers through `trainkit report`, as JSON and Markdown.
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["report", str(sweep), "--format", "json"]) == 0
    for r in json.loads(out.getvalue()):
        assert r["mean_test_acc"] == pytest.approx(expected[r["group"].split(" ")[0]][0])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["report", str(sweep), "--format", "md"]) == 0
    md = out.getvalue()
    for label, (mean, std) in expected.items():
        assert re.search(rf"^\| {re.escape(label)} .*\| 2/2 \| 0 1 \|.*{re.escape(pm(mean, std))}", md, re.M), md


# ------------------------------------------------------------------------------ tables in a real terminal

TESTS = {"test_loss": 0.3, "test_acc": 0.9, "test_top5_acc": 1.0, "test_f1_macro": 0.88, "test_precision_macro": 0.87,
         "test_recall_macro": 0.86}


def rendered(rows: list[dict], width: int) -> list[str]:
    from rich.console import Console

    from trainkit.report import print_table

    console = Console(width=width, record=True, force_terminal=True, highlight=False)
    print_table(rows, title="sweep: 4 jobs", console=console)
    return console.export_text().splitlines()


def cells_of(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]


@pytest.mark.parametrize("width", [80, 120])
def test_the_sweep_table_keeps_key_columns_whole_and_short_at_80_and_120_columns(tmp_path: Path, width: int) -> None:
    from trainkit.report import collect

    # 4 jobs, 6 test metrics, long overrides they all share and short ones of their own.
    shared = ["model=cnn", "data=fashion_mnist", "data.root=/data/someone/datasets/with/a/long/path", "trainer.epochs=30"]
    for i in range(4):
        fake_run(tmp_path / str(i), [f"optim.lr=0.{i + 1}", *shared], seed=0, best_value=0.9 + i / 100, **TESTS)
    lines = rendered(collect(tmp_path), width)
    assert all(len(line) <= width for line in lines)
    assert len(lines) <= 20  # was 172 lines at 160 columns
    assert lines[0] == "every run: " + " ".join(shared) or lines[0].startswith("every run: model=cnn")
    body = [cells_of(line) for line in lines if line.startswith("│")]
    assert [row[:3] for row in body] == [[str(i), "completed", f"optim.lr=0.{i + 1}"] for i in (3, 2, 1, 0)]
    assert all(f"{0.9 + i / 100:.4g}" in row for row, i in zip(body, (3, 2, 1, 0), strict=True))
    assert all("0.9" in row for row in body)  # test_acc is kept at any width
    if width == 80:
        left_out = " ".join(lines[next(i for i, line in enumerate(lines) if line.startswith("left out at 80 columns: ")):])
        assert "test_top5_acc" in left_out and "--format csv|json|md has every column" in left_out


@pytest.mark.parametrize("width", [80, 120])
def test_overrides_too_long_for_the_table_get_their_own_lines(tmp_path: Path, width: int) -> None:
    from trainkit.report import collect

    for i in range(4):
        fake_run(tmp_path / str(i), [f"data.root=/data/set_{i}/" + "very/long/" * 8, f"model.hidden=[{i * 64},16]"],
                 seed=0, best_value=0.9 - i / 100, **TESTS)
    lines = rendered(collect(tmp_path), width)
    assert all(len(line) <= width for line in lines)
    body = [cells_of(line) for line in lines if line.startswith("│")]
    assert [row[:2] for row in body] == [[str(i), "completed"] for i in range(4)]  # one line per job
    text = "\n".join(lines)
    for i in range(4):  # each job's overrides below the table, whole once the terminal's wrapping is undone
        start = text.index(f"{i}: data.root=/data/set_{i}/")
        assert f"model.hidden=[{i * 64},16]" in text[start:].replace("\n  ", "").replace("\n", " ")[:200]
    assert len(lines) <= 40


def test_a_pipe_gets_the_wide_table_with_every_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_run(tmp_path / "0", ["seed=0"], seed=0, best_value=0.9, **TESTS)
    fake_run(tmp_path / "1", ["seed=1"], seed=1, best_value=0.8, **TESTS)
    assert cli.main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "best val_acc" in out and "test_recall_macro" in out and "left out" not in out
    assert re.search(r"\(no other overrides\) +│ +2/2 │ 0 1 +│ +0\.85 ± 0\.071 │", out), out  # the seeds' group


# ------------------------------------------------------------------------------ plots of many runs


def write_curves(run: Path, overrides: list[str], acc: list[float], best: float | None = None) -> None:
    """A run with metrics.csv (and summary.json when `best` is given), as trainkit writes them."""
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    lines = ["epoch,step,lr,train_loss,train_acc,val_loss,val_acc"]
    lines += [f"{e},{e * 10},0.1,{1 - a},{a - 0.02},{1.1 - a},{a}" for e, a in enumerate(acc, start=1)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if best is not None:
        (run / "summary.json").write_text(json.dumps({"status": "completed", "monitor": "val_acc", "monitor_mode": "max",
                                                      "best_value": best}))


def test_a_20_run_comparison_draws_the_best_10_with_the_legend_outside(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from test_everyday import read_png

    from trainkit.plot import comparison_figure

    sweep = tmp_path / "sweep"
    for i in range(20):
        best = 0.5 + i / 50
        write_curves(sweep / str(i), [f"optim.lr=0.{i:02d}", "trainer.epochs=3"], [best - 0.1, best - 0.05, best], best)
    runs = sorted((sweep / str(i) for i in range(20)), key=str)
    fig, shown, left_out = comparison_figure(runs)
    assert shown == [sweep / str(i) for i in range(19, 9, -1)]  # the best 10 by val_acc (max), best first
    assert sorted(left_out) == sorted(sweep / str(i) for i in range(10))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer))  # outside every panel
    assert box.x0 >= max(ax.get_window_extent(renderer).x1 for ax in fig.axes)
    assert [t.get_text() for t in legend.get_texts()] == [f"optim.lr=0.{i:02d}" for i in range(19, 9, -1)]
    assert legend.get_title().get_text() == "best 10 of 20 by val_acc (max)"

    proc = run_cli(["plot", str(sweep)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "drew the best 10 runs by their monitor; left out 10:" in proc.stderr and f"{sweep / '0'} (--top 0 draws all)" in proc.stderr
    image = read_png(sweep / "comparison.png")
    height, width = image.shape[:2]
    assert 300 < height < 600 and width > 3 * height  # three panels and the legend beside them
    right = image[:, int(width * 0.9):, :3]
    assert right.min() < 0.5  # the legend's text is drawn right of the panels, inside the saved image

    proc = run_cli(["plot", str(sweep), "--top", "0", "--out", str(tmp_path / "all.png")], tmp_path)
    assert proc.returncode == 0 and "left out" not in proc.stderr
    assert run_cli(["plot", str(sweep), "--top", "x"], tmp_path).returncode == 2


def test_plot_over_a_glob_skips_a_run_that_failed_before_its_first_epoch(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    day = tmp_path / "outputs" / "2026-12-01"
    write_curves(day / "10-00-00", ["optim.lr=0.1"], [0.5, 0.7])
    write_curves(day / "10-05-00", ["optim.lr=0.2"], [0.6, 0.8])
    failed = day / "10-10-00"
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "error": "ConfigError: bad key"}))
    proc = run_cli(["plot", *(str(p) for p in sorted(day.iterdir()))], tmp_path)  # trainkit plot outputs/*/*
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (f"trainkit plot: skipped {failed}: no metrics.csv, the run ended before its first epoch "
                                   "(status failed: ConfigError: bad key)")
    assert (tmp_path / "comparison.png").is_file() and "wrote comparison.png" in proc.stdout
    # Alone it is still an error (exit 2), and so is a list with nothing to plot.
    proc = run_cli(["plot", str(failed)], tmp_path)
    assert proc.returncode == 2 and "the run ended before its first epoch" in proc.stderr
    (day / "empty").mkdir()
    proc = run_cli(["plot", str(failed), str(day / "empty")], tmp_path)
    assert proc.returncode == 2 and "nothing to plot:" in proc.stderr and "(and 1 more)" in proc.stderr


# ------------------------------------------------------------------------------ the accuracy benchmark


def _accuracy_benchmark():  # type: ignore[no-untyped-def]
    import importlib
    import sys

    bench = str(Path(__file__).resolve().parent.parent / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("accuracy")


def test_the_accuracy_benchmarks_image_set_is_large_deterministic_and_split_by_source_digit() -> None:
    import torch

    accuracy = _accuracy_benchmark()
    a, b = accuracy.load("shifted_digits"), accuracy.load("shifted_digits")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(len(a[k]) for k in ("x", "x_val", "x_test")) == 4 * 1797 >= 5000
    assert a["x"].shape[1:] == (1, 16, 16) and set(a["y_test"].tolist()) == set(range(10))
    x, _, source = accuracy.shifted_digits()
    train, val, test = accuracy.split_indices(1797, 0.1, 0.2, accuracy.SPLIT_SEED)
    assert not set(train.tolist()) & set(test.tolist()) and len(a["x_test"]) == 4 * len(test)


@pytest.mark.slow
def test_the_accuracy_benchmark_prints_both_sides(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import REPO, cli_env

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--only", "diabetes", "--seeds", "2",
                           "--epochs", "10"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("| diabetes")]
    cells = [c.strip().rstrip(" !") for c in row.strip("|").split("|")]
    means = [float(c.split(" ± ")[0]) for c in cells[3:]]
    assert len(means) == 5 and all(0.3 < m < 1.2 for m in means)  # RMSE in target standard deviations
    assert abs(means[0] - means[1]) < 0.1  # hand loop and trainkit, last epoch


def test_runs_of_several_tasks_show_each_runs_monitor(tmp_path: Path) -> None:
    fake_run(tmp_path / "0", ["task=regression", "seed=0"], seed=0, best_value=0.7, monitor="val_rmse", monitor_mode="min")
    fake_run(tmp_path / "1", ["task=regression", "seed=1"], seed=1, best_value=0.8, monitor="val_rmse", monitor_mode="min")
    fake_run(tmp_path / "2", ["seed=0"], seed=0, best_value=0.9, test_acc=0.9)
    from trainkit.report import collect

    lines = rendered(collect(tmp_path), 120)
    header = " ".join(lines[:8])
    assert "best value" in header and "monitor" in header and "best val_acc" not in header
    body = [cells_of(line) for line in lines if line.startswith("│")]
    assert ["0", "completed", "task=regression seed=0", "val_rmse", "0.7"] in [row[:5] for row in body]
    assert ["2", "completed", "seed=0", "val_acc", "0.9"] in [row[:5] for row in body]


# ------------------------------------------------------------------------------ best and last, both tested


@pytest.mark.slow
def test_best_and_last_are_both_tested_and_equal_what_eval_gives(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from conftest import train_in_process

    from trainkit.evaluate import evaluate_checkpoint

    # Monitoring train_loss for its maximum makes epoch 1 the best of 2, so best.pt and last.pt differ.
    run = tmp_path / "run"
    summary = train_in_process(["trainer.epochs=2", "trainer.progress=none", "trainer.monitor=train_loss",
                                "trainer.monitor_mode=max"], run)
    out = capfd.readouterr().out
    assert summary["best_epoch"] == 1 and summary["epochs"] == 2
    report = json.loads((run / "test_report.json").read_text())
    assert (report["checkpoint"], report["epoch"]) == ("checkpoints/best.pt", 1)  # the contract keeps its keys
    last = report["last"]
    assert (last["checkpoint"], last["epoch"], last["same_as_best"]) == ("checkpoints/last.pt", 2, False)
    assert sum(map(sum, last["confusion_matrix"])) == last["samples"] == 359
    assert set(last["metrics"]) == set(report["metrics"]) >= {"loss", "acc", "f1_macro", "top5_acc"}
    for name, prefix in (("best.pt", "test_"), ("last.pt", "last_test_")):
        ev = evaluate_checkpoint(str(run / "checkpoints" / name), ["trainer.progress=none"])
        assert summary[f"{prefix}loss"] == ev["test_loss"] and summary[f"{prefix}acc"] == ev["test_acc"]
    assert last["metrics"]["acc"] == summary["last_test_acc"] != summary["test_acc"]
    assert report["metrics"]["f1_macro"] == summary["test_f1_macro"]
    assert last["metrics"]["f1_macro"] == summary["last_test_f1_macro"]
    # The final block: one row per metric, best's column beside last's.
    block = out[out.index("test   "):].splitlines()
    assert block[0].split() == ["test", "best", "(epoch", "1)", "last", "(epoch", "2)"]
    assert block[2].split() == ["acc", f"{summary['test_acc']:.4f}", f"{summary['last_test_acc']:.4f}"]
    assert "tested once" not in out


def test_a_best_that_is_the_last_epoch_is_tested_once(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import train_in_process

    from trainkit import final_test

    calls: list[str] = []
    real = final_test._test
    monkeypatch.setattr(final_test, "_test", lambda run, name, epoch: calls.append(name) or real(run, name, epoch))
    summary = train_in_process(["trainer.epochs=1", "trainer.progress=none"], tmp_path / "run")
    assert calls == ["best.pt"]
    assert "the best epoch is the last one (1): one checkpoint, tested once" in capfd.readouterr().out
    assert {k: v for k, v in summary.items() if k.startswith("last_test_")} == {
        f"last_{k}": v for k, v in summary.items() if k.startswith("test_")}
    last = json.loads((tmp_path / "run" / "test_report.json").read_text())["last"]
    assert (last["checkpoint"], last["epoch"], last["same_as_best"]) == ("checkpoints/last.pt", 1, True)


def test_a_tie_on_the_monitor_goes_to_the_lower_val_loss_and_survives_a_resume() -> None:
    from trainkit.state import LoopState

    s = LoopState()
    assert s.improves(0.9, "max", "val_acc", 0.5)
    s.best_value, s.best_epoch, s.best_val_loss = 0.9, 1, 0.5
    assert not s.improves(0.9, "max", "val_acc", 0.6)  # a tie with a higher loss: the earlier epoch stays
    assert s.improves(0.9, "max", "val_acc", 0.4)  # a tie with a lower loss: the later epoch is best
    assert s.improves(0.95, "max", "val_acc", 9.0) and not s.improves(0.85, "max", "val_acc", 0.0)
    by_loss = LoopState(best_value=0.5, best_epoch=1, best_val_loss=0.5)
    assert not by_loss.improves(0.5, "min", "val_loss", 0.5)  # val_loss itself: a tie is no improvement
    again = LoopState()
    again.load_state_dict(s.state_dict())  # the best epoch's val_loss travels with the checkpoint
    assert again.best_val_loss == 0.5 and again.improves(0.9, "max", "val_acc", 0.4)
    old = {k: v for k, v in s.state_dict().items() if k != "best_val_loss"}  # a checkpoint from before
    again.load_state_dict(old)
    assert again.best_val_loss is None and not again.improves(0.9, "max", "val_acc", 0.0)
