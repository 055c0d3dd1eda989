"""`from trainkit import train, evaluate, tune_lr`: the CLI's commands as functions for scripts and notebooks.

`train` goes through the very code path of `trainkit train` (pre-flight check, Hydra's run
directory under outputs/, the same files) and hands back the summary instead of exiting; a user
error raises TrainkitError instead of ending the interpreter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError


def train(overrides: list[str] | None = None, config_dir: str | None = None) -> dict[str, Any]:
    """Run `trainkit train OVERRIDES` in this process and return its summary dict.

    The run directory is the one the CLI would make (outputs/DATE/TIME, relative to the current
    directory); its path is in the summary's `run_dir`. Raises TrainkitError for a config or data
    mistake, with the message the CLI would print.
    """
    from trainkit.cli import train_runs

    args = list(overrides or [])
    if any(a in ("-m", "--multirun") for a in args):
        raise TrainkitError(
            "train() runs one job; for a sweep call train() in a loop or use 'trainkit train -m'"
        )
    if config_dir is not None:
        args = ["--config-dir", str(config_dir), *args]
    try:
        runs = train_runs(args)
    except SystemExit as exc:  # Hydra itself exits (a flag it refuses); a function should raise
        raise TrainkitError(
            f"trainkit train stopped with exit code {exc.code}", exit_code=int(exc.code or 1)
        ) from None
    if runs.errors:  # the CLI reports a failed run and exits; a function raises its error
        raise runs.errors[-1]
    if runs.stopped:
        raise TrainkitError(f"trainkit train stopped with exit code {runs.stopped}", exit_code=runs.stopped)
    if not runs.summaries:
        raise TrainkitError(
            "trainkit train finished without a run (was --cfg or --help among the overrides?)"
        )
    summary = runs.summaries[-1]
    # What summary.json holds, as plain JSON types (paths and numpy scalars become str/float).
    path = Path(summary.get("run_dir", "")) / "summary.json"
    if path.is_file():
        return json.loads(path.read_text())
    return summary


def evaluate(ckpt: str, overrides: list[str] | None = None, allow: list[str] | None = None) -> dict[str, Any]:
    """Run `trainkit eval ckpt=CKPT OVERRIDES` and return its metrics (also written to eval_CKPT_SPLIT.json and eval.json).

    `split=val` (or train/test) among the overrides picks the split, as on the command line. The
    checkpoint's config builds only the `_target_`s trainkit's own configs name, plus `allow` (the
    CLI's --allow: exact names or `pkg.` prefixes); anything else raises a ConfigError (a TrainkitError).
    """
    from trainkit.evaluate import evaluate_checkpoint

    split = "test"
    trust = False
    names = list(allow or [])
    rest: list[str] = []
    it = iter(overrides or [])
    for ov in it:
        if ov.startswith("split="):
            split = ov.split("=", 1)[1]
        elif ov == "--trust-checkpoint":
            trust = True
        elif ov == "--allow":
            names.append(next(it, ""))
        elif ov.startswith("--allow="):
            names.append(ov.split("=", 1)[1])
        else:
            rest.append(ov)
    if not Path(ckpt).is_file():
        raise TrainkitError(
            f"checkpoint {ckpt} does not exist; give a path like outputs/DATE/TIME/checkpoints/best.pt"
        )
    return evaluate_checkpoint(str(ckpt), rest, split=split, trust=trust, allow=names)


def tune_lr(overrides: list[str] | None = None, config_dir: str | None = None) -> dict[str, Any]:
    """Run `trainkit tune lr OVERRIDES` (`output=DIR` among them picks the directory) and return its result.

    The suggested lr is under "lr", the directory holding lr_find.csv and lr_find.png under "dir".
    """
    from trainkit.config import prepare_overrides
    from trainkit.lr_find import tune_lr as range_test

    return range_test(prepare_overrides(list(overrides or [])), config_dir)


def predict(
    ckpt: str,
    input: str | list[str],  # noqa: A002 - the CLI's name for it
    output: str | None = None,
    overrides: list[str] | None = None,
    top_k: int | None = None,
    batch_size: int | None = None,
    allow: list[str] | None = None,
    trust: bool = False,
) -> dict[str, Any]:
    """Run `trainkit predict ckpt=CKPT input=INPUT ...` and return what it wrote.

    `ckpt` is a checkpoint or a run directory (its best.pt); `input` a tensor file, a CSV, or image
    files and folders (a list for several). The predictions go to `output` (predictions.csv in the
    current directory by default; .pt or .npy for tensors); the result names the file (`written`),
    the row count, the task and the class (or label) names. Bad input raises a TrainkitError.
    """
    from trainkit.predict import predict_checkpoint

    inputs = [input] if isinstance(input, (str, Path)) else list(input)
    return predict_checkpoint(str(ckpt), [str(i) for i in inputs], output=output, overrides=list(overrides or []),
                              top_k=top_k, batch_size=batch_size, trust=trust, allow=allow)


def export(
    ckpt: str,
    format: str,  # noqa: A002 - the CLI's name for it
    output: str | None = None,
    overrides: list[str] | None = None,
    input: str | None = None,  # noqa: A002
    allow: list[str] | None = None,
    trust: bool = False,
) -> dict[str, Any]:
    """Run `trainkit export ckpt=CKPT format=FORMAT ...`: the artefact, checked against the PyTorch model.

    Returns the files written and the check (`samples`, `max_abs_diff`, `tolerance`, `passed`). A model
    the format cannot hold raises ExportRefused (a TrainkitError) naming the reason and the formats that work.
    """
    from trainkit.export import export_checkpoint

    return export_checkpoint(str(ckpt), format, output=output, overrides=list(overrides or []),
                             inputs=[str(input)] if input else [], trust=trust, allow=allow)
