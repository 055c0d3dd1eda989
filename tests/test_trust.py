"""A run made here with your own code is trusted again on eval and resume; a copy or an edit is not."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, train_in_process
from trainkit import trust
from trainkit.errors import ConfigError

NET = '''
import torch


class Net(torch.nn.Module):
    def __init__(self, in_shape, out_features, width=16):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU(),
                                        torch.nn.Linear(width, out_features))

    def forward(self, x):
        return self.body(x)
'''


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished 1-epoch digits run of a model of the user's own (tk_own_pkg.Net, from --config-dir), trained once."""
    tmp_path = tmp_path_factory.mktemp("own")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
        (tmp_path / "code" / "tk_own_pkg").mkdir(parents=True)
        (tmp_path / "code" / "tk_own_pkg" / "__init__.py").write_text(NET)
        mp.syspath_prepend(str(tmp_path / "code"))
        (tmp_path / "conf" / "model").mkdir(parents=True)
        (tmp_path / "conf" / "model" / "mine.yaml").write_text(
            "_target_: tk_own_pkg.Net\nin_shape: ${data.input_shape}\nout_features: ${task.out_features}\nwidth: 16\n")
        run_dir = tmp_path / "runs" / "mine"
        summary = train_in_process(["model=mine", *FAST[1:], "trainer.epochs=1"], run_dir, str(tmp_path / "conf"))
        assert summary["status"] == "completed"
        yield run_dir


def _eval(ckpt: Path) -> dict:
    from trainkit.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(str(ckpt), [], split="test")


def test_own_run_evaluates_and_resumes_without_allow(own_run: Path) -> None:
    from trainkit import owner
    from trainkit.resume import plan

    entries = list(trust.store_dir().glob("*.json"))
    assert len(entries) == 1 and "tk_own_pkg.Net" in entries[0].read_text()
    assert not any(p.name.endswith(".json") and "trust" in p.name for p in own_run.rglob("*"))  # nothing in the run dir
    result = _eval(own_run / "checkpoints" / "best.pt")
    assert result["test_acc"] > 0.3 and result["samples"] > 0
    resumed = plan(str(own_run), ["trainer.epochs=2"])
    owner.release(resumed.run_dir)
    assert resumed.cfg.model._target_ == "tk_own_pkg.Net" and resumed.cfg.trainer.epochs == 2


def test_a_copied_or_edited_checkpoint_or_another_user_stays_untrusted(
    own_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "elsewhere" / "mine"
    shutil.copytree(own_run, copy)  # every file of the run dir travels; the trust does not
    with pytest.raises(ConfigError, match=r"tk_own_pkg\.Net .*--allow tk_own_pkg\."):
        _eval(copy / "checkpoints" / "best.pt")
    # With --allow it is the user's say-so, as before.
    assert _eval_allowed(copy / "checkpoints" / "best.pt")["test_acc"] > 0.3

    best = own_run / "checkpoints" / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    ckpt["config"]["model"]["width"] = 17  # any edit of the config, in place
    edited = own_run / "checkpoints" / "edited.pt"  # (another name: the module's other tests read best.pt)
    torch.save(ckpt, edited)
    with pytest.raises(ConfigError, match="tk_own_pkg.Net"):
        _eval(edited)
    # A stranger's entry planted in the run directory, or a store of another user's: not trusted.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "other_user"))
    with pytest.raises(ConfigError, match="tk_own_pkg.Net"):
        _eval(best)


def _eval_allowed(ckpt: Path) -> dict:
    from trainkit.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(str(ckpt), [], split="test", allow=["tk_own_pkg."])


def test_an_entry_never_trusts_a_target_the_config_does_not_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cfg = {"model": {"_target_": "tk_own_pkg.Net"}, "optim": {"_target_": "torch.optim.SGD"}}
    assert trust.own_targets(cfg) == ["tk_own_pkg.Net"]
    assert trust.record(tmp_path / "run", cfg) is None
    assert trust.trusted_targets(tmp_path / "run", cfg) == ["tk_own_pkg.Net"]
    (entry,) = trust.store_dir().glob("*.json")
    entry.write_text(entry.read_text().replace('"tk_own_pkg.Net"', '"tk_own_pkg.Net", "os.system"'))
    assert trust.trusted_targets(tmp_path / "run", cfg) == ["tk_own_pkg.Net"]
    assert trust.trusted_targets(tmp_path / "run2", cfg) == []
    # Only trainkit's own targets: nothing recorded. An unwritable home: a warning line, the run goes on.
    assert trust.record(tmp_path / "plain", {"optim": {"_target_": "torch.optim.SGD"}}) is None
    assert len(list(trust.store_dir().glob("*.json"))) == 1
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file"))
    assert "will need --allow" in (trust.record(tmp_path / "run", cfg) or "")


def test_the_store_lives_under_xdg_state_home_or_the_home_directory(tmp_path: Path) -> None:
    assert trust.store_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "trainkit" / "trusted-runs"
    home = Path("~").expanduser()
    assert trust.store_dir({}) == home / ".local" / "state" / "trainkit" / "trusted-runs"
    assert trust.store_dir({"XDG_STATE_HOME": "relative/dir"}) == trust.store_dir({})
