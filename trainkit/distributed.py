"""Several processes on torch.distributed: torchrun/SLURM detection, DDP, rank-0 I/O, metric all-reduce.

trainkit never launches processes itself. `torchrun` (or SLURM through Hydra's submitit launcher)
starts one process per device and sets RANK / WORLD_SIZE / LOCAL_RANK; each process runs the same
`trainkit train`. This module turns that environment into a process group (nccl on CUDA, gloo on
the CPU), picks the process's device, wraps the model in DistributedDataParallel, sums the loop's
metric sums across ranks, and lets only rank 0 print, log and write files.

Hydra + DDP trap (hydra #2070): every rank would make its own timestamped run directory. Under
torchrun the CLI joins the process group before Hydra starts; rank 0 lets Hydra make the directory
and broadcasts its absolute path; the other ranks run Hydra with `hydra.run.dir=THAT_PATH`, no
`.hydra/` of their own and no log file, so a run has one directory, one `.hydra/`, one train.log.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from trainkit.errors import ConfigError, TrainkitError
from trainkit.signals import StopOnSignal


@dataclass
class DistInfo:
    """Where this process stands in the run: rank, world size, device, backend."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None  # None: a single process, no process group
    device: torch.device | None = None

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_INFO = DistInfo()
_DIR_PENDING = False  # rank 0 of a CLI-started group still owes the others the run directory


def info() -> DistInfo:
    """This process's place in the run (a single process unless `init` ran)."""
    return _INFO


def launched_by_torchrun(env: dict[str, str] | None = None) -> bool:
    """True when torchrun (or any env:// launcher) started this process: RANK and WORLD_SIZE are set."""
    env = os.environ if env is None else env
    return "RANK" in env and "WORLD_SIZE" in env


def _submitit_tasks() -> int:
    """Number of tasks of the submitit job this process belongs to (0 when not under submitit)."""
    if "SUBMITIT_FOLDER" not in os.environ and "SUBMITIT_EXECUTOR" not in os.environ:
        return 0
    try:
        import submitit

        return int(submitit.JobEnvironment().num_tasks)
    except Exception:  # not a submitit job after all
        return 0


def backend_for(device_type: str) -> str:
    """nccl for CUDA (the only fast GPU backend), gloo for the CPU; MPS has no backend."""
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but no CUDA GPU is visible; use device=cpu or device=auto")
        return "nccl"
    if device_type == "mps":
        raise ConfigError(
            "device=mps cannot run under torchrun (torch.distributed has no MPS backend); "
            "use device=cpu with torchrun, or train on MPS in one process"
        )
    return "gloo"


def init(device_type: str, strategy: str = "auto") -> DistInfo:
    """Join the process group described by the environment (torchrun's env://); idempotent."""
    global _INFO
    if _INFO.enabled:
        return _INFO
    if strategy == "dp":
        raise ConfigError(
            "trainer.strategy=dp (nn.DataParallel) runs in one process; launch it without torchrun "
            "(or with hydra.launcher.tasks_per_node=1), or use trainer.strategy=ddp (the default under torchrun)"
        )
    backend = backend_for(device_type)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if backend == "nccl":
        count = torch.cuda.device_count()
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        if "TORCHELASTIC_RUN_ID" in os.environ and local_world > count:  # torchrun: nccl needs a GPU each
            raise ConfigError(
                f"torchrun started {local_world} processes on this machine but only {count} CUDA GPU(s) are "
                f"visible; use --nproc_per_node={count}, or device=cpu to run {local_world} CPU processes"
            )
        device = torch.device("cuda", local_rank % count)  # % : SLURM may show each task one GPU
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        _init_group(backend, rank, world)
    global _JOINED
    _JOINED = True
    _INFO = DistInfo(rank=rank, local_rank=local_rank, world_size=world, backend=backend, device=device)
    if rank != 0:
        quiet_this_rank()
    return _INFO


def _init_group(backend: str, rank: int, world: int) -> None:
    """init_process_group from the launcher's env://, each torchrun restart under its own store prefix.

    torchrun (--max-restarts) keeps its key-value store across restarts of the group; without a prefix
    the restarted workers read the dead workers' addresses from it and gloo fails to connect.
    """
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None:
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        return
    store, _, _ = next(dist.rendezvous("env://"))
    dist.init_process_group(backend, store=dist.PrefixStore(f"trainkit/attempt_{restart}", store),
                            rank=rank, world_size=world)


def quiet_this_rank() -> None:
    """Ranks other than 0 print nothing and log nothing (rank 0 speaks for the run)."""
    from trainkit.console import console

    console.quiet = True
    logging.getLogger("trainkit").disabled = True


# ----------------------------------------------------------------------------- one run directory


def _hydra_quote(path: str) -> str:
    """A path as a Hydra override value (quoted, since paths may hold spaces, '=' or ',')."""
    if "'" not in path:
        return f"'{path}'"
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def torchrun_hydra_args(args: list[str], cfg: Any, multirun: bool = False) -> list[str]:
    """Join the process group before Hydra starts; ranks > 0 get rank 0's run directory.

    Rank 0 returns `args` unchanged: Hydra makes the directory as usual and `setup_run` broadcasts
    its path. The other ranks block here until it arrives, then run Hydra inside that directory
    without writing a `.hydra/` or a log file of their own. `cfg` is the run's composed config
    (the CLI composes it; its device and strategy pick the backend); a sweep is refused before it is read.
    """
    global _DIR_PENDING
    if multirun:
        raise TrainkitError(
            "-m (a sweep) cannot run under torchrun: every job would share the process group; run one "
            "torchrun per job, or sweep with hydra/launcher=submitit_slurm (each job gets its own processes)"
        )
    strategy = str(cfg.trainer.get("strategy", "auto"))
    dist_info = init(str(cfg.device.type), strategy)
    if dist_info.is_main:
        _DIR_PENDING = True
        return args
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    run_dir = str(box[0])
    return [*args, f"hydra.run.dir={_hydra_quote(run_dir)}", "hydra.output_subdir=null",
            "hydra/job_logging=disabled"]


def share_run_dir(run_dir: Path) -> None:
    """Rank 0's half of `torchrun_hydra_args`: send the directory Hydra made to the other ranks."""
    global _DIR_PENDING
    if _DIR_PENDING and _INFO.enabled:
        _DIR_PENDING = False
        dist.broadcast_object_list([str(Path(run_dir).resolve())], src=0)


def setup_run(cfg: Any, run_dir: Path) -> DistInfo:
    """What `Run.setup` calls first: join the process group (torchrun, SLURM), agree on the run dir."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if _INFO.enabled:
        share_run_dir(run_dir)
        return _INFO
    if not launched_by_torchrun() and _submitit_tasks() > 1:
        # SLURM via Hydra's submitit launcher: one task per GPU, same run dir (Hydra's sweep dir).
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if launched_by_torchrun():
        return init(str(cfg.device.type), strategy)  # refuses strategy=dp: one process drives all GPUs
    if strategy in ("ddp", "fsdp"):
        raise ConfigError(
            f"trainer.strategy={strategy} needs one process per device: launch with "
            "'torchrun --nproc_per_node=N -m trainkit train ...' (or use the default trainer.strategy=auto)"
        )
    return _INFO


# ----------------------------------------------------------------------------- model and metrics


def wrap_model(
    model: nn.Module, device: torch.device, strategy: str = "auto"
) -> tuple[nn.Module, str | None]:
    """DDP under a process group; nn.DataParallel for strategy=dp on several GPUs; else the model.

    Returns the model to train and a line to show the user when a requested strategy fell back.
    """
    if _INFO.enabled and strategy == "fsdp":
        return model, None  # sharded in place by parts.build_parts (sharding.shard), before the optimizer
    if _INFO.enabled:
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids), None
    if strategy == "dp":
        n = torch.cuda.device_count() if device.type == "cuda" else 0
        if n < 2:
            where = f"{n} CUDA GPU" if device.type == "cuda" else f"device {device.type}"
            return model, (
                f"trainer.strategy=dp needs 2 or more CUDA GPUs in one process but this run has {where}; "
                "training on one device instead (for several GPUs prefer torchrun and DDP)"
            )
        return nn.DataParallel(model), None
    return model, None


def grad_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
    """Inside a gradient accumulation (`sync` False) skip the gradient all-reduce: DDP's `no_sync()`,
    FSDP2's `set_requires_gradient_sync(False)`; the boundary step then reduces the summed gradients.

    The same result as syncing every micro-batch (the average of sums is the sum of averages), with
    one all-reduce per optimizer step instead of one per micro-batch. A plain model: nothing to skip.
    """
    if sync:
        return contextlib.nullcontext()
    no_sync = getattr(model, "no_sync", None)  # DDP (also through torch.compile's wrapper)
    if callable(no_sync):
        return no_sync()
    if callable(getattr(model, "set_requires_gradient_sync", None)):  # FSDP2
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model: Any) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def real_samples(loader: Any) -> int | None:
    """How many of this rank's samples of `loader` are real, not the padding that evens the shards (None: all).

    Shards deal the epoch's positions round-robin (rank r takes r, r + W, ...) after padding the order
    to a multiple of W with repeats, as DistributedSampler does: rank r's real positions are those below
    the split's size. Evaluation counts only those, so its sums over all ranks are the whole split's.
    """
    sampler = getattr(loader, "sampler", None)  # a DataLoader's DistributedSampler, else the in-memory loader
    world = int(getattr(sampler, "num_replicas", getattr(loader, "world_size", 1)))
    rank = int(getattr(sampler, "rank", getattr(loader, "rank", 0)))
    n, per = getattr(loader, "dataset_size", None), getattr(loader, "num_samples", None)
    if world == 1 or n is None or per is None:
        return None
    return min(int(per), max(0, (int(n) - rank + world - 1) // world))


def without_padding(loader: Any) -> Iterator[tuple[Any, int]]:
    """Iterate an evaluation `loader` as (batch, real samples in it), the shard's padding cut off.

    A batch of padding alone comes whole with 0, so every rank still runs the same forwards (FSDP and
    DDP buffers need that); a single process gets every batch as it is.
    """
    real = real_samples(loader)
    seen = 0
    for batch in loader:
        n = len(batch[0]) if real is None else max(0, min(len(batch[0]), real - seen))
        if 0 < n < len(batch[0]):
            batch = tuple(t[:n] for t in batch)
        seen += n
        yield batch, n


def all_reduce_sums(sums: dict[str, torch.Tensor], count: int) -> tuple[dict[str, torch.Tensor], int]:
    """Sum the loop's metric sums and sample count over all ranks (one collective), so every
    rank computes the same global averages."""
    if not _INFO.enabled or _INFO.world_size == 1:
        return sums, count
    keys = sorted(sums)
    device = _INFO.device if _INFO.backend == "nccl" else torch.device("cpu")
    flat = torch.stack([sums[k].reshape(()).to(device, torch.float64) for k in keys]
                       + [torch.tensor(float(count), dtype=torch.float64, device=device)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    values = flat.tolist()
    reduced = {k: torch.tensor(v, dtype=torch.float64) for k, v in zip(keys, values[:-1], strict=True)}
    return reduced, int(round(values[-1]))


def broadcast_module(model: nn.Module, src: int = 0) -> None:
    """Give every rank rank 0's weights (e.g. after rank 0 loaded best.pt): no shared disk needed."""
    if not _INFO.enabled or _INFO.world_size == 1:
        return
    with torch.no_grad():
        for tensor in list(model.state_dict().values()):
            if torch.is_tensor(tensor):
                dist.broadcast(tensor, src=src)


def barrier() -> None:
    if _INFO.enabled:
        if _INFO.backend == "nccl":
            dist.barrier(device_ids=[_INFO.device.index])  # type: ignore[union-attr]
        else:
            dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is True on any rank (a stop that all ranks take at the same step)."""
    if not _INFO.enabled or _INFO.world_size == 1:
        return flag
    device = _INFO.device if _INFO.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class StopSignal(StopOnSignal):
    """The process group's StopOnSignal: all ranks agree (one tiny all-reduce every `every` checks).

    Every batch with gloo; less often on GPUs, where the all-reduce costs a host sync.
    """

    def __init__(self, every: int = 1) -> None:
        super().__init__(every, agree=any_rank)


#: This process has joined a process group (see exit_process).
_JOINED = False


def exit_process(code: int | None) -> None:
    """End a process that joined a group without the interpreter's teardown of torch's C++ objects.

    After a clean end (group destroyed, files written), gloo's leftover threads can abort that teardown
    ("terminate called without an active exception", SIGABRT) on a loaded machine, and torchrun then
    reports a finished run as failed. The CLI always leaves this way (`trainkit.shutdown`); this is for
    scripts that join a group themselves. A process that never joined a group returns, to exit as usual.
    """
    if not _JOINED:
        return
    from trainkit.shutdown import leave

    leave(code)


def cleanup() -> None:
    """Leave the process group (all ranks), so torchrun sees a clean exit."""
    global _INFO, _DIR_PENDING
    if _INFO.enabled and dist.is_initialized():
        dist.destroy_process_group()
    _INFO = DistInfo()
    _DIR_PENDING = False
