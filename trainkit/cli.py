"""The `trainkit` command: parse the subcommand, check the config, hand the rest to Hydra.

Nothing here imports torch at start-up, so `trainkit --help`, `ls` and `show` answer instantly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from trainkit.errors import TrainkitError, debug_enabled, report, suggest
from trainkit.job import Runs, run_hydra
from trainkit.version import __version__

USAGE = f"""trainkit {__version__}: train PyTorch models from composed YAML configs.

usage: trainkit <command> [overrides...] [--debug]

commands:
  train   train a model          trainkit train model=cnn optim=adam optim.lr=1e-3 trainer.epochs=5
                                 trainkit train -m optim=sgd,adam optim.lr=0.1,0.01   (a sweep)
  eval    evaluate a checkpoint  trainkit eval ckpt=outputs/DATE/TIME/checkpoints/best.pt [split=val]
  predict predict new data       trainkit predict outputs/DATE/TIME input=new.csv [output=preds.csv] [top_k=3]
  export  export a model         trainkit export ckpt=outputs/DATE/TIME format=torchscript|onnx|safetensors
  ls      list config groups     trainkit ls            trainkit ls optim
  show    print the config       trainkit show model=cnn optim=adam
  check   dry-run one batch      trainkit check data=mnist model=cnn   trainkit check --layers
  tune    find a learning rate   trainkit tune lr optim=adam   (then optim.lr=VALUE, or optim.lr=auto)
  plot    plot training curves   trainkit plot outputs/DATE/TIME   trainkit plot outputs/multirun/DATE/TIME
  report  tabulate runs/sweeps   trainkit report outputs/multirun/DATE/TIME [--format table|csv|json|md]

options:
  --debug        show the full traceback of an error (or set TRAINKIT_DEBUG=1)
  --version      print trainkit's version
  -h, --help     this help; 'trainkit <command> --help' for one command
"""

TRAIN_HELP = """usage: trainkit train [overrides...] [-m] [--config-dir DIR] [--cfg job] [--debug]

Compose configs/train.yaml with the overrides (Hydra syntax) and train.

  group=option        pick an option of a config group      model=cnn optim=adam
  key=value           set a value                            optim.lr=0.05 trainer.epochs=20
  +key=value          add a key the config does not have     +optim.foreach=true
  -m / --multirun     sweep every combination                -m optim=sgd,adam optim.lr=0.1,0.01
  --config-dir DIR    add your own config groups             --config-dir my_configs model=my_net
  --cfg job           print the composed config and exit (Hydra)
  -sc install=bash    tab completion: put eval "$(trainkit train -sc install=bash)" in ~/.bashrc
  resume=RUN_DIR      continue a stopped run exactly, in its own directory    resume=outputs/DATE/TIME
                      (or resume=PATH/last.pt); only trainer.epochs, logging and loader speed may change
  --allow NAME        with resume=: also build this _target_ of the checkpoint's config (my_pkg.Net),
                      or everything under a prefix (my_pkg.); repeatable, or TRAINKIT_ALLOW=a.,b.Net
  --allow-loggers     with resume=: build a stored logger that sends data to another machine (MLflow server)

examples:
  trainkit train
  trainkit train model=mlp optim=sgd optim.lr=0.05 trainer.epochs=20
  trainkit train data=mnist model=cnn device=cuda device.precision=bf16

Each run writes outputs/YYYY-MM-DD/HH-MM-SS/ with checkpoints/, metrics.csv and summary.json.
"""

EVAL_HELP = """usage: trainkit eval ckpt=PATH [split=test|val|train] [overrides...]
                     [--allow NAME] [--trust-checkpoint]

Rebuild the model from the config stored in the checkpoint, evaluate it on a split (test by
default), print the metrics and write eval_CKPT_SPLIT.json (eval_best_test.json) and eval.json (the
latest) into the checkpoint's run directory. data.root= and data.path= rebuild the data from there.

A checkpoint is loaded as tensors and plain data only, and its stored config may only build the
_target_s that trainkit's own configs name (see docs/security.md).

  --allow NAME          also build this _target_ (my_pkg.Net) or everything under a prefix (my_pkg.);
                        repeatable, or TRAINKIT_ALLOW=a.,b.Net
  --trust-checkpoint    unpickle the file in full: RUNS ANY CODE IN IT; only for files you trust

examples:
  trainkit eval ckpt=outputs/2026-11-22/14-03-11/checkpoints/best.pt
  trainkit eval ckpt=outputs/2026-11-22/14-03-11/checkpoints/last.pt split=val device=cpu
"""

# Hydra flags that print or complete rather than run: no pre-flight composition for them.
HYDRA_INFO_FLAGS = {"--cfg", "-c", "--info", "-i", "--shell-completion", "-sc", "--hydra-help"}
# Flags that only modify --cfg: alone they would be ignored and the run would start unchecked.
HYDRA_CFG_MODIFIERS = {"--resolve", "--package", "-p"}


def _info_only(args: list[str]) -> bool:
    """True for `--cfg job` and friends; refuses --resolve / -p without --cfg (Hydra ran the job instead)."""
    flags = {a.split("=")[0] for a in args}
    modifiers = flags & HYDRA_CFG_MODIFIERS
    if modifiers and not flags & {"--cfg", "-c", "--help", "-h"}:
        flag = sorted(modifiers)[0]
        raise TrainkitError(f"{flag} only applies to printing the config: trainkit train --cfg job {flag}"
                            f"{' model' if flag != '--resolve' else ''} (to train, drop {flag})")
    for i, a in enumerate(args):
        if a in ("--cfg", "-c"):
            value = args[i + 1] if i + 1 < len(args) else None
            if value not in ("job", "hydra", "all"):
                raise TrainkitError(f"{a} takes job, hydra or all (got {value!r}): trainkit train --cfg job")
    return bool(flags & HYDRA_INFO_FLAGS)


class _Parser(argparse.ArgumentParser):
    """argparse that raises trainkit's one-line error instead of printing a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise TrainkitError(f"{message}; see '{self.prog} --help'")


def _flags(*names: str) -> argparse.ArgumentParser:
    """The options each command shares, defined once: a parent of the commands' parsers."""
    parent = _Parser(add_help=False, allow_abbrev=False)
    if "help" in names:
        parent.add_argument("-h", "--help", action="store_true", default=argparse.SUPPRESS)
    if "debug" in names:  # before or after the command; SUPPRESS: a command's parser never resets it
        parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    if "config-dir" in names:  # -cd is spelt --config-dir before parsing (argparse would read -c as -cd)
        parent.add_argument("--config-dir", dest="config_dir", nargs="?", default=argparse.SUPPRESS)
    if "allow" in names:
        parent.add_argument("--allow", action="append", nargs="?", default=[])
        parent.add_argument("--allow-loggers", action="store_true")
    if "multirun" in names:
        parent.add_argument("-m", "--multirun", action="store_true")
    return parent


def _parser() -> argparse.ArgumentParser:
    """`trainkit [--debug] COMMAND [options] [overrides]`: each command's options; the rest are Hydra's."""
    common = _flags("help", "debug")
    top = _Parser(prog="trainkit", add_help=False, allow_abbrev=False, parents=[common])
    commands = top.add_subparsers(dest="command")

    def command(name: str, *shared: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, prog=f"trainkit {name}", add_help=False, allow_abbrev=False,
                                   parents=[common, *(_flags(f) for f in shared)])

    command("train", "config-dir", "allow", "multirun")
    command("eval", "allow").add_argument("--trust-checkpoint", action="store_true")
    command("predict", "allow").add_argument("--trust-checkpoint", action="store_true")
    command("export", "allow").add_argument("--trust-checkpoint", action="store_true")
    command("ls", "config-dir")
    command("show", "config-dir").add_argument("--yaml", action="store_true")
    command("check", "config-dir").add_argument("--layers", action="store_true")
    command("tune", "config-dir")
    plot = command("plot")
    plot.add_argument("--out", nargs="?", default=argparse.SUPPRESS)
    plot.add_argument("--top", nargs="?", default=argparse.SUPPRESS)
    commands.add_parser("report", prog="trainkit report", add_help=False, parents=[_flags("debug")])
    return top


def parse(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """`trainkit ARGS` -> (our options, the rest in order: overrides, Hydra's flags, unknown options)."""
    args = ["--config-dir" if a == "-cd" else a for a in args]
    ns, rest = _parser().parse_known_args(args)
    if getattr(ns, "debug", False):
        os.environ["TRAINKIT_DEBUG"] = "1"
    if getattr(ns, "config_dir", "") is None:
        raise TrainkitError("--config-dir needs a directory: --config-dir DIR")
    if getattr(ns, "config_dir", None) is not None and not os.path.isdir(ns.config_dir):
        raise TrainkitError(
            f"--config-dir {ns.config_dir} is not a directory; give the folder that holds your config groups"
        )
    if None in getattr(ns, "allow", ()):
        raise TrainkitError("--allow needs a package prefix: --allow my_pkg.")
    return ns, rest


def _refuse_options(rest: list[str], cmd: str) -> None:
    """An option no parser took is a typo (train checks Hydra's printing flags first, in _info_only)."""
    for a in rest:
        if a.startswith("-") and len(a) > 1:
            raise TrainkitError(f"unknown option '{a}' for {cmd}; see 'trainkit {cmd} --help'")


def preflight(overrides: list[str], config_dir: str | None, multirun: bool) -> None:
    """Compose and validate every job and probe the directory the run will write, before Hydra starts anything."""
    from trainkit.guards import check_output_dir
    from trainkit.preflight import check_train

    where = check_train(overrides, config_dir, multirun)
    check_output_dir(where, "hydra.sweep.dir" if multirun else "hydra.run.dir")


def cmd_train(args: list[str]) -> int:
    runs = train_runs(args)
    if runs.stopped is not None:  # a failed or interrupted run: its exit code, as the shell sees it
        raise SystemExit(runs.stopped)
    return runs.exit_code


def train_runs(args: list[str]) -> Runs:
    """`trainkit train ARGS` up to what its runs returned (the Python API's train() reads it too)."""
    ns, rest = parse(["train", *args])
    if getattr(ns, "help", False):
        print(TRAIN_HELP)
        return Runs()
    from trainkit.config import prepare_overrides
    from trainkit.preflight import run_mode
    from trainkit.resume import split_resume

    rest = prepare_overrides(rest)  # data.root=~/datasets, nested ${..${..}}: forms Hydra refuses
    resume_spec, rest = split_resume(rest)
    if resume_spec is not None:
        return resume_train(resume_spec, ns, rest)
    for flag, given in (("--allow", ns.allow), ("--allow-loggers", ns.allow_loggers)):
        if given:  # only a stored config is a stranger's: a new run builds what its overrides name
            raise TrainkitError(f"unknown option '{flag}' for train (it goes with resume=); see 'trainkit train --help'")
    config_dir = getattr(ns, "config_dir", None)
    multirun = ns.multirun
    if not _info_only(rest):
        _refuse_options(rest, "train")
        multirun = run_mode(rest, multirun)  # hydra.mode=MULTIRUN is a sweep without -m
        preflight(rest, config_dir, multirun)
    # Hydra's argparse wants its flags first: `train a=1 --config-dir D b=2` would fail there.
    hydra_args = (["-m"] if multirun else []) + (["--config-dir", config_dir] if config_dir else []) + rest
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not _info_only(rest):
        from trainkit.config import compose  # torchrun: one run dir for all ranks
        from trainkit.distributed import torchrun_hydra_args

        cfg = None if multirun else compose(rest, user_config_dir=config_dir)  # a sweep is refused
        hydra_args = torchrun_hydra_args(hydra_args, cfg, multirun)
    return run_hydra(hydra_args)


def resume_train(spec: str, ns: argparse.Namespace, overrides: list[str]) -> Runs:
    """`trainkit train resume=RUN_DIR [safe overrides]`: continue the run in its own directory."""
    from trainkit.resume import plan

    if ns.multirun:
        raise TrainkitError(
            "resume= continues one run; to finish a sweep, re-run it with trainer.skip_done=true "
            "hydra.sweep.dir=DIR"
        )
    if getattr(ns, "config_dir", None) is not None:
        raise TrainkitError("option '--config-dir' cannot be used with resume=; see 'trainkit train --help'")
    # --allow / --allow-loggers: what the refusal of a stored config's _target_ or remote logger tells the user to add.
    # plan takes the run directory's lock; run_hydra gives it back.
    resume = plan(spec, overrides, allow=ns.allow, allow_loggers=ns.allow_loggers)
    return run_hydra(resume.hydra_args(), resume=resume)


def cmd_eval(args: list[str]) -> int:
    ns, rest = parse(["eval", *args])
    if getattr(ns, "help", False):
        print(EVAL_HELP)
        return 0
    _refuse_options(rest, "eval")
    ckpt = None
    split = "test"
    overrides = []
    for a in rest:
        if a.startswith("ckpt="):
            ckpt = a.split("=", 1)[1]
        elif a.startswith("split="):
            split = a.split("=", 1)[1]
        else:
            overrides.append(a)
    if not ckpt:
        raise TrainkitError("eval needs a checkpoint: trainkit eval ckpt=outputs/DATE/TIME/checkpoints/best.pt")
    from trainkit.config import prepare_overrides
    from trainkit.evaluate import evaluate_checkpoint

    overrides = prepare_overrides(overrides)

    if ns.trust_checkpoint:
        print(
            "trainkit: warning: --trust-checkpoint unpickles the file in full: any code its author put in it "
            "runs now, with your permissions. Use it only for checkpoints from people you trust.",
            file=sys.stderr,
        )
    evaluate_checkpoint(ckpt, overrides, split=split, trust=ns.trust_checkpoint, allow=ns.allow)
    return 0


PREDICT_HELP = """usage: trainkit predict ckpt=PATH|RUN_DIR input=PATH [input=PATH ...] [output=FILE]
                        [top_k=K] [batch_size=N] [device=cpu|cuda] [--allow NAME] [--trust-checkpoint]

Predict for data the run never saw with the model of a checkpoint (a run directory: its
checkpoints/best.pt), rebuilt from the config stored in it as `trainkit eval` does. Inputs:

  input=new.pt / new.npy   a tensor (or a dict with 'x'; labels are not needed) of shape (N, *input_shape)
  input=new.csv            a table with the run's feature columns (a label column is ignored; an 'id' column names the rows)
  input=DIR or IMAGE.png   image files (a folder is searched recursively), through the run's eval transforms

Writes predictions.csv (or output=FILE): one row per input with its id or path, the prediction
(the class name, the labels, or the value), top-k columns with top_k=K, and one probability
column per class. output=FILE.pt or .npy writes tensors instead (see docs/predict_export.md).

examples:
  trainkit predict outputs/2026-11-22/14-03-11 input=new_digits.pt
  trainkit predict ckpt=outputs/2026-11-22/14-03-11/checkpoints/best.pt input=photos/ top_k=3 output=photos.csv
"""

EXPORT_HELP = """usage: trainkit export ckpt=PATH|RUN_DIR format=torchscript|onnx|safetensors [output=FILE]
                       [input=PATH] [--allow NAME] [--trust-checkpoint]

Export the model of a checkpoint, check the artefact against the PyTorch model on real inputs
(the run's test split, or input= as for predict) and write it only when the check passes
(default: RUN_DIR/export/best.torchscript.pt, best.onnx, or best.safetensors with best.yaml, the config).

  format=torchscript   torch.jit.trace; load with torch.jit.load
  format=onnx          dynamic batch dimension, checked with onnxruntime: pip install 'trainkit[onnx]'
  format=safetensors   the weights, and the config beside them as YAML: pip install 'trainkit[safetensors]'

examples:
  trainkit export ckpt=outputs/2026-11-22/14-03-11 format=onnx
  trainkit export ckpt=outputs/2026-11-22/14-03-11/checkpoints/best.pt format=torchscript output=model.pt
"""


def _checkpoint_args(cmd: str, args: list[str], own: tuple[str, ...]) -> tuple[argparse.Namespace, dict[str, list[str]], list[str]] | None:
    """predict/export: their options, their own `key=value`s (input= may repeat), and the config overrides."""
    ns, rest = parse([cmd, *args])
    if getattr(ns, "help", False):
        print(PREDICT_HELP if cmd == "predict" else EXPORT_HELP)
        return None
    _refuse_options(rest, cmd)
    mine: dict[str, list[str]] = {}
    overrides = []
    for a in rest:
        key, sep, value = a.partition("=")
        if not sep and "ckpt" not in mine:  # `trainkit predict RUN_DIR`
            key, value = "ckpt", a
        elif not sep:
            raise TrainkitError(f"cannot parse '{a}' for {cmd}; write key=value (see 'trainkit {cmd} --help')")
        if key in own:
            mine.setdefault(key, []).append(value)
        else:
            overrides.append(a)
    for key, values in mine.items():
        if key != "input" and len(values) > 1:
            raise TrainkitError(f"{key}= is given {len(values)} times; give it once")
    if not mine.get("ckpt", [""])[0]:
        raise TrainkitError(f"{cmd} needs a checkpoint: trainkit {cmd} ckpt=outputs/DATE/TIME/checkpoints/best.pt (or the run directory)")
    if ns.trust_checkpoint:
        print(
            "trainkit: warning: --trust-checkpoint unpickles the file in full: any code its author put in it "
            "runs now, with your permissions. Use it only for checkpoints from people you trust.",
            file=sys.stderr,
        )
    from trainkit.config import prepare_overrides

    return ns, mine, prepare_overrides(overrides)


def _count(key: str, values: dict[str, list[str]]) -> int | None:
    """top_k=3, batch_size=256: a whole number, or None when not given."""
    if key not in values:
        return None
    value = values[key][0]
    if not value.strip().isdigit():
        raise TrainkitError(f"{key}={value} must be a whole number, e.g. {key}=3")
    return int(value)


def cmd_predict(args: list[str]) -> int:
    parsed = _checkpoint_args("predict", args, ("ckpt", "input", "output", "top_k", "batch_size"))
    if parsed is None:
        return 0
    from trainkit.predict import predict_checkpoint

    ns, mine, overrides = parsed
    predict_checkpoint(mine["ckpt"][0], mine.get("input", []), output=mine.get("output", [None])[0],
                       overrides=overrides, top_k=_count("top_k", mine), batch_size=_count("batch_size", mine),
                       trust=ns.trust_checkpoint, allow=ns.allow)
    return 0


def cmd_export(args: list[str]) -> int:
    parsed = _checkpoint_args("export", args, ("ckpt", "format", "output", "input"))
    if parsed is None:
        return 0
    from trainkit.export import FORMATS, export_checkpoint

    ns, mine, overrides = parsed
    if "format" not in mine:
        raise TrainkitError(f"export needs a format: format={'|'.join(FORMATS)}")
    export_checkpoint(mine["ckpt"][0], mine["format"][0], output=mine.get("output", [None])[0], overrides=overrides,
                      inputs=mine.get("input", []), trust=ns.trust_checkpoint, allow=ns.allow)
    return 0


LS_HELP = """usage: trainkit ls [GROUP | model=torchvision | model=timm] [--config-dir DIR]

List every config group, its options and each option's one-line description (the header
comment of its YAML file). '*' marks the default; options from --config-dir are marked.
`model=torchvision` / `model=timm` list the model names that library builds (model.name=NAME).

examples:
  trainkit ls
  trainkit ls optim
  trainkit ls model=torchvision
  trainkit ls model --config-dir my_configs
"""

SHOW_HELP = """usage: trainkit show [overrides...] [--config-dir DIR] [--yaml]

Compose the config exactly as `trainkit train` would and print it as a tree, without training
(nothing is built and no run directory is made). A bad key or value exits 2 with the error a
run would give. --yaml prints plain YAML instead (also: `trainkit train ... --cfg job`).

examples:
  trainkit show
  trainkit show model=cnn optim=adam optim.lr=3e-4
  trainkit show experiment=mnist_cnn --yaml
"""

CHECK_HELP = """usage: trainkit check [overrides...] [--config-dir DIR] [--layers]

A real dry run: build the data, model, loss, optimizer and scheduler of the run these overrides
describe, push one training batch forward and backward, print the shapes at each boundary, the
parameter count, the batch's memory and an estimated epoch time, then exit. A mismatch stops
with the same error the run would hit (exit 2). No run directory is written.

  --layers    also a table of every layer: output shape, parameters and forward FLOPs on the batch

examples:
  trainkit check
  trainkit check --layers model=cnn data=fashion_mnist
  trainkit check model=cnn data.batch_size=256
  trainkit check --config-dir my_configs model=my_net data=my_data
"""

TUNE_HELP = """usage: trainkit tune lr [overrides...] [output=DIR] [--config-dir DIR]

The learning-rate range test: build the run these overrides describe (its initial weights) and train
tune.steps steps (200) while the lr rises exponentially from tune.min_lr (1e-6) to tune.max_lr (1),
stopping early when the smoothed loss diverges. Writes lr_find.csv and lr_find.png (matplotlib:
pip install 'trainkit[plot]') into outputs/lr_find/DATE/TIME (or output=DIR), prints the suggested lr
and the override to train with. optim.lr=auto on `trainkit train` runs the same test first.

examples:
  trainkit tune lr
  trainkit tune lr optim=adam tune.steps=100 output=lr_adam
"""

PLOT_HELP = """usage: trainkit plot RUN_DIR [RUN_DIR ...] [--out FILE] [--top N]

Plot loss, accuracy (every metric in metrics.csv) and lr over epochs. One run directory:
curves.png inside it. Several run directories, or a sweep directory: one comparison figure
(comparison.png in the sweep directory, or in the current directory for several runs; --out
sets the file) of the best N runs by their monitor (--top, default 10; 0 draws all), the
others named on stderr. A directory with nothing to plot among several is skipped with a note.
Needs matplotlib: pip install 'trainkit[plot]'.

examples:
  trainkit plot outputs/2026-11-22/14-03-11
  trainkit plot outputs/multirun/2026-11-22/15-00-00
  trainkit plot outputs/2026-11-22/14-03-11 outputs/2026-11-22/14-10-42 --out sgd_vs_adam.png
"""


def _config_command(cmd: str, args: list[str], text: str) -> tuple[argparse.Namespace, list[str]] | None:
    """ls/show/check: their options and overrides; None when the command's help was printed."""
    ns, rest = parse([cmd, *args])
    if getattr(ns, "help", False):
        print(text)
        return None
    _refuse_options(rest, cmd)
    return ns, rest


def cmd_ls(args: list[str]) -> int:
    parsed = _config_command("ls", args, LS_HELP)
    if parsed is None:
        return 0
    from trainkit.catalog import list_groups

    ns, rest = parsed
    if len(rest) > 1:
        raise TrainkitError(f"ls takes at most one group, got: {' '.join(rest)}; e.g. trainkit ls optim")
    print(list_groups(rest[0] if rest else None, getattr(ns, "config_dir", None)), end="")
    return 0


def cmd_show(args: list[str]) -> int:
    parsed = _config_command("show", args, SHOW_HELP)
    if parsed is None:
        return 0
    from trainkit.catalog import show
    from trainkit.config import prepare_overrides

    ns, rest = parsed
    show(prepare_overrides(rest), getattr(ns, "config_dir", None), as_yaml=ns.yaml)
    return 0


def cmd_check(args: list[str]) -> int:
    parsed = _config_command("check", args, CHECK_HELP)
    if parsed is None:
        return 0
    from trainkit.check import dry_run
    from trainkit.config import prepare_overrides

    ns, rest = parsed
    dry_run(prepare_overrides(rest), getattr(ns, "config_dir", None), layers=ns.layers)
    return 0


def cmd_tune(args: list[str]) -> int:
    parsed = _config_command("tune", args, TUNE_HELP)
    if parsed is None:
        return 0
    ns, rest = parsed
    if not rest or rest[0] != "lr":
        raise TrainkitError(f"tune needs what to tune: trainkit tune lr [overrides] (got {' '.join(rest[:1]) or 'nothing'})")
    from trainkit.config import prepare_overrides
    from trainkit.lr_find import tune_lr

    tune_lr(prepare_overrides(rest[1:]), getattr(ns, "config_dir", None))
    return 0


def cmd_plot(args: list[str]) -> int:
    ns, dirs = parse(["plot", *args])
    if getattr(ns, "help", False):
        print(PLOT_HELP)
        return 0
    from trainkit.plot import TOP, plot

    _refuse_options(dirs, "plot")
    top = TOP
    if hasattr(ns, "top"):
        value = ns.top or ""
        if not value.isdigit():
            raise TrainkitError(f"--top needs a number of runs, got '{value}': --top 10 (0 draws all)")
        top = int(value)
    out = getattr(ns, "out", None)
    if hasattr(ns, "out") and out is None:
        raise TrainkitError("--out needs a file name: --out comparison.png")
    if not dirs:
        raise TrainkitError("plot needs a run or sweep directory: trainkit plot outputs/DATE/TIME")
    for path in plot(dirs, out, top):
        print(f"wrote {path}")
    return 0


def complete(args: list[str]) -> int:
    """Answer bash's completion query for `trainkit <cmd> ...` (see trainkit.completion)."""
    from trainkit.completion import query

    return query(args, list(COMMANDS), lambda hydra_args: run_hydra(hydra_args).exit_code)


def cmd_report(args: list[str]) -> int:
    from trainkit.report import cmd_report as report_command

    _, rest = parse(["report", *args])  # --debug; report reads its own --format
    return report_command(rest)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "export": cmd_export,
    "ls": cmd_ls,
    "show": cmd_show,
    "check": cmd_check,
    "tune": cmd_tune,
    "plot": cmd_plot,
    "report": cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trainkit` console script."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `trainkit ls | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def console() -> None:
    """The `trainkit` console script and `python -m trainkit`: main(), then leave without torch's teardown."""
    from trainkit.shutdown import leave

    try:
        code: object = main()
    except SystemExit as exc:
        code = exc.code
    leave(code)


def _main(args: list[str]) -> int:
    words = [a for a in args if a != "--debug"]  # `trainkit --debug train ...`: the command comes after it
    if not words or words[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if words[0] in ("--version", "-V", "version"):
        print(f"trainkit {__version__}")
        return 0
    if any(a in ("-sc", "--shell-completion") or a.startswith("--shell-completion=") for a in args[:2]):
        # `trainkit -sc ...` (what the bash script calls) or `trainkit train -sc ...`
        return complete(args)
    cmd = words[0]
    handler = COMMANDS.get(cmd)
    try:
        if handler is None:
            raise TrainkitError(
                f"unknown command '{cmd}'{suggest(cmd, COMMANDS)}; commands: {', '.join(COMMANDS)} (see 'trainkit --help')"
            )
        at = args.index(cmd)
        if at:  # `trainkit --debug CMD`: the flag before the command (after it, the command's parser reads it)
            os.environ["TRAINKIT_DEBUG"] = "1"
        return handler(args[at + 1:])
    except TrainkitError as exc:
        if debug_enabled():
            raise
        return report(exc)
    except KeyboardInterrupt:
        print("trainkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    console()
