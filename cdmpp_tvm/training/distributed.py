"""Data-parallel training under ``torchrun``: joining the process group (``init_distributed``), this
process's rank and device (``DistContext``, ``torch_device``), the DDP wrapper and the two collectives
the loop uses (sum of the epoch's loss sums over ranks, rank 0's verdict broadcast to all)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..model.inference import default_torch_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this call created the process group (and must destroy it)


def init_distributed(backend: str | None = None) -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (no-op otherwise, or when already joined).
    Backend: ``backend``, else "nccl" with CUDA and "gloo" without."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext()
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def close_distributed(ctx: DistContext) -> None:
    """Destroy the process group if ``init_distributed`` created it."""
    if ctx.owns_group:
        dist.destroy_process_group()


def torch_device(requested: str, ctx: DistContext) -> torch.device:
    dev = default_torch_device(requested)
    if ctx.world_size > 1 and dev.type == "cuda":  # one GPU per rank
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    return dev


def wrap_ddp(model: torch.nn.Module, dev: torch.device, ctx: DistContext, has_device_descriptors: bool):
    """``model`` itself with one process, else wrapped in ``DistributedDataParallel``."""
    if ctx.world_size <= 1:
        return model
    # Without device descriptors the device embedding gets no gradient: tell DDP not to wait for it.
    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                   find_unused_parameters=not has_device_descriptors)


def all_reduce_sum(t: torch.Tensor, dev: torch.device, ctx: DistContext) -> torch.Tensor:
    """``t`` summed over all ranks (``t`` itself with one process); on the CPU."""
    if ctx.world_size > 1:
        t = t.to(dev)
        dist.all_reduce(t)
        t = t.cpu()
    return t


def broadcast_from_rank0(t: torch.Tensor, dev: torch.device, ctx: DistContext) -> torch.Tensor:
    """Rank 0's ``t`` on every rank (``t`` itself with one process); on the CPU."""
    if ctx.world_size > 1:
        t = t.to(dev)
        dist.broadcast(t, src=0)
        t = t.cpu()
    return t
