"""Per-thread work tensors that the input pipelines reuse from one file to the next.

Fresh large allocations are not free: glibc maps them anew (or trims its heap after they are freed) and the kernel
zero-fills every page on first touch. On the project's 2-core machine that costs ~1-2.6 us per 4 KB page: fresh
work tensors for every file would take about a third of the audio and of the video pipeline's time per file.
"""

from __future__ import annotations

import math
import threading

import torch

DEFAULT_MAX_BYTES = 8 << 20
_local = threading.local()


def scratch(
    key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, max_bytes: int = DEFAULT_MAX_BYTES
) -> torch.Tensor:
    """A contiguous work tensor of `shape` (contents undefined) that this thread reuses for `key` across calls.

    Buffers of at most `max_bytes` are kept (larger requests get a fresh tensor each time); the caller must be
    done with one before the next request for its key, and must not hand it to its own caller.
    """
    numel = math.prod(shape)
    itemsize = dtype.itemsize
    if numel * itemsize > max_bytes:
        return torch.empty(shape, dtype=dtype)
    buffers = _local.__dict__.setdefault("buffers", {})
    buffer = buffers.get((key, dtype))
    if buffer is None or buffer.numel() < numel:
        size = min(max(numel, 1) * 5 // 4 + 64, max_bytes // itemsize)  # some room to grow
        buffer = buffers[(key, dtype)] = torch.empty(size, dtype=dtype)
    return buffer[:numel].view(shape)
