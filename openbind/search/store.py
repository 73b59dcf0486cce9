"""Where an index's published vectors are searched: the interface of a vector store, and the stores by name.

An `Index` keeps its catalogue (`items.sqlite`) and the vectors of committed chunks in its folder; its store
publishes them (makes them searchable) and answers nearest-neighbour queries. `faiss` (the default) keeps FAISS
generations in the index folder; `milvus` keeps one Milvus collection.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from openbind.search.index import Index

STORES = {"faiss": "openbind.search.faiss_store:FaissStore", "milvus": "openbind.search.milvus:MilvusStore"}


@dataclass
class SearchResult:
    id: int
    path: str
    modality: str  # the input kind of the matching vector (a video matched by its sound: audio)
    score: float


class VectorStore(ABC):
    """The published vectors of `index` (which holds the root folder, `meta`, the catalogue and `write_meta`)."""

    def __init__(self, index: Index):
        self.index = index

    @classmethod
    @abstractmethod
    def settings(cls, uri: str | None, collection: str | None, index_type: str | None, root: Path) -> dict[str, Any]:
        """The `store` record of index.json for these options; a bad option raises ValueError."""

    @abstractmethod
    def open(self, mmap: bool | None = None) -> None:
        """Connect to the published vectors (`mmap`: memory-map them, for stores that keep files)."""

    @abstractmethod
    def publish(self) -> None:
        """Make every vector of the catalogue searchable, and the deleted ones not."""

    @abstractmethod
    def nearest(self, vector: np.ndarray, k: int, kinds: Sequence[str] | None, excluded: set[int]) -> list[SearchResult]:
        """The `k` best items for a unit query vector, one result per item, only vectors of `kinds` (all when
        None), never the items `excluded`."""

    def stored(self, rows: Sequence[tuple[int, str, int]]) -> list[np.ndarray]:
        """The float16 vectors of (vector id, file, row) rows, from the files of the index folder."""
        return [np.array(np.load(self.index.root / file, mmap_mode="r")[row]) for _, file, row in rows]

    def close(self) -> None:
        pass


def store_class(backend: str) -> type[VectorStore]:
    """The store named `backend`, imported on first use (Milvus's client is an optional extra)."""
    if backend not in STORES:
        raise ValueError(f"backend must be one of {tuple(STORES)}, got {backend!r}")
    module, name = STORES[backend].split(":")
    return getattr(importlib.import_module(module), name)
