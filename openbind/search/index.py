"""A searchable index of files of every modality in one folder, built resumably and updated incrementally.

Layout of an index folder:

    index.json        model (source + fingerprint), sources, settings, the vector store (`store`: FAISS here, or
                      Milvus), the published generation and its index spec
    items.sqlite      the catalogue (`search.catalog`): items, failures, and where each vector is stored
    chunks/<n>.npy    float16 vectors of one committed chunk of a build, until they are published
    gen-<g>/          a published FAISS generation (`search.faiss_store`)

Every write is new files then a rename, or one SQLite transaction: a chunk's vectors file is renamed into place
before the transaction that records its items, so a killed build leaves at most an unreferenced file, and a rerun
embeds exactly the files that have no row. Publishing hands the committed vectors to the store, which makes them
searchable without ever showing a reader a half-written index.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from openbind.errors import OpenBindInputError
from openbind.eval.embedding import embed_items
from openbind.eval.embedding_cache import model_fingerprint
from openbind.modalities import get_input, input_for_path, input_names, kinds_in_file, modality_of
from openbind.search.ann import DEFAULT_MEMORY_BUDGET, choose_index
from openbind.search.catalog import Catalog, Identity
from openbind.search.files import assemble, embed_files, file_identity, file_sha256, file_stat, kind_transform, kinds_named
from openbind.search.query import ITEM
from openbind.search.sources import Candidate, make_source, walk
from openbind.search.store import SearchResult, VectorStore, store_class
from openbind.utils import atomic_path, atomic_write_text

META_NAME = "index.json"
DB_NAME = "items.sqlite"
FORMAT = 1

Term = tuple[str, Any, float]  # (input kind or "item", value, weight)

__all__ = ["Index", "SearchResult", "SyncReport", "build_index", "describe_model"]


@dataclass
class SyncReport:
    """What a build, update or add did; `failed` lists (path, reason) of the files skipped this time."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def describe_model(model: str | os.PathLike) -> dict[str, Any]:
    """What an index (or a set of embedding shards) records of its model: path, fingerprint, joint dimension and
    towers. Refuses a preset with random weights, whose vectors could never be matched to a model again."""
    fingerprint = model_fingerprint(model)
    if fingerprint is None:
        raise ValueError(
            f"model {str(model)!r} is not a checkpoint or run directory on disk: an index must record the weights "
            "its vectors came from"
        )
    from openbind.factory import get_model_config

    config = get_model_config(str(model))
    return {"source": str(Path(model).resolve()), "fingerprint": fingerprint, "embed_dim": config.embed_dim,
            "modalities": config.modalities}  # fmt: skip


class Index:
    """An index folder, open for queries (from any number of threads) and for changes (`update`, `add`,
    `remove`; one writer at a time)."""

    def __init__(
        self, root: Path, meta: dict[str, Any], model_source: str, mmap: bool | None,
        model_options: dict[str, Any] | None = None,
    ):  # fmt: skip
        self.root = root
        self.meta = meta
        self.model_source = model_source
        self.mmap = mmap
        self.model_options = model_options or {}
        self.catalog = Catalog(root / DB_NAME)
        self._model = None
        self._model_lock = threading.Lock()
        self.store: VectorStore = store_class(_store_of(meta)["backend"])(self)
        try:
            self.store.open(mmap)
        except BaseException:
            self.catalog.close()
            raise

    # ---- creating and opening

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        model: str | os.PathLike,
        *,
        index_type: str | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        backend: str = "faiss",
        uri: str | None = None,
        collection: str | None = None,
        recorded: dict[str, Any] | None = None,
        precision: str = "fp32",
        device: str = "cpu",
    ) -> Index:
        """A new, empty index for `model` (a checkpoint or run directory), or the existing one if it was made for
        the same model and vector store (so a killed build resumes). `backend`: where the vectors are searched,
        "faiss" (in the index folder) or "milvus" (the collection `collection` at `uri`, see `search.milvus`).
        `recorded`: the model as `describe_model` wrote it down elsewhere (embedding shards), used instead of
        `model` when the vectors were embedded on other machines. `precision`, `device`: how the model runs
        (`create_model`'s options; "int8" for fast CPU embedding)."""
        options = {"precision": precision, "device": device}
        root = Path(path)
        store = store_class(backend).settings(uri, collection, index_type, root)
        if (root / META_NAME).is_file():
            index = cls.open(root, **options) if recorded is not None else cls.open(root, model=model, **options)
            if recorded is not None and index.meta["model"]["fingerprint"] != recorded["fingerprint"]:
                index.close()
                raise ValueError(
                    f"index {root} was built with model {index.meta['model']['source']} (fingerprint "
                    f"{index.meta['model']['fingerprint']}), not with {recorded['source']} (fingerprint "
                    f"{recorded['fingerprint']}): their embeddings are not comparable"
                )
            if _store_of(index.meta) != store:
                index.close()
                raise ValueError(f"index {root} keeps its vectors in {_store_of(index.meta)}, not in {store}")
        else:
            recorded = recorded or describe_model(model)
            root.mkdir(parents=True, exist_ok=True)
            meta = {
                "format": FORMAT, "model": recorded,
                "sources": [], "settings": {}, "generation": 0, "index": None, "store": store,
            }  # fmt: skip
            Catalog.create(root / DB_NAME)
            atomic_write_text(root / META_NAME, json.dumps(meta, indent=2))
            index = cls(root, meta, meta["model"]["source"], None, options)
        choose_index(1, 1, memory_budget, index_type)  # a bad option fails now, not after embedding
        index.meta["settings"] = {"index_type": index_type, "memory_budget": memory_budget}
        index.write_meta()
        return index

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, model: str | os.PathLike | None = None, mmap: bool | None = None,
        precision: str = "fp32", runtime: str | None = None, device: str = "cpu",
    ) -> Index:  # fmt: skip
        """Open an index. `model`: the model queries will be embedded with (default: the recorded one); it must
        be the model the index was built with, at any path, or an ONNX export of it (`openbind export onnx`).
        `mmap`: memory-map the vectors and the FAISS index (default: when the vectors file is larger than
        64 MiB). `precision`, `runtime`, `device`: how the model runs (`create_model`'s options)."""
        root = Path(path)
        if not (root / META_NAME).is_file():
            raise ValueError(f"{root} is not an openbind index (no {META_NAME})")
        meta = json.loads((root / META_NAME).read_text())
        recorded = meta["model"]
        source = recorded["source"]
        if model is not None:
            if not _same_weights(model, recorded["fingerprint"]):
                raise ValueError(
                    f"index {root} was built with model {recorded['source']} (fingerprint {recorded['fingerprint']}),"
                    f" not with {model} (fingerprint {model_fingerprint(model)}): their embeddings are not "
                    "comparable; query with the index's model or build a new index"
                )
            source = str(model)
        options = {"precision": precision, "runtime": runtime, "device": device}
        return cls(root, meta, source, mmap, {key: value for key, value in options.items() if value is not None})

    def close(self) -> None:
        self.store.close()
        self.catalog.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_meta(self) -> None:
        atomic_write_text(self.root / META_NAME, json.dumps(self.meta, indent=2))

    # ---- what is in it

    def __len__(self) -> int:
        return self.catalog.count()

    def items(self) -> list[dict[str, Any]]:
        """Every item row (failed ones included), by id."""
        return self.catalog.items()

    def item(self, item_id: int) -> dict[str, Any]:
        """One item's row (id, path, kind, source, size, mtime_ns, sha256, kinds, status, error); KeyError when
        the index has no such item."""
        row = self.catalog.item(item_id)
        if row is None:
            raise KeyError(item_id)
        return row

    def items_with_content(self, data: bytes) -> set[int]:
        """Ids of the indexed files whose content is `data` (by sha256): an uploaded query file found in the
        index, to leave out of its own results."""
        return set(self.catalog.items_with_sha256(hashlib.sha256(data).hexdigest()))

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every file the index skipped."""
        return self.catalog.failures()

    def item_vectors(self, item: int | str) -> dict[str, np.ndarray]:
        """The float16 vectors of one item (by id or path), by input kind."""
        item_id = item if isinstance(item, int) else self.catalog.item_id(str(Path(item).resolve()))
        rows = self.catalog.vectors_of(item_id) if item_id is not None else []
        if not rows:
            raise OpenBindInputError(item, "no such item in the index")
        return dict(zip([row[0] for row in rows], self.store.stored([row[1:] for row in rows])))

    # ---- changing it

    def add_source(self, source: dict[str, Any]) -> None:
        """Record a source (`sources.make_source`) for this and later `update`s."""
        if source not in self.meta["sources"]:
            self.meta["sources"].append(source)
            self.write_meta()

    def update(self, *, batch_size: int = 32, num_workers: int = 0, chunk_size: int = 256, progress: bool = True) -> SyncReport:
        """Walk the recorded sources again: embed new and changed files (size and mtime differ and the sha256
        confirms), drop deleted ones, keep the rest; then publish. A killed update or build resumes here."""
        candidates = list(walk(self.meta["sources"]))
        candidates += [Candidate(path, kind, -1) for path, kind in self.catalog.added_files() if os.path.exists(path)]
        return self._sync(candidates, True, batch_size, num_workers, chunk_size, progress)

    def add(
        self, paths: Iterable[str | os.PathLike], *, kind: str | None = None, batch_size: int = 32,
        num_workers: int = 0, progress: bool = False,
    ) -> SyncReport:  # fmt: skip
        """Index files outside the recorded sources (their kind from the suffix, or `kind`); kept by `update`
        while they exist."""
        candidates = []
        for path in paths:
            found = get_input(kind) if kind is not None else input_for_path(path)
            if found is None:
                raise OpenBindInputError(str(path), f"no input kind has this suffix; pass kind= (one of {input_names()})")
            candidates.append(Candidate(str(Path(path).resolve()), found.name, -1))
        return self._sync(candidates, False, batch_size, num_workers, 256, progress)

    def remove(self, items: Iterable[int | str | os.PathLike]) -> int:
        """Drop items by id or path; returns how many were removed."""
        ids = []
        for item in items:
            found = item if isinstance(item, int) else self.catalog.item_id(str(Path(item).resolve()))
            ids += [] if found is None else [found]
        self.catalog.delete(ids)
        self.publish()
        return len(ids)

    def _sync(
        self, candidates: list[Candidate], drop_others: bool, batch_size: int, num_workers: int, chunk_size: int,
        progress: bool,
    ) -> SyncReport:  # fmt: skip
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        report = SyncReport()
        known = self.catalog.files()
        todo, touched = [], []
        for candidate in candidates:
            row = known.get(candidate.path)
            if row is None:
                todo.append(candidate)
                report.added += 1
                continue
            _, item_id, kind, size, mtime_ns, digest = row
            stat = file_stat(candidate.path)
            if kind == candidate.kind and stat == (size, mtime_ns):
                report.unchanged += 1
            elif kind == candidate.kind and stat is not None and file_sha256(candidate.path) == digest:
                touched.append((*stat, item_id))  # touched, not changed: keep the vectors
                report.unchanged += 1
            else:
                todo.append(candidate)
                report.changed += 1
        listed = {c.path for c in candidates}
        gone = [row[1] for path, row in known.items() if path not in listed] if drop_others else []
        self.catalog.touch(touched)
        self.catalog.delete(gone)
        report.removed = len(gone)
        model = self.model_for({modality_of(kind).name for c in todo for kind in kinds_in_file(c.kind)}) if todo else None
        with tqdm(total=len(todo), desc=f"index {self.root.name}", unit="item", disable=not progress) as bar:
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                report.failed += self.commit(chunk, *assemble(chunk, embed_files(model, chunk, batch_size, num_workers)))
                bar.update(len(chunk))
        self.publish()
        return report

    def commit(
        self, chunk: list[Candidate], vectors: list[dict[str, np.ndarray]], errors: dict[int, str],
        identities: list[Identity] | None = None,
    ) -> list[tuple[str, str]]:  # fmt: skip
        """Record one embedded chunk (each file's vectors by kind, and why files failed, by position): its vectors
        file first (renamed into place), then its rows in one transaction that also drops the files' previous
        rows. `identities`: each file's (size, mtime_ns, sha256) when they were taken where it was embedded
        (default: read now). Returns (path, reason) of the failed files. Searchable after `publish`."""
        rows = [(i, kind, vec) for i in range(len(chunk)) if i not in errors for kind, vec in vectors[i].items()]
        file = None
        if rows:
            (self.root / "chunks").mkdir(exist_ok=True)
            numbers = [int(p.stem) for p in (self.root / "chunks").glob("*.npy") if p.stem.isdigit()]
            file = f"chunks/{max(numbers, default=-1) + 1:06d}.npy"
            with atomic_path(self.root / file) as tmp, open(tmp, "wb") as f:
                np.save(f, np.stack([vec for _, _, vec in rows]).astype(np.float16))
        identities = identities or [file_identity(c.path) for c in chunk]
        kinds = [",".join(v) for v in vectors]
        self.catalog.record(chunk, identities, kinds, errors, [(i, kind) for i, kind, _ in rows], file)
        return [(chunk[i].path, reason) for i, reason in sorted(errors.items())]

    def publish(self) -> None:
        """Make every committed vector searchable (and the removed ones not), then delete the chunk files
        nothing refers to any more (the leftovers of a killed run included)."""
        self._delete_unreferenced_chunks()
        self.store.publish()
        self._delete_unreferenced_chunks()

    def _delete_unreferenced_chunks(self) -> None:
        folder = self.root / "chunks"
        if not folder.is_dir():
            return
        referenced = self.catalog.referenced_files()
        for path in folder.glob("*.npy"):
            if f"chunks/{path.name}" not in referenced:
                path.unlink()

    # ---- searching it

    def search(
        self, query: Sequence[Term] | np.ndarray, k: int = 10, modalities: Sequence[str] | None = None,
        exclude: Iterable[int] = (),
    ) -> list[SearchResult]:  # fmt: skip
        """The `k` items closest to `query`, best first, one result per item.

        `query` is a list of (input kind or "item", value, weight) terms, whose unit embeddings are summed with
        their weights and renormalised (ImageBind's embedding arithmetic), or a ready vector. Files and items of
        the query are left out of the results, as are the `exclude` ids. `modalities`: only vectors of these
        input kinds (or of every kind of these modalities)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        excluded = set(exclude)
        if isinstance(query, np.ndarray):
            vector = unit(np.asarray(query, np.float32).reshape(-1))
        else:
            vector, own = self.compose(query)
            excluded |= own
        kinds = sorted({kind for name in modalities for kind in kinds_named(name)}) if modalities else None
        return self.store.nearest(vector, k, kinds, excluded)

    def compose(self, terms: Sequence[Term]) -> tuple[np.ndarray, set[int]]:
        """The unit query vector of weighted terms, and the ids of indexed items the query itself names."""
        if not terms:
            raise ValueError("a query needs at least one term")
        total = np.zeros(self.meta["model"]["embed_dim"], np.float32)
        own: set[int] = set()
        for kind, value, weight in terms:
            if kind == ITEM:
                vectors = list(self.item_vectors(int(value)).values())
                total += float(weight) * unit(np.mean(np.stack(vectors).astype(np.float32), axis=0))
                own.add(int(value))
                continue
            if get_input(kind).holds_files:  # otherwise the value is the input itself (a text)
                value = str(Path(value).resolve())
                found = self.catalog.item_id(value)
                own.update(() if found is None else (found,))
            model = self.model_for({modality_of(kind).name})
            embedded = embed_items(
                model, kind, [value],
                transform=kind_transform(model.config, kind), progress=False, on_error="raise",
            )  # fmt: skip
            total += float(weight) * embedded[0].numpy()
        if np.linalg.norm(total) < 1e-6:
            raise ValueError("the query terms cancel out (their weighted sum is zero)")
        return unit(total), own

    def model_for(self, modalities: set[str]):
        """The recorded model with at least these towers (of those it has), loaded on first need (queries by
        vector need none); refused if its files changed since the index was built."""
        from openbind.factory import create_model

        with self._model_lock:
            if self._model is not None and modalities <= set(self._model.modalities):
                return self._model
            if not _same_weights(self.model_source, self.meta["model"]["fingerprint"]):
                raise ValueError(
                    f"model {self.model_source} (fingerprint {model_fingerprint(self.model_source)}) is not the "
                    f"model index {self.root} was built with (fingerprint {self.meta['model']['fingerprint']}): "
                    "rebuild the index"
                )
            loaded = set(self._model.modalities) if self._model is not None else set()
            available = set(self.meta["model"]["modalities"])
            wanted = sorted((loaded | modalities) & available)
            self._model = create_model(self.model_source, modalities=wanted, progress=False, **self.model_options)
            return self._model


def build_index(
    src: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    globs: dict[str, list[str]] | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    chunk_size: int = 256,
    index_type: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    backend: str = "faiss",
    uri: str | None = None,
    collection: str | None = None,
    precision: str = "fp32",
    device: str = "cpu",
    progress: bool = True,
) -> tuple[Index, SyncReport]:
    """Index a folder (walked recursively) or a manifest with `model` into the folder `out`. Run again after a
    crash or kill, it continues where the last committed chunk ended. `backend`, `uri`, `collection`,
    `precision`, `device`: see `Index.create`."""
    index = Index.create(out, model, index_type=index_type, memory_budget=memory_budget, backend=backend, uri=uri,
                         collection=collection, precision=precision, device=device)  # fmt: skip
    index.add_source(make_source(src, globs))
    return index, index.update(batch_size=batch_size, num_workers=num_workers, chunk_size=chunk_size, progress=progress)


def _same_weights(model: str | os.PathLike, fingerprint: str) -> bool:
    """Whether `model` holds the weights of that fingerprint: the model directory itself, or an ONNX export
    made from it (its embeddings agree to the cosine its export check records)."""
    from openbind.runtime.onnx_model import exported_from

    return model_fingerprint(model) == fingerprint or exported_from(model) == fingerprint


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _store_of(meta: dict[str, Any]) -> dict[str, Any]:
    return meta.get("store", {"backend": "faiss"})  # an index made before backends: FAISS
