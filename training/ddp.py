"""Distributed data parallel under ``torchrun``: nccl on GPUs, gloo on CPUs.

``torchrun --nproc_per_node N -m training.cli RECIPE.yaml`` (or ``histo train``
under torchrun) sets ``RANK``/``WORLD_SIZE``; every process reads the same
data, takes its own stride of each epoch's order, and gradients are averaged
by :class:`~torch.nn.parallel.DistributedDataParallel`.  Before each
validation the BatchNorm statistics (buffers, which every rank updates from
its own shard) are copied from rank 0, every rank evaluates the whole
validation split, and rank 0's metrics are broadcast, so the logged metrics,
the scheduler, the best epoch and early stopping agree on every rank; the
training loss is averaged over ranks.  Only rank 0 writes files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "barrier",
    "broadcast_object",
    "device_for",
    "is_distributed",
    "rank_zero_first",
    "reduce_sum",
    "setup",
    "sync_buffers",
    "teardown",
    "wrap",
]


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when launched by torchrun."""
    if not is_distributed():
        return 0, 1
    if not dist.is_initialized():
        backend = (
            "nccl" if torch.cuda.is_available() and os.environ.get("HISTO_DDP_BACKEND") != "gloo" else "gloo"
        )
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(rank: int) -> torch.device:
    if torch.cuda.is_available() and os.environ.get("HISTO_DDP_BACKEND") != "gloo":
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def wrap(network: torch.nn.Module, device: torch.device) -> Any:
    """The network in DDP; frozen parameters are allowed (two-phase transfer)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(network, device_ids=ids, find_unused_parameters=False)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sync_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if not _active():
        return
    with torch.no_grad():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over all ranks."""
    if not _active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if _active():
        dist.barrier()


@contextmanager
def rank_zero_first(rank: int) -> Iterator[bool]:
    """Rank 0 runs the block alone (exporting tiles, writing files), then the other ranks run it.

    Yields whether this rank should write (``rank == 0``): the other ranks then find rank 0's
    resumable outputs in place instead of racing it for the same files.
    """
    if rank != 0:
        barrier()
    yield rank == 0
    if rank == 0:
        barrier()
