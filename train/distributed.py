"""One training script from a laptop to a cluster: process-group setup under torchrun, DDP or FSDP.

Outside torchrun everything here is a no-op (world size 1, rank 0). Under `torchrun --nproc_per_node=N`
the ranks join a process group (NCCL on GPUs, gloo on CPUs), each takes 1/N of every global batch,
and only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> Dist:
    """Join torchrun's process group if launched by it; pick the device ("auto": CUDA when present)."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Dist(rank, world_size, local_rank, dev)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, d: Dist, sharding: str) -> nn.Module:
    """The model as the optimiser should see it: DDP, FSDP (fully_shard per unit: the policy's
    `shard_units()` where it has them, a VLM's decoder layers; else each trunk block), or itself."""
    if not d.enabled:
        return model
    if sharding == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # FSDP shards contiguous parameters only; the CPU-friendly channels-last conv weights are not
        model.to(memory_format=torch.contiguous_format)
        if hasattr(model, "channels_last"):
            model.channels_last = False

        trunk_blocks = getattr(getattr(model, "trunk", None), "blocks", [])
        units = model.shard_units() if hasattr(model, "shard_units") else trunk_blocks
        for unit in units:
            fully_shard(unit)
        fully_shard(model)
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)


def max_over_ranks(value: float, d: Dist) -> float:
    """The largest of every rank's `value`, on every rank (so all ranks decide alike)."""
    if not d.enabled:
        return value
    t = torch.tensor([float(value)], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()
