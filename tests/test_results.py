"""Results users can trust: the task's own monitor, runs grouped over seeds, tables and plots that read well."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainkit import cli

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
