"""Augmentation on the fast path, and data larger than memory, against the per-sample DataLoader path.

    python benchmarks/augment.py                  # 5,000 CIFAR-shaped images, batch 128, 5 rounds
    python benchmarks/augment.py --n 20000 --workers 2

Generates CIFAR-shaped data (3x32x32 float32, 10 classes) and times one epoch of batches per round,
interleaved, reading every batch to the end (a sum over it, so nothing is left lazy):
  memory_batched     trainkit's in-memory loader with data.augment=[RandomHorizontalFlip,{name:RandomCrop,size:32,padding:4}]
                     (each sample its own flip and crop, on the whole batch)
  dataloader_sample  the per-sample path: the same two torchvision.transforms.v2 transforms in the dataset's
                     __getitem__, batched by a DataLoader (trainkit's TorchLoader, --workers workers)
  npy_memory         no augmentation: the data preloaded (data=npy under its memory budget)
  npy_stream         no augmentation: the same data read from a memory-mapped .npy file through the
                     DataLoader (data=npy over its budget), --workers workers
Reports samples/s (wall clock) and samples per CPU-second of this thread, medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import Clock, interleave, machine, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the per-sample and streamed paths")
    args = p.parse_args()

    import numpy as np
    import torch
    from torch.utils.data import Dataset
    from torchvision.transforms import v2

    from trainkit.data.arrays import NpyDataset
    from trainkit.data.augment import BatchAugment
    from trainkit.data.loaders import TensorLoader, TorchLoader

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.n,), generator=g)
    spec = ["RandomHorizontalFlip", {"name": "RandomCrop", "size": 32, "padding": 4}]
    per_sample = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])

    class PerSample(Dataset):
        def __len__(self) -> int:
            return args.n

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return per_sample(x[i]), y[i]

    tmp = Path(tempfile.mkdtemp(prefix="trainkit_augment_"))
    np.save(tmp / "x.npy", x.numpy())
    np.save(tmp / "y.npy", y.numpy())

    memory = TensorLoader((x, y), args.batch, shuffle=True, seed=0)
    memory.augment = BatchAugment(spec, seed=0)
    plain = TensorLoader((x, y), args.batch, shuffle=True, seed=0)
    sample = TorchLoader(PerSample(), args.batch, shuffle=True, seed=0, num_workers=args.workers,
                         persistent_workers=args.workers > 0)
    stream = TorchLoader(NpyDataset(tmp / "x.npy", tmp / "y.npy"), args.batch, shuffle=True, seed=0,
                         num_workers=args.workers, persistent_workers=args.workers > 0)
    cpu: dict[str, list[float]] = {}
    epoch = {"n": 0}

    def timed(name: str, loader: object) -> float:
        loader.set_epoch(epoch["n"])  # type: ignore[attr-defined]
        epoch["n"] += 1
        total = 0.0
        with Clock() as c:
            for batch in loader:  # type: ignore[attr-defined]
                total += float(batch[0].sum())
        cpu.setdefault(name, []).append(args.n / max(c.cpu, 1e-9))
        return args.n / c.wall

    print(machine())
    print(f"{args.n} images 3x32x32, batch {args.batch}, {args.workers} DataLoader workers, {args.reps} rounds")
    contenders = {"memory_batched": memory, "dataloader_sample": sample, "npy_memory": plain, "npy_stream": stream}
    results = interleave({k: (lambda k=k, v=v: timed(k, v)) for k, v in contenders.items()}, args.reps)
    for name in contenders:  # the warm-up round's CPU time is not a result
        cpu[name] = cpu[name][1:]
    print("\nflip + crop, samples/s (wall clock):")
    print(table({k: results[k] for k in ("memory_batched", "dataloader_sample")}, "samples/s", ["dataloader_sample"]))
    print("\nno augmentation, memory-mapped .npy streamed vs preloaded, samples/s (wall clock):")
    print(table({k: results[k] for k in ("npy_memory", "npy_stream")}, "samples/s", ["npy_memory"]))
    print("\nsamples per CPU-second of the main thread (median; workers' CPU time is not counted):")
    for name, values in cpu.items():
        print(f"  {name:18s} {statistics.median(values):,.0f}")


if __name__ == "__main__":
    main()
