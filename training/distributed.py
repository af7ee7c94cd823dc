"""Data-parallel training under torchrun: one process per GPU (NCCL) or per CPU worker (gloo).

`torchrun --nproc_per_node N -m surgseg.app.cli train --config training.yaml` sets RANK/WORLD_SIZE; without them
everything here is a no-op and training runs in one process as usual.
"""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistributedContext:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    return DistributedContext(dist.get_rank(), world_size, local_rank, backend)


def device_for(context: DistributedContext, device: torch.device) -> torch.device:
    """Each rank's own GPU when training on CUDA."""
    return torch.device("cuda", context.local_rank) if context.enabled and device.type == "cuda" else device


def wrap(context: DistributedContext, model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around the model when distributed (with synchronised BatchNorm on GPUs); the model itself otherwise."""
    if not context.enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def from_rank_zero(context: DistributedContext, value: float, device: torch.device) -> float:
    """Rank 0's `value` on every rank (e.g. run progress: a wall-clock budget measured on each rank would give
    slightly different learning rates and stop the ranks at different steps, leaving one waiting in an all-reduce)."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def weight_digests(context: DistributedContext, model: nn.Module) -> list[str]:
    """SHA-256 of every rank's parameters, gathered on every rank: identical digests mean the replicas agree.
    (BatchNorm running statistics are left out: each rank updates its own from its own batches; rank 0's are saved.)"""
    digest = hashlib.sha256()
    for tensor in unwrap(model).parameters():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    mine = digest.hexdigest()
    if not context.enabled:
        return [mine]
    gathered: list[str | None] = [None] * context.world_size
    dist.all_gather_object(gathered, mine)
    return [str(value) for value in gathered]


def finish(context: DistributedContext) -> None:
    """Leave the process group together, once the caller has dropped its DDP wrapper. A DDP reducer (kept alive by
    reference cycles) that is only collected while the interpreter shuts down takes gloo's work threads down with
    it and aborts the rank (`terminate called without an active exception`, seen in about 1 run in 10)."""
    if context.enabled:
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
