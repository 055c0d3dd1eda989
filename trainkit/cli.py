"""The `trainkit` command: parse the subcommand, check the config, hand the rest to Hydra.

Nothing here imports torch at start-up, so `trainkit --help`, `ls` and `show` answer instantly.
"""

from __future__ import annotations

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
  ls      list config groups     trainkit ls            trainkit ls optim
  show    print the config       trainkit show model=cnn optim=adam
  check   dry-run one batch      trainkit check data=mnist model=cnn
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
default), print the metrics and write eval.json into the checkpoint's run directory.

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


def _split_flags(args: list[str]) -> tuple[list[str], str | None, bool]:
    """Pull out the overrides, --config-dir and -m from a `train` argument list."""
    overrides: list[str] = []
    config_dir: str | None = None
    multirun = False
    it = iter(range(len(args)))
    skip = False
    for i in it:
        if skip:
            skip = False
            continue
        a = args[i]
        if a in ("-m", "--multirun"):
            multirun = True
        elif a in ("--config-dir", "-cd"):
            if i + 1 >= len(args):
                raise TrainkitError(f"{a} needs a directory: {a} DIR")
            config_dir, skip = args[i + 1], True
        elif a.startswith("--config-dir="):
            config_dir = a.split("=", 1)[1]
        elif a.startswith("-"):
            raise TrainkitError(f"unknown option '{a}' for train; see 'trainkit train --help'")
        else:
            overrides.append(a)
    if config_dir is not None and not os.path.isdir(config_dir):
        raise TrainkitError(f"--config-dir {config_dir} is not a directory; give the folder that holds your config groups")
    return overrides, config_dir, multirun


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
    if any(a in ("-h", "--help") for a in args):
        print(TRAIN_HELP)
        return Runs()
    from trainkit.config import prepare_overrides
    from trainkit.preflight import run_mode
    from trainkit.resume import split_resume

    args = prepare_overrides(args)  # data.root=~/datasets, nested ${..${..}}: forms Hydra refuses
    resume_spec, args = split_resume(args)
    if resume_spec is not None:
        return resume_train(resume_spec, args)
    if not _info_only(args):
        overrides, config_dir, multirun = _split_flags(args)
        multirun = run_mode(overrides, multirun)  # hydra.mode=MULTIRUN is a sweep without -m
        preflight(overrides, config_dir, multirun)
        # Hydra's argparse wants its flags first: `train a=1 --config-dir D b=2` would fail there.
        flags = (["-m"] if multirun else []) + (["--config-dir", config_dir] if config_dir else [])
        args = [*flags, *overrides]
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: one run dir for all ranks
            from trainkit.config import compose
            from trainkit.distributed import torchrun_hydra_args

            cfg = None if multirun else compose(overrides, user_config_dir=config_dir)  # a sweep is refused
            args = torchrun_hydra_args(args, cfg, multirun)
    return run_hydra(args)


def resume_train(spec: str, args: list[str]) -> Runs:
    """`trainkit train resume=RUN_DIR [safe overrides]`: continue the run in its own directory."""
    from trainkit.resume import plan

    if any(a in ("-m", "--multirun") for a in args):
        raise TrainkitError(
            "resume= continues one run; to finish a sweep, re-run it with trainer.skip_done=true "
            "hydra.sweep.dir=DIR"
        )
    allow: list[str] = []  # --allow PREFIX: what the refusal of a stored config's _target_ tells the user to add
    allow_loggers = False  # --allow-loggers: what the refusal of a stored remote logger tells the user to add
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--allow-loggers":
            allow_loggers = True
        elif a == "--allow":
            value = next(it, None)
            if value is None or value.startswith("-"):
                raise TrainkitError("--allow needs a package prefix: --allow my_pkg.")
            allow.append(value)
        elif a.startswith("--allow="):
            allow.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    resume = plan(spec, rest, allow=allow, allow_loggers=allow_loggers)  # takes the run directory's lock (run_hydra gives it back)
    return run_hydra(resume.hydra_args(), resume=resume)


def cmd_eval(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(EVAL_HELP)
        return 0
    ckpt = None
    split = "test"
    trust = False
    allow: list[str] = []
    overrides = []
    it = iter(args)
    for a in it:
        if a.startswith("ckpt="):
            ckpt = a.split("=", 1)[1]
        elif a.startswith("split="):
            split = a.split("=", 1)[1]
        elif a == "--trust-checkpoint":
            trust = True
        elif a == "--allow":
            value = next(it, None)
            if value is None or value.startswith("-"):
                raise TrainkitError("--allow needs a package prefix: --allow my_pkg.")
            allow.append(value)
        elif a.startswith("--allow="):
            allow.append(a.split("=", 1)[1])
        elif a.startswith("-"):
            raise TrainkitError(f"unknown option '{a}' for eval; see 'trainkit eval --help'")
        else:
            overrides.append(a)
    if not ckpt:
        raise TrainkitError("eval needs a checkpoint: trainkit eval ckpt=outputs/DATE/TIME/checkpoints/best.pt")
    from trainkit.config import prepare_overrides
    from trainkit.evaluate import evaluate_checkpoint

    overrides = prepare_overrides(overrides)

    if trust:
        print(
            "trainkit: warning: --trust-checkpoint unpickles the file in full: any code its author put in it "
            "runs now, with your permissions. Use it only for checkpoints from people you trust.",
            file=sys.stderr,
        )
    evaluate_checkpoint(ckpt, overrides, split=split, trust=trust, allow=allow)
    return 0


LS_HELP = """usage: trainkit ls [GROUP] [--config-dir DIR]

List every config group, its options and each option's one-line description (the header
comment of its YAML file). '*' marks the default; options from --config-dir are marked.

examples:
  trainkit ls
  trainkit ls optim
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

CHECK_HELP = """usage: trainkit check [overrides...] [--config-dir DIR]

A real dry run: build the data, model, loss, optimizer and scheduler of the run these overrides
describe, push one training batch forward and backward, print the shapes at each boundary, the
parameter count, the batch's memory and an estimated epoch time, then exit. A mismatch stops
with the same error the run would hit (exit 2). No run directory is written.

examples:
  trainkit check
  trainkit check model=cnn data.batch_size=256
  trainkit check --config-dir my_configs model=my_net data=my_data
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


def _wants_help(args: list[str], text: str) -> bool:
    if any(a in ("-h", "--help") for a in args):
        print(text)
        return True
    return False


def _config_args(args: list[str], cmd: str, allowed: tuple[str, ...] = ()) -> tuple[list[str], str | None, list[str]]:
    """Overrides, --config-dir and flags of ls/show/check, refusing a flag the command does not take."""
    from trainkit.catalog import split_config_dir

    rest, user_dir, flags = split_config_dir(args)
    unknown = [f for f in flags if f not in allowed]
    if unknown:
        raise TrainkitError(f"unknown option '{unknown[0]}' for {cmd}; see 'trainkit {cmd} --help'")
    return rest, user_dir, flags


def cmd_ls(args: list[str]) -> int:
    if _wants_help(args, LS_HELP):
        return 0
    from trainkit.catalog import list_groups

    rest, user_dir, _ = _config_args(args, "ls")
    if len(rest) > 1:
        raise TrainkitError(f"ls takes at most one group, got: {' '.join(rest)}; e.g. trainkit ls optim")
    print(list_groups(rest[0] if rest else None, user_dir), end="")
    return 0


def cmd_show(args: list[str]) -> int:
    if _wants_help(args, SHOW_HELP):
        return 0
    from trainkit.catalog import show
    from trainkit.config import prepare_overrides

    rest, user_dir, flags = _config_args(args, "show", allowed=("--yaml",))
    show(prepare_overrides(rest), user_dir, as_yaml="--yaml" in flags)
    return 0


def cmd_check(args: list[str]) -> int:
    if _wants_help(args, CHECK_HELP):
        return 0
    rest, user_dir, _ = _config_args(args, "check")
    from trainkit.check import dry_run
    from trainkit.config import prepare_overrides

    dry_run(prepare_overrides(rest), user_dir)
    return 0


def cmd_plot(args: list[str]) -> int:
    if _wants_help(args, PLOT_HELP):
        return 0
    from trainkit.plot import TOP, plot

    out: str | None = None
    top = TOP
    dirs: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--top" or a.startswith("--top="):
            value = a.split("=", 1)[1] if "=" in a else next(it, "")
            if not value.isdigit():
                raise TrainkitError(f"--top needs a number of runs, got '{value}': --top 10 (0 draws all)")
            top = int(value)
        elif a == "--out":
            out = next(it, None)
            if out is None:
                raise TrainkitError("--out needs a file name: --out comparison.png")
        elif a.startswith("--out="):
            out = a.split("=", 1)[1]
        elif a.startswith("-"):
            raise TrainkitError(f"unknown option '{a}' for plot; see 'trainkit plot --help'")
        else:
            dirs.append(a)
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

    return report_command(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "ls": cmd_ls,
    "show": cmd_show,
    "check": cmd_check,
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


def _main(args: list[str]) -> int:
    if "--debug" in args:
        args.remove("--debug")
        os.environ["TRAINKIT_DEBUG"] = "1"
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] in ("--version", "-V", "version"):
        print(f"trainkit {__version__}")
        return 0
    if any(a in ("-sc", "--shell-completion") or a.startswith("--shell-completion=") for a in args[:2]):
        # `trainkit -sc ...` (what the bash script calls) or `trainkit train -sc ...`
        return complete(args)
    cmd, rest = args[0], args[1:]
    handler = COMMANDS.get(cmd)
    try:
        if handler is None:
            raise TrainkitError(
                f"unknown command '{cmd}'{suggest(cmd, COMMANDS)}; commands: {', '.join(COMMANDS)} (see 'trainkit --help')"
            )
        return handler(rest)
    except TrainkitError as exc:
        if debug_enabled():
            raise
        return report(exc)
    except KeyboardInterrupt:
        print("trainkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
