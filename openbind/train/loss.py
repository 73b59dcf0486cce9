"""Symmetric InfoNCE between two batches of paired unit embeddings, exact across data-parallel ranks.

The paper's objective for binding modality M to the image (or text) space I is L = L(I,M) + L(M,I): the sum,
not the mean, of the two cross-entropies, each averaged over the batch. openbind uses the sum everywhere, so
its loss is twice CLIP/open_clip's averaged loss. With AdamW the factor only matters through gradient
clipping, and the paper's clip thresholds (Table 9) go with its own objective.

Distributed: with `torch.distributed` initialized, the negatives come from the whole global batch (every
rank's embeddings, gathered WITH gradients). After the ranks' parameter gradients are averaged (what
`DistributedDataParallel` does), they equal the gradients of the single-process loss on the concatenated
batch, in both modes:

- `local_loss=False` (default): every rank builds the full (N*W x N*W) logits, so the returned loss equals the
  single-process loss on every rank. The gather's backward sums the W identical gradients of each embedding
  and DDP's averaging divides by W again.
- `local_loss=True`: a rank builds only its own N rows (N x N*W, both directions), W times cheaper. The
  returned loss is this rank's share: its mean over ranks (`all_reduce_mean`) equals the single-process loss.

Every rank must pass the same batch size N (use `drop_last=True` in the sampler).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from openbind.errors import OpenBindInputError


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the sum, over ranks, of the gradients of its own rows.

    Written here rather than `torch.distributed.nn.functional.all_gather` (deprecated in recent torch) with
    collectives every backend has: all_gather forward, all_reduce + slice backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        rank, world = _world()
        ctx.rows = slice(rank * x.shape[0], (rank + 1) * x.shape[0])
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows]


def gather_batch(x: Tensor) -> Tensor:
    """Concatenate `x` (N, ...) of every rank in rank order; gradients flow back to each rank's own `x`.

    A tensor that does not require grad (e.g. a frozen tower's output) is gathered without autograd.
    """
    _, world = _world()
    if world == 1:
        return x
    if x.requires_grad:
        return _GatherWithGrad.apply(x)
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def _check_pair(anchor: Tensor, other: Tensor) -> None:
    if anchor.ndim != 2 or anchor.shape != other.shape:
        raise OpenBindInputError(
            (tuple(anchor.shape), tuple(other.shape)),
            "contrastive inputs must be two (N, D) embedding batches of the same shape",
        )


def contrastive_loss(
    anchor: Tensor,
    other: Tensor,
    scale: float | Tensor,
    *,
    gather: bool = True,
    local_loss: bool = False,
) -> Tensor:
    """Symmetric InfoNCE L(anchor, other) + L(other, anchor); row i of `anchor` pairs with row i of `other`.

    anchor, other: unit-normalized (N, D) embeddings (e.g. frozen image embeddings and the new modality's).
    scale: 1/temperature multiplying the cosine similarities (the new modality's `encoder.scale`, fixed in the
    paper: audio 20, depth 5, thermal 10, imu 5); a tensor keeps its gradient (learnable scale).
    gather: use the negatives of all ranks when `torch.distributed` is initialized; local_loss: see the
    module docstring. Logits are computed in float32 whatever the input dtype.
    """
    _check_pair(anchor, other)
    rank, world = _world()
    if not gather or world == 1:
        logits = scale * anchor.float() @ other.float().T
        targets = torch.arange(anchor.shape[0], device=anchor.device)
        return F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)
    all_anchor = gather_batch(anchor).float()
    all_other = gather_batch(other).float()
    n = anchor.shape[0]
    if local_loss:
        mine = slice(rank * n, (rank + 1) * n)
        targets = torch.arange(rank * n, (rank + 1) * n, device=anchor.device)
        anchor_rows = scale * all_anchor[mine] @ all_other.T  # (N, N*W): this rank's rows
        other_rows = scale * all_other[mine] @ all_anchor.T  # (N, N*W): this rank's columns
        return F.cross_entropy(anchor_rows, targets) + F.cross_entropy(other_rows, targets)
    logits = scale * all_anchor @ all_other.T
    targets = torch.arange(logits.shape[0], device=anchor.device)
    return F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)


@torch.no_grad()
def contrastive_accuracy(anchor: Tensor, other: Tensor, *, gather: bool = True) -> tuple[Tensor, Tensor]:
    """In-batch top-1 retrieval accuracy (anchor -> other, other -> anchor) for logging, as 0-D tensors.

    Computed over the global batch when distributed and `gather` (so equal on every rank); the scale does
    not change a ranking, so none is needed. Of tied maxima the first index counts.
    """
    _check_pair(anchor, other)
    if gather:
        anchor, other = gather_batch(anchor.detach()), gather_batch(other.detach())
    sims = anchor.float() @ other.float().T
    targets = torch.arange(sims.shape[0], device=sims.device)
    forward = (sims.argmax(dim=1) == targets).float().mean()
    backward = (sims.argmax(dim=0) == targets).float().mean()
    return forward, backward
