"""(anchor, other) pair datasets: a manifest's rows as training pairs, several mixed behind one Dataset.

ImageBind binds each new modality to the frozen image (or video) tower with one pair type per batch.
`PairDataset` turns a `Manifest` into (anchor, other) tensors, repeated `replication` times per epoch; a file
that cannot be read becomes an `ItemFailure` instead of an exception, so one corrupt file never stops a run.
`ConcatPairs` + `collate_pairs` route the sampler's keys to the datasets and build batch dicts that drop (and
report) bad items; `PreloadedPairs` decodes a small dataset once into memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from openbind.data.manifest import Manifest
from openbind.errors import OpenBindInputError
from openbind.modalities import get_input, input_names
from openbind.modalities.batch import ItemFailure
from openbind.train.config import anchor_kinds
from openbind.train.sampler import PairKey

logger = logging.getLogger("openbind")


def replication_order(num_rows: int, replication: float, seed: int = 0) -> np.ndarray:
    """Row positions of one replicated epoch: round(num_rows * replication) entries (at least 1).

    Whole repeats list every row; the fractional rest is a fixed, seeded subset of the rows (the same every
    epoch; the sampler's per-epoch shuffle changes where they land). replication < 1 subsamples the same way.
    """
    if not (isinstance(replication, (int, float)) and math.isfinite(replication) and replication > 0):
        raise ValueError(f"replication must be a positive finite number, got {replication!r}")
    if num_rows <= 0:
        return np.zeros(0, dtype=np.int64)
    total = max(1, round(num_rows * replication))
    whole, rest = divmod(total, num_rows)
    extra = np.random.default_rng([seed, num_rows]).permutation(num_rows)[:rest]
    return np.concatenate([np.tile(np.arange(num_rows), whole), extra]).astype(np.int64)


def _tuples(options: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


class PairDataset(Dataset):
    """(anchor, other) pairs of one manifest: item i -> {"anchor": Tensor, "other": Tensor, "index": row}.

    `index` is the manifest row (what an `EmbeddingCache` is keyed by), not i. Only rows that have both
    modalities are used. `anchor` is "image" or "video" (the frozen towers' inputs); `other` is any other
    input kind, "text" giving token ids. `transforms` maps an input kind to its callable, overriding the
    manifest's layout transforms and then the input kind's training transform (with `options[kind]`, a model's
    recorded transform options). `replication` repeats the dataset
    per epoch (the paper's Table 9: 1.25 AudioSet, 50 SUN RGB-D, 25 LLVIP, 1 Ego4D; see `replication_order`).

    `load_anchor=False` skips the anchor file ("anchor" is None): for when an `EmbeddingCache` holds the frozen
    tower's embeddings. A file that fails to load (OpenBindInputError or OSError) gives an `ItemFailure` instead of
    the dict; other exceptions are bugs and propagate.
    """

    def __init__(
        self,
        manifest: Manifest,
        anchor: str,
        other: str,
        transforms: dict[str, Callable[[Any], torch.Tensor]] | None = None,
        replication: float = 1.0,
        *,
        load_anchor: bool = True,
        seed: int = 0,
        options: dict[str, dict[str, Any]] | None = None,
    ):
        if anchor not in anchor_kinds():
            raise ValueError(f"anchor must be one of {anchor_kinds()}, got {anchor!r}")
        if other not in input_names() or other == anchor:
            raise ValueError(f"other must be an input kind other than the anchor ({input_names()}), got {other!r}")
        missing = [m for m in (anchor, other) if m not in manifest.modalities]
        if missing:
            raise OpenBindInputError(manifest.name(), f"manifest has no {missing} column (has {manifest.modalities})")
        self.manifest = manifest
        self.anchor, self.other = anchor, other
        self.rows = [i for i, row in enumerate(manifest.rows) if row[anchor] is not None and row[other] is not None]
        if not self.rows:
            raise OpenBindInputError(manifest.name(), f"no row has both {anchor} and {other}")
        chosen = {**manifest.transforms, **(transforms or {})}
        options = options or {}
        self.transforms = {
            m: chosen[m] if m in chosen else get_input(m).training_transform(**_tuples(options.get(m, {})))
            for m in (anchor, other)
        }
        self.replication = replication
        self.load_anchor = load_anchor
        self._order = replication_order(len(self.rows), replication, seed)

    @property
    def pair(self) -> tuple[str, str]:
        return self.anchor, self.other

    def __len__(self) -> int:
        return len(self._order)

    def row_index(self, i: int) -> int:
        """The manifest row of item i."""
        if not 0 <= i < len(self._order):
            raise IndexError(f"item {i} out of range for {len(self._order)} items")
        return self.rows[int(self._order[i])]

    def __getitem__(self, i: int) -> dict[str, Any] | ItemFailure:
        index = self.row_index(i)
        row = self.manifest.rows[index]
        out: dict[str, Any] = {"anchor": None, "other": None, "index": index}
        for key, modality in (("anchor", self.anchor), ("other", self.other)):
            if key == "anchor" and not self.load_anchor:
                continue
            try:
                out[key] = self.transforms[modality](row[modality])
            except (OpenBindInputError, OSError) as error:
                logger.warning("skipping row %d of %s: %s", index, self.manifest.name(), error)
                if not isinstance(error, OpenBindInputError):
                    error = OpenBindInputError(row[modality], str(error))
                return ItemFailure(index, row[modality], error, kind=modality)
        return out


class ConcatPairs(Dataset):
    """Several PairDatasets behind one Dataset addressed by `PairKey` (dataset id, item index[, batch])."""

    def __init__(self, datasets: Sequence[PairDataset]):
        if not datasets:
            raise ValueError("give at least one dataset")
        self.datasets = list(datasets)

    def lengths(self) -> list[int]:
        return [len(d) for d in self.datasets]

    def __len__(self) -> int:
        return sum(self.lengths())

    def __getitem__(self, key: tuple[int, ...]) -> dict[str, Any] | ItemFailure:
        key = PairKey(*key)
        item = self.datasets[key.dataset][key.index]
        if isinstance(item, ItemFailure):
            return replace(item, dataset=key.dataset, batch=key.batch)
        item["dataset"], item["batch"] = key.dataset, key.batch
        item["pair"] = self.datasets[key.dataset].pair
        return item


class PreloadedPairs(Dataset):
    """A PairDataset decoded once into memory (each distinct manifest row once, bad rows dropped)."""

    def __init__(self, dataset: PairDataset, num_workers: int, progress: bool, label: str):
        self.dataset = dataset
        self.pair = dataset.pair
        first_item = {}
        for i in range(len(dataset)):
            first_item.setdefault(dataset.row_index(i), i)
        loader = DataLoader(
            _Subset(dataset, list(first_item.values())), batch_size=None, num_workers=num_workers
        )
        self.items: dict[int, dict[str, Any]] = {}
        self.bad = []
        for item in tqdm(loader, total=len(first_item), desc=f"decoding {label}", disable=not progress):
            if isinstance(item, dict):
                self.items[item["index"]] = item
            else:
                self.bad.append(item)
        self.order = [i for i in range(len(dataset)) if dataset.row_index(i) in self.items]

    def __len__(self) -> int:
        return len(self.order)

    def row_index(self, i: int) -> int:
        return self.dataset.row_index(self.order[i])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[self.row_index(i)]


class _Subset(Dataset):
    def __init__(self, dataset: Dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


def collate_pairs(items: Sequence[dict[str, Any] | ItemFailure | None]) -> dict[str, Any]:
    """Stack the good items of one batch; drop and count bad ones (ItemFailure or None).

    Returns {"anchor": [n,...] or None (not loaded, or no good item), "other": [n,...] or None, "index": int64
    [n] manifest rows, "dataset": id, "pair": (anchor, other), "batch": the epoch's global batch number (save
    batch + 1 as the resume position), "bad_items": [ItemFailure], "num_bad": count}. With bad items dropped, n
    is smaller than the batch size.
    """
    good = [x for x in items if isinstance(x, dict)]
    bad = [x for x in items if not isinstance(x, dict)]
    datasets = {x.get("dataset") for x in good} | {x.dataset for x in bad if isinstance(x, ItemFailure)}
    datasets.discard(-1)
    if len(datasets) > 1:
        raise ValueError(f"a batch mixes datasets {sorted(datasets)}; one pair type per batch")
    first = good[0] if good else {}
    batches = [x.get("batch", -1) for x in good] + [x.batch for x in bad if isinstance(x, ItemFailure)]

    def stack(key: str) -> torch.Tensor | None:
        if not good or any(x[key] is None for x in good):
            return None
        return torch.stack([x[key] for x in good])

    return {
        "anchor": stack("anchor"),
        "other": stack("other"),
        "index": torch.tensor([x["index"] for x in good], dtype=torch.int64),
        "dataset": next(iter(datasets), None),
        "pair": first.get("pair"),
        "batch": max(batches, default=-1),
        "bad_items": [x for x in bad if isinstance(x, ItemFailure)],
        "num_bad": len(bad),
    }
