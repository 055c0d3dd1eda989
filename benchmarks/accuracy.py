"""Accuracy: the same recipe trained through trainkit and through a plain hand-written loop.

    nice python benchmarks/accuracy.py                  # 4 data sets x 3 seeds (~3 min on 2 busy cores)
    python benchmarks/accuracy.py --only digits --seeds 5

Both sides get the same tensors (one fixed train/val/test split per data set, written to a file that
trainkit reads with data=tensor_file), the same model class and arguments (trainkit.models), the same
optimizer and hyper-parameters, batch size and epochs; each seed seeds the initial weights and the batch
order. trainkit runs `trainkit train` in this process (trainkit.train); the hand loop is the usual
shuffle / forward / loss / zero_grad / backward / step, with a validation pass per epoch.

Each side reports the test metric of two models, so that like is compared with like:
  last  the weights after the last epoch (a hand loop's usual number; trainkit: checkpoints/last.pt)
  best  the epoch with the best validation metric (trainkit's best.pt, by the task's monitor, ties to
        the lower val_loss; the hand loop keeps a copy of its weights at its best epoch by that rule)
and one more trainkit run per seed with trainer.monitor=val_loss, the default before tasks named their
own monitor, for its best.pt.
A trainkit mean outside the hand loop's min..max over the seeds is flagged with `!`.

Data sets (all offline): scikit-learn's digits (1,797 8x8 images, 10 classes), breast_cancer (569, binary),
diabetes (442, regression: RMSE on the standardised target), and shifted-digits: 7,188 16x16 images made
here, deterministically, by placing each digit at random offsets on a larger canvas with noise (4 copies
per digit; train, val and test take different source digits).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from _common import machine

SPLIT_SEED = 0  # one fixed split: the seeds vary the initial weights and the batch order only


@dataclass
class Recipe:
    name: str
    task: str  # classification | binary | regression
    model: str  # mlp | cnn
    model_args: dict[str, Any]
    optim: str  # sgd | adam
    lr: float
    epochs: int
    batch_size: int
    momentum: float = 0.9
    overrides: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return "rmse" if self.task == "regression" else "acc"

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.model_args.items())
        return f"{self.model}({args}), {self.optim} lr {self.lr}, batch {self.batch_size}, {self.epochs} epochs"


RECIPES = {
    "digits": Recipe("digits", "classification", "mlp", {"hidden": [128]}, "sgd", 0.1, 20, 64),
    "breast_cancer": Recipe("breast_cancer", "binary", "mlp", {"hidden": [32]}, "adam", 1e-3, 30, 32),
    "diabetes": Recipe("diabetes", "regression", "mlp", {"hidden": [64]}, "adam", 1e-3, 60, 32),
    "shifted_digits": Recipe("shifted_digits", "classification", "cnn", {"channels": [16, 32], "hidden": 64},
                             "adam", 1e-3, 12, 64),
}


# ------------------------------------------------------------------------------ data


def split_indices(n: int, val: float, test: float, seed: int) -> tuple[Any, Any, Any]:
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = round(n * val), round(n * test)
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def shifted_digits(copies: int = 4, size: int = 16, noise: float = 0.15, seed: int = 0) -> tuple[Any, Any, Any]:
    """(x, y, source): each 8x8 digit `copies` times at random offsets on a size x size canvas, with noise."""
    import torch

    from trainkit.data.embedded import digits

    base = digits().tensors
    g = torch.Generator().manual_seed(seed)
    n = len(base[0])
    x = torch.zeros(n * copies, 1, size, size)
    offsets = torch.randint(0, size - 8 + 1, (n * copies, 2), generator=g)
    for i in range(n * copies):
        r, c = offsets[i].tolist()
        x[i, 0, r : r + 8, c : c + 8] = base[0][i % n, 0]
    x = (x + noise * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, base[1].repeat(copies), torch.arange(n).repeat(copies)


def load(name: str) -> dict[str, Any]:
    """{"x", "y", "x_val", "y_val", "x_test", "y_test"}: the one split both sides train and test on."""
    from trainkit.data import embedded

    if name == "shifted_digits":
        x, y, source = shifted_digits()
        train, val, test = split_indices(int(source.max()) + 1, 0.1, 0.2, SPLIT_SEED)  # split the source digits
        pick = {k: (source[:, None] == idx[None, :]).any(1) for k, idx in (("", train), ("_val", val), ("_test", test))}
        return {f"{t}{k}": (x if t == "x" else y)[m] for k, m in pick.items() for t in ("x", "y")}
    dataset = {"digits": embedded.digits, "breast_cancer": embedded.breast_cancer, "diabetes": embedded.diabetes}[name]()
    x, y = dataset.tensors
    train, val, test = split_indices(len(x), 0.1, 0.2, SPLIT_SEED)
    return {"x": x[train], "y": y[train], "x_val": x[val], "y_val": y[val], "x_test": x[test], "y_test": y[test]}


# ------------------------------------------------------------------------------ the two sides


def through_trainkit(recipe: Recipe, data_file: Path, seed: int, workdir: Path, extra: tuple[str, ...] = (),
                     last: bool = True) -> dict[str, float]:
    """`trainkit train` on the file, then `trainkit eval` of last.pt: {"best": test metric, "last": ...}."""
    from trainkit.api import evaluate, train  # (trainkit.evaluate is also a module's name)

    loss = {"classification": "cross_entropy", "binary": "bce_with_logits", "regression": "mse"}[recipe.task]
    model_args = [f"model.{k}={v}".replace(" ", "") for k, v in recipe.model_args.items()]
    optim = [f"optim={recipe.optim}", f"optim.lr={recipe.lr}"]
    if recipe.optim == "sgd":
        optim.append(f"optim.momentum={recipe.momentum}")
    overrides = [
        "data=tensor_file", f"data.path={data_file}", f"task={recipe.task}", f"loss={loss}",
        f"model={recipe.model}", *model_args, *optim, f"trainer.epochs={recipe.epochs}",
        f"data.batch_size={recipe.batch_size}", f"seed={seed}", "device=cpu", "trainer.progress=none",
        "metrics.enabled=false", "logger=csv", *recipe.overrides, *extra,
    ]
    here = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            summary = train(overrides)
            at_end = evaluate(str(Path(summary["run_dir"]) / "checkpoints" / "last.pt")) if last else summary
    finally:
        os.chdir(here)
    key = f"test_{recipe.metric}"
    return {"best": float(summary[key]), "last": float(at_end[key]), "best_epoch": summary["best_epoch"]}


def by_hand(recipe: Recipe, blob: dict[str, Any], seed: int) -> dict[str, float]:
    """The plain loop: seed, model, optimizer, shuffled batches, val each epoch; test last and best-by-val."""
    import torch
    from torch import nn

    from trainkit.models import CNN, MLP

    torch.manual_seed(seed)
    x, y = blob["x"], blob["y"]
    out_features = 1 if recipe.task in ("binary", "regression") else int(y.max()) + 1
    model_cls = {"mlp": MLP, "cnn": CNN}[recipe.model]
    model = model_cls(in_shape=list(x.shape[1:]), out_features=out_features, **recipe.model_args)
    if recipe.optim == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    if recipe.task == "classification":
        loss_fn: Any = nn.CrossEntropyLoss()
    elif recipe.task == "binary":
        bce = nn.BCEWithLogitsLoss()

        def loss_fn(out: Any, t: Any) -> Any:
            return bce(out.squeeze(1), t.float())
    else:
        loss_fn = nn.MSELoss()

    def score(xs: Any, ts: Any) -> tuple[float, float]:  # (accuracy or RMSE, mean loss)
        model.eval()
        with torch.no_grad():
            out = model(xs)
            loss = float(loss_fn(out, ts))
        model.train()
        if recipe.task == "classification":
            return (out.argmax(1) == ts).float().mean().item(), loss
        if recipe.task == "binary":
            return ((out.squeeze(1) > 0).long() == ts).float().mean().item(), loss
        return math.sqrt(nn.functional.mse_loss(out, ts).item()), loss

    higher = recipe.task != "regression"
    g = torch.Generator().manual_seed(seed)
    best_val, best_loss, best_state, best_epoch = None, math.inf, None, 0
    for epoch in range(1, recipe.epochs + 1):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        v, val_loss = score(blob["x_val"], blob["y_val"])
        # trainkit's rule: a strict improvement, or a tie with a lower validation loss (val_acc on a
        # small split ties often; the lower loss is the more confident of the tied epochs)
        better = best_val is None or (v > best_val if higher else v < best_val)
        if better or (v == best_val and val_loss < best_loss):
            best_val, best_loss, best_state, best_epoch = v, val_loss, copy.deepcopy(model.state_dict()), epoch
    last = score(blob["x_test"], blob["y_test"])[0]
    model.load_state_dict(best_state)
    return {"best": score(blob["x_test"], blob["y_test"])[0], "last": last, "best_epoch": best_epoch}


# ------------------------------------------------------------------------------ the table


def pm(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {std:.4f}"


def flag(tk: list[float], hand: list[float]) -> str:
    """'!' when trainkit's mean lies outside the hand loop's min..max."""
    mean = statistics.fmean(tk)
    return "" if min(hand) - 1e-9 <= mean <= max(hand) + 1e-9 else " !"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--only", default="", help="comma list of data sets (default: all): " + ", ".join(RECIPES))
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both sides")
    p.add_argument("--epochs", type=int, default=0, help="train every recipe this many epochs (default: its own)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    names = [n for n in (args.only.split(",") if args.only else RECIPES) if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown data set {unknown[0]}; choose from {', '.join(RECIPES)}")
    print(machine(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="trainkit-accuracy-"))
    rows = []
    start = time.perf_counter()
    for name in names:
        recipe = RECIPES[name]
        if args.epochs:
            recipe = replace(recipe, epochs=args.epochs)
        blob = load(name)
        data_file = tmp / f"{name}.pt"
        torch.save(blob, data_file)
        results: dict[str, dict[str, list[float]]] = {"trainkit": {}, "hand": {}, "val_loss": {}}
        for seed in range(args.seeds):
            for side in results:
                if side == "hand":
                    r = by_hand(recipe, blob, seed)
                else:
                    extra = ("trainer.monitor=val_loss",) if side == "val_loss" else ()
                    r = through_trainkit(recipe, data_file, seed, tmp, extra, last=side == "trainkit")
                for k, v in r.items():
                    results[side].setdefault(k, []).append(float(v))
                print(f"  {name} seed {seed} {side:8s}: best {r['best']:.4f} (epoch {r['best_epoch']}), "
                      f"last {r['last']:.4f}", flush=True)
        tk, hand, old = results["trainkit"], results["hand"], results["val_loss"]
        sizes = f"{len(blob['x'])}/{len(blob['x_val'])}/{len(blob['x_test'])}"
        metric = "test RMSE (lower is better)" if recipe.metric == "rmse" else "test accuracy"
        rows.append(f"| {name} ({sizes}) | {recipe.describe()} | {metric} | {pm(hand['last'])} | "
                    f"{pm(tk['last'])}{flag(tk['last'], hand['last'])} | {pm(hand['best'])} | "
                    f"{pm(tk['best'])}{flag(tk['best'], hand['best'])} | {pm(old['best'])} |")
    print(f"\n{args.seeds} seeds each, mean ± sample std; {time.perf_counter() - start:.0f} s in all\n")
    print("| data set (train/val/test) | recipe | metric | hand loop, last epoch | trainkit, last.pt | "
          "hand loop, best val epoch | trainkit, best.pt | trainkit, best.pt by val_loss |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
