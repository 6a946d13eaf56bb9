"""Multi-process training on torch.distributed: `torchrun --nproc-per-node N -m rnn_ime.train …`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; each process trains on its own shard of every
global batch and DistributedDataParallel averages the gradients (gloo on CPU, NCCL on CUDA).
Rank 0 alone writes files; every rank validates, so all take the same LR and stopping decisions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_environment() -> ProcessGroup:
    """The process group torchrun describes in the environment (one process when unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ProcessGroup()
    return ProcessGroup(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def initialise(group: ProcessGroup, device: torch.device) -> None:
    if group.active and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def any_rank(flag: bool, group: ProcessGroup, device: torch.device) -> bool:
    """True on every rank when it is true on any (so that all ranks stop together)."""
    if not group.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_tensors(tensors: list[torch.Tensor], group: ProcessGroup) -> list[list[torch.Tensor]]:
    """Each rank's copy of `tensors` (same shapes on every rank), for rank 0 to save."""
    if not group.active:
        return [tensors]
    gathered = []
    for tensor in tensors:
        parts = [torch.empty_like(tensor) for _ in range(group.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        gathered.append(parts)
    return [[parts[r] for parts in gathered] for r in range(group.world_size)]


def shutdown(group: ProcessGroup) -> None:
    """Leave together: a rank that tears gloo down while its peer still writes files could
    abort ("terminate called without an active exception") as its threads were destroyed."""
    if group.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
