"""Generated overrides thrown at the config layer: each is refused as a one-line user error or accepted.

Never another exception (a traceback) and never a hang: compose + validate run in-process with a
bounded number of examples and a per-example deadline.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainkit.config import compose, expand_sweep, validate
from trainkit.errors import ConfigError, TrainkitError

KEYS = [
    "seed", "trainer.epochs", "trainer.accumulate", "trainer.grad_clip", "trainer.log_every_n_steps",
    "trainer.monitor", "trainer.monitor_mode", "trainer.progress", "trainer.on_nan", "trainer.compile",
    "data.batch_size", "data.eval_batch_size", "data.val_fraction", "data.num_workers", "data.loader",
    "data.drop_last", "data.pin_memory", "optim.lr", "optim.momentum", "optim.weight_decay",
    "device.type", "device.index", "device.precision", "scheduler.interval", "model.hidden",
    "trainer.epochz", "optim.lrr", "nokey", "data", "model", "optim", "device", "scheduler", "loss",
    "trainer", "hydra.run.dir", "a.b.c", "",
]
VALUES = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from([
        "nan", "inf", "-inf", "1e8", "-0.0", "0", "null", "true", "false", "auto", "cpu", "cuda", "tpu",
        "mps", "bf16", "16", "64", "min", "max", "stop", "skip_batch", "[1,", "[1,2]", "[", "]", "{a:1}",
        "{a:", "'x", '"', "${", "${nokey}", "${oc.env:HOME}", "a=b", "sgd", "adam", "cnn", "mlp", "digits",
        "none", "cosine", "1,2", "x y", "\\", "%", "???", "=", "range(0,1000000000)", "choice(1,2)",
        "interval(0,1)", "glob(*)",
    ]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12),
)
PREFIX = st.sampled_from(["", "", "", "+", "~", "++"])
OVERRIDE = st.one_of(
    st.builds(lambda p, k, v: f"{p}{k}={v}", PREFIX, st.sampled_from(KEYS), VALUES),
    st.builds(lambda p, k: f"{p}{k}", PREFIX, st.sampled_from(KEYS)),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)


@settings(max_examples=60, deadline=10000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OVERRIDE, min_size=1, max_size=3))
def test_generated_overrides_are_accepted_or_refused_in_one_line(overrides: list[str]) -> None:
    try:
        validate(compose(overrides))
    except TrainkitError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        assert "\n" not in message and len(message) < 600, message


@settings(max_examples=40, deadline=10000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OVERRIDE, min_size=1, max_size=3))
def test_generated_sweeps_are_accepted_or_refused_in_one_line(overrides: list[str]) -> None:
    try:
        for job in expand_sweep(overrides, limit=4):
            validate(compose(job))
    except TrainkitError as exc:
        assert str(exc).count("\n") <= 1, str(exc)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.epochs=-1", "trainer.epochs=-1 must be an integer >= 1"),
        ("data.batch_size=0", "data.batch_size=0 must be an integer >= 1"),
        ("optim.lr=fast", "optim.lr='fast' must be a positive number"),
        ("optim.lr=nan", "optim.lr=nan must be a positive number"),
        ("device.type=tpu", "device.type='tpu' must be one of: auto, cpu, cuda, mps"),
        ("device=tpu", "unknown option 'tpu' for config group 'device'"),
        ("trainer.epochz=3", "did you mean 'trainer.epochs'"),
        ("optim.lr=[0.1,", "cannot parse override"),
        ("trainer.on_nan=ignore", "trainer.on_nan='ignore' must be one of: stop, skip_batch"),
        ("~trainer.epochs", "missing trainer.epochs"),
        ("optim=sgd,adam", "add -m (--multirun)"),
    ],
)
def test_bad_override_is_refused_naming_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(compose([override]))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
