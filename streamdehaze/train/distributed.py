"""Several processes through ``torchrun`` + DistributedDataParallel (no home-made distribution).

``torchrun --nproc-per-node N -m streamdehaze.train --data ...`` starts N processes; each reads
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment, joins the process group (NCCL on
CUDA, gloo on CPU), trains on its share of every global batch (:class:`EpochSampler`), and
DDP averages the gradients. Rank 0 alone writes checkpoints, logs and progress.

A plain ``streamdehaze train`` (no torchrun) is the same code with a world of one.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..devices import resolve_device
from ..errors import TrainError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def setup(device: str = "auto") -> DistInfo:
    """Join torchrun's process group if launched by it; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistInfo(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise TrainError(
                f"local rank {local} has no GPU ({torch.cuda.device_count()} present); lower --nproc-per-node"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), **kw)
    return DistInfo(rank, world, local, dev, backend)


def wrap(net: nn.Module, info: DistInfo) -> nn.Module:
    """DDP around ``net`` in a process group; ``net`` itself otherwise.

    Buffers (FastDeconv's running statistics) are broadcast from rank 0 at each forward, so every
    rank's copy equals rank 0's, which is the one saved.
    """
    if not info.distributed:
        return net
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)  # buffers are broadcast by default


def unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


def all_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``values`` over all ranks (a copy; unchanged with one process)."""
    values = values.detach().clone()
    if info.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if it is True on any (e.g. Ctrl-C reached one of them)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def teardown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
