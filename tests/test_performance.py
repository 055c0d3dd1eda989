"""Performance contracts that can be asserted without timing anything (benchmarks/ measures speed).

Start-up stays torch-free, the in-memory loader says why it was chosen and respects its budget,
the batched MNIST preload equals the per-sample transforms, the trimmed metric sums stay exact,
summary.json records peak memory, and GPU-only settings degrade on the CPU without crashing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tests.conftest import FAST, REPO, cli_env, load_summary, train_in_process
from trainkit.data.build import MemoryBudgetExceeded, choose_loader, make_splits, to_tensors, vision_tensors
from trainkit.data.loaders import TensorLoader
from trainkit.errors import DataError
from trainkit.loop import Loop, LoopState, evaluate, train_one_epoch
from trainkit.sums import Matches, StepSums, settle
from trainkit.tasks import Classification


def write_fake_mnist(root, n_train: int, n_test: int) -> None:  # type: ignore[no-untyped-def]
    """Tiny MNIST files in torchvision's raw idx layout (what benchmarks/_common.py writes at full size)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        image_header, label_header = np.array([2051, n, 28, 28], ">i4"), np.array([2049, n], ">i4")
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(image_header.tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(label_header.tobytes() + labels.tobytes())


# ---------------------------------------------------------------------------- start-up


def test_help_and_info_commands_never_import_torch() -> None:
    """`trainkit --help` (and every command's --help, ls, show when present) answers without torch."""
    code = (
        "import sys, contextlib, io\n"
        "import trainkit.cli as cli\n"
        "calls = [['--help'], ['--version']] + [[c, '--help'] for c in cli.COMMANDS]\n"
        "calls += [[c] for c in ('ls', 'show') if c in cli.COMMANDS]\n"
        "for args in calls:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        cli.main(args)\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'sklearn', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_python_m_trainkit_help_imports_no_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "trainkit", "--help"], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage: trainkit" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "torchvision", "hydra")}


@pytest.mark.slow
def test_a_whole_run_imports_none_of_the_packages_its_fixed_cost_was(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The test report is plain torch: a run no longer imports torchmetrics (and with it torchvision.models,
    scipy.signal, matplotlib, lightning_utilities: 1.5-2 CPU seconds), nor sklearn for the digits."""
    code = (
        "import sys\n"
        "from trainkit.cli import main\n"
        "rc = main(['train', 'trainer.epochs=1', 'trainer.progress=none', 'hydra.run.dir=run'])\n"
        "heavy = ('torchmetrics', 'torchvision.models', 'scipy', 'matplotlib', 'lightning_utilities', 'sklearn')\n"
        "print('RC', rc, 'HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert "RC 0 HEAVY []" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "test_report.json").read_text())["metrics"]["f1_macro"] > 0


# ---------------------------------------------------------------------------- loader choice and budget


def test_auto_loader_says_why_it_chose_memory_or_dataloader() -> None:
    kind, why = choose_loader("auto", 10 * 2**20, 2048, False)
    assert (kind, why) == ("memory", "auto: 10.0 MB fits data.memory_budget_mb=2048")
    kind, why = choose_loader("auto", 5000 * 2**20, 4096, False)
    assert kind == "dataloader" and "5,000 MB exceeds data.memory_budget_mb=4096" in why
    kind, why = choose_loader("auto", 1, 4096, True)
    assert kind == "dataloader" and "random" in why
    assert choose_loader("dataloader", 1, 4096, False)[0] == "dataloader"


def test_memory_loader_over_budget_is_refused_with_the_fix() -> None:
    fix = r"needs 300 MB but data.memory_budget_mb=100; raise the budget or use data.loader=dataloader"
    with pytest.raises(DataError, match=fix):
        choose_loader("memory", 300 * 2**20, 100, False)


class _Squares(Dataset):
    """A non-tensor dataset: materialising it goes through the batched preallocating path."""

    def __len__(self) -> int:
        return 2500

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return torch.full((4,), float(i)), i % 3


def test_materialising_checks_the_budget_before_allocating_and_keeps_order() -> None:
    x, y = to_tensors(_Squares())
    assert x.shape == (2500, 4) and torch.equal(x[:, 0], torch.arange(2500, dtype=torch.float32))
    assert torch.equal(y, torch.arange(2500) % 3)
    with pytest.raises(MemoryBudgetExceeded, match="MB in memory"):
        to_tensors(_Squares(), limit_bytes=1000)


def test_batched_mnist_preload_equals_the_per_sample_transforms(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from trainkit.data.vision import torchvision_dataset

    write_fake_mnist(tmp_path, 120, 30)
    spec = [{"_target_": "torchvision.transforms.ToTensor"},
            {"_target_": "torchvision.transforms.Normalize", "mean": [0.1307], "std": [0.3081]}]
    raw = torchvision_dataset("MNIST", str(tmp_path), download=False, train_transforms=spec,
                              eval_transforms=spec)
    splits, _ = make_splits(raw, 0.1, 0.0, seed=0)
    for name, ds in splits.items():
        fast = vision_tensors(ds)
        assert fast is not None, name
        slow = [torch.cat(parts) for parts in zip(*DataLoader(ds, batch_size=64), strict=True)]
        assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1]), name


def test_mnist_run_preloads_into_memory_and_says_so(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    write_fake_mnist(tmp_path / "data", 400, 100)
    summary = train_in_process([f"data.root={tmp_path / 'data'}", "data=mnist", "data.download=false",
                                "trainer.epochs=1", "trainer.progress=none"], tmp_path / "run")
    out = capsys.readouterr().out
    assert "(memory loader: auto: " in out and "fits data.memory_budget_mb=4096" in out
    assert summary["data"]["loader"] == "memory"
    assert summary["data"]["loader_reason"].startswith("auto: ") and "fits data.memory_budget_mb" in summary["data"]["loader_reason"]
    assert summary["peak_rss_mb"] > 0 and summary["peak_gpu_mem_mb"] is None
    assert load_summary(tmp_path / "run")["peak_rss_mb"] == summary["peak_rss_mb"]


# ---------------------------------------------------------------------------- the loop's metric sums


def test_trimmed_metric_sums_stay_exact() -> None:
    """With lr=0 the model is fixed, so the epoch's train sums must equal a separate evaluation."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1000, 12, generator=g), torch.randint(0, 4, (1000,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loop = Loop(model=model, criterion=nn.CrossEntropyLoss(), optimizer=optimizer, scheduler=None,
                interval="epoch", task=Classification(4), device=torch.device("cpu"), progress="none")
    train = train_one_epoch(loop, TensorLoader((x, y), 64, shuffle=True), LoopState(), 0, 1)
    ref = evaluate(loop, TensorLoader((x, y), 1000))
    with torch.no_grad():
        out = model(x)
    assert train["acc"] == ref["acc"] == (out.argmax(1) == y).sum().item() / 1000
    assert train["loss"] == pytest.approx(ref["loss"], rel=1e-6)



def test_step_sums_do_not_depend_on_when_they_are_read() -> None:
    """Read every step, every 7 steps, or once: the same float64 totals, bit for bit, as a running sum."""
    g = torch.Generator().manual_seed(0)
    steps = [({"loss": torch.rand((), generator=g) * 3, "correct": torch.randint(0, 64, (), generator=g)},
              int(torch.randint(1, 65, (), generator=g))) for _ in range(600)]  # > MAX_PENDING
    loss_ref = correct_ref = 0.0
    for stats, n in steps:
        loss_ref += float(stats["loss"].double() * n)
        correct_ref += float(stats["correct"])
    for every in (1, 7, 10**9):
        sums = StepSums()
        for i, (stats, n) in enumerate(steps):
            sums.add(dict(stats), n)
            if i % every == 0:
                sums.total("loss")
        totals = sums.totals()
        assert totals["loss"] == loss_ref and totals["correct"] == correct_ref
        assert totals["count"] == sum(n for _, n in steps)
    labels = [(torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)) for _, n in steps]
    hits = sum(int((p == t).sum()) for p, t in labels)
    for every in (1, 7, 10**9):  # Matches (a classification task's "correct"): counted when read
        sums = StepSums()
        for i, ((stats, n), (p, t)) in enumerate(zip(steps, labels, strict=True)):
            sums.add({"loss": stats["loss"], "correct": Matches(p, t)}, n)
            if i % every == 0:
                sums.total("correct")
        assert sums.totals()["correct"] == hits and sums.totals()["loss"] == loss_ref
    assert settle({"correct": Matches(*labels[0])})["correct"] == int((labels[0][0] == labels[0][1]).sum())
    resumed = StepSums({"loss": 1.5, "correct": 2.0, "count": 3.0})  # a mid-epoch checkpoint's partial sums
    resumed.add({"loss": torch.tensor(0.5), "correct": torch.tensor(1)}, 2)
    assert resumed.totals() == {"loss": 2.5, "correct": 3.0, "count": 5.0}


LEAVE = """
import atexit, sys, threading, time
from pathlib import Path
import torch
out = Path(sys.argv[1])
def late():
    time.sleep(0.3)
    (out / "thread").write_text("done")
threading.Thread(target=late).start()  # non-daemon: Python's exit waits for it
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(1)  # its worker ends in threading's exit hooks (joblib's launcher works so too)
pool.submit(lambda: (out / "pool").write_text("ran")).result()
atexit.register(lambda: (out / "atexit").write_text(str((out / "thread").exists())))
print("buffered, no newline", end="")
from trainkit.shutdown import leave
leave(sys.argv[2] if not sys.argv[2].isdigit() else int(sys.argv[2]))
"""


@pytest.mark.parametrize("code,rc", [("0", 0), ("3", 3), ("a message", 1)])
def test_leaving_without_the_teardown_keeps_what_python_exit_does(tmp_path, code: str, rc: int) -> None:  # type: ignore[no-untyped-def]
    """Threads joined, then atexit handlers, streams flushed, the exit code kept; only the teardown is skipped."""
    done = subprocess.run([sys.executable, "-c", LEAVE, str(tmp_path), code], capture_output=True, text=True,
                          env=cli_env(), timeout=120)  # a hang here: a thread nobody told to stop
    assert done.returncode == rc, done.stderr
    assert done.stdout == "buffered, no newline"
    assert (tmp_path / "thread").read_text() == "done" and (tmp_path / "pool").read_text() == "ran"
    assert (tmp_path / "atexit").read_text() == "True"  # the thread had finished before the handlers ran
    assert done.stderr.strip() == ("a message" if rc == 1 else "")


@pytest.mark.parametrize("on_nan,clip", [("stop", None), ("skip_batch", 1.0)])
def test_an_epoch_reads_the_device_once_not_once_per_step(monkeypatch, on_nan: str, clip) -> None:  # type: ignore[no-untyped-def]
    """No .item()/.tolist()/float()/bool()/.cpu() per step: on a GPU each would stall the queue."""
    reads: list[str] = []
    for name in ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__repr__", "__format__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _f=original, _n=name, **k: reads.append(_n) or _f(self, *a, **k))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(640, 12, generator=g), torch.randint(0, 4, (640,), generator=g)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    loop = Loop(model=model, criterion=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                scheduler=None, interval="epoch", task=Classification(4), device=torch.device("cpu"),
                progress="none", log_every=1000, on_nan=on_nan, grad_clip=clip)
    train_one_epoch(loop, TensorLoader((x, y), 16, shuffle=True), LoopState(), 0, 1)  # 40 steps
    evaluate(loop, TensorLoader((x, y), 16))  # 40 batches
    assert len(reads) <= 2, reads  # one read of the sums per epoch and per evaluation


# ---------------------------------------------------------------------------- GPU settings on the CPU


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_reduced_precision_runs_on_cpu(tmp_path, precision: str) -> None:  # type: ignore[no-untyped-def]
    summary = train_in_process(["trainer.epochs=1", "trainer.progress=none", "device=cpu",
                                f"device.precision={precision}"], tmp_path)
    assert summary["status"] == "completed" and summary["precision"] == precision
    assert summary["test_acc"] > 0.5


def test_cli_run_records_peak_memory(tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    train_in_process(["trainer.epochs=1", *FAST[1:]], tmp_path / "run")
    assert "(memory loader: auto: 0.5 MB fits data.memory_budget_mb=2048)" in capfd.readouterr().out
    summary = load_summary(tmp_path / "run")
    assert summary["peak_rss_mb"] > 50 and summary["peak_gpu_mem_mb"] is None


def test_digits_read_without_sklearn_match_load_digits() -> None:
    """The default dataset skips `import sklearn` (start-up) yet yields exactly load_digits' values."""
    from trainkit.data.bundled import sklearn_data_file

    assert sklearn_data_file("digits.csv.gz") is not None  # read directly: no `import sklearn` on this path
    from sklearn.datasets import load_digits

    from trainkit.data.embedded import digits

    ref, ds = load_digits(), digits()
    assert torch.equal(ds.tensors[0], torch.tensor(ref.images, dtype=torch.float32).unsqueeze(1) / 16.0)
    assert torch.equal(ds.tensors[1], torch.tensor(ref.target))


def test_compile_without_a_cpp_compiler_trains_eagerly(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from trainkit import perf

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    model = nn.Linear(3, 2)
    assert perf.compile_model(model, torch.device("cpu"), True) is model
    assert "needs a C++ compiler" in capsys.readouterr().out
    assert perf.compile_model(model, torch.device("cpu"), False) is model


def test_channels_last_only_for_conv_nets_on_cuda() -> None:
    from trainkit.loop import _to_device
    from trainkit.perf import wants_channels_last

    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert wants_channels_last(conv, cuda) and not wants_channels_last(conv, cpu)
    assert not wants_channels_last(nn.Linear(3, 2), cuda)
    x, y = _to_device((torch.randn(2, 3, 5, 5), torch.zeros(2)), cpu, torch.channels_last)
    assert x.is_contiguous(memory_format=torch.channels_last) and y.shape == (2,)


def test_fused_optimizer_kernel_is_the_default_unless_the_config_chooses() -> None:
    from omegaconf import OmegaConf

    from trainkit.perf import fused_default

    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    for target in ("torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW"):
        assert fused_default(OmegaConf.create({"_target_": target, "lr": 0.1}), mlp) == {"fused": True}
    for chosen in ({"fused": False}, {"foreach": True}, {"differentiable": True}):
        assert fused_default(OmegaConf.create({"_target_": "torch.optim.SGD", **chosen}), mlp) == {}
    assert fused_default(OmegaConf.create({"_target_": "torch.optim.LBFGS"}), mlp) == {}
    sparse = nn.Sequential(nn.EmbeddingBag(10, 4, sparse=True), nn.Linear(4, 2))
    assert fused_default(OmegaConf.create({"_target_": "torch.optim.SGD"}), sparse) == {}


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_default_runs_train_with_the_fused_kernel(tmp_path, optim: str) -> None:  # type: ignore[no-untyped-def]
    summary = train_in_process([f"optim={optim}", "trainer.epochs=2", "trainer.progress=none", "device=cpu"],
                               tmp_path)
    assert summary["status"] == "completed" and summary["test_acc"] > 0.8
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["optimizer"]
    assert state["param_groups"][0]["fused"] is True


def test_batched_cifar_preload_equals_the_per_sample_transforms() -> None:
    """HWC colour images (CIFAR layout) become the same CHW floats ToTensor + Normalize give per sample."""
    from torchvision import transforms
    from torchvision.datasets import CIFAR10

    ds = CIFAR10.__new__(CIFAR10)  # the in-memory arrays CIFAR10 loads from its files, without the files
    ds.data = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    ds.targets = [i % 10 for i in range(40)]
    ds.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))])
    ds.target_transform = None
    x, y = vision_tensors(ds)
    assert torch.equal(x, torch.stack([ds[i][0] for i in range(40)]))
    assert torch.equal(y, torch.tensor(ds.targets))


def test_the_one_pass_finite_check_of_a_split_is_exact() -> None:
    from trainkit.guards import all_finite

    x = torch.randn(1000, 8)
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[517, 3] = bad
        assert not all_finite(y)
    big = torch.full((1000,), 3e38)  # every value finite, their sum is not: the element-wise check decides
    assert torch.isinf(big.sum()) and all_finite(big)
    both = torch.tensor([float("inf"), -float("inf"), 1.0])
    assert not all_finite(both)
