"""A corpus of hostile checkpoints and stored configs: none of them may act.

Every case is a file a stranger could hand you. Each goes through the Python API (`evaluate`) and
the resume planner (what `trainkit train resume=` runs before training) in-process, and a few go
through the real CLI (`trainkit eval ckpt=`, `trainkit train resume=`) as subprocesses. Proof of
"nothing ran", after every case:

- MARKER never appears: payloads that would run a command `touch MARKER`;
- the modules `tk_marker_pkg` and `torch_evil`, on a temporary sys.path / PYTHONPATH, write
  MARKER when imported and are never in sys.modules;
- the victim file keeps its bytes, its secret line never appears in a message;
- a 127.0.0.1 HTTP server the test starts receives no request;
- the refusal is a TrainkitError (exit 2 on the CLI) in one line, naming the key.

Planted symlinks in the run directory are covered with the run-directory lock's tests.
"""

from __future__ import annotations

import http.server
import pickle
import struct
import sys
import threading
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import cli_env, run_cli

from trainkit import checkpoint as ckpt_io
from trainkit import owner
from trainkit.api import evaluate
from trainkit.errors import TrainkitError
from trainkit.resume import plan
from trainkit.security import MAX_DEPTH, config_targets, stored_config

SECRET = "SECRET-LINE-7f3a"
MODULES = ("tk_marker_pkg", "torch_evil")


# --------------------------------------------------------------------------- the world a case runs in


@dataclass
class World:
    root: Path
    marker: Path
    victim: Path
    server: Any
    hits: list[str]
    base: dict[str, Any]
    weights: dict[str, Any]

    def victim_bytes(self) -> bytes:
        return (SECRET + "\nsecond line\n").encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def _any(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    do_GET = do_POST = do_PUT = _any

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from trainkit.build import build_model
    from trainkit.config import compose, to_plain

    root = tmp_path_factory.mktemp("hostile")
    marker = root / "MARKER"
    pkg = root / "pythonpath"
    (pkg / "tk_marker_pkg").mkdir(parents=True)
    payload = f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
    (pkg / "tk_marker_pkg" / "__init__.py").write_text(payload + "class Net:\n    pass\n")
    (pkg / "tk_marker_pkg" / "sub.py").write_text(payload + "class Net:\n    pass\n")
    (pkg / "torch_evil.py").write_text(payload + "def x(**kw):\n    return None\n")
    sys.path.insert(0, str(pkg))
    victim = root / "victim.txt"
    cfg = compose(["trainer.progress=plain", "device=cpu", "trainer.epochs=3"])
    base = to_plain(cfg)
    weights = build_model(cfg).state_dict()
    handler = type("Handler", (_Handler,), {"hits": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    w = World(root, marker, victim, server, handler.hits, base, weights)
    victim.write_bytes(w.victim_bytes())
    yield w
    server.shutdown()
    sys.path.remove(str(pkg))


def _url(w: World) -> str:
    return f"http://127.0.0.1:{w.server.server_address[1]}"


def assert_nothing_ran(w: World) -> None:
    assert not w.marker.exists(), "a payload ran or a stranger's module was imported"
    assert not any(m in sys.modules for m in MODULES), "a stranger's module was imported"
    assert w.victim.read_bytes() == w.victim_bytes(), "the victim file changed"
    assert w.hits == [], f"a request reached the local server: {w.hits}"


def one_line(message: str, w: World) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message
    assert SECRET not in message, "a message quoted the victim file"


# --------------------------------------------------------------------------- building hostile files


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def save_run(w: World, name: str, config: Any, extra: dict[str, Any] | None = None) -> Path:
    """A run directory holding checkpoints/last.pt (and best.pt) with `config` as its stored config."""
    run = w.root / "runs" / name
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    ckpt = {"model": w.weights, "config": config, "epoch": 1, "step": 10, **(extra or {})}
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    torch.save(ckpt, run / "checkpoints" / "best.pt")
    return run


def _zip(entries: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from (name, payload, method, crc, uncompressed size) records, written by hand (raw deflate allowed)."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size in entries:
        offset = len(out)
        raw = name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(raw), 0) + raw + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(data), size,
                               len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return bytes(out + central + end)


def bomb(w: World, name: str, gib: int = 2) -> Path:
    """A valid checkpoint plus one record of `gib` GiB of zeros, truly deflated into about 2 MB."""
    run = save_run(w, name, w.base)
    path = run / "checkpoints" / "last.pt"
    with zipfile.ZipFile(path) as zf:
        entries = [(i.filename, zf.read(i), 0, i.CRC, i.file_size) for i in zf.infolist()]
    chunk = bytes(64 * 2**20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)  # repeatable: no reference across it
    crc = 0
    for _ in range(gib * 16):
        crc = zlib.crc32(chunk, crc)
    data = segment * (gib * 16) + b"\x03\x00"  # an empty final block ends the stream
    prefix = entries[0][0].split("/")[0]
    entries.append((f"{prefix}/data/99", data, 8, crc, gib * 2**30))
    path.write_bytes(_zip(entries))
    (run / "checkpoints" / "best.pt").write_bytes(path.read_bytes())
    return path


class _Reduce:
    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.fn, self.args)


# --------------------------------------------------------------------------- the corpus


@dataclass
class Case:
    id: str
    build: Callable[[World], Path]  # -> the run directory
    key: str = ""  # what the one-line refusal must name
    via: tuple[str, ...] = ("eval", "resume")
    allow_hint: bool = False  # the message says how to allow it on the command line


def stored(changes: dict[str, Any], drop: tuple[str, ...] = ()) -> Callable[[World], Any]:
    """A stored config: the default run's, with `dotted.key: value` changes (callables get the world)."""

    def make(w: World) -> dict[str, Any]:
        import copy

        cfg = copy.deepcopy(w.base)
        for key in drop:
            cfg.pop(key, None)
        for dotted, value in changes.items():
            _set(cfg, dotted, value(w) if callable(value) else value)
        return cfg

    return make


def config_case(id: str, changes: dict[str, Any], key: str, allow_hint: bool = True,
                via: tuple[str, ...] = ("eval", "resume")) -> Case:
    make = stored(changes)
    return Case(id, lambda w: save_run(w, id, make(w)), key, via, allow_hint)


def touch(w: World) -> str:
    return f"touch {w.marker}"


def marker_path(w: World) -> str:
    return str(w.marker)


def lol(n: int) -> dict[str, str]:
    out = {"lol0": "x" * 8}
    for i in range(1, n + 1):
        out[f"lol{i}"] = f"${{lol{i - 1}}}${{lol{i - 1}}}"
    return out


def dag(depth: int) -> list[Any]:
    node: list[Any] = ["x"]
    for _ in range(depth):
        node = [node, node]  # pickled once, shared: 2**depth paths in a few hundred bytes
    return node


def cycle() -> list[Any]:
    node: list[Any] = []
    node.append(node)
    return node


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"d": node}
    return node


T = "model._target_"
CASES: list[Case] = [
    # --- code reached through names inside allowed packages (aliases past a deny list)
    config_case("collect_env_run_in_identity_arg", {"model": lambda w: {
        "_target_": "torch.nn.Identity", "x": {"_target_": "torch.utils.collect_env.run", "command": touch(w)}}},
        "model.x._target_=torch.utils.collect_env.run"),
    config_case("collect_env_run", {"model": lambda w: {"_target_": "torch.utils.collect_env.run", "command": touch(w)}}, T),
    config_case("alias_of_torch_load", {"model": lambda w: {
        "_target_": "torch.nn.modules.module.torch.load", "f": str(w.victim), "weights_only": False}}, T),
    config_case("torch_load", {"model": lambda w: {"_target_": "torch.load", "f": str(w.victim)}}, T),
    config_case("torch_serialization_load", {"model": lambda w: {
        "_target_": "torch.serialization.load", "f": str(w.victim), "weights_only": False}}, T),
    config_case("trainkit_api_evaluate_trusting", {"model": lambda w: {
        "_target_": "trainkit.api.evaluate", "ckpt": str(w.victim), "overrides": ["--trust-checkpoint"]}}, T),
    config_case("trainkit_checkpoint_load_trust", {"model": lambda w: {
        "_target_": "trainkit.checkpoint.load", "path": str(w.victim), "trust": True}}, T),
    config_case("torch_os_system", {"model": lambda w: {"_target_": "torch.os.system", "_args_": [touch(w)]}}, T),
    config_case("torch_builtins_eval", {"model": {"_target_": "torch.builtins.eval", "_args_": ["1"]}}, T),
    config_case("torch_importlib_import_module", {"model": {"_target_": "torch.importlib.import_module",
                                                            "_args_": ["tk_marker_pkg"]}}, T),
    config_case("trainkit_record_subprocess_popen", {"model": lambda w: {
        "_target_": "trainkit.record.subprocess.Popen", "args": touch(w), "shell": True}}, T),
    config_case("torch_hub_load", {"model": lambda w: {"_target_": "torch.hub.load", "repo_or_dir": _url(w),
                                                       "model": "x", "source": "local"}}, T),
    config_case("hydra_instantiate_nested", {"model": lambda w: {
        "_target_": "hydra.utils.instantiate", "config": {"_target_": "os.system", "_args_": [touch(w)]}}}, T),
    config_case("functools_partial", {"model": lambda w: {"_target_": "functools.partial", "_args_": ["os.system", touch(w)]}}, T),
    config_case("torch_private_c", {"model": {"_target_": "torch._C._set_grad_enabled", "_args_": [False]}}, T),
    # --- plain code execution
    config_case("os_system", {"model": lambda w: {"_target_": "os.system", "_args_": [touch(w)]}}, T),
    config_case("posix_system", {"model": lambda w: {"_target_": "posix.system", "_args_": [touch(w)]}}, T),
    config_case("subprocess_popen", {"model": lambda w: {"_target_": "subprocess.Popen", "args": touch(w), "shell": True}}, T),
    config_case("builtins_exec", {"model": {"_target_": "builtins.exec", "_args_": ["import os"]}}, T),
    config_case("builtins_import", {"model": {"_target_": "builtins.__import__", "_args_": ["tk_marker_pkg"]}}, T),
    # --- allowed classes, harmful arguments
    config_case("save_image_over_victim", {"model": lambda w: {
        "_target_": "torchvision.utils.save_image", "tensor": [[0.0]], "fp": str(w.victim)}}, T),
    # --- a stranger's modules and look-alike names
    config_case("local_module", {"model": {"_target_": "tk_marker_pkg.Net"}}, "model._target_=tk_marker_pkg.Net"),
    config_case("local_submodule", {"model": {"_target_": "tk_marker_pkg.sub.Net"}}, T),
    config_case("lookalike_torch_evil", {"model": {"_target_": "torch_evil.x"}}, "model._target_=torch_evil.x"),
    config_case("leading_space", {"model": {"_target_": " torch.nn.Linear", "in_features": 1, "out_features": 1}},
                "model._target_=' torch.nn.Linear'", allow_hint=False),
    config_case("trailing_newline", {"model": {"_target_": "torch.nn.Linear\n", "in_features": 1, "out_features": 1}},
                T, allow_hint=False),
    config_case("cyrillic_i", {"model": {"_target_": "torch.nn.L\u0456near", "in_features": 1, "out_features": 1}},
                T, allow_hint=False),
    config_case("target_is_int", {"model": {"_target_": 5}}, T, allow_hint=False),
    config_case("target_is_list", {"model": {"_target_": ["os.system"]}}, T, allow_hint=False),
    config_case("target_is_dict", {"model": {"_target_": {"_target_": "os.system"}}}, T, allow_hint=False),
    # --- hydra's special keys
    config_case("partial_os_system", {"model": lambda w: {"_target_": "os.system", "_partial_": True, "_args_": [touch(w)]}}, T),
    config_case("partial_not_bool", {"model._partial_": "yes"}, "model._partial_", allow_hint=False),
    config_case("convert_not_a_mode", {"model._convert_": "evil"}, "model._convert_", allow_hint=False),
    config_case("args_with_nested_target", {"model": {"_target_": "torch.nn.Sequential",
                                                      "_args_": [{"_target_": "tk_marker_pkg.Net"}]}},
                "model._args_[0]._target_=tk_marker_pkg.Net"),
    config_case("target_in_a_list", {"data.dataset.train_transforms": [{"_target_": "tk_marker_pkg.Net"}]},
                "data.dataset.train_transforms[0]._target_=tk_marker_pkg.Net"),
    config_case("sequential_layer", {"model.layers.evil": {"_target_": "torch_evil.x"}}, "model.layers.evil._target_"),
    config_case("logger_target", {"logger.evil": {"_target_": "tk_marker_pkg.Net"}}, "logger.evil._target_"),
    # --- interpolations and resolvers: never resolved from a stored config
    config_case("interpolated_target", {"model._target_": "${x}", "x": "os.system"}, T, allow_hint=False),
    config_case("oc_env_secret", {"logger.csv.filename": "${oc.env:TK_TEST_SECRET}"}, "logger.csv.filename",
                allow_hint=False),
    config_case("oc_env_in_mlflow", {"logger.mlflow": lambda w: {
        "_target_": "trainkit.loggers.MLflowLogger", "tracking_uri": _url(w), "run_name": "${oc.env:TK_TEST_SECRET}"}},
        "logger.mlflow.run_name", allow_hint=False),
    config_case("oc_decode", {"optim.lr": "${oc.decode:'0.1'}"}, "optim.lr", allow_hint=False),
    config_case("unknown_resolver", {"seed": "${evil_resolver:1}"}, "seed", allow_hint=False),
    config_case("hydra_resolver", {"seed": "${hydra:runtime.cwd}"}, "seed", allow_hint=False),
    config_case("lol_27", lol(27), "is an interpolation", allow_hint=False),
    # --- data too large or too strange to be a config
    config_case("pickle_dag_bomb", {"data.extra": dag(30)}, "data.extra", allow_hint=False),
    config_case("self_cycle", {"data.extra": cycle()}, "data.extra", allow_hint=False),
    config_case("deep_nesting", {"data.extra": nested(MAX_DEPTH + 8)}, "data.extra", allow_hint=False),
    config_case("huge_string", {"data.extra": "x" * 5_000_000}, "data.extra", allow_hint=False),
    config_case("tensor_in_config", {"model.hidden": torch.ones(3)}, "model.hidden", allow_hint=False),
    # --- stored values are data: output paths stay in the run directory, no remote logger (resume builds loggers)
    config_case("csv_filename_absolute", {"logger.csv.filename": lambda w: str(w.victim)}, "logger.csv.filename",
                allow_hint=False, via=("resume",)),
    config_case("csv_filename_dotdot", {"logger.csv.filename": "../../../victim.txt"}, "logger.csv.filename",
                allow_hint=False, via=("resume",)),
    config_case("tensorboard_subdir_absolute", {"logger.tensorboard": lambda w: {
        "_target_": "trainkit.loggers.TensorBoardLogger", "subdir": str(w.root)}}, "logger.tensorboard.subdir",
        allow_hint=False, via=("resume",)),
    config_case("mlflow_remote", {"logger.mlflow": lambda w: {
        "_target_": "trainkit.loggers.MLflowLogger", "tracking_uri": _url(w)}}, "--allow-loggers",
        allow_hint=False, via=("resume",)),
    config_case("mlflow_bare_databricks", {"logger.mlflow": {"_target_": "trainkit.loggers.MLflowLogger",
                                                         "tracking_uri": "databricks"}}, "--allow-loggers",
                allow_hint=False, via=("resume",)),
    config_case("mlflow_sqlite_absolute", {"logger.mlflow": lambda w: {
        "_target_": "trainkit.loggers.MLflowLogger", "tracking_uri": f"sqlite:///{w.root}/x.db"}},
        "logger.mlflow.tracking_uri", allow_hint=False, via=("resume",)),
    config_case("mlflow_file_absolute", {"logger.mlflow": lambda w: {
        "_target_": "trainkit.loggers.MLflowLogger", "tracking_uri": f"file://{w.root}/mlruns"}},
        "logger.mlflow.tracking_uri", allow_hint=False, via=("resume",)),
    # --- hostile files
    Case("zip_bomb_2gib", lambda w: bomb(w, "zip_bomb_2gib").parent.parent, "decompression bomb"),
    Case("raw_pickle_os_system", lambda w: _raw(w, "raw_pickle", pickle.dumps({"model": _Reduce(__import__("os").system,
                                                                                              touch(w))}, protocol=2)),
         "--trust-checkpoint"),
    Case("legacy_torch_save", lambda w: _legacy(w), "zip format"),
    Case("victim_file_as_checkpoint", lambda w: _raw(w, "victim_ckpt", w.victim_bytes()), "is corrupt"),
    Case("stored_data_path_is_victim", lambda w: save_run(w, "data_path", _tensor_file_config(w)), "data.path=",
         via=("eval",)),
    Case("stored_csv_path_is_victim", lambda w: save_run(w, "csv_path", _tensor_file_config(w, "csv")), "victim.txt",
         via=("eval",)),
    Case("zip_with_os_system_global", lambda w: save_run(w, "zip_global", w.base, {"x": _Reduce(__import__("os").system,
                                                                                              touch(w))}), "--trust-checkpoint"),
    Case("zip_with_builtins_eval_global", lambda w: save_run(w, "eval_global", w.base, {"x": _Reduce(eval, "1+1")}),
         "--trust-checkpoint"),
]


def _raw(w: World, name: str, data: bytes) -> Path:
    run = w.root / "runs" / name
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "checkpoints" / "last.pt").write_bytes(data)
    (run / "checkpoints" / "best.pt").write_bytes(data)
    return run


def _tensor_file_config(w: World, option: str = "tensor_file") -> dict[str, Any]:
    """A stored config whose data source reads the victim file (as /etc/shadow would be)."""
    from trainkit.config import compose, to_plain

    cfg = to_plain(compose([f"data={option}", f"data.path={w.victim}", "device=cpu"]))
    cfg["model"] = w.base["model"]
    return cfg


def _legacy(w: World) -> Path:
    run = w.root / "runs" / "legacy"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt"):
        torch.save({"model": w.weights, "config": w.base}, run / "checkpoints" / name, _use_new_zipfile_serialization=False)
    return run


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TK_TEST_SECRET", SECRET)


def _refused(call: Callable[[], Any], case: Case, w: World) -> str:
    t0 = time.perf_counter()
    with pytest.raises(TrainkitError) as info:
        call()
    elapsed = time.perf_counter() - t0
    message = str(info.value)
    one_line(message, w)
    assert info.value.exit_code == 2, message
    assert case.key in message, message
    if case.allow_hint:
        assert "--allow " in message, message
    assert elapsed < 5, f"{case.id} took {elapsed:.1f}s to refuse"
    assert_nothing_ran(w)
    return message


@pytest.fixture(autouse=True)
def _give_back_run_dir_locks() -> Iterator[None]:
    """A resume plan that succeeds holds the run directory's lock (the CLI gives it back after the run)."""
    yield
    owner.release_all()


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_case_is_refused_and_nothing_runs(case: Case, world: World) -> None:
    run = case.build(world)
    if "eval" in case.via:
        _refused(lambda: evaluate(str(run / "checkpoints" / "best.pt"), ["device=cpu"]), case, world)
    if "resume" in case.via:
        _refused(lambda: plan(str(run), []), case, world)


# --------------------------------------------------------------------------- neutralised, not refused


def test_nested_download_stays_off_and_hydra_settings_are_dropped(world: World) -> None:
    cfg = stored({"data.dataset.download": True, "data.download": True, "data.dataset.inner": [{"download": True}],
                  "hydra": {"run": {"dir": str(world.root)}}})(world)
    built = stored_config(cfg, "test")
    assert "hydra" not in built
    assert built.data.download is False and built.data.dataset.download is False
    assert built.data.dataset.inner[0].download is False
    # through eval: a stored MNIST config with download on everywhere finds no files and fetches nothing
    from trainkit.config import compose, to_plain

    mnist = to_plain(compose(["data=mnist", "device=cpu", f"data.root={world.root / 'data'}"]))
    assert mnist["data"]["download"] is True and mnist["data"]["dataset"]["download"] is True
    run = save_run(world, "download", mnist)
    with pytest.raises(TrainkitError) as info:
        evaluate(str(run / "checkpoints" / "best.pt"), ["device=cpu"])
    assert "data.download=false" in str(info.value), info.value
    assert not (world.root / "data" / "MNIST" / "raw").exists()
    assert_nothing_ran(world)


def test_each_stored_logger_refusal_has_its_way_out(world: World) -> None:
    from trainkit.resume import resume_command

    by_id = {c.id: c for c in CASES}
    remote = by_id["mlflow_remote"].build(world)
    assert plan(str(remote), [], allow_loggers=True).cfg.logger.mlflow.tracking_uri == _url(world)
    cfg = torch.load(remote / "checkpoints" / "last.pt", weights_only=True)["config"]
    assert resume_command(remote, cfg).endswith("--allow-loggers")  # the run's own server: its resume command says so
    absolute = by_id["csv_filename_absolute"].build(world)
    assert plan(str(absolute), ["logger=csv"]).cfg.logger.csv.filename == "metrics.csv"
    mine = str(world.root / "mine.csv")  # a path you give yourself is yours
    assert plan(str(absolute), [f"logger.csv.filename={mine}"]).cfg.logger.csv.filename == mine
    assert_nothing_ran(world)


def test_a_strangers_hydra_yaml_is_read_as_plain_strings(tmp_path: Path) -> None:
    from trainkit.resume import _choices

    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    (hydra_dir / "hydra.yaml").write_text(
        "hydra:\n  run:\n    dir: ${oc.env:TK_TEST_SECRET}\n  runtime:\n    choices:\n      model: mlp\n      optim: sgd\n"
    )
    assert _choices(tmp_path) == {"model": "mlp", "optim": "sgd"}  # the rest of the file is never resolved
    (hydra_dir / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      model: ${oc.env:TK_TEST_SECRET}\n")
    assert _choices(tmp_path) == {}
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    (hydra_dir / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n" + "".join(
        "      " + line + "\n" for line in laughs.splitlines()))
    t0 = time.perf_counter()
    assert _choices(tmp_path) == {}  # a billion laughs in YAML aliases: 10**9 paths, refused by the walk's bound
    assert time.perf_counter() - t0 < 2


def test_data_error_messages_never_quote_the_file(world: World, tmp_path: Path) -> None:
    from trainkit.data.files import csv, tensor_file

    for call in (lambda: tensor_file(str(world.victim)), lambda: csv(str(world.victim), label_column="nope")):
        with pytest.raises(TrainkitError) as info:
            call()
        one_line(str(info.value), world)
    table = tmp_path / "t.csv"
    table.write_text(f"a,label\n{SECRET},1\n")
    with pytest.raises(TrainkitError, match="column 'a' is numeric but row 1 of it holds text") as info:
        csv(str(table), columns={"a": "numeric"})["table"].fit([0])
    one_line(str(info.value), world)
    assert_nothing_ran(world)


def test_a_2gib_bomb_is_refused_fast_with_little_memory(world: World) -> None:
    path = bomb(world, "bomb_timed")
    assert path.stat().st_size < 4 * 2**20
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(TrainkitError, match="decompression bomb"):
        ckpt_io.load(path)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 4 * 2**20, (elapsed, peak)


def test_load_limits_are_configurable(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    path = world.root / "runs" / "limits.pt"
    torch.save({"model": {"w": torch.zeros(2**20)}}, path)  # 4 MB of stored records
    assert ckpt_io.load(path)["model"]["w"].numel() == 2**20
    monkeypatch.setenv("TRAINKIT_MAX_LOAD_BYTES", "1M")
    with pytest.raises(TrainkitError, match="declares 4.0 MB of data"):
        ckpt_io.load(path)
    monkeypatch.setenv("TRAINKIT_MAX_LOAD_BYTES", "lots")
    with pytest.raises(TrainkitError, match="TRAINKIT_MAX_LOAD_BYTES a size"):
        ckpt_io.load(path)


def test_allow_list_is_trainkits_own_configs_matched_on_the_object(world: World) -> None:
    from trainkit.security import target_problem

    names = config_targets()
    assert {"torch.nn.Linear", "torch.optim.SGD", "trainkit.models.MLP", "trainkit.loggers.CSVLogger"} <= names
    assert not any(n.startswith("hydra_plugins") for n in names)  # Hydra's launchers are not run configs
    assert target_problem("torch.nn.modules.linear.Linear") is None  # the same class under its own module
    assert target_problem("torch.nn.modules.module.torch.load") is not None
    # a prefix the user trusts still refuses what it resolves to outside that prefix, and the code-running names
    assert "which you did not allow" in target_problem("tk_marker_pkg.sub.Path", ["tk_marker_pkg."])
    assert "loads or runs code" in target_problem("torch.nn.modules.module.torch.load", ["torch."])
    assert target_problem("torchvision.utils.save_image", ["torchvision.utils.save_image"]) is None
    world.marker.unlink()  # importing the prefix the user trusted ran its module: expected here
    for m in MODULES:
        sys.modules.pop(m, None)
        sys.modules.pop(m + ".sub", None)


def test_a_clean_checkpoint_still_works_and_the_markers_would_show_an_import(world: World) -> None:
    # The controls: the same harness passes a clean checkpoint, and an allowed stranger's module is seen.
    import trainkit

    run = save_run(world, "clean", world.base)
    for _ in range(2):  # the package's function, twice: importing trainkit.evaluate (a module) must not shadow it
        result = trainkit.evaluate(str(run / "checkpoints" / "best.pt"), ["device=cpu"])
        assert 0.0 <= result["test_acc"] <= 1.0
    assert plan(str(run), []).cfg.model._target_ == "trainkit.models.MLP"
    control = save_run(world, "control", stored({"model": {"_target_": "tk_marker_pkg.Net"}})(world))
    with pytest.raises(TrainkitError):  # allowed, so imported (and then it is no nn.Module)
        evaluate(str(control / "checkpoints" / "best.pt"), ["device=cpu"], allow=["tk_marker_pkg."])
    assert world.marker.exists() and "tk_marker_pkg" in sys.modules
    world.marker.unlink()
    for m in MODULES:
        sys.modules.pop(m, None)
        sys.modules.pop(m + ".sub", None)


# --------------------------------------------------------------------------- the real CLI, a few cases each


CLI_FAST = {"eval": ["collect_env_run_in_identity_arg", "zip_bomb_2gib"], "resume": ["alias_of_torch_load", "mlflow_remote"]}
CLI_SLOW = {"eval": ["local_module", "oc_env_in_mlflow", "raw_pickle_os_system"],
            "resume": ["local_module", "oc_env_in_mlflow", "zip_bomb_2gib"]}


def _cli(command: str, ids: list[str], w: World) -> None:
    env = cli_env(PYTHONPATH=f"{w.root / 'pythonpath'}:{cli_env()['PYTHONPATH']}", TK_TEST_SECRET=SECRET)
    for case in (c for c in CASES if c.id in ids):
        run = case.build(w)
        args = ["eval", f"ckpt={run / 'checkpoints' / 'best.pt'}", "device=cpu"] if command == "eval" \
            else ["train", f"resume={run}"]
        proc = run_cli(args, w.root, timeout=120, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (case.id, proc.stderr)
        assert case.key in lines[0] and lines[0].startswith("trainkit: error: "), (case.id, lines[0])
        if case.allow_hint:
            assert "--allow " in lines[0], lines[0]
        one_line(lines[0], w)
        assert_nothing_ran(w)


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_cli_refuses_with_exit_2_and_one_line(command: str, world: World) -> None:
    _cli(command, CLI_FAST[command], world)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_cli_refuses_more_cases(command: str, world: World) -> None:
    _cli(command, CLI_SLOW[command], world)
