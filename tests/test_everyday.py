"""The everyday commands a user meets first: ls, show, check, plot, completion, help, the Python API,
their own code through --config-dir, and named experiments."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import FAST, REPO, InProcessCli, cli_env, load_summary, run_cli, run_dirs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def no_outputs(cwd: Path) -> bool:
    return not (cwd / "outputs").exists() and not (cwd / "multirun").exists()


# --------------------------------------------------------------------------- ls


def test_ls_lists_every_group_with_its_options_and_header_descriptions(tmp_path: Path) -> None:
    proc = run_cli(["ls"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for group in (
        "data",
        "model",
        "loss",
        "optim",
        "scheduler",
        "device",
        "task",
        "trainer",
        "logger",
        "experiment",
    ):
        assert f"\n{group}  " in "\n" + out, group
    # The description is the YAML's header comment; '*' marks the default.
    assert re.search(r"\* sgd +torch\.optim\.SGD: stochastic gradient descent", out)
    assert re.search(r" adam +torch\.optim\.Adam: adaptive moments", out)
    assert "mnist_cnn" in out and "@package" not in out

    one = run_cli(["ls", "optim"], tmp_path)
    assert one.returncode == 0
    assert one.stdout.splitlines()[0] == "optim  (default: sgd)"
    assert "model" not in one.stdout

    typo = run_cli(["ls", "optm"], tmp_path)
    assert typo.returncode == 2
    assert "unknown config group 'optm'; did you mean 'optim'?" in typo.stderr
    assert "Traceback" not in typo.stderr
    assert no_outputs(tmp_path)


def test_ls_and_show_answer_without_importing_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, time, io, contextlib
        from trainkit.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter(); assert main(["ls"]) == 0; ls_s = time.perf_counter() - t0
            assert main(["show", "model=cnn"]) == 0
            assert main(["--help"]) == 0
        print("torch" in sys.modules, round(ls_s, 3))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported, ls_s = proc.stdout.split()
    assert imported == "False"
    assert not any(line.rstrip().endswith("| torch") for line in proc.stderr.splitlines())
    # 0.5 s is the promise; the bound is loose because the test machine is shared and noisy.
    assert float(ls_s) < 2.0


def test_ls_shows_the_users_own_groups_from_config_dir(tmp_path: Path) -> None:
    mine = tmp_path / "my_configs"
    (mine / "model").mkdir(parents=True)
    (mine / "model" / "tiny.yaml").write_text("# My tiny net: one Linear layer.\n_target_: torch.nn.Linear\n")
    (mine / "augment").mkdir()
    (mine / "augment" / "flip.yaml").write_text("# Random horizontal flips.\np: 0.5\n")
    proc = run_cli(["ls", "--config-dir", str(mine)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"tiny +My tiny net: one Linear layer\.  \[your config\]", proc.stdout)
    assert "augment" in proc.stdout and "flip  Random horizontal flips." in proc.stdout
    assert "* mlp" in proc.stdout  # the built-in options are still there


def test_description_is_the_first_header_comment_line(tmp_path: Path) -> None:
    from trainkit.catalog import describe_file

    cases = {
        "# @package _global_\n# A recipe.\n# More words.\ndefaults: []\n": "A recipe.",
        "\n#   Spaced out.  \nlr: 1\n": "Spaced out.",
        "lr: 1  # not a header\n# too late\n": "",
        "": "",
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"{i}.yaml"
        path.write_text(text)
        assert describe_file(path) == expected, text


def test_every_built_in_option_has_a_description_for_ls() -> None:
    from trainkit.catalog import catalog

    missing = [f"{o.group}/{o.name}" for options in catalog().values() for o in options.values() if not o.description]
    assert not missing, f"add a one-line '# ...' header comment to: {missing}"
    dangling = [f"{o.group}/{o.name}" for options in catalog().values() for o in options.values()
                if o.description.rstrip().endswith(":")]
    assert not dangling, f"a description that ends with ':' reads cut off in 'trainkit ls': {dangling}"


# --------------------------------------------------------------------------- show


def test_show_prints_the_composed_config_as_a_tree_without_training(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    proc = cli_in_process(["show", "model=cnn", "optim=adam", "optim.lr=0.003"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "├── model  cnn" in out and "├── optim  adam" in out
    assert "_target_: torch.optim.Adam" in out and "lr: 0.003" in out
    assert "in_shape: [1, 8, 8]" in out  # interpolations are resolved
    assert no_outputs(tmp_path)


def test_show_yaml_is_what_hydra_cfg_job_prints(tmp_path: Path) -> None:
    args = ["model=cnn", "optim=adam", "trainer.epochs=3"]
    ours = run_cli(["show", *args, "--yaml"], tmp_path)
    hydras = run_cli(["train", *args, "--cfg", "job"], tmp_path)
    assert ours.returncode == 0 and hydras.returncode == 0, ours.stderr + hydras.stderr
    assert ours.stdout == hydras.stdout
    assert "epochs: 3" in ours.stdout
    assert no_outputs(tmp_path)


def test_show_reports_a_bad_value_like_a_run_would(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    proc = cli_in_process(["show", "optim.lr=-1"], tmp_path)
    assert proc.returncode == 2
    assert "optim.lr=-1 must be a positive number" in proc.stderr
    unknown = cli_in_process(["show", "optim.lrr=0.1"], tmp_path)
    assert unknown.returncode == 2 and "did you mean 'optim.lr'?" in unknown.stderr


def test_experiments_set_several_groups_at_once(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    proc = cli_in_process(["show", "experiment=mnist_cnn", "optim.lr=0.01", "--yaml"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(proc.stdout)
    assert cfg.data.name == "mnist"
    assert cfg.model._target_ == "trainkit.models.CNN"
    assert cfg.optim._target_ == "torch.optim.Adam" and cfg.optim.lr == 0.01  # the command line still wins
    assert cfg.scheduler._target_.endswith("CosineAnnealingLR")
    assert cfg.trainer.epochs == 5 and cfg.trainer.monitor == "val_acc"
    assert (REPO / "configs" / "experiment" / "cifar10_resnet18.yaml").is_file()


@pytest.mark.skipif(not (REPO / "configs" / "model" / "resnet18.yaml").is_file(), reason="model=resnet18 not in this tree")
def test_experiment_cifar10_resnet18_composes(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    proc = cli_in_process(["show", "experiment=cifar10_resnet18", "--yaml"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "name: cifar10" in proc.stdout and "nesterov: true" in proc.stdout


def test_hydra_searchpath_adds_user_groups_like_config_dir(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    mine = tmp_path / "cfgs" / "optim"
    mine.mkdir(parents=True)
    (mine / "slow_sgd.yaml").write_text("# SGD with a small lr.\n_target_: torch.optim.SGD\nlr: 0.001\n")
    proc = cli_in_process(["show", "optim=slow_sgd", f"hydra.searchpath=[file://{tmp_path / 'cfgs'}]", "--yaml"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.001" in proc.stdout


# --------------------------------------------------------------------------- check


def test_check_builds_everything_and_trains_one_batch_without_a_run_dir(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    proc = cli_in_process(["check", "model=cnn", "data.batch_size=32"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "inputs [32, 1, 8, 8] float32, targets [32] int64" in out
    assert "CNN: 53,002 parameters" in out
    assert "features.0           Conv2d         -> [32, 32, 8, 8]" in out
    assert "classifier.3         Linear         -> [32, 10]" in out
    assert "CrossEntropyLoss: [32, 10] float32 vs [32] int64 ->" in out
    assert "estimated epoch" in out and "KiB on cpu" in out
    assert "memory   batch 8.2 KiB, activations ~" in out  # 32 * (64 * 4 + 8) bytes
    assert "check passed" in out
    assert no_outputs(tmp_path)


def test_check_stops_with_the_same_error_the_run_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (torch loads once): the dry run and Run.setup fail with the same message."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from trainkit.check import dry_run
    from trainkit.config import compose
    from trainkit.errors import ConfigError
    from trainkit.run import Run

    bad = ["model.out_features=5", "device=cpu"]
    with pytest.raises(ConfigError) as from_check:
        dry_run(bad)
    with pytest.raises(ConfigError) as from_run:
        Run(compose(bad), tmp_path / "run").setup()
    assert "the model outputs 5 classes but the data has 10" in str(from_check.value)
    assert str(from_check.value) == str(from_run.value)
    assert no_outputs(tmp_path)

    # Where the run would die inside the model's forward, check names the module that broke.
    with pytest.raises(ConfigError, match=r"in module 'hidden\.0\.0' \(Linear\): mat1 and mat2 shapes cannot be multiplied"):
        dry_run(["model.in_shape=[32]", "device=cpu"])
    facts = dry_run(["device=cpu", "data.batch_size=16"])
    assert facts["input_shape"] == [16, 1, 8, 8] and facts["output_shape"] == [16, 10]
    assert facts["parameters"] == 9610 and facts["batch_bytes"] == 16 * 64 * 4 + 16 * 8


# --------------------------------------------------------------------------- plot


def read_png(path: Path):  # noqa: ANN201
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return matplotlib.image.imread(path)


def test_plot_writes_a_png_of_the_curves_into_the_run_dir(api_run: tuple[Path, dict], tmp_path: Path, cli_in_process: InProcessCli) -> None:
    run = tmp_path / "run"
    shutil.copytree(api_run[1]["summary"]["run_dir"], run)
    proc = cli_in_process(["plot", str(run)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    png = run / "curves.png"
    assert f"wrote {png}" in proc.stdout
    image = read_png(png)
    height, width = image.shape[:2]
    assert width > 2 * height > 300  # loss | acc | lr panels side by side
    assert image[..., :3].std() > 0.05  # not a blank canvas


def write_fake_run(run: Path, overrides: list[str], lr: float, acc: list[float]) -> None:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    lines = ["epoch,step,lr,train_loss,train_acc,val_loss,val_acc,train_time_s,train_samples_per_s,val_note"]
    for e, a in enumerate(acc, start=1):
        lines.append(f"{e},{e * 20},{lr},{1 - a},{a - 0.02},{1.1 - a},{a},0.1,9000.0,text")
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_plot_compares_the_jobs_of_a_sweep_in_one_figure(tmp_path: Path, cli_in_process: InProcessCli) -> None:
    sweep = tmp_path / "multirun" / "2026-01-01" / "12-00-00"
    write_fake_run(sweep / "0", ["optim=sgd", "trainer.epochs=3"], 0.1, [0.5, 0.8, 0.9])
    write_fake_run(sweep / "1", ["optim=adam", "trainer.epochs=3"], 0.001, [0.6, 0.85, 0.95])
    (sweep / "multirun.yaml").write_text("{}\n")
    proc = cli_in_process(["plot", str(sweep)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    image = read_png(sweep / "comparison.png")
    assert image.shape[1] > 2 * image.shape[0]
    assert not (sweep / "0" / "curves.png").exists()

    from trainkit.plot import _load, panels, plot, run_label

    assert panels(_load(sweep / "0")) == ["loss", "acc", "lr"]  # timing and text columns are no curves

    assert plot([str(sweep / "0"), str(sweep / "1")], str(tmp_path / "sgd_vs_adam.png")) == [tmp_path / "sgd_vs_adam.png"]
    read_png(tmp_path / "sgd_vs_adam.png")

    assert run_label(sweep / "1", {"trainer.epochs=3"}) == "optim=adam"

    from trainkit.errors import TrainkitError

    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainkitError, match="no metrics.csv in"):
        plot([str(tmp_path / "empty")])
    with pytest.raises(TrainkitError, match="is not a directory"):
        plot([str(tmp_path / "missing")])


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    run = tmp_path / "run"
    write_fake_run(run, [], 0.1, [0.5, 0.7])
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shim"), env["PYTHONPATH"]])
    proc = run_cli(["plot", str(run)], tmp_path, env=env)
    assert proc.returncode == 2
    assert "pip install 'trainkit[plot]'" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- completion, help, version


def complete(line: str, cwd: Path) -> list[str]:
    proc = run_cli(["-sc", "query=bash"], cwd, env=cli_env(COMP_LINE=line))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_shell_completion_works_after_the_subcommand_word(tmp_path: Path) -> None:
    assert complete("trainkit tr", tmp_path) == ["train"]
    assert complete("trainkit train model=", tmp_path) == _options("model")
    assert complete("trainkit show -m optim.l", tmp_path) == ["optim.lr="]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_script_completes_trainkit_train(tmp_path: Path) -> None:
    """Install Hydra's script as the README says and call its function as bash would on <TAB>."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "trainkit"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m trainkit "$@"\n')
    exe.chmod(0o755)
    script = textwrap.dedent(
        """
        eval "$(trainkit train -sc install=bash)"
        complete -p trainkit
        COMP_LINE="trainkit train optim="; COMP_POINT=${#COMP_LINE}; COMP_CWORD=2
        hydra_bash_completion; echo "REPLY: ${COMPREPLY[*]}"
        COMP_LINE="trainkit train data=di"; COMP_POINT=${#COMP_LINE}; COMP_CWORD=2
        hydra_bash_completion; echo "REPLY: ${COMPREPLY[*]}"
        """
    )
    env = cli_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    replies = [line for line in proc.stdout.splitlines() if line.startswith("REPLY:")]
    assert "-F hydra_bash_completion trainkit" in proc.stdout
    assert replies == ["REPLY: " + " ".join(_options("optim")), "REPLY: " + " ".join(_options("data", "di"))]


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from trainkit.cli import COMMANDS, main

    for cmd in COMMANDS:
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: trainkit {cmd}"), cmd
        assert "examples:" in out and f"trainkit {cmd}" in out.split("examples:")[1], cmd
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for cmd in COMMANDS:
        assert f"  {cmd} " in top


def test_version_and_help_as_subprocesses(tmp_path: Path) -> None:
    version = run_cli(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("trainkit 0.")
    helped = run_cli(["check", "--help"], tmp_path)
    assert helped.returncode == 0 and "trainkit check model=cnn" in helped.stdout
    bad = run_cli(["plto"], tmp_path)
    assert bad.returncode == 2 and "did you mean 'plot'?" in bad.stderr


# --------------------------------------------------------------------------- Python API


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`from trainkit import train, evaluate` in a fresh interpreter: a 2-epoch run, its eval, a bad call."""
    cwd = tmp_path_factory.mktemp("api")
    code = textwrap.dedent(
        f"""
        import json
        from trainkit import train, evaluate
        from trainkit.errors import TrainkitError
        summary = train(["model=mlp", "optim=sgd", {", ".join(repr(a) for a in FAST)}])
        metrics = evaluate(summary["run_dir"] + "/checkpoints/best.pt", ["split=val"])
        try:
            train(["optim.lr=-1"])
            error = None
        except TrainkitError as exc:
            error = str(exc)
        print("RESULT " + json.dumps({{"summary": summary, "metrics": metrics, "error": error}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, json.loads(proc.stdout.split("RESULT ", 1)[1])


def test_python_train_runs_what_the_cli_runs_and_returns_the_summary(api_run: tuple[Path, dict]) -> None:
    cwd, result = api_run
    (run_dir,) = run_dirs(cwd / "outputs")  # the CLI's own layout: outputs/DATE/TIME
    summary = result["summary"]
    assert Path(summary["run_dir"]).resolve() == run_dir.resolve()
    assert summary == load_summary(run_dir)
    assert summary["status"] == "completed" and summary["epochs"] == 2 and summary["test_acc"] > 0.6
    for name in ("metrics.csv", "cmd.txt", "model.txt", "checkpoints/best.pt", ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "cmd.txt").read_text().split() == ["trainkit", "train", "model=mlp", "optim=sgd", *FAST]
    assert result["metrics"]["split"] == "val" and 0.6 < result["metrics"]["val_acc"] <= 1
    assert result["error"] == "invalid config: optim.lr=-1 must be a positive number"


# --------------------------------------------------------------------------- a user's own project


def test_example_project_trains_its_own_model_and_data_in_one_command(tmp_path: Path) -> None:
    project = tmp_path / "spirals"
    shutil.copytree(REPO / "examples" / "spirals", project, ignore=shutil.ignore_patterns("outputs", "__pycache__"))
    readme = (project / "README.md").read_text()
    command = "PYTHONPATH=. trainkit train --config-dir configs experiment=spirals"
    assert command in readme
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([".", env["PYTHONPATH"]])
    proc = run_cli(["train", "--config-dir", "configs", "experiment=spirals", "trainer.progress=none"], project, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    (run_dir,) = run_dirs(project / "outputs")
    summary = load_summary(run_dir)
    assert summary["status"] == "completed" and summary["epochs"] == 30
    assert summary["test_acc"] > 0.9
    assert "SpiralNet" in (run_dir / "model.txt").read_text()


def _options(group: str, prefix: str = "") -> list[str]:
    """`group=option` for every built-in option (starting with prefix), as completion lists them."""
    return sorted(f"{group}={p.stem}" for p in (REPO / "configs" / group).glob("*.yaml") if p.stem.startswith(prefix))


# --------------------------------------------------------------------------- found by using it


def test_a_typo_inside_a_logger_list_names_the_option_like_a_single_one() -> None:
    from trainkit.config import compose
    from trainkit.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose(["logger=[csv,tensorbord]"])
    assert str(err.value).startswith("unknown option 'tensorbord' for config group 'logger' (did you mean 'tensorboard'?)")


def test_deleting_a_null_key_for_an_own_class_says_how_instead_of_suggesting_itself() -> None:
    # A user's loss does not take cross_entropy's `weight: null`; Hydra cannot `~` a null key.
    from trainkit.config import compose
    from trainkit.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose(["~loss.weight"])
    message = str(err.value)
    assert "did you mean" not in message
    assert "cannot delete 'loss.weight'" in message and "'~loss' '+loss._target_=...'" in message
    # ... and the way it names works:
    cfg = compose(["~loss", "+loss._target_=torch.nn.NLLLoss"])
    assert dict(cfg.loss) == {"_target_": "torch.nn.NLLLoss"}


def test_an_own_class_that_does_not_take_a_built_in_key_is_told_how_to_drop_it() -> None:
    from trainkit.build import instantiate_group
    from trainkit.config import compose
    from trainkit.errors import ConfigError

    cfg = compose(["model._target_=torch.nn.Flatten", "loss._target_=torch.nn.L1Loss"])
    with pytest.raises(ConfigError, match=r"5 keys are not arguments of Flatten: model.in_shape, .*\(to drop the keys: '~model.in_shape' "):
        instantiate_group("model", cfg.model)
    with pytest.raises(ConfigError, match=r"not arguments of L1Loss: loss.weight, loss.label_smoothing;.*'~loss' '\+loss._target_=...'"):
        instantiate_group("loss", cfg.loss)  # weight: null cannot be deleted with ~loss.weight
    readme = (REPO / "README.md").read_text()
    assert "model._target_=my_pkg.Net '~model.hidden' '~model.activation' '~model.dropout' +model.width=64" in readme


def test_check_refuses_a_monitor_the_run_would_only_miss_after_an_epoch() -> None:
    # The run used to train a whole epoch (or die with a KeyError under scheduler=plateau) first.
    import torch

    from trainkit.check import dry_run
    from trainkit.errors import ConfigError
    from trainkit.tasks import Regression, check_monitor

    expected = "trainer.monitor=val_accc is not a metric of this run; choose one of: train_loss, train_acc, val_loss, val_acc"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        dry_run(["trainer.monitor=val_accc", "scheduler=plateau", "data.batch_size=256"])
    sums = {"loss": torch.tensor(2.0), "abs_err": torch.tensor(1.0), "sq_err": torch.tensor(1.0)}
    with pytest.raises(ConfigError, match="choose one of: train_loss, train_mae, train_rmse, val_loss, val_mae, val_rmse"):
        check_monitor(Regression(), sums, 2, "val_acc")
    check_monitor(Regression(), sums, 2, "val_rmse")
    check_monitor(Regression(), sums, 2, "train_time_s")


def test_plot_of_a_run_that_failed_before_an_epoch_says_so(tmp_path: Path) -> None:
    from trainkit.errors import TrainkitError
    from trainkit.plot import plot

    run = tmp_path / "outputs" / "2026-12-01" / "05-38-01"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "failed", "error": "TrainingDiverged: the training loss became nan"}))
    with pytest.raises(TrainkitError) as err:
        plot([str(run)])
    message = str(err.value)
    assert "the run ended before its first epoch (status failed: TrainingDiverged" in message
    assert "is it a trainkit run" not in message


def test_a_group_given_null_or_a_number_is_told_it_takes_option_names() -> None:
    # `logger=null` used to read "every override needs a key, as key=value", which it has.
    from trainkit.config import compose
    from trainkit.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose(["logger=null"])
    assert str(err.value) == (
        "'logger=null': config group 'logger' takes an option name or a list of them, e.g. logger=csv (see 'trainkit ls logger')"
    )
    with pytest.raises(ConfigError, match=r"^'model=1': config group 'model' takes an option name"):
        compose(["model=1"])
