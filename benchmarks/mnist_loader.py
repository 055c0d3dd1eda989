"""The seeds' torchvision loop against trainkit on an MNIST-shaped dataset (fake files, no network).

    python benchmarks/mnist_loader.py                 # 10,000 training images, 3 rounds
    python benchmarks/mnist_loader.py --n 60000       # full MNIST size (the seeds' loop is slow: minutes)

Writes MNIST files in torchvision's raw layout under a temp root, then trains the same MLP
(784-256-10, batch 64, SGD) one epoch per round, interleaved:
  seeds_torchvision    torchvision.datasets.MNIST(transform=Compose([ToTensor(), Normalize()])) + DataLoader
  trainkit_dataloader  trainkit with data=mnist data.loader=dataloader (the same per-sample pipeline)
  trainkit             trainkit with data=mnist (data.loader=auto picks the in-memory loader)
and times each trainkit set-up (dataset, preload, model) once, with and without the batched preload.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import interleave, machine, table, write_fake_mnist

MEAN, STD = 0.1307, 0.3081


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10000, help="training images (test: n // 6)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-setup", action="store_true", help="skip timing the trainkit set-ups")
    args = p.parse_args()

    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from trainkit.config import compose
    from trainkit.data import build as data_build
    from trainkit.loop import fit
    from trainkit.run import Run

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="trainkit-mnist-"))
    write_fake_mnist(tmp / "data", args.n, max(args.n // 6, args.batch))
    overrides = ["data=mnist", f"data.root={tmp / 'data'}", "data.download=false", "model=mlp",
                 "model.hidden=[256]", "optim=sgd", "optim.lr=0.01", "device=cpu",
                 f"data.batch_size={args.batch}",
                 "trainer.progress=none", "trainer.epochs=1000000"]

    def build(extra: list[str], name: str) -> tuple[Run, float]:
        t0 = time.perf_counter()
        run = Run(compose([*overrides, *extra]), tmp / name)
        run.setup()
        return run, time.perf_counter() - t0

    memory_run, memory_setup = build([], "memory")
    loader_run, loader_setup = build(["data.loader=dataloader"], "dataloader")
    init = memory_run.raw_model.state_dict()
    loader_run.raw_model.load_state_dict(init)

    def epoch_fn(run: Run):  # type: ignore[no-untyped-def]
        rows: list[dict] = []

        def one() -> float:
            s = run.state
            fit(run.loop, run.data.train, run.data.val, s, s.epoch + 1, "val_loss", rows.append)
            return float(rows[-1]["train_samples_per_s"])

        return one

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    seeds_ds = datasets.MNIST(str(tmp / "data"), train=True, download=False, transform=tf)
    seeds_loader = DataLoader(seeds_ds, batch_size=args.batch, shuffle=True)
    seeds_model = type(memory_run.raw_model)(**{"in_shape": [1, 28, 28], "out_features": 10, "hidden": [256]})
    seeds_model.load_state_dict(init)
    seeds_opt = torch.optim.SGD(seeds_model.parameters(), lr=0.01, momentum=0.9)

    def seeds_epoch() -> float:
        seeds_model.train()
        t0 = time.perf_counter()
        for x, y in seeds_loader:
            loss = F.cross_entropy(seeds_model(x), y)
            seeds_opt.zero_grad()
            loss.backward()
            seeds_opt.step()
        return len(seeds_ds) / (time.perf_counter() - t0)

    print(f"mnist_loader: n={args.n} batch={args.batch} reps={args.reps} "
          f"(trainkit chose: {memory_run.data.loader_kind}: {memory_run.data.info.get('loader_reason')})")
    print(f"machine: {machine()}")
    contenders = {"seeds_torchvision": seeds_epoch, "trainkit_dataloader": epoch_fn(loader_run),
                  "trainkit": epoch_fn(memory_run)}
    results = interleave(contenders, args.reps)
    print(table(results, "samples/s", ["seeds_torchvision"]), flush=True)
    if not args.no_setup:
        fast = data_build.vision_tensors
        # the per-sample preload, for comparison
        data_build.vision_tensors = lambda ds, limit_bytes=None: None
        try:
            _, slow_setup = build([], "memory_per_sample_preload")
        finally:
            data_build.vision_tensors = fast
        print("\ntrainkit set-up (compose, dataset, preload, model), one run each, seconds:")
        print(f"  data.loader=dataloader             {loader_setup:7.2f}")
        print(f"  memory, batched ToTensor/Normalize {memory_setup:7.2f}")
        print(f"  memory, per-sample preload         {slow_setup:7.2f}")


if __name__ == "__main__":
    main()
