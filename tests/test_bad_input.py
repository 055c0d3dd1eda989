"""Bad input is refused in one line, exit 2, no traceback, and a rejected config leaves no run directory.

The proof of issue 12: >= 189 malformed overrides (tests/bad_input_cases.py) through the real CLI
entry point in-process (Hydra never starts for them), and the broken data files of
tests/bad_data_cases.py through real training runs. A few go through a real subprocess too.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import pytest
from bad_data_cases import make_cases
from bad_input_cases import BAD_OVERRIDES, ISSUE, LAUNCHERS
from conftest import FAST, cli_env, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_config import OVERRIDE

from trainkit import cli, preflight
from trainkit.config import compose, prepare_overrides


def _refuse(args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run `trainkit train ARGS` in-process; Hydra starting at all is a failure. Returns the error line."""

    def no_hydra(*a: object, **k: object) -> int:
        raise AssertionError(f"the pre-flight accepted {args}: Hydra would start a run")

    monkeypatch.setattr(cli, "run_hydra", no_hydra)
    monkeypatch.chdir(cwd)
    code = cli.main(["train", *args])
    out, err = capsys.readouterr()
    assert code == 2, (args, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainkit: error: "), (args, err)
    assert "Traceback" not in err and not list(cwd.iterdir()), (args, list(cwd.iterdir()))
    return lines[0]


def test_the_fuzz_holds_enough_cases() -> None:
    assert len(BAD_OVERRIDES) >= 189
    assert len({tuple(c) for c in BAD_OVERRIDES}) == len(BAD_OVERRIDES)


@pytest.mark.parametrize("args", ISSUE, ids=lambda a: " ".join(a)[:40])
def test_the_issues_cases_are_refused_before_a_run_dir(args, tmp_path, capsys, monkeypatch) -> None:
    _refuse(args, tmp_path, capsys, monkeypatch)


@pytest.mark.slow
def test_every_malformed_override_is_one_line_exit_2_and_no_run_dir(tmp_path, capsys, monkeypatch) -> None:
    for i, args in enumerate(BAD_OVERRIDES):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        _refuse(args, cwd, capsys, monkeypatch)


@pytest.mark.parametrize(
    "args, words",
    [
        (["seed=18446744073709551616"], "seed=18446744073709551616 must be an integer in [0, 2**63)"),
        (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size=0 must be an integer >= 1"),
        (["model.in_shape=[1,2]"], "does not fit the data's inputs [1, 8, 8]"),
        (["~data.memory_budget_mb"], "missing data.memory_budget_mb"),
        (["~task.out_features"], "model.out_features=${task.out_features} points to a key that does not exist"),
        (["--resolve"], "--resolve only applies to printing the config"),
        (["+trainer.fast_dev_runs=2"], "trainkit reads no key trainer.fast_dev_runs; did you mean 'fast_dev_run'?"),
        (["trainer.fast_dev_run=true"], "trainer.fast_dev_run=True must be an integer >= 1"),
        (["model.hidden=[-1]"], "model.hidden=[-1] must be an integer >= 1"),
        (["model.activation=foo"], "unknown activation 'foo'; choose one of: relu"),
        (["trainer.monitor=val_foo"], "trainer.monitor=val_foo is not a metric of task=classification"),
        (["optim=adam", "optim.betas=[0.9]"], "optim.betas=[0.9] must be two numbers in [0, 1)"),
        (["device.type=cuda"], "no CUDA GPU is visible"),
        (["-m", "optim.lr=glob(*)", "trainer.epochs=-1"], "'optim.lr=glob(*)': glob() picks options of a config group"),
        (["-m", "optim=glob(*)", "trainer.epochs=-1"], "trainer.epochs=-1 must be an integer >= 1"),
        (["hydra.mode=MULTIRUN", "optim.lr=0.1,-1"], "optim.lr=-1 must be a positive number"),
        (["data.root=données"], "'é' (U+00E9) may only appear inside quotes; write data.root='données'"),
        (["optim.lr='0.1"], "the value has an unmatched quote; quote the whole value: optim.lr='0.1'"),
        (["+data=csv"], "config group 'data' already has an option; choose another with data=csv"),
        (["hydra.run.dir=" + "x" * 300], "set hydra.run.dir=DIR to a shorter path"),
        (["data=csv", "data.path=" + "x" * 300], "give a shorter or correct path"),
        (["seed=${seed}"], "seed=${seed} refers to itself"),
        (["model.hidden=[64,,64]"], "cannot parse override 'model.hidden=[64,,64]'"),
        (["="], "an override needs a key before '='"),
        (["model.hidden=" + "[" * 600 + "1" + "]" * 600], "is nested too deeply for Hydra's override parser"),
        (["hydra.run.dir=${hydra.run.dir}"], "hydra.run.dir"),
        (["model=torchvision", "model.name=resnet5"], "model.name=resnet5 is not a torchvision model; close matches: resnet50"),
        (["model=torchvision", "model.name=squeezenet1_1"], "squeezenet1_1 cannot take 1x8x8 inputs"),
        (["model=torchvision", "model.name=squeezenet1_1"], "the smallest square input it takes is 17x17"),
        (["model=cnn", "model.pretrained=no_such_weights.pt"], "model.pretrained=no_such_weights.pt does not exist"),
        (["model=cnn", "model.freeze=[feat.*]"], "model.freeze pattern 'feat.*' matches no parameter (fnmatch on names); "
                                                 "this model's parameter names: features.0.weight"),
        (["model=cnn", "trainer.unfreeze_at_epoch=2"], "trainer.unfreeze_at_epoch=2 needs model.freeze patterns"),
        (["trainer.unfreeze_at_epoch=0"], "trainer.unfreeze_at_epoch=0 must be an integer >= 1"),
    ],
)
def test_unclear_one_liners_now_say_what_and_how(args, words, tmp_path, capsys, monkeypatch) -> None:
    assert words in _refuse(args, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("args", LAUNCHERS, ids=lambda a: a[1])
def test_a_missing_plugin_names_the_extra_to_install(args, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(preflight, "plugin_installed", lambda module: False)
    extra = "optuna" if "optuna" in args[1] else "joblib" if "joblib" in args[1] else "slurm"
    assert f"pip install 'trainkit[{extra}]'" in _refuse(args, tmp_path, capsys, monkeypatch)


def test_tilde_in_a_path_value_is_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert prepare_overrides(["data.root=~/datasets", "a=~x", "~seed", "b=~"]) == [
        f"data.root={tmp_path}/datasets", "a=~x", "~seed", f"b={tmp_path}"]
    monkeypatch.setenv("HOME", "/users/o'neil x")
    (ov,) = prepare_overrides(["data.root=~/d"])
    assert compose(["data=image_folder", ov]).data.root == "/users/o'neil x/d"


def test_the_space_probe_resolves_the_run_dir_as_hydra_will(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (ov,) = prepare_overrides(["hydra.run.dir=${trainkit.unique_dir:runs/${now:%Y}}"])  # docs/reproducibility.md
    where = preflight.output_dir([ov], None, False)
    assert where.startswith("runs/20") and not (tmp_path / "runs").exists()  # resolved, nothing claimed
    assert preflight.output_dir(["hydra.sweep.dir=sw/${now:%Y}", "hydra.run.dir=rr"], None, True).startswith("sw/20")
    assert preflight.output_dir([], None, False).startswith("outputs/20")
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(Exception, match="is a file, not a directory"):
        cli.preflight(["hydra.run.dir=blocker/${now:%H}"], None, False)
    assert preflight.run_mode(["hydra.mode=MULTIRUN"], False) and not preflight.run_mode(["hydra.mode=RUN"], True)


def test_good_added_keys_and_sweeps_still_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli.preflight(["+optim.foreach=true", "trainer.epochs=1"], None, False)  # TRAIN_HELP's own example
    cli.preflight(["optim=glob(ad*)", "trainer.epochs=1"], None, True)
    cli.preflight(["model.hidden=[32,16]", "trainer.monitor=val_acc", "scheduler=step", "scheduler.step_size=2"], None, False)
    assert not list(tmp_path.iterdir())


def test_report_csv_escapes_formula_cells() -> None:
    from trainkit.report import write_csv

    text = write_csv([{"job": "=1+1", "status": "+x", "overrides": "@SUM(A1)", "error": "-cmd", "test_acc": -0.5,
                       "run_dir": "-0.25"}])
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["job"] == "'=1+1" and row["status"] == "'+x" and row["overrides"] == "'@SUM(A1)" and row["error"] == "'-cmd"
    assert row["test_acc"] == "-0.5" and row["run_dir"] == "-0.25"  # numbers stay numbers


@pytest.mark.slow
def test_a_real_process_gets_one_line_and_no_run_dir(tmp_path: Path) -> None:
    for i, args in enumerate([["seed=18446744073709551616"], ["device.type=cuda"], ["-p", "model", "trainer.epochs=-1"],
                              ["-m", "optim.lr=glob(*)", "trainer.epochs=-1"], ["data.root=~/datasets", "data=image_folder"]]):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        proc = run_cli(["train", *args], cwd, timeout=120, env=cli_env(HOME=str(tmp_path / "userhome")))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and not list(cwd.iterdir()), (args, proc.stderr)
    assert f"data.root={tmp_path}/userhome/datasets does not exist" in proc.stderr  # ~ expanded, then checked


# --------------------------------------------------------------------------- broken data files


@pytest.fixture(scope="module")
def data_cases(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, list[str], str]]:
    return make_cases(tmp_path_factory.mktemp("bad_data"))


def _run_in_process(overrides: list[str], run_dir: Path) -> BaseException | None:
    """compose -> pre-flight -> the real Run (set-up, and training if it got that far)."""
    from trainkit.errors import TrainkitError
    from trainkit.run import train

    try:
        cfg = compose([*overrides, *FAST, "trainer.epochs=1", "metrics.enabled=false"])
        preflight.check_train([*overrides, *FAST], None, False)
        train(cfg, run_dir)
    except TrainkitError as exc:
        return exc
    return None


def test_the_data_proof_holds_enough_cases(data_cases) -> None:
    distinct = {name.rsplit("-", 1)[0] if name.startswith("img-") else name for name, _, _ in data_cases}
    assert len(distinct) >= 63 and len(data_cases) >= 63


@pytest.mark.slow
def test_every_broken_data_file_is_refused_in_one_line(data_cases, tmp_path: Path) -> None:
    wrong = []
    for i, (name, overrides, words) in enumerate(data_cases):
        err = _run_in_process(overrides, tmp_path / str(i))
        if err is None or err.exit_code != 2 or "\n" in str(err) or words not in str(err):
            wrong.append((name, str(err)))
    assert not wrong, wrong


def test_bad_images_are_named_and_skipped_on_request(tmp_path: Path) -> None:
    from bad_data_cases import _folder

    d = _folder(tmp_path / "imgs")
    (d / "cat" / "zero.png").write_bytes(b"")
    os.symlink(d / "gone.png", d / "dog" / "gone.png")
    base = ["data=image_folder", f"data.root={d}", "model=cnn", "data.loader=dataloader"]
    err = _run_in_process(base, tmp_path / "r1")
    assert err is not None and "bad image" in str(err) and "and 1 more" in str(err) and "data.skip_bad_files=true" in str(err)
    from trainkit.data import build_data
    from trainkit.run import torch

    data = build_data(compose([*base, "data.skip_bad_files=true"]), torch.device("cpu"))
    assert sum(data.sizes.values()) == 10 and "skipped 2 bad image files (data.skip_bad_files=true)" in data.info["loader_reason"]


def test_csv_label_column_must_exist_and_integer_tensors_become_float(tmp_path: Path) -> None:
    import torch

    from trainkit.data import build_data
    from trainkit.data.files import csv as read_csv

    p = tmp_path / "t.csv"
    p.write_text("a,b,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(20)))
    by_index = read_csv(str(p), label_column=0)  # column a is the label, b the one feature
    assert by_index.tensors[0][:3, 0].tolist() == [0.0, -1.0, -2.0] and by_index.tensors[1][:3].tolist() == [0, 1, 2]
    assert read_csv(str(p), label_column="2").tensors[1].tolist()[:3] == [0, 1, 0]
    for bad in (3, 4, 7, -1, -5):
        with pytest.raises(Exception, match="out of range: .* has 3 columns, so an index must be 0..2"):
            read_csv(str(p), label_column=bad)
    f = tmp_path / "ints.pt"
    torch.save({"x": torch.randint(0, 9, (30, 4)), "y": torch.arange(30) % 3}, f)
    data = build_data(compose(["data=tensor_file", f"data.path={f}"]), torch.device("cpu"))
    assert data.train.tensors[0].dtype == torch.float32 and "inputs converted from int64 to float32" in data.info["loader_reason"]


def test_a_slurm_sweep_is_not_refused_for_the_login_nodes_missing_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    monkeypatch.chdir(tmp_path)
    args = ["device=cuda", "optim.lr=0.1,0.2", "trainer.epochs=1"]
    with pytest.raises(Exception, match="no CUDA GPU is visible"):
        cli.preflight(args, None, True)
    with pytest.raises(Exception, match="this machine has no 'srun'"):  # not a SLURM login node: said at once
        cli.preflight(["hydra/launcher=submitit_slurm", *args], None, True)
    import shutil

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/srun" if name == "srun" else which(name, *a, **k))
    cli.preflight(["hydra/launcher=submitit_slurm", *args], None, True)  # the jobs run on the cluster's nodes


@settings(max_examples=40, deadline=20000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OVERRIDE, min_size=1, max_size=3), st.booleans())
def test_generated_overrides_pass_or_are_refused_by_the_whole_pre_flight(overrides: list[str], multirun: bool) -> None:
    # test_hostile_config's generator, through everything `trainkit train` runs before Hydra.
    from trainkit.errors import TrainkitError

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as cwd:
        os.chdir(cwd)
        try:
            cli.preflight(prepare_overrides(overrides), None, multirun)
        except TrainkitError as exc:
            assert "\n" not in str(exc) and exc.exit_code == 2, str(exc)
        finally:
            os.chdir(here)
        assert not os.listdir(cwd), overrides
