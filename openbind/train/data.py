"""Training data: (anchor, other) pair datasets, a mixing batch sampler, the loader, and a frozen-tower cache.

ImageBind binds each new modality to the frozen image (or video) tower with one modality pair per batch. Here:

- `PairDataset` turns a `Manifest` into (anchor, other) tensors, repeated `replication` times per epoch; a file
  that cannot be read becomes a `BadItem` instead of an exception, so one corrupt file never stops a run.
- `MixedPairBatchSampler` deals global batches of ONE dataset each, interleaving datasets in proportion to
  their number of batches, identical for every world size (each rank takes its slice of the global batch),
  and resumable at any batch.
- `ConcatPairs` + `collate_pairs` route the sampler's keys to the datasets and build batch dicts that drop
  (and report) bad items; `make_loader` wires them into a DataLoader.
- `EmbeddingCache` stores the frozen anchor tower's embeddings by manifest row, so later epochs decode no
  anchor file and run no frozen tower.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from openbind.errors import OpenBindInputError
from openbind.manifest import MODALITIES, Manifest
from openbind.preprocess import FirstClip, transform_for
from openbind.utils import atomic_open, atomic_path

logger = logging.getLogger("openbind")

ANCHORS = ("image", "video")


# --- Default transforms --------------------------------------------------------------------------------------


def default_transform(modality: str) -> Callable[[Any], torch.Tensor]:
    """The training transform of each manifest column; per item:

    image [3,224,224] (the reference image transform); video [3,2,224,224] (one 2 s clip from the start, 2
    frames, center crop); text [77] token ids; audio [1,128,204] (one 2 s clip from the start: the same span
    as the video clip of the same file); depth, thermal [1,224,224] (the image's resize/crop geometry, so
    image-depth pairs are pixel-aligned when both have the same aspect); imu [6,2000] (the first 5 s window;
    IMU files without timestamps need `ImuTransform(sample_rate=...)`).
    """
    if modality == "image":
        return transform_for("vision")
    if modality == "video":
        return FirstClip(transform_for("video", clips_per_video=1, crops=1))
    if modality == "audio":
        return FirstClip(transform_for("audio", clips_per_file=1))
    if modality in MODALITIES:  # text, depth, thermal, imu
        return transform_for(modality)
    raise OpenBindInputError(modality, f"unknown modality; expected one of {list(MODALITIES)}")


def transform_signature(transform: Callable[..., Any]) -> str:
    """A short hash of a transform's repr: dataclass transforms give the same signature for the same settings.
    Anything whose repr holds a memory address (a lambda) gets a new signature every run, which is safe."""
    return hashlib.sha256(repr(transform).encode()).hexdigest()[:16]


# --- Pair datasets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadItem:
    """A dataset item that could not be loaded: where it is (mix dataset id, manifest row, the epoch's global
    batch, -1 where unknown), which file or caption, and why."""

    dataset: int
    index: int
    modality: str
    item: str
    reason: str
    batch: int = -1


def replication_order(num_rows: int, replication: float, seed: int = 0) -> np.ndarray:
    """Row positions of one replicated epoch: round(num_rows * replication) entries (at least 1).

    Whole repeats list every row; the fractional rest is a fixed, seeded subset of the rows (the same every
    epoch; the sampler's per-epoch shuffle changes where they land). replication < 1 subsamples the same way.
    """
    if not (isinstance(replication, (int, float)) and math.isfinite(replication) and replication > 0):
        raise OpenBindInputError(replication, "replication must be a positive finite number")
    if num_rows <= 0:
        return np.zeros(0, dtype=np.int64)
    total = max(1, round(num_rows * replication))
    whole, rest = divmod(total, num_rows)
    extra = np.random.default_rng([seed, num_rows]).permutation(num_rows)[:rest]
    return np.concatenate([np.tile(np.arange(num_rows), whole), extra]).astype(np.int64)


class PairDataset(Dataset):
    """(anchor, other) pairs of one manifest: item i -> {"anchor": Tensor, "other": Tensor, "index": row}.

    `index` is the manifest row (what an `EmbeddingCache` is keyed by), not i. Only rows that have both
    modalities are used. `anchor` is "image" or "video" (the frozen towers' inputs); `other` is any other
    modality, "text" giving token ids. `transforms` maps a modality to its callable, overriding the manifest's
    layout transforms and then `default_transform`. `replication` repeats the dataset per epoch (the paper's
    Table 9: 1.25 AudioSet, 50 SUN RGB-D, 25 LLVIP, 1 Ego4D; see `replication_order`).

    `load_anchor=False` skips the anchor file ("anchor" is None): for when an `EmbeddingCache` holds the frozen
    tower's embeddings. A file that fails to load (OpenBindInputError or OSError) gives a `BadItem` instead of
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
    ):
        if anchor not in ANCHORS:
            raise OpenBindInputError(anchor, f"anchor must be one of {list(ANCHORS)}")
        if other not in MODALITIES or other == anchor:
            raise OpenBindInputError(other, f"other must be a modality other than the anchor: {list(MODALITIES)}")
        missing = [m for m in (anchor, other) if m not in manifest.modalities]
        if missing:
            raise OpenBindInputError(manifest.name(), f"manifest has no {missing} column (has {manifest.modalities})")
        self.manifest = manifest
        self.anchor, self.other = anchor, other
        self.rows = [i for i, row in enumerate(manifest.rows) if row[anchor] is not None and row[other] is not None]
        if not self.rows:
            raise OpenBindInputError(manifest.name(), f"no row has both {anchor} and {other}")
        chosen = {**manifest.transforms, **(transforms or {})}
        self.transforms = {m: chosen[m] if m in chosen else default_transform(m) for m in (anchor, other)}
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

    def __getitem__(self, i: int) -> dict[str, Any] | BadItem:
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
                return BadItem(-1, index, modality, str(row[modality]), str(error))
        return out


class PairKey(NamedTuple):
    """What `MixedPairBatchSampler` yields per sample: the dataset in the mix, its item, the global batch."""

    dataset: int
    index: int
    batch: int = -1


class ConcatPairs(Dataset):
    """Several PairDatasets behind one Dataset addressed by `PairKey` (dataset id, item index[, batch])."""

    def __init__(self, datasets: Sequence[PairDataset]):
        if not datasets:
            raise OpenBindInputError(datasets, "give at least one dataset")
        self.datasets = list(datasets)

    def lengths(self) -> list[int]:
        return [len(d) for d in self.datasets]

    def __len__(self) -> int:
        return sum(self.lengths())

    def __getitem__(self, key: tuple[int, ...]) -> dict[str, Any] | BadItem:
        key = PairKey(*key)
        item = self.datasets[key.dataset][key.index]
        if isinstance(item, BadItem):
            return replace(item, dataset=key.dataset, batch=key.batch)
        item["dataset"], item["batch"] = key.dataset, key.batch
        item["pair"] = self.datasets[key.dataset].pair
        return item


def collate_pairs(items: Sequence[dict[str, Any] | BadItem | None]) -> dict[str, Any]:
    """Stack the good items of one batch; drop and count bad ones (BadItem or None).

    Returns {"anchor": [n,...] or None (not loaded, or no good item), "other": [n,...] or None, "index": int64
    [n] manifest rows, "dataset": id, "pair": (anchor, other), "batch": the epoch's global batch number (save
    batch + 1 as the resume position), "bad_items": [BadItem], "num_bad": count}. With bad items dropped, n
    is smaller than the batch size.
    """
    good = [x for x in items if isinstance(x, dict)]
    bad = [x for x in items if not isinstance(x, dict)]
    datasets = {x.get("dataset") for x in good} | {x.dataset for x in bad if isinstance(x, BadItem)}
    datasets.discard(-1)
    if len(datasets) > 1:
        raise ValueError(f"a batch mixes datasets {sorted(datasets)}; one pair type per batch")
    first = good[0] if good else {}
    batches = [x.get("batch", -1) for x in good] + [x.batch for x in bad if isinstance(x, BadItem)]

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
        "bad_items": [x for x in bad if isinstance(x, BadItem)],
        "num_bad": len(bad),
    }


# --- Batch sampler ---------------------------------------------------------------------------------------------


class MixedPairBatchSampler:
    """Global batches of one dataset each, interleaved, sharded over ranks, deterministic and resumable.

    Per epoch, dataset d is shuffled (seeded by seed, epoch, d) and cut into global batches of `batch_size`
    (one int, or one per dataset, each a multiple of world_size). The batches of all datasets are interleaved
    evenly in proportion to their counts (stride scheduling with a seeded phase per dataset), so any stretch
    of training sees each pair type at its share. Rank r takes the r-th of world_size equal slices of each
    global batch, so the global batches are the same for every world size. drop_last=False keeps each
    dataset's last partial batch when it has at least world_size items (split as evenly as possible).

    Iterating yields lists of `PairKey`. `position` counts the global batches of this epoch already yielded;
    `state_dict()` / `load_state_dict()` save and restore it (with the epoch) so a resumed run continues with
    exactly the batches an uninterrupted one would see, for any world size. With DataLoader workers the sampler
    runs ahead of training: resume from the `batch` of the last batch trained on + 1 instead.
    """

    def __init__(
        self,
        datasets_lengths: Sequence[int],
        batch_size: int | Sequence[int],
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ):
        self.lengths = [int(n) for n in datasets_lengths]
        sizes = [batch_size] * len(self.lengths) if isinstance(batch_size, int) else list(batch_size)
        if not self.lengths or len(sizes) != len(self.lengths):
            raise ValueError(f"need one batch size per dataset: {len(sizes)} sizes for {len(self.lengths)} datasets")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if any(b <= 0 or b % world_size for b in sizes):
            raise ValueError(f"batch sizes {sizes} must be positive multiples of world_size {world_size}")
        if seed < 0 or epoch < 0:
            raise ValueError("seed and epoch must be >= 0")
        self.batch_sizes = sizes
        self.seed, self.rank, self.world_size, self.drop_last = seed, rank, world_size, drop_last
        self.epoch, self.position = epoch, 0
        self._plan: tuple[int, list[tuple[int, int, int]], list[np.ndarray]] | None = None
        if not len(self):
            raise ValueError(f"no batch: dataset sizes {self.lengths} are below the batch sizes {sizes}")

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its first batch."""
        self.epoch, self.position = epoch, 0

    def _batches_of(self, d: int) -> list[tuple[int, int]]:
        n, b = self.lengths[d], self.batch_sizes[d]
        bounds = [(s, s + b) for s in range(0, n - b + 1, b)]
        rest = n % b
        if not self.drop_last and rest >= self.world_size:
            bounds.append((n - rest, n))
        return bounds

    def global_batches(self) -> tuple[list[tuple[int, int, int]], list[np.ndarray]]:
        """(the epoch's batches as (dataset, start, stop) into its permutation, the permutations)."""
        if self._plan is None or self._plan[0] != self.epoch:
            streams = np.random.SeedSequence([self.seed, self.epoch]).spawn(len(self.lengths) + 1)
            perms = [np.random.default_rng(streams[d]).permutation(n) for d, n in enumerate(self.lengths)]
            phases = np.random.default_rng(streams[-1]).random(len(self.lengths))
            batches, keys, ids = [], [], []
            for d in range(len(self.lengths)):
                bounds = self._batches_of(d)
                for j, (start, stop) in enumerate(bounds):
                    batches.append((d, start, stop))
                    keys.append((j + phases[d]) / len(bounds))
                    ids.append(d)
            order = np.lexsort((np.asarray(ids), np.asarray(keys))) if batches else []
            self._plan = (self.epoch, [batches[i] for i in order], perms)
        return self._plan[1], self._plan[2]

    def local_batch(self, number: int) -> list[PairKey]:
        """This rank's slice of global batch `number` of the epoch."""
        batches, perms = self.global_batches()
        d, start, stop = batches[number]
        size, w = stop - start, self.world_size
        lo = start + self.rank * (size // w) + min(self.rank, size % w)
        hi = lo + size // w + (1 if self.rank < size % w else 0)
        return [PairKey(d, int(i), number) for i in perms[d][lo:hi]]

    def __iter__(self) -> Iterator[list[PairKey]]:
        total = len(self.global_batches()[0])
        if self.position >= total:
            self.position = 0
        while self.position < total:
            batch = self.local_batch(self.position)
            self.position += 1
            yield batch

    def __len__(self) -> int:
        """Batches the next iteration yields (the rest of the epoch, or all of it after the end)."""
        total = len(self.global_batches()[0])
        return total - self.position if self.position < total else total

    def num_batches(self) -> int:
        return len(self.global_batches()[0])

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "lengths": list(self.lengths),
            "batch_sizes": list(self.batch_sizes),
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at `state["position"]` of `state["epoch"]`; the data and batching must be the same."""
        for key in ("seed", "lengths", "batch_sizes", "drop_last"):
            if key in state and state[key] != self.state_dict()[key]:
                raise ValueError(f"cannot resume: {key} was {state[key]}, now {self.state_dict()[key]}")
        self.epoch = int(state.get("epoch", self.epoch))
        position = int(state["position"])
        if not 0 <= position <= self.num_batches():
            raise ValueError(f"position {position} is outside the epoch's {self.num_batches()} batches")
        self.position = position


# --- Loader -------------------------------------------------------------------------------------------------------


class PairLoader(DataLoader):
    """A DataLoader that keeps the bad items of the current (or last finished) epoch in `bad_items`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.bad_items: list[BadItem] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.bad_items = []
        for batch in super().__iter__():
            self.bad_items.extend(batch["bad_items"])
            yield batch

    def bad_item_report(self) -> str:
        """One line per bad item of the epoch (empty string when there was none)."""
        return "\n".join(
            f"dataset {b.dataset} row {b.index} batch {b.batch} {b.modality} {b.item}: {b.reason}"
            for b in self.bad_items
        )


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs from the seed torch gives each worker (base seed + worker id)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    datasets: Sequence[PairDataset],
    batch_size: int | Sequence[int],
    *,
    seed: int,
    epoch: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    start_batch: int = 0,
    persistent_workers: bool = False,
    drop_last: bool = True,
    pin_memory: bool = False,
) -> PairLoader:
    """A loader over the mix of `datasets`: global batch `batch_size` (this rank loads batch_size /
    world_size), starting at global batch `start_batch` of `epoch`. Worker RNGs are seeded from (seed, epoch,
    rank). The batch sampler is `loader.batch_sampler` (call its `set_epoch` when reusing the loader)."""
    sampler = MixedPairBatchSampler(
        [len(d) for d in datasets], batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
        drop_last=drop_last,
    )  # fmt: skip
    sampler.load_state_dict({"epoch": epoch, "position": start_batch})
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1))
    return PairLoader(
        ConcatPairs(datasets),
        batch_sampler=sampler,
        collate_fn=collate_pairs,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=persistent_workers and num_workers > 0,
        pin_memory=pin_memory,
    )


# --- Frozen-tower embedding cache ----------------------------------------------------------------------------


def module_fingerprint(module: nn.Module) -> str:
    """sha256 of a module's state (names, dtypes, shapes, values): changes whenever its weights do."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """Embeddings of the frozen anchor tower, one row per manifest row, in a memory-mapped .npy file.

    Valid for one (tower `fingerprint`, `manifest_hash`, anchor `transform_signature`): opening it with any
    other value, another shape or dtype, or over an unreadable file starts an empty cache (the reason is in
    `reset_reason`). On disk, rows count as present only once `flush()` has recorded them in the side file
    `<path>.json` (written atomically after the data is flushed), so a crash never exposes a half-written row;
    call it at checkpoints and at the end of an epoch (`close()` and the context manager also do).

    Only deterministic anchor transforms may be cached: with anchor augmentation (random crops, flips) every
    epoch must see new views, so disable the cache. One process writes it (under DDP, gather the embeddings
    to rank 0, or give each rank its own file).
    """

    VERSION = 1

    def __init__(
        self,
        path: str | os.PathLike,
        num_rows: int,
        dim: int,
        *,
        fingerprint: str,
        manifest_hash: str,
        transform_signature: str = "",
        dtype: str = "float16",
    ):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
        if num_rows <= 0 or dim <= 0:
            raise ValueError(f"num_rows and dim must be positive, got {num_rows}, {dim}")
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".json")
        self.key = {
            "version": self.VERSION,
            "num_rows": num_rows,
            "dim": dim,
            "dtype": dtype,
            "fingerprint": fingerprint,
            "manifest_hash": manifest_hash,
            "transform_signature": transform_signature,
        }
        self.reset_reason: str | None = None
        self._dirty = False
        self._data: np.memmap
        self._filled = self._load()
        if self._filled is None:
            self._reset()

    @classmethod
    def for_dataset(
        cls, path: str | os.PathLike, dataset: PairDataset, dim: int, *, fingerprint: str, dtype: str = "float16"
    ) -> EmbeddingCache:
        """The cache of `dataset`'s anchor embeddings, keyed by its manifest and anchor transform."""
        return cls(
            path, len(dataset.manifest), dim, fingerprint=fingerprint, manifest_hash=dataset.manifest.fingerprint,
            transform_signature=transform_signature(dataset.transforms[dataset.anchor]), dtype=dtype,
        )  # fmt: skip

    def _load(self) -> np.ndarray | None:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.reset_reason = "no cache yet"
            return None
        except (OSError, ValueError) as error:
            self.reset_reason = f"unreadable cache index ({error})"
            return None
        changed = [k for k, v in self.key.items() if meta.get(k) != v]
        if changed:
            self.reset_reason = f"cache made for another {', '.join(changed)}"
            return None
        try:
            data = np.load(self.path, mmap_mode="r+")
            filled = np.unpackbits(np.frombuffer(base64.b64decode(meta["filled"]), np.uint8))[: self.key["num_rows"]]
        except (OSError, ValueError, KeyError) as error:
            self.reset_reason = f"unreadable cache data ({error})"
            return None
        if data.shape != (self.key["num_rows"], self.key["dim"]) or data.dtype != np.dtype(self.key["dtype"]):
            self.reset_reason = f"cache data has shape {data.shape} {data.dtype}"
            return None
        if len(filled) != self.key["num_rows"]:
            self.reset_reason = "cache index does not cover every row"
            return None
        self._data = data
        return filled.astype(bool)

    def _reset(self) -> None:
        """An empty cache: first an index claiming no row (so no old row survives a crash), then the data."""
        self._filled = np.zeros(self.key["num_rows"], dtype=bool)
        self._write_meta()
        with atomic_path(self.path) as tmp:
            empty = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=self.key["dtype"], shape=(self.key["num_rows"], self.key["dim"])
            )
            empty.flush()
            del empty
        self._data = np.load(self.path, mmap_mode="r+")

    def _write_meta(self) -> None:
        packed = base64.b64encode(np.packbits(self._filled).tobytes()).decode("ascii")
        with atomic_open(self.meta_path, "w") as f:
            json.dump({**self.key, "filled": packed}, f)

    def _rows(self, indices: Any) -> np.ndarray:
        rows = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.key["num_rows"]):
            raise IndexError(f"rows {rows.min()}..{rows.max()} outside the cache's {self.key['num_rows']} rows")
        return rows

    @property
    def complete(self) -> bool:
        """Every manifest row has its embedding: the anchor files need not be read any more."""
        return bool(self._filled.all())

    @property
    def num_filled(self) -> int:
        return int(self._filled.sum())

    def get(self, indices: Any) -> torch.Tensor | None:
        """float32 [len(indices), dim] embeddings of these manifest rows, or None if any is not cached."""
        rows = self._rows(indices)
        if not self._filled[rows].all():
            return None
        return torch.from_numpy(np.asarray(self._data[rows], dtype=np.float32))

    def put(self, indices: Any, embeddings: torch.Tensor) -> None:
        """Store [len(indices), dim] embeddings of these manifest rows; `flush()` makes them persistent."""
        rows = self._rows(indices)
        values = embeddings.detach().float().cpu().numpy()
        if values.shape != (len(rows), self.key["dim"]):
            raise ValueError(f"embeddings {values.shape} do not match {len(rows)} rows of dim {self.key['dim']}")
        if not np.isfinite(values).all():
            raise ValueError("refusing to cache NaN or infinite embeddings")
        self._data[rows] = values.astype(self.key["dtype"])
        self._filled[rows] = True
        self._dirty = True

    def flush(self) -> None:
        """Write the data to disk, then the index that declares the rows present (atomically)."""
        if self._dirty:
            self._data.flush()
            self._write_meta()
            self._dirty = False

    def close(self) -> None:
        self.flush()
        del self._data

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
