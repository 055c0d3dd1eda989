"""The `trainkit` command: parse the subcommand, check the config, hand the rest to Hydra.

Nothing here imports torch at start-up, so `trainkit --help`, `ls` and `show` answer instantly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from trainkit import __version__
from trainkit.errors import TrainkitError, debug_enabled, report, suggest

USAGE = f"""trainkit {__version__}: train PyTorch models from composed YAML configs.

usage: trainkit <command> [overrides...] [--debug]

commands:
  train   train a model          trainkit train model=cnn optim=adam optim.lr=1e-3 trainer.epochs=5
                                 trainkit train -m optim=sgd,adam optim.lr=0.1,0.01   (a sweep)
  eval    evaluate a checkpoint  trainkit eval ckpt=outputs/DATE/TIME/checkpoints/best.pt [split=val]

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

examples:
  trainkit train
  trainkit train model=mlp optim=sgd optim.lr=0.05 trainer.epochs=20
  trainkit train data=mnist model=cnn device=cuda device.precision=bf16

Each run writes outputs/YYYY-MM-DD/HH-MM-SS/ with checkpoints/, metrics.csv and summary.json.
"""

EVAL_HELP = """usage: trainkit eval ckpt=PATH [split=test|val|train] [overrides...]

Rebuild the model from the config stored in the checkpoint, evaluate it on a split (test by
default), print the metrics and write eval.json into the checkpoint's run directory.

examples:
  trainkit eval ckpt=outputs/2026-11-22/14-03-11/checkpoints/best.pt
  trainkit eval ckpt=outputs/2026-11-22/14-03-11/checkpoints/last.pt split=val device=cpu
"""

# Hydra flags that print or complete rather than run: no pre-flight composition for them.
HYDRA_INFO_FLAGS = {"--cfg", "-c", "--info", "-i", "--shell-completion", "-sc", "--hydra-help", "--resolve", "--package", "-p"}


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
    """Compose and validate before Hydra starts anything, so a typo costs no run directory."""
    from trainkit.config import compose, expand_sweep, validate

    if multirun:
        for job in expand_sweep(overrides):
            validate(compose(job, user_config_dir=config_dir))
    else:
        validate(compose(overrides, user_config_dir=config_dir))


def cmd_train(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(TRAIN_HELP)
        return 0
    info_only = any(a.split("=")[0] in HYDRA_INFO_FLAGS for a in args)
    if not info_only:
        overrides, config_dir, multirun = _split_flags(args)
        preflight(overrides, config_dir, multirun)
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: one run dir for all ranks
            from trainkit.distributed import torchrun_hydra_args

            args = torchrun_hydra_args(args, overrides, config_dir, multirun)
    return run_hydra(args)


def run_hydra(args: list[str]) -> int:
    """Run the Hydra app (run or multirun) with our task function."""
    import hydra

    from trainkit.config import config_dir

    if debug_enabled():
        os.environ["HYDRA_FULL_ERROR"] = "1"
    exit_code = 0

    def task(cfg):  # type: ignore[no-untyped-def]
        nonlocal exit_code
        from pathlib import Path

        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from trainkit.run import train

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        try:
            summary = train(cfg, Path(hc.runtime.output_dir), dict(hc.runtime.choices))
        except TrainkitError as exc:
            if debug_enabled():
                raise
            code = report(exc)
            if not multirun:
                raise SystemExit(code) from None
            exit_code = 1
            return float("nan")
        return summary.get("best_value")

    main_fn = hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(task)
    saved = sys.argv
    sys.argv = ["trainkit", *args]
    try:
        main_fn()
    finally:
        sys.argv = saved
    return exit_code


def cmd_eval(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(EVAL_HELP)
        return 0
    ckpt = None
    split = "test"
    trust = False
    overrides = []
    for a in args:
        if a.startswith("ckpt="):
            ckpt = a.split("=", 1)[1]
        elif a.startswith("split="):
            split = a.split("=", 1)[1]
        elif a == "--trust-checkpoint":
            trust = True
        elif a.startswith("-"):
            raise TrainkitError(f"unknown option '{a}' for eval; see 'trainkit eval --help'")
        else:
            overrides.append(a)
    if not ckpt:
        raise TrainkitError("eval needs a checkpoint: trainkit eval ckpt=outputs/DATE/TIME/checkpoints/best.pt")
    from trainkit.run import evaluate_checkpoint

    evaluate_checkpoint(ckpt, overrides, split=split, trust=trust)
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trainkit` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        os.environ["TRAINKIT_DEBUG"] = "1"
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] in ("--version", "-V", "version"):
        print(f"trainkit {__version__}")
        return 0
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
