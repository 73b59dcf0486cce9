"""The item pipeline for DataLoader workers: items of one input kind -> `BatchResult`s, bad items reported.

Each worker writes fixed-shape items (image, audio, video) straight into its rows of a batch in shared memory
that it reuses (`openbind.data.shared_batches`); a bad item becomes an `ItemFailure`, so a run over thousands
of files never stops for one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from openbind.data.shared_batches import PooledBatchResult, SlotBatch, worker_batch
from openbind.errors import OpenBindInputError
from openbind.modalities import get_input
from openbind.modalities.batch import BatchResult, ItemFailure


class ItemDataset(Dataset):
    """Items of one input kind ("image", "audio", ... or a modality's name) -> (index, model input) or, for a bad
    item, its `ItemFailure` (never raises for bad input, so a DataLoader with worker processes keeps going)."""

    def __init__(self, kind: str, items: Sequence[Any], transform: Callable[[Any], torch.Tensor] | None = None):
        self.items = list(items)
        self.transform = transform or get_input(kind).transform()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor] | ItemFailure:
        return self._load(i)

    def __getitems__(self, indices: list[int]) -> list[tuple[int, torch.Tensor] | ItemFailure]:
        """One batch, as a DataLoader worker fetches it. A transform with a `fixed_output_shape` and an `out`
        argument (image, audio, video; a video is 18 MB) writes each item straight into its row of one batch in
        shared memory, which reaches the main process as is: no stacking copy, no copy into shared memory
        (`collate_items` passes it on), and memory the worker reuses once the main process has let go of it
        (`openbind.data.shared_batches`)."""
        shape = getattr(self.transform, "fixed_output_shape", None)
        if shape is None or get_worker_info() is None:
            return [self._load(i) for i in indices]
        batch = worker_batch((len(indices), *shape))
        try:
            batch.extend(self._load(i, out=row) for i, row in zip(indices, batch.tensor))
        except BaseException:
            batch.release()
            raise
        return batch

    def _load(self, i: int, out: torch.Tensor | None = None) -> tuple[int, torch.Tensor] | ItemFailure:
        try:
            return i, self.transform(self.items[i]) if out is None else self.transform(self.items[i], out=out)
        except OpenBindInputError as error:
            return ItemFailure(i, self.items[i], error)


def collate_items(batch: Sequence[tuple[int, torch.Tensor] | ItemFailure]) -> BatchResult:
    """Stack the good items of a batch; `kept` holds their dataset indices, `failed` the bad ones.

    In a worker process torch's `default_collate` stacks straight into shared memory, sparing the copy that
    sending a plainly stacked batch to the main process would make (a video batch is 18 MB per item)."""
    good = [x for x in batch if not isinstance(x, ItemFailure)]
    failed = [x for x in batch if isinstance(x, ItemFailure)]
    if isinstance(batch, SlotBatch) and not failed:
        return PooledBatchResult(batch, [i for i, _ in good])  # already stacked, in reusable shared memory
    tensor = default_collate([t for _, t in good]) if good else torch.empty(0)
    if isinstance(batch, SlotBatch):
        batch.release()  # its good rows were copied
    return BatchResult(tensor, [i for i, _ in good], failed)


def loader(
    kind: str,
    items: Sequence[Any],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    transform: Callable[[Any], torch.Tensor] | None = None,
    **options: Any,
) -> DataLoader:
    """A DataLoader over `items` of one input kind yielding `BatchResult`s, decoding in `num_workers` processes.

    Image, audio and video batches arrive in shared memory that each worker refills once no tensor of the main
    process shares it any more (`openbind.data.shared_batches`): keeping a batch is safe, it just costs new memory."""
    dataset = ItemDataset(kind, items, transform or get_input(kind).transform(**options))
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_items)


def transform_signature(transform: Callable[..., Any]) -> str:
    """A short hash of a transform's repr: dataclass transforms give the same signature for the same settings.
    Anything whose repr holds a memory address (a lambda) gets a new signature every run, which is safe."""
    return hashlib.sha256(repr(transform).encode()).hexdigest()[:16]
