"""Embeddings of evaluation items kept on disk, so a benchmark is encoded once: a rerun, another metric or the
few-shot probes read them back.

A store is one folder per (model, transform): `<root>/<model fingerprint>/<kind>-<transform signature>/`. Each
item's key is its identity (a path, or a path and what picks a part of it) plus the file's size and modification
time, so an edited or replaced file is embedded again. Each run that embeds something adds one shard
(`<n>.npz`: keys and float32 vectors), written atomically; readers load every shard, later shards winning.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.data.items import transform_signature
from openbind.utils import atomic_path
from openbind.weights.checkpoint import CONFIG_NAME


def model_fingerprint(source: str | os.PathLike) -> str | None:
    """Identity of a model on disk: its config and the names, sizes and modification times of its weight files
    (changes whenever the weights are rewritten, without reading gigabytes). None for a preset with random
    weights, whose embeddings must never be reused."""
    path = Path(source)
    if path.is_dir() and (path / "model" / CONFIG_NAME).is_file():
        path = path / "model"
    if not path.exists():
        return None
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        if file.name == CONFIG_NAME:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def item_key(identity: str, path: str | os.PathLike | None) -> str:
    """`identity` plus the file's size and modification time (nothing added when there is no such file)."""
    try:
        stat = os.stat(path) if path is not None else None
    except OSError:
        stat = None
    return identity if stat is None else f"{identity}|{stat.st_size}|{stat.st_mtime_ns}"


class EmbeddingStore:
    """Unit embeddings of one model through one transform, by item key."""

    def __init__(self, root: str | os.PathLike, model: str, kind: str, transform: Callable[..., Any]):
        self.folder = Path(root) / model / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', kind)}-{transform_signature(transform)}"
        self._vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1):
            with np.load(shard, allow_pickle=False) as data:
                self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))

    def __len__(self) -> int:
        return len(self._vectors)

    def missing(self, keys: Sequence[str]) -> list[int]:
        """Positions of the keys that have no stored embedding."""
        return [i for i, key in enumerate(keys) if key not in self._vectors]

    def get(self, keys: Sequence[str]) -> torch.Tensor:
        """float32 [len(keys), dim] embeddings (every key must be stored)."""
        return torch.from_numpy(np.stack([self._vectors[key] for key in keys]).astype(np.float32))

    def add(self, keys: Sequence[str], vectors: torch.Tensor) -> None:
        """Store new embeddings as one more shard (atomically)."""
        if not len(keys):
            return
        array = vectors.detach().float().cpu().numpy()
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.stem) for p in self.folder.glob("*.npz") if p.stem.isdigit()]
        with atomic_path(self.folder / f"{max(numbers, default=-1) + 1}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.array(list(keys), dtype=str), vectors=array)
        self._vectors.update(zip(keys, array))
