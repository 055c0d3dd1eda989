"""The structured-config schemas (trainkit/schema.py): composition types the keys trainkit reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from omegaconf.nodes import FloatNode, IntegerNode, StringNode

from trainkit.config import compose, config_dir, to_plain, validate
from trainkit.errors import ConfigError
from trainkit.schema import SCHEMAS


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=abc", "invalid config: trainer.epochs='abc' must be an integer >= 1"),
        ("trainer.early_stopping.patience=x", "trainer.early_stopping.patience='x' must be an integer >= 1"),
        ("trainer.early_stopping=3", "write trainer.early_stopping.patience=3"),
        ("device.index=1.5", "invalid config: device.index=1.5 must be an integer >= 0"),
        ("data.eval_batch_size=null", "invalid config: data.eval_batch_size=None must be an integer >= 1"),
        ("metrics.threshold=high", "metrics.threshold='high' must be a number between 0 and 1"),
        ("data.num_classes=ten", "invalid config: data.num_classes='ten' must be an integer"),
    ],
)
def test_a_wrong_type_is_one_line_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose([override]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_composed_groups_are_typed_and_keep_their_yaml_values_and_order() -> None:
    cfg = compose(["data=csv"])
    assert isinstance(cfg.trainer._get_node("epochs"), IntegerNode)
    assert isinstance(cfg.trainer.early_stopping._get_node("min_delta"), FloatNode)
    assert isinstance(cfg.data._get_node("batch_size"), IntegerNode)
    assert isinstance(cfg.device._get_node("type"), StringNode)
    assert isinstance(cfg.metrics._get_node("threshold"), FloatNode)
    for group, option in [("data", "csv"), ("trainer", "default"), ("device", "auto")]:
        written = yaml.safe_load((config_dir() / group / f"{option}.yaml").read_text())
        written.pop("defaults")
        assert list(cfg[group])[: len(written)] == list(written), group  # the option's own order
        plain = OmegaConf.to_container(cfg[group])  # unresolved: ${...} as written
        assert {k: v for k, v in plain.items() if k in written} == written, group  # the option's own values
    assert cfg.data.memory_budget_mb == 2048 and str(cfg.data.memory_budget_mb) == "2048"  # not 2048.0


def test_every_built_in_option_names_its_schema_and_sets_every_schema_key() -> None:
    for group in ("trainer", "device", "data"):
        keys = set(SCHEMAS[group].__annotations__)
        for path in sorted(Path(config_dir(), group).glob("*.yaml")):
            written = yaml.safe_load(path.read_text())
            assert written["defaults"] == ["_self_", f"/schema/{group}@_here_"], path
            assert keys <= set(written), (path, keys - set(written))
    validate(compose(["data=breast_cancer", "task=binary", "loss=bce_with_logits"]))


def test_a_deleted_typed_key_is_still_reported_missing() -> None:
    with pytest.raises(ConfigError, match=r"missing trainer.epochs \(deleted with ~\?\)"):
        validate(compose(["~trainer.epochs"]))


def test_a_stored_plain_config_still_loads_untyped() -> None:
    stored = to_plain(compose([]))
    stored["trainer"]["epochs"] = "anything"  # what an old checkpoint holds is plain data
    cfg = OmegaConf.create(stored)
    assert cfg.trainer.epochs == "anything"
