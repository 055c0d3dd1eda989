"""Overhead: trainkit's training loop against the loops a user writes by hand, same tensors, same model.

    python benchmarks/overhead.py                       # MLP 784-256-10, batch 64, SGD, CPU
    python benchmarks/overhead.py --shape cnn --n 8000  # a CNN on 1x28x28 images
    python benchmarks/overhead.py --shape digits        # the default digits run's shapes

Contenders (each trains its own copy of the same initial model, one epoch per round, interleaved):
  seeds_dataloader  DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True) + the five lines
  hand_slicing      randperm, then X[idx], y[idx] slices + the five lines
  trainkit          trainkit's Run (composed config, TensorLoader, Loop) timing one train_one_epoch
                    exactly as fit() does for train_samples_per_s (what metrics.csv records)
  trainkit_unfused  (--unfused) the same with +optim.fused=false: torch's default optimizer step

The score is train samples per second over one epoch; the table prints medians and ratios.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from pathlib import Path

from _common import REPO, Clock, interleave, machine, table


def make_tensors(n: int, shape: tuple[int, ...], classes: int, seed: int):  # type: ignore[no-untyped-def]
    """Learnable synthetic data: labels are the argmax of a fixed random projection."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    w = torch.randn(x[0].numel(), classes, generator=g)
    y = (x.reshape(n, -1) @ w).argmax(1)
    return x, y


def tensor_file_config(path: Path) -> tuple[list[str], dict | None]:
    """Overrides for data=tensor_file when the project has it; else a dataset node of our own."""
    if (REPO / "configs" / "data" / "tensor_file.yaml").exists():
        return ["data=tensor_file", f"data.path={path}"], None
    return [], {"_target_": "_common_data.load_tensor_file", "path": str(path)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=["mlp", "cnn", "digits"], default="mlp")
    p.add_argument("--n", type=int, default=30000, help="training samples per epoch")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for every contender")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--only", default="", help="comma list of contenders to run (default: all)")
    p.add_argument("--unfused", action="store_true",
                   help="also run trainkit with +optim.fused=false (torch's default for-loop optimizer step)")
    p.add_argument("--profile", action="store_true",
                   help="instead of timing, count the aten ops per step of each contender (torch.profiler)")
    args = p.parse_args()

    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(args.threads)
    shape, model_ov, classes = {
        "mlp": ((784,), ["model=mlp", "model.hidden=[256]"], 10),
        "cnn": ((1, 28, 28), ["model=cnn"], 10),
        "digits": ((1, 8, 8), ["model=mlp"], 10),
    }[args.shape]
    x, y = make_tensors(args.n, shape, classes, seed=0)
    xe, ye = make_tensors(max(args.n // 10, args.batch), shape, classes, seed=1)

    from omegaconf import open_dict

    from trainkit.config import compose
    from trainkit.loop import train_one_epoch
    from trainkit.run import Run

    tmp = Path(tempfile.mkdtemp(prefix="trainkit-bench-"))
    path = tmp / "tensors.pt"
    torch.save({"x": x, "y": y, "x_val": xe, "y_val": ye, "x_test": xe, "y_test": ye}, path)
    data_ov, node = tensor_file_config(path)
    overrides = [*data_ov, *model_ov, "optim=sgd", f"optim.lr={args.lr}", "device=cpu",
                 f"data.batch_size={args.batch}", "trainer.progress=none", "trainer.epochs=1000000",
                 "data.loader=memory",
                 f"data.input_shape={list(shape)}", f"data.num_classes={classes}"]

    def build_run(extra: list[str], name: str) -> Run:
        cfg = compose([*overrides, *extra])
        if node is not None:
            with open_dict(cfg):
                cfg.data.dataset = node
        run = Run(cfg, tmp / name)
        run.setup()
        return run

    cpu: dict[str, list[float]] = {}

    def epoch_fn(run: Run, name: str):  # type: ignore[no-untyped-def]
        def trainkit_epoch() -> float:
            # What fit() times for train_samples_per_s: set_epoch, then one train_one_epoch.
            state = run.state
            run.data.train.set_epoch(state.epoch, 0)
            with Clock() as c:
                train_one_epoch(run.loop, run.data.train, state, state.epoch, state.epoch + 1)
            state.epoch += 1
            state.batch_in_epoch = 0
            n = run.data.train.num_samples
            cpu.setdefault(name, []).append(n / c.cpu)
            return n / c.wall

        return trainkit_epoch

    run = build_run([], "run")
    init = copy.deepcopy(run.raw_model.state_dict())

    def make_model():  # type: ignore[no-untyped-def]
        model = copy.deepcopy(run.raw_model)
        model.load_state_dict(init)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        return model, opt

    seeds_model, seeds_opt = make_model()
    seeds_loader = DataLoader(TensorDataset(x, y), batch_size=args.batch, shuffle=True)

    def seeds_epoch() -> float:
        seeds_model.train()
        with Clock() as c:
            for xb, yb in seeds_loader:
                out = seeds_model(xb)
                loss = F.cross_entropy(out, yb)
                seeds_opt.zero_grad()
                loss.backward()
                seeds_opt.step()
        cpu.setdefault("seeds_dataloader", []).append(len(x) / c.cpu)
        return len(x) / c.wall

    hand_model, hand_opt = make_model()

    def hand_epoch() -> float:
        hand_model.train()
        with Clock() as c:
            perm = torch.randperm(len(x))
            for i in range(0, len(x), args.batch):
                idx = perm[i : i + args.batch]
                out = hand_model(x[idx])
                loss = F.cross_entropy(out, y[idx])
                hand_opt.zero_grad()
                loss.backward()
                hand_opt.step()
        cpu.setdefault("hand_slicing", []).append(len(x) / c.cpu)
        return len(x) / c.wall

    contenders = {"seeds_dataloader": seeds_epoch, "hand_slicing": hand_epoch,
                  "trainkit": epoch_fn(run, "trainkit")}
    if args.unfused:
        unfused = build_run(["+optim.fused=false"], "run_unfused")
        unfused.raw_model.load_state_dict(init)
        contenders["trainkit_unfused"] = epoch_fn(unfused, "trainkit_unfused")
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only.split(",")}
    print(f"overhead: shape={args.shape} n={args.n} batch={args.batch} reps={args.reps} "
          f"data={'data=tensor_file' if node is None else 'own tensor-file factory (no data=tensor_file)'}")
    print(f"machine: {machine()}")
    if args.profile:
        profile(contenders, args.n // args.batch)
        return
    results = interleave(contenders, args.reps)
    baselines = [k for k in ("seeds_dataloader", "hand_slicing") if k in results] or list(results)
    print("\nwall clock (what train_samples_per_s reports):")
    print(table(results, "samples/s", baselines))
    print("\nthread CPU time (insensitive to other processes on the machine):")
    print(table({k: cpu[k][-args.reps :] for k in results}, "samples/CPU-s", baselines))


def profile(contenders: dict, steps: int) -> None:
    """Aten ops per training step and where their CPU time goes: deterministic, unlike the timings."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name, fn in contenders.items():
        fn()  # warm-up epoch
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
        top = top[: int(os.environ.get("TOP", 8))]
        calls = sum(e.count for e in events)
        print(f"{name}: {calls / steps:.1f} aten calls per step (incl. nested); top self-CPU ops:")
        total = sum(e.self_cpu_time_total for e in events) or 1
        for e in top:
            print(f"    {e.key:<36} {e.count / steps:5.1f}/step  {100 * e.self_cpu_time_total / total:5.1f}%")


if __name__ == "__main__":
    main()
