"""The frozen anchor tower's embeddings, computed once and kept on disk, so that later epochs of a bind stage
decode no anchor file and run no frozen tower."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from openbind.data.items import ItemDataset, collate_items, transform_signature
from openbind.train.pairs import PairDataset
from openbind.utils import atomic_open, atomic_path

logger = logging.getLogger("openbind")

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


@torch.no_grad()
def fill_cache(
    cache: EmbeddingCache,
    dataset: PairDataset,
    encoder: nn.Module,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    progress: bool = True,
) -> None:
    """Embed every anchor of `dataset` with the frozen `encoder` into `cache` (rows whose file is bad stay empty)."""
    rows = sorted(set(dataset.rows))
    anchors = ItemDataset(dataset.anchor, [dataset.manifest.rows[i][dataset.anchor] for i in rows],
                          dataset.transforms[dataset.anchor])  # fmt: skip
    loader = DataLoader(anchors, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_items)
    device = next(encoder.parameters()).device
    with tqdm(total=len(rows), desc="embedding anchors (frozen tower, once)", disable=not progress) as bar:
        for batch in loader:
            for failure in batch.failed:
                logger.warning("anchor of row %d is unusable: %s", rows[failure.index], failure.error)
            if batch.kept:
                with autocast():
                    cache.put([rows[i] for i in batch.kept], encoder(batch.tensor.to(device)).float())
            bar.update(len(batch.kept) + len(batch.failed))
    cache.flush()
