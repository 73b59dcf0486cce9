"""Embed many items (a whole evaluation set) in batches, keeping the good ones and reporting the bad ones.

An evaluation set of thousands of files should not die on one corrupt file, and the scores must still be
matched to the right labels: `embed_items` returns the embeddings of the good items together with their
positions in the input and the reasons the others were skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from openbind.errors import OpenBindInputError
from openbind.modalities import get_input, modality_of
from openbind.modalities.batch import BatchResult, ItemFailure, OnError, map_items
from openbind.model.imagebind import ImageBind
from openbind.runtime.onnx_model import OnnxModel
from openbind.data.items import ItemDataset, collate_items

logger = logging.getLogger("openbind")


def embed_items(
    model: ImageBind | OnnxModel,
    kind: str,
    items: Sequence[Any] | torch.Tensor,
    *,
    batch_size: int = 32,
    progress: bool = True,
    num_workers: int = 0,
    on_error: OnError = "skip",
    transform: Callable[[Any], torch.Tensor] | None = None,
) -> BatchResult | torch.Tensor:
    """Unit-norm float32 CPU embeddings of `items` (files, strings, arrays... or a model-ready tensor).

    `kind` is an input kind or a modality's name ("video" and "image" go through the vision tower). Items go
    through its default loader `batch_size` at a time (in `num_workers` DataLoader
    worker processes when > 0, so decoding overlaps the forward passes). With `on_error="skip"` (the default)
    the result is a `BatchResult`: `tensor` [K, D] holds the good items' embeddings, `kept[i]` is the input
    index of row i and `failed` lists the bad items with their reasons (and a warning is logged). With
    `on_error="raise"` the first bad item raises and the result is the [N, D] tensor. The model runs in eval
    mode (restored afterwards) under inference mode. `transform` (item -> model input of one item) replaces
    the default loader, e.g. a training transform.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    modality = modality_of(kind).name
    if modality not in model.modalities:
        raise KeyError(f"this model has no {modality!r} encoder (it has {model.modalities})")
    if not isinstance(items, torch.Tensor):
        items = list(items)
    batches = _load_batches(kind, items, batch_size, num_workers, transform)
    device = model.device
    embeddings: list[torch.Tensor] = []
    kept: list[int] = []
    failed: list[ItemFailure] = []
    was_training = model.training
    model.eval()
    try:
        with tqdm(total=len(items), desc=f"embed {kind}", unit="item", disable=not progress) as bar:
            for batch in batches:
                for failure in batch.failed:
                    if on_error == "raise":
                        raise OpenBindInputError(failure.item, f"{failure.error.reason} (item {failure.index})")
                    failed.append(failure)
                if batch.kept:
                    with torch.inference_mode():
                        embeddings.append(model.encode(modality, batch.tensor.to(device)).float().cpu())
                    kept.extend(batch.kept)
                bar.update(len(batch.kept) + len(batch.failed))
    finally:
        model.train(was_training)
    if failed:
        shown = ", ".join(str(f.index) for f in failed[:10]) + (", ..." if len(failed) > 10 else "")
        logger.warning(
            "embedded %d of %d %s items; skipped %d (items %s)", len(kept), len(items), kind, len(failed), shown
        )
    dim = model.config.embed_dim
    tensor = torch.cat(embeddings) if embeddings else torch.empty(0, dim)
    if on_error == "raise":
        return tensor
    return BatchResult(tensor, kept, failed)


def _load_batches(
    kind: str,
    items: Sequence[Any] | torch.Tensor,
    batch_size: int,
    num_workers: int,
    transform: Callable[[Any], torch.Tensor] | None,
) -> Iterator[BatchResult]:
    """`items` loaded `batch_size` at a time, as BatchResults whose `kept` and `failed` index into `items`.

    In worker processes a per-item transform goes through `openbind.preprocess.ItemDataset`: each worker writes
    fixed-shape items into a batch in shared memory that it reuses (`openbind.data.shared_batches`). Otherwise each
    batch goes through the modality's batch loader (or is a slice of a model-ready tensor)."""
    per_item = transform is not None or not get_input(kind).batched
    if num_workers > 0 and per_item and not isinstance(items, torch.Tensor):
        dataset = ItemDataset(kind, items, transform)
        yield from DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_items)
        return
    loader = DataLoader(
        _Batches(kind, items, batch_size, transform), batch_size=None, num_workers=num_workers, collate_fn=_identity
    )
    for start, tensor, kept, failed in loader:
        failures = [
            ItemFailure(start + offset, items[start + offset], OpenBindInputError(items[start + offset], reason))
            for offset, reason in failed
        ]
        yield BatchResult(tensor, [start + index for index in kept], failures)


class _Batches(Dataset):
    """Batch i of the items, loaded: (start index, model input, kept offsets, [(offset, reason)]).

    Failures travel as (offset, reason) pairs: small and picklable between worker processes.
    """

    def __init__(
        self,
        kind: str,
        items: Sequence[Any] | torch.Tensor,
        batch_size: int,
        transform: Callable[[Any], torch.Tensor] | None = None,
    ):
        self.kind = kind
        self.items = items
        self.batch_size = batch_size
        self.transform = transform

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, list[int], list[tuple[int, str]]]:
        start = i * self.batch_size
        batch = self.items[start : start + self.batch_size]
        if isinstance(batch, torch.Tensor):
            return start, batch, list(range(len(batch))), []
        result = load_batch(self.kind, batch, self.transform)
        return start, result.tensor, result.kept, [(f.index, f.error.reason) for f in result.failed]


def load_batch(kind: str, items: Sequence[Any], transform: Callable[[Any], torch.Tensor] | None = None) -> BatchResult:
    """`items` decoded into one model-ready batch, bad ones listed: the work of one decoding worker (a DataLoader
    worker here, a Ray task in `openbind.search.ray_engine`), through `transform` or the kind's batch loader."""
    if transform is not None:
        return map_items(transform, items, on_error="skip")
    return get_input(kind).load(items, on_error="skip")


def _identity(batch: Any) -> Any:
    return batch
