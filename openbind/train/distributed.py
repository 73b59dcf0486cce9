"""Process-group setup from torchrun's environment, and the few collectives a training loop needs.

Every helper is a no-op in a single process, so one training script runs unchanged under `python` and under
`torchrun --nproc_per_node K`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its global rank, the number of processes, its rank on this node, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

    backend: None picks "nccl" when CUDA is available, else "gloo". With NCCL each process uses the GPU
    `cuda:LOCAL_RANK` (made current); with gloo the CPU. Without WORLD_SIZE in the environment (plain
    `python`) no group is created and a single-process DistInfo is returned. Calling it again returns the
    same answer without re-initializing.
    """
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    use_cuda = "nccl" in backend
    if "WORLD_SIZE" not in os.environ:
        device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
        return DistInfo(0, 1, 0, device)
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE is set but {missing} are not: launch with torchrun")
    local_rank = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
    if _active():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """A detached copy of `tensor` averaged over ranks (integers become float64); for logging metrics.

    Tensors on the wrong device for the backend (CPU tensors with NCCL) are moved there and back.
    """
    out = tensor.detach().clone()
    if not out.is_floating_point():
        out = out.double()
    if not _active() or dist.get_world_size() == 1:
        return out
    device = out.device
    if dist.get_backend() == dist.Backend.NCCL and device.type != "cuda":
        out = out.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / dist.get_world_size()).to(device)


def broadcast_object(obj: T, src: int = 0) -> T:
    """`obj` of rank `src` on every rank (any picklable object: a run name, a resume step, a config)."""
    if not _active():
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup() -> None:
    """Leave the process group (call once at the end of training); a no-op when none was created."""
    if _active():
        dist.destroy_process_group()
