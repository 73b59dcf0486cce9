"""Batches in shared memory that a DataLoader worker reuses once the main process has let go of them.

A fresh shared-memory batch costs a page fault per 4 KB page twice: when the worker writes it (the kernel
zero-fills the page) and when the main process first reads it. On the project's 2-core machine that is about
1-2.6 us a page, for a batch of two videos (36 MB) 10-24 ms, a tenth to a third of the time to decode them.
Reused batch memory avoids it: there, video with 2 workers runs at 1.50x one process against 1.02x with fresh
batches (the main process reading every batch).

When a slot is free: each slot holds a flag byte after its data. The worker sets it when it fills the slot. In
the main process the batch tensor is rebuilt on a numpy view of the slot whose finalizer clears the flag; that
view lives exactly as long as any tensor sharing the batch's memory (views, slices, `.numpy()` arrays: torch
keeps it alive). A worker refills a slot only when its flag is clear, so a batch the caller still holds is
never overwritten; with no free slot it takes new shared memory, and keeps at most `MAX_KEPT_SLOTS`.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass

import torch

from openbind.modalities.batch import BatchResult

MAX_KEPT_SLOTS = 4  # per worker: torch's default prefetch_factor (2), one being filled, one the main process holds
_FLAG_BYTES = 64  # the flag gets a cache line of its own
_IN_USE, _FREE = 1, 0


@dataclass
class _Slot:
    storage: torch.UntypedStorage
    flag: torch.Tensor  # uint8 [1] at byte `data_bytes` of `storage`
    data_bytes: int


class SlotBatch(list):
    """A worker's items (index, row) whose tensors are the rows of `tensor`, a float32 batch in shared memory.

    `collate_items` sends `tensor` on as is (`PooledBatchResult`) or, when it does not, calls `release`."""

    def __init__(self, tensor: torch.Tensor, slot: _Slot):
        super().__init__()
        self.tensor = tensor
        self.slot = slot

    def release(self) -> None:
        """The worker is done with the batch and has not sent it: its slot may be refilled."""
        self.slot.flag.fill_(_FREE)


class _Slots:
    """The shared-memory slots of one worker process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.slots: list[_Slot] = []

    def batch(self, shape: tuple[int, ...]) -> SlotBatch:
        """An uninitialized float32 batch of `shape` in a free slot (the smallest that fits), or in new shared
        memory, kept as a slot while fewer than MAX_KEPT_SLOTS are."""
        data_bytes = math.prod(shape) * 4
        free = [s for s in self.slots if s.data_bytes >= data_bytes and s.flag.item() == _FREE]
        if free:
            slot = min(free, key=lambda s: s.data_bytes)
        else:
            storage = torch.UntypedStorage._new_shared(data_bytes + _FLAG_BYTES)
            slot = _Slot(storage, torch.empty(0, dtype=torch.uint8).set_(storage, data_bytes, (1,)), data_bytes)
            if len(self.slots) < MAX_KEPT_SLOTS:
                self.slots.append(slot)
        slot.flag.fill_(_IN_USE)
        return SlotBatch(torch.empty(0).set_(slot.storage, 0, shape), slot)


_process_slots: _Slots | None = None


def worker_batch(shape: tuple[int, ...]) -> SlotBatch:
    """A batch in one of this process's reusable shared-memory slots (a DataLoader worker's)."""
    global _process_slots
    if _process_slots is None or _process_slots.pid != os.getpid():  # a forked child starts its own
        _process_slots = _Slots()
    return _process_slots.batch(shape)


class PooledBatchResult(BatchResult):
    """A worker's BatchResult whose tensor lies in a slot: it reaches the main process as a plain BatchResult
    whose tensor clears the slot's flag when the last tensor sharing its memory is gone."""

    def __init__(self, batch: SlotBatch, kept: list[int]):
        super().__init__(batch.tensor, kept, [])
        self.flag_offset = batch.slot.data_bytes

    def __reduce__(self) -> tuple:
        return _rebuild_in_main, (self.tensor, self.kept, self.flag_offset)


def _rebuild_in_main(tensor: torch.Tensor, kept: list[int], flag_offset: int) -> BatchResult:
    """Unpickling in the receiving process: the batch on a numpy view whose end clears the slot's flag."""
    flag = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage(), flag_offset, (1,))
    view = tensor.numpy()
    weakref.finalize(view, flag.fill_, _FREE)
    return BatchResult(torch.from_numpy(view), kept, [])
