"""Every shell command in README.md, docs/*.md and examples/**/README.md works as written.

A command is a line of a fenced ```bash / ```sh block (``\\`` continuations joined), a `$ ` line of any
fenced block, or a `trainkit ...` table cell (docs/components.md's one command per part). Each one is either

- **run** with bash in a scratch copy of the repository's docs world (a temporary directory holding
  `examples/`, the run directories the docs name, e.g. `outputs/2026-12-01/04-02-29`, a sweep at
  `outputs/multirun/2026-11-22/14-03-11`, and `my_project/models.py` with the `Net` the docs train),
  in document order, so `$(ls -d outputs/2*/* | tail -1)` sees the runs of the lines above it; it must
  exit 0, or 2 with one `trainkit: error:` line where the doc shows that error below the command;
- **marked** with a trailing `# needs ...` comment (a GPU, several machines, SLURM, a download):
  not run; a single `trainkit train` marked as needing a GPU is run once to check that it fails
  here with exit 2 and one line, no traceback;
- **classified** as a tool of its own (`pip install`, `python3 -m venv`, `python -m pytest`,
  `ruff`, `tensorboard --logdir`, `mlflow ui`, `eval "$(...)"`, `python`/`bash benchmarks/...`: minutes
  each, checked by hand). An `A && B` whose A is an install step runs B (the test environment has
  every extra), and a `trainkit train ... && tensorboard|mlflow ui` runs its training part.

Speed: by default (CI), a `trainkit train` that does not set `trainer.epochs`, `resume=` or a
sweeper of its own gets `trainer.epochs=1` appended: the doc's command is otherwise identical, so
every argument, group and key it names is still composed, validated and trained for an epoch.
Optuna sweeps are run in full mode only. CI (about 2 minutes on 2 cores) runs a representative part:
README.md's commands other than training (ls, show, check, eval, plot, report, the errors), the training
commands in CI_TRAIN (the quick start, a sweep, resume, torchrun on the CPU, CTC, a second logger) and
every doc's `$ ` error example; `TRAINKIT_DOCS_ALL=1` runs every command of every doc (about 12
minutes), `TRAINKIT_DOCS_FULL=1` does so without the appended epochs; `TRAINKIT_DOCS_FILES=README.md,...`
limits a run to those files.
`TRAINKIT_DOCS_FULL=1` runs every command exactly as
written (the README examples' wall times are printed, for "about a minute on 2 CPU cores").

Each command (marked and classified ones too) is also expanded by zsh and by bash with every
program replaced by a function that prints its arguments: both must give the same words, which
catches unquoted `[..]` lists (zsh: `no matches found`) and other bash-only quoting.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow

FULL = os.environ.get("TRAINKIT_DOCS_FULL") == "1"
ALL_DOCS = FULL or os.environ.get("TRAINKIT_DOCS_ALL") == "1"
# README training commands CI runs (the others differ from these in options already covered by other tests).
CI_TRAIN = ("trainkit train", "loss=ctc", "-m optim=sgd,adam trainer.epochs=5", "resume=", "torchrun --standalone --nproc_per_node=2",
            "logger=[csv,tensorboard]")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "examples").glob("**/README.md"))]

# Run directories and a sweep the docs' commands name; made once, before the commands run.
NAMED_RUNS = ["outputs/2026-12-01/04-02-29", "outputs/2026-11-22/14-03-11"]
NAMED_SWEEP = "outputs/multirun/2026-11-22/14-03-11"
# Installed packages the docs assume: the user's own logger (my_package); their_pkg (someone else's model) is NET_PY.
SITE = {
    "my_package/__init__.py": "from trainkit.loggers import Logger\n\n\nclass MyLogger(Logger):\n"
    "    def __init__(self, run_dir, project=None):\n        self.project = project\n",
}
# Blocks imports of the modules named in $TK_BLOCK: how a doc's "not installed" message is checked here.
BLOCKER = """import importlib.abc, os, sys
_BLOCK = tuple(n for n in os.environ.get("TK_BLOCK", "").split(",") if n)
class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in _BLOCK):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Blocker())
"""
NET_PY = '''import torch.nn as nn


class Net(nn.Module):
    """The user's own model of docs/everyday.md: takes what the default mlp keys leave."""

    def __init__(self, in_shape, out_features, init="default"):
        super().__init__()
        n = 1
        for d in in_shape:
            n *= d
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n, 32), nn.ReLU(), nn.Linear(32, out_features))

    def forward(self, x):
        return self.body(x)
'''

TOOLS = re.compile(
    r"^(pip install|python3? -m venv|python -m pytest|ruff |tensorboard |mlflow ui|eval \"\$\(|python benchmarks/|bash benchmarks/)"
)
INSTALL_PREFIX = re.compile(r"^(?:(?:python3 -m venv \S+|\. \S+/activate|pip install [^&]+?)\s*&&\s*)+")
VIEWER_SUFFIX = re.compile(r"\s*&&\s*(tensorboard --logdir \S+|mlflow ui)\b.*$")
NEEDS = re.compile(r"#\s*needs\b(.*)$")
PROGRAMS = ["trainkit", "torchrun", "python", "python3", "pip", "tensorboard", "mlflow", "ruff", "ls", "tail", "dot",
            "srun", "scontrol", "head", "bash"]


@dataclass
class Command:
    doc: str
    line: int
    text: str
    expect_error: str | None = None  # the `trainkit: error:` line the doc shows below it
    table: bool = False  # from a table cell: run with TRAINKIT_DOCS_ALL=1 only

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def extract(path: Path) -> list[Command]:
    """The commands of one Markdown file, in order."""
    commands: list[Command] = []
    lang: str | None = None
    lines = path.read_text().splitlines()
    doc = str(path.relative_to(REPO))
    pending = ""
    start = 0
    for i, raw in enumerate(lines, 1):
        fence = re.match(r"^```(\w*)\s*$", raw)
        if fence:
            lang = None if lang is not None else (fence.group(1) or "")
            continue
        if lang is None:
            if raw.startswith("|"):  # a table's command cell, e.g. docs/components.md's one command per part
                commands += [Command(doc, i, span, table=True) for span in re.findall(r"`(trainkit [^`]+)`", raw)]
            continue
        if raw.startswith("$ "):
            nxt = lines[i] if i < len(lines) else ""
            commands.append(Command(doc, i, raw[2:], nxt if nxt.startswith("trainkit: error:") else None))
        elif lang in ("bash", "sh", "shell"):
            text = raw.strip()
            if not pending and (not text or text.startswith("#")):
                continue
            if not pending:
                start = i
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            commands.append(Command(doc, start, pending + text))
            pending = ""
    return commands


def classify(cmd: Command) -> tuple[str, str]:
    """('run' | 'needs' | 'tool', the command to run or the reason)."""
    text = cmd.text
    needs = NEEDS.search(text)
    if needs:
        return "needs", needs.group(1).strip()
    text = INSTALL_PREFIX.sub("", text)
    text = VIEWER_SUFFIX.sub("", text)
    if TOOLS.match(text):
        return "tool", text.split()[0]
    return "run", text


def fast(text: str) -> str:
    """CI speed: append trainer.epochs=1 to a plain `trainkit train` that leaves epochs alone."""
    if FULL or any(s in text for s in ("$(", "&&", "|", ">", "resume=", "trainer.epochs=", "--cfg", "hparams_search")):
        return text
    words = shlex.split(text, comments=True)
    env = [w for w in words if re.match(r"^[A-Z_]+=", w)]
    rest = words[len(env):]
    if rest[:2] != ["trainkit", "train"]:
        return text
    return shlex.join([*words, "trainer.epochs=1"])


def in_ci(doc: Path, text: str) -> bool:
    """Whether CI runs this README command: every one but training, and the training ones of CI_TRAIN."""
    if doc != REPO / "README.md":
        return False
    training = re.search(r"\b(trainkit train|torchrun)\b", text) and "--cfg" not in text
    return not training or text in CI_TRAIN or any(s in text for s in CI_TRAIN[1:])


def shim_bin(tmp: Path) -> Path:
    """A `trainkit` on PATH that runs this checkout, like the installed console script (cwd not on sys.path)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "trainkit"
    shim.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(1, {str(REPO)!r})\n"
        "from trainkit.cli import main\nsys.exit(main())\n"
    )
    shim.chmod(0o755)
    return bin_dir


def doc_env(bin_dir: Path) -> dict[str, str]:
    env = cli_env()
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(bin_dir.parent / "home")  # `~/datasets` stays inside the scratch directory
    (bin_dir.parent / "home").mkdir(exist_ok=True)
    return env


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The files the docs' commands refer to, made once: runs at the named paths, a sweep, examples/, Net."""
    root = tmp_path_factory.mktemp("docs_world")
    env = doc_env(shim_bin(root))
    world = root / "world"
    world.mkdir()
    shutil.copytree(REPO / "examples", world / "examples")
    (world / "my_project").mkdir()
    (world / "my_project" / "__init__.py").write_text("")
    (world / "my_project" / "models.py").write_text(NET_PY)
    site = root / "site"
    for rel, text in {**SITE, "their_pkg/__init__.py": NET_PY, "sitecustomize.py": BLOCKER}.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(site)])
    make_user_data(world)
    sh("trainkit train model._target_=their_pkg.Net '~model.hidden' '~model.activation' '~model.dropout' "
       "trainer.epochs=1 hydra.run.dir=their_run", world, env, check=True)
    for run_dir in NAMED_RUNS:
        sh(f"trainkit train trainer.epochs=2 hydra.run.dir={run_dir}", world, env, check=True)
    sh(f"trainkit train -m optim=sgd,adam trainer.epochs=1 hydra.sweep.dir={NAMED_SWEEP}", world, env, check=True)
    return world, env


def make_user_data(world: Path) -> None:
    """The user's own files the docs train on: my_data.pt, my_table.csv (label column `species`), my_images/."""
    import numpy as np
    import torch
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x[:, 0] > 0).long()
    torch.save({"x": x, "y": y}, world / "my_data.pt")
    names = ["setosa" if t else "virginica" for t in y.tolist()]
    rows = [",".join([*(f"{v:.3f}" for v in xs), name]) for xs, name in zip(x.tolist(), names, strict=True)]
    (world / "my_table.csv").write_text("\n".join(["sepal_length,sepal_width,petal_length,petal_width,species", *rows]) + "\n")
    make_array_data(world, x.numpy(), y.numpy(), names)
    rng = np.random.default_rng(0)
    for label, level in (("cat", 40), ("dog", 200)):
        (world / "my_images" / label).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(level, 20, (16, 16, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(world / "my_images" / label / f"{i}.png")


def make_array_data(world: Path, x, y, names: list[str]) -> None:
    """my_table.parquet (label column `species`), my_x.npy / my_y.npy and my_hf/ (a save_to_disk set, column `pixels`)."""
    import datasets
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    frame["species"] = names
    frame.to_parquet(world / "my_table.parquet")
    images = np.repeat(x[:, :, None, None], 4, axis=3).repeat(4, axis=2)[:, :3].astype("float32")  # (n, 3, 4, 4)
    np.save(world / "my_x.npy", images)
    np.save(world / "my_y.npy", np.asarray(y))
    datasets.Dataset.from_dict({"pixels": images, "label": np.asarray(y).tolist()}).save_to_disk(str(world / "my_hf"))


def sh(text: str, cwd: Path, env: dict[str, str], check: bool = False, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([shell, "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, f"{text}\n{proc.stderr[-3000:]}"
    return proc


def stub_words(text: str, shell: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Expand `text` in `shell` with every program a function printing its arguments one per line."""
    stubs = "".join(f"{p}() {{ printf '<%s>\\n' {p!r} \"$@\"; }}; " for p in [*PROGRAMS, "cd"])
    text = re.sub(r"(^|&&\s*)\. ", r"\1dot ", text)  # `. .venv/bin/activate`: `.` cannot be a function
    return subprocess.run([shell, "-c", stubs + text], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent-home"})


ALL = [c for doc in DOCS for c in extract(doc)]


def test_extraction_finds_the_docs_commands() -> None:
    """The extractor sees the commands a reader sees (a test that would pass on an empty list is no test)."""
    texts = [c.text for c in ALL]
    assert len(ALL) >= 80, len(ALL)
    assert "trainkit train" in texts  # the README's `$ trainkit train`
    assert any(t.startswith("trainkit train -m hydra/launcher=submitit_slurm") and "myproject" in t for t in texts)  # continuation
    assert {c.doc for c in ALL} >= {"README.md", "docs/everyday.md", "examples/spirals/README.md"}
    kinds = [classify(c)[0] for c in ALL]
    assert kinds.count("needs") >= 5 and kinds.count("tool") >= 5 and kinds.count("run") >= 50


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize("cmd", [c for c in ALL if not c.text.startswith("eval ")], ids=lambda c: c.where)
def test_bash_and_zsh_read_the_command_alike(cmd: Command, tmp_path: Path) -> None:
    (tmp_path / "outputs" / "2026-12-01" / "04-02-29").mkdir(parents=True)  # for `$(ls -d outputs/2*/* ...)`
    (tmp_path / "outputs" / "multirun" / "x" / "y").mkdir(parents=True)
    bash, zsh = stub_words(cmd.text, "bash", tmp_path), stub_words(cmd.text, "zsh", tmp_path)
    assert zsh.returncode == 0 and zsh.stdout == bash.stdout, f"{cmd.where}: {cmd.text}\nzsh: {zsh.stderr}{zsh.stdout}\nbash: {bash.stdout}"


def test_every_docs_command_runs_or_is_marked(world: tuple[Path, dict[str, str]]) -> None:
    cwd_root, env = world
    report: list[str] = []
    failures: list[str] = []
    counts = {"run": 0, "passed": 0, "needs": 0, "needs verified": 0, "tool": 0}
    only = [f for f in os.environ.get("TRAINKIT_DOCS_FILES", "").split(",") if f]
    for doc in [d for d in DOCS if not only or str(d.relative_to(REPO)) in only]:
        cwd = cwd_root.parent / ("cwd_" + re.sub(r"\W", "_", str(doc.relative_to(REPO))))
        shutil.copytree(cwd_root, cwd)
        if doc.parent.parent.name == "examples":
            cwd = cwd / "examples" / doc.parent.name
        for cmd in extract(doc):
            kind, what = classify(cmd)
            if (not ALL_DOCS and cmd.expect_error is None and not in_ci(doc, what)) or (cmd.table and not ALL_DOCS):
                kind = "skipped"
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "skipped":
                continue
            if kind == "tool":
                continue
            if kind == "needs":
                if "GPU" in what and cmd.text.startswith("trainkit train") and "&&" not in cmd.text:
                    proc = sh(cmd.text, cwd, env)
                    counts["needs verified"] += 1
                    lines = proc.stderr.strip().splitlines()
                    if proc.returncode != 2 or len(lines) != 1 or "Traceback" in proc.stderr:
                        failures.append(f"{cmd.where}: marked '{what}' but exit {proc.returncode}: {proc.stderr[-500:]}")
                continue
            if "hparams_search=optuna" in what and not FULL:
                counts["run"] -= 1
                counts["tool"] += 1
                continue
            text = fast(what)
            t0 = time.perf_counter()
            missing = cmd.expect_error is not None and "not installed" in cmd.expect_error  # the doc shows the extra missing
            proc = sh(text, cwd, {**env, "TK_BLOCK": "tensorboard,mlflow,matplotlib"} if missing else env)
            secs = time.perf_counter() - t0
            report.append(f"{secs:7.1f} s  {cmd.where}  {text}")
            print(report[-1], flush=True)  # as it goes: a long full run shows its progress with -s
            want = 2 if cmd.expect_error else 0
            err = proc.stderr.strip().splitlines()
            ok = proc.returncode == want and "Traceback" not in proc.stderr
            if cmd.expect_error:
                pattern = ".*".join(re.escape(part) for part in re.split(r"\(?\.\.\.\)?", cmd.expect_error.split(";")[0]))
                ok = ok and len(err) == 1 and re.match(pattern, err[0]) is not None
            if ok:
                counts["passed"] += 1
            else:
                failures.append(f"{cmd.where}: `{text}` exit {proc.returncode} (want {want}):\n{proc.stderr[-1500:]}")
    mode = "full, as written" if FULL else "all docs, epochs=1 appended" if ALL_DOCS else "CI"
    print(f"\ndocs commands ({mode}): {counts}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(
    ("command", "module", "extra"),
    [
        ("trainkit train logger=mlflow", "mlflow", "mlflow"),
        ("trainkit train 'logger=[csv,tensorboard]'", "tensorboard", "tensorboard"),
        ("trainkit plot outputs/2026-12-01/04-02-29", "matplotlib", "plot"),
    ],
)
def test_a_missing_extra_names_the_extra(world: tuple[Path, dict[str, str]], command: str, module: str, extra: str) -> None:
    """The docs' logger and plot commands without their optional package: one line naming the extra, exit 2."""
    cwd, env = world
    proc = sh(command, cwd, {**env, "TK_BLOCK": module})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"pip install 'trainkit[{extra}]'" in lines[0] and "Traceback" not in proc.stderr
