"""Reusable shared-memory batches of DataLoader workers: reused only once nothing in the main process holds them."""

from __future__ import annotations

import gc
import io
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers how tensors travel between processes)
from torch.utils.data import DataLoader

import openbind.data.shared_batches as shared_batches
from openbind.errors import OpenBindInputError
from openbind.modalities.batch import BatchResult, ItemFailure
from openbind.data.items import ItemDataset, collate_items


@pytest.fixture
def fresh_slots(monkeypatch):
    """This process as a worker with no slot yet."""
    monkeypatch.setattr(shared_batches, "_process_slots", None)


def _send(result: BatchResult) -> BatchResult:
    """What the DataLoader does with a worker's result: pickle it for the main process and unpickle it there."""
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(result)
    return ForkingPickler.loads(buffer.getvalue())


def _filled(shape: tuple[int, ...], value: float) -> shared_batches.SlotBatch:
    batch = shared_batches.worker_batch(shape)
    batch.tensor.fill_(value)
    batch.extend((i, row) for i, row in enumerate(batch.tensor))
    return batch


def test_a_slot_is_refilled_only_when_no_tensor_shares_its_memory(fresh_slots):
    first = _filled((2, 3), 1.0)
    received = _send(collate_items(first))
    assert type(received) is BatchResult and received.kept == [0, 1] and torch.equal(received.tensor, torch.ones(2, 3))
    view = received.tensor[1]
    array = received.tensor.numpy()
    del received
    gc.collect()
    second = _filled((2, 3), 2.0)  # the first slot is still held through `view` and `array`
    assert second.slot is not first.slot
    assert torch.equal(view, torch.ones(3)) and (array == 1).all()
    del view, array
    gc.collect()
    third = _filled((2, 3), 3.0)
    assert third.slot is first.slot  # free again: refilled, no new shared memory


def test_smaller_batches_take_the_smallest_free_slot_that_fits(fresh_slots):
    small, large = _filled((1, 3), 0.0), _filled((4, 3), 0.0)
    small.release()
    large.release()
    assert shared_batches.worker_batch((1, 3)).slot is small.slot
    assert shared_batches.worker_batch((1, 3)).slot is large.slot
    assert shared_batches.worker_batch((5, 3)).slot not in (small.slot, large.slot)


def test_at_most_max_kept_slots_are_kept(fresh_slots):
    held = [_filled((2,), float(i)) for i in range(shared_batches.MAX_KEPT_SLOTS + 2)]
    for batch in held:
        batch.release()
    assert len(shared_batches._process_slots.slots) == shared_batches.MAX_KEPT_SLOTS
    reused = [shared_batches.worker_batch((2,)).slot for _ in range(shared_batches.MAX_KEPT_SLOTS)]
    assert {id(slot) for slot in reused} == {id(batch.slot) for batch in held[: shared_batches.MAX_KEPT_SLOTS]}


def test_a_batch_with_failures_is_copied_and_its_slot_released(fresh_slots):
    batch = _filled((2, 3), 5.0)
    batch[1] = failure = _failure(1)
    result = collate_items(batch)
    assert result.kept == [0] and result.failed == [failure]
    assert torch.equal(result.tensor, torch.full((1, 3), 5.0))
    assert shared_batches.worker_batch((2, 3)).slot is batch.slot


def _failure(index: int) -> ItemFailure:
    return ItemFailure(index, f"item {index}", OpenBindInputError(f"item {index}", "broken"))


class _Fill:
    """A transform writing its item's number into its row, as image/audio/video transforms do."""

    fixed_output_shape = (1000,)

    def __call__(self, item, out=None):
        if item == "crash":
            raise RuntimeError("a bug in a transform")
        out = torch.empty(self.fixed_output_shape) if out is None else out
        return out.fill_(float(item))


def test_a_transform_bug_releases_the_slot(fresh_slots, monkeypatch):
    monkeypatch.setattr("openbind.data.items.get_worker_info", lambda: object())  # as in a worker
    dataset = ItemDataset("vision", [1, "crash"], _Fill())
    with pytest.raises(RuntimeError, match="a bug"):
        dataset.__getitems__([0, 1])
    (slot,) = shared_batches._process_slots.slots
    assert shared_batches.worker_batch((2, 1000)).slot is slot


def test_batches_the_caller_holds_are_never_overwritten_by_the_worker():
    """One persistent worker, many epochs: some batches held across epochs, the rest dropped at once."""
    items = list(range(12))
    loader = DataLoader(
        ItemDataset("vision", items, _Fill()), batch_size=2, num_workers=1, persistent_workers=True,
        collate_fn=collate_items,
    )  # fmt: skip
    held = []
    for epoch in range(6):
        for number, batch in enumerate(loader):
            expected = torch.tensor(batch.kept, dtype=torch.float32)[:, None].expand(-1, 1000)
            assert torch.equal(batch.tensor, expected)
            if number == epoch:
                held.append((batch.tensor[1:], expected[1:]))
        for tensor, expected in held:
            assert torch.equal(tensor, expected)


_storages_created = [0]


def _count_new_shared_memory(worker_id: int) -> None:
    """worker_init_fn: count the shared-memory storages this worker creates."""
    create = torch.UntypedStorage._new_shared

    def counting(*args, **kwargs):
        _storages_created[0] += 1
        return create(*args, **kwargs)

    torch.UntypedStorage._new_shared = staticmethod(counting)


class _FillAndCount(_Fill):
    def __call__(self, item, out=None):
        out = super().__call__(item, out)
        out[1:].fill_(_storages_created[0])
        return out


def test_the_worker_refills_slots_the_main_process_has_dropped():
    loader = DataLoader(
        ItemDataset("vision", list(range(60)), _FillAndCount()), batch_size=2, num_workers=1,
        persistent_workers=True, collate_fn=collate_items, worker_init_fn=_count_new_shared_memory,
    )  # fmt: skip
    created = [int(batch.tensor[0, 1]) for _ in range(2) for batch in loader]  # each batch dropped at once
    assert len(created) == 60 and max(created) <= shared_batches.MAX_KEPT_SLOTS + 1  # fresh memory: 60
