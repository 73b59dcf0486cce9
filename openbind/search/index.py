"""A searchable index of files of every modality in one folder, built resumably and updated incrementally.

Layout of an index folder:

    index.json        model (source + fingerprint), sources, settings, the vector store (FAISS here, or Milvus:
                      `search.milvus`), the published generation and its FAISS spec
    items.sqlite      items (path, input kind, size, mtime_ns, sha256, kinds embedded, status, error) and vectors
                      (item, kind, and where the float16 vector lives: file + row)
    chunks/<n>.npy    float16 vectors of one committed chunk of a build, until they are published
    gen-<g>/          vectors.npy (float16, row = FAISS position), ids.npy (vector id per row), faiss.index

Every write is new files then a rename, or one SQLite transaction: a chunk's vectors file is renamed into place
before the transaction that records its items, so a killed build leaves at most an unreferenced file, and a rerun
embeds exactly the files that have no row. Publishing writes a whole new generation folder, then switches
`index.json` to it; readers map FAISS positions to vector ids through that generation's own `ids.npy`, so they
never see a half-written index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
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
from openbind.search.query import ITEM
from openbind.search.ann import DEFAULT_MEMORY_BUDGET, build_faiss, choose_index, search_faiss
from openbind.search.sources import Candidate, make_source, walk
from openbind.utils import atomic_path, atomic_write_text, fsync_dir

META_NAME = "index.json"
DB_NAME = "items.sqlite"
FORMAT = 1
MMAP_BYTES = 64 << 20  # vectors files above this are memory-mapped, not read

Term = tuple[str, Any, float]  # (input kind or "item", value, weight)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, source INTEGER NOT NULL,
    size INTEGER, mtime_ns INTEGER, sha256 TEXT, kinds TEXT NOT NULL, status TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS vectors(
    id INTEGER PRIMARY KEY AUTOINCREMENT, item INTEGER NOT NULL, kind TEXT NOT NULL, file TEXT NOT NULL,
    row INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vectors_item ON vectors(item);
"""


@dataclass
class SearchResult:
    id: int
    path: str
    modality: str  # the input kind of the matching vector (a video matched by its sound: audio)
    score: float


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
    """An index folder, open for queries and for changes (`update`, `add`, `remove`)."""

    def __init__(self, root: Path, meta: dict[str, Any], model_source: str, mmap: bool | None):
        self.root = root
        self.meta = meta
        self.model_source = model_source
        self.mmap = mmap
        self.db = sqlite3.connect(root / DB_NAME)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._model = None
        self._open_store()

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
    ) -> Index:
        """A new, empty index for `model` (a checkpoint or run directory), or the existing one if it was made for
        the same model and vector store (so a killed build resumes). `backend`: where the vectors are searched,
        "faiss" (in the index folder) or "milvus" (the collection `collection` at `uri`, see `search.milvus`).
        `recorded`: the model as `describe_model` wrote it down elsewhere (embedding shards), used instead of
        `model` when the vectors were embedded on other machines."""
        root = Path(path)
        store = _store_settings(backend, uri, collection, index_type, root)
        if (root / META_NAME).is_file():
            index = cls.open(root) if recorded is not None else cls.open(root, model=model)
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
            sqlite3.connect(root / DB_NAME).executescript(_SCHEMA).close()
            atomic_write_text(root / META_NAME, json.dumps(meta, indent=2))
            index = _index_class(meta)(root, meta, meta["model"]["source"], None)
        choose_index(1, 1, memory_budget, index_type)  # a bad option fails now, not after embedding
        index.meta["settings"] = {"index_type": index_type, "memory_budget": memory_budget}
        index._write_meta()
        return index

    @classmethod
    def open(cls, path: str | os.PathLike, *, model: str | os.PathLike | None = None, mmap: bool | None = None) -> Index:
        """Open an index. `model`: the model queries will be embedded with (default: the recorded one); it must
        be the model the index was built with. `mmap`: memory-map the vectors and the FAISS index (default: when
        the vectors file is larger than 64 MiB)."""
        root = Path(path)
        if not (root / META_NAME).is_file():
            raise ValueError(f"{root} is not an openbind index (no {META_NAME})")
        meta = json.loads((root / META_NAME).read_text())
        recorded = meta["model"]
        source = recorded["source"]
        if model is not None:
            fingerprint = model_fingerprint(model)
            if fingerprint != recorded["fingerprint"]:
                raise ValueError(
                    f"index {root} was built with model {recorded['source']} (fingerprint {recorded['fingerprint']}),"
                    f" not with {model} (fingerprint {fingerprint}): their embeddings are not comparable; query "
                    "with the index's model or build a new index"
                )
            source = str(model)
        return _index_class(meta)(root, meta, source, mmap)

    @classmethod
    def store_settings(
        cls, uri: str | None, collection: str | None, index_type: str | None, root: Path
    ) -> dict[str, Any]:
        """The `store` record of index.json: the FAISS index lives in the index folder, so nothing to record."""
        if uri is not None or collection is not None:
            raise ValueError("uri and collection are options of the milvus backend")
        return {"backend": "faiss"}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what is in it

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM items WHERE status = 'ok'").fetchone()[0]

    def items(self) -> list[dict[str, Any]]:
        """Every item row (failed ones included), by id."""
        cursor = self.db.execute("SELECT * FROM items ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every file the index skipped."""
        return self.db.execute("SELECT path, error FROM items WHERE status = 'failed' ORDER BY path").fetchall()

    def item_vectors(self, item: int | str) -> dict[str, np.ndarray]:
        """The float16 vectors of one item (by id or path), by input kind."""
        rows = self.db.execute(
            "SELECT v.kind, v.id, v.file, v.row FROM vectors v JOIN items i ON v.item = i.id WHERE i.id = ? OR i.path = ?",
            (item if isinstance(item, int) else -1, str(Path(item).resolve()) if isinstance(item, str) else ""),
        ).fetchall()
        if not rows:
            raise OpenBindInputError(item, "no such item in the index")
        return dict(zip([row[0] for row in rows], self._stored([row[1:] for row in rows])))

    def _stored(self, rows: Sequence[tuple[int, str, int]]) -> list[np.ndarray]:
        """The float16 vectors of (vector id, file, row) rows, from the files they are stored in."""
        return [np.array(np.load(self.root / file, mmap_mode="r")[row]) for _, file, row in rows]

    # ---- changing it

    def add_source(self, source: dict[str, Any]) -> None:
        """Record a source (`sources.make_source`) for this and later `update`s."""
        if source not in self.meta["sources"]:
            self.meta["sources"].append(source)
            self._write_meta()

    def update(self, *, batch_size: int = 32, num_workers: int = 0, chunk_size: int = 256, progress: bool = True) -> SyncReport:
        """Walk the recorded sources again: embed new and changed files (size and mtime differ and the sha256
        confirms), drop deleted ones, keep the rest; then publish. A killed update or build resumes here."""
        candidates = list(walk(self.meta["sources"]))
        candidates += [
            Candidate(path, kind, -1)
            for path, kind in self.db.execute("SELECT path, kind FROM items WHERE source = -1")
            if os.path.exists(path)
        ]
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
            if isinstance(item, int):
                ids.append(item)
            else:
                row = self.db.execute("SELECT id FROM items WHERE path = ?", (str(Path(item).resolve()),)).fetchone()
                ids.extend(row or ())
        self._delete(ids)
        self._publish()
        return len(ids)

    def _sync(
        self, candidates: list[Candidate], drop_others: bool, batch_size: int, num_workers: int, chunk_size: int,
        progress: bool,
    ) -> SyncReport:  # fmt: skip
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        report = SyncReport()
        known = {row[0]: row for row in self.db.execute("SELECT path, id, kind, size, mtime_ns, sha256 FROM items")}
        todo, touched = [], []
        for candidate in candidates:
            row = known.get(candidate.path)
            if row is None:
                todo.append(candidate)
                report.added += 1
                continue
            _, item_id, kind, size, mtime_ns, digest = row
            stat = _stat(candidate.path)
            if kind == candidate.kind and stat == (size, mtime_ns):
                report.unchanged += 1
            elif kind == candidate.kind and stat is not None and _sha256(candidate.path) == digest:
                touched.append((*stat, item_id))  # touched, not changed: keep the vectors
                report.unchanged += 1
            else:
                todo.append(candidate)
                report.changed += 1
        listed = {c.path for c in candidates}
        gone = [row[1] for path, row in known.items() if path not in listed] if drop_others else []
        with self.db:
            self.db.executemany("UPDATE items SET size = ?, mtime_ns = ? WHERE id = ?", touched)
        self._delete(gone)
        report.removed = len(gone)
        model = self._model_with({modality_of(kind).name for c in todo for kind in kinds_in_file(c.kind)}) if todo else None
        with tqdm(total=len(todo), desc=f"index {self.root.name}", unit="item", disable=not progress) as bar:
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                report.failed += self._commit(chunk, *assemble(chunk, embed_files(model, chunk, batch_size, num_workers)))
                bar.update(len(chunk))
        self._publish()
        return report

    def _commit(
        self, chunk: list[Candidate], vectors: list[dict[str, np.ndarray]], errors: dict[int, str],
        identities: list[tuple[int | None, int | None, str | None]] | None = None,
    ) -> list[tuple[str, str]]:  # fmt: skip
        """Record one embedded chunk: its vectors file first (renamed into place), then its rows in one
        transaction that also drops the files' previous rows. `identities`: each file's (size, mtime_ns, sha256)
        when they were taken where it was embedded (default: read now)."""
        rows = [(i, kind, vec) for i in range(len(chunk)) if i not in errors for kind, vec in vectors[i].items()]
        shard = None
        if rows:
            (self.root / "chunks").mkdir(exist_ok=True)
            numbers = [int(p.stem) for p in (self.root / "chunks").glob("*.npy") if p.stem.isdigit()]
            shard = f"chunks/{max(numbers, default=-1) + 1:06d}.npy"
            with atomic_path(self.root / shard) as tmp, open(tmp, "wb") as f:
                np.save(f, np.stack([vec for _, _, vec in rows]).astype(np.float16))
        identities = identities or [file_identity(c.path) for c in chunk]
        with self.db:
            ids = [r[0] for c in chunk for r in self.db.execute("SELECT id FROM items WHERE path = ?", (c.path,))]
            self._delete_rows(ids)
            item_ids = {}
            for i, (candidate, identity) in enumerate(zip(chunk, identities)):
                item_ids[i] = self.db.execute(
                    "INSERT INTO items(path, kind, source, size, mtime_ns, sha256, kinds, status, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (candidate.path, candidate.kind, candidate.source, *identity,
                     ",".join(vectors[i]) if i not in errors else "", "failed" if i in errors else "ok", errors.get(i)),
                ).lastrowid  # fmt: skip
            self.db.executemany(
                "INSERT INTO vectors(item, kind, file, row) VALUES (?, ?, ?, ?)",
                [(item_ids[i], kind, shard, row) for row, (i, kind, _) in enumerate(rows)],
            )
        return [(chunk[i].path, reason) for i, reason in sorted(errors.items())]

    def _delete(self, ids: Sequence[int]) -> None:
        with self.db:
            self._delete_rows(ids)

    def _delete_rows(self, ids: Sequence[int]) -> None:
        for item_id in ids:
            self.db.execute("DELETE FROM vectors WHERE item = ?", (item_id,))
            self.db.execute("DELETE FROM items WHERE id = ?", (item_id,))

    def _publish(self) -> None:
        """Gather every vector into a new generation (vectors, ids, FAISS index), switch index.json to it, then
        point the vector rows at it and delete what nothing refers to any more."""
        self._collect_garbage()
        rows = self.db.execute("SELECT id, file, row FROM vectors ORDER BY id").fetchall()
        dim = self.meta["model"]["embed_dim"]
        vectors = np.zeros((len(rows), dim), np.float16)
        for file in sorted({r[1] for r in rows}):
            positions = [p for p, r in enumerate(rows) if r[1] == file]
            vectors[positions] = np.load(self.root / file, mmap_mode="r")[[rows[p][2] for p in positions]]
        settings = self.meta["settings"]
        spec = choose_index(len(rows), dim, settings.get("memory_budget", DEFAULT_MEMORY_BUDGET), settings.get("index_type"))
        import faiss

        generation = self.meta["generation"] + 1
        staging = Path(tempfile.mkdtemp(prefix=".gen-", dir=self.root))
        np.save(staging / "vectors.npy", vectors)
        np.save(staging / "ids.npy", np.array([r[0] for r in rows], np.int64))
        faiss.write_index(build_faiss(spec, vectors), str(staging / "faiss.index"))
        for name in os.listdir(staging):
            with open(staging / name, "rb") as f:
                os.fsync(f.fileno())
        os.rename(staging, self.root / f"gen-{generation}")
        fsync_dir(self.root)
        self.meta.update(generation=generation, index=spec)
        self._write_meta()
        with self.db:
            self.db.executemany(
                "UPDATE vectors SET file = ?, row = ? WHERE id = ?",
                [(f"gen-{generation}/vectors.npy", position, r[0]) for position, r in enumerate(rows)],
            )
        self._collect_garbage()
        self._open_store()

    def _collect_garbage(self) -> None:
        """Delete chunk files and generations that neither index.json nor a vector row refers to (the leftovers
        of a killed run included)."""
        referenced = {file for (file,) in self.db.execute("SELECT DISTINCT file FROM vectors")}
        current = f"gen-{self.meta['generation']}"
        for path in self.root.iterdir():
            if path.name.startswith(".gen-") or (path.name.startswith("gen-") and path.name != current and
                                                 f"{path.name}/vectors.npy" not in referenced):  # fmt: skip
                shutil.rmtree(path)
        for path in (self.root / "chunks").glob("*.npy") if (self.root / "chunks").is_dir() else ():
            if f"chunks/{path.name}" not in referenced:
                path.unlink()

    def _write_meta(self) -> None:
        atomic_write_text(self.root / META_NAME, json.dumps(self.meta, indent=2))

    # ---- searching it

    def _open_store(self) -> None:
        """Load the published generation: its vectors, their ids and the FAISS index."""
        self.vectors = self.ids = self.faiss = None
        if not self.meta["generation"]:
            return
        import faiss

        folder = self.root / f"gen-{self.meta['generation']}"
        mmap = self.mmap if self.mmap is not None else (folder / "vectors.npy").stat().st_size > MMAP_BYTES
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None)
        self.ids = np.load(folder / "ids.npy")
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        self.faiss = faiss.read_index(str(folder / "faiss.index"), flags)

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
            vector = _unit(np.asarray(query, np.float32).reshape(-1))
        else:
            vector, own = self.compose(query)
            excluded |= own
        return self._nearest(vector, k, modalities, excluded)

    def _nearest(
        self, vector: np.ndarray, k: int, modalities: Sequence[str] | None, excluded: set[int]
    ) -> list[SearchResult]:
        """The `k` best items for a unit query vector, from the FAISS index."""
        if self.faiss is None or not len(self.ids):
            return []
        allowed = self._allowed(modalities, excluded)
        spec = self.meta["index"]
        rerank = spec["params"].get("rerank", 1)
        wanted = k * 2
        while True:
            depth = min(wanted * rerank, len(self.ids))
            scores, positions = search_faiss(self.faiss, spec, vector, depth, allowed)
            if rerank > 1:  # exact scores of the candidates, from the stored float16 vectors
                scores = self.vectors[np.sort(positions)].astype(np.float32) @ vector
                positions = np.sort(positions)
            results = self._best_per_item(scores, positions)
            if len(results) >= k or depth >= len(self.ids) or (allowed is not None and depth >= len(allowed)):
                return results[:k]
            wanted *= 2

    def _allowed(self, modalities: Sequence[str] | None, excluded: set[int]) -> np.ndarray | None:
        """FAISS positions the results may come from (None: all)."""
        if not modalities and not excluded:
            return None
        sql, args = "SELECT id FROM vectors WHERE 1", []
        if modalities:
            kinds = sorted({kind for name in modalities for kind in _kinds_named(name)})
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        if excluded:
            sql += f" AND item NOT IN ({','.join('?' * len(excluded))})"
            args += sorted(excluded)
        vector_ids = np.array([r[0] for r in self.db.execute(sql, args)], np.int64)
        positions = np.searchsorted(self.ids, vector_ids)
        found = positions < len(self.ids)  # vectors committed after the published generation are not searchable yet
        found[found] = self.ids[positions[found]] == vector_ids[found]
        return positions[found]

    def _best_per_item(self, scores: np.ndarray, positions: np.ndarray) -> list[SearchResult]:
        order = np.argsort(-scores, kind="stable")
        ids = [int(self.ids[positions[i]]) for i in order]
        rows = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows.update({r[0]: r[1:] for r in self.db.execute(
                "SELECT v.id, i.id, i.path, v.kind FROM vectors v JOIN items i ON v.item = i.id "
                f"WHERE v.id IN ({','.join('?' * len(part))})", part)})  # fmt: skip
        results: dict[int, SearchResult] = {}
        for vector_id, i in zip(ids, order):
            if vector_id in rows and rows[vector_id][0] not in results:
                item_id, path, kind = rows[vector_id]
                results[item_id] = SearchResult(item_id, path, kind, float(scores[i]))
        return list(results.values())

    def compose(self, terms: Sequence[Term]) -> tuple[np.ndarray, set[int]]:
        """The unit query vector of weighted terms, and the ids of indexed items the query itself names."""
        if not terms:
            raise ValueError("a query needs at least one term")
        total = np.zeros(self.meta["model"]["embed_dim"], np.float32)
        own: set[int] = set()
        for kind, value, weight in terms:
            if kind == ITEM:
                vectors = list(self.item_vectors(int(value)).values())
                total += float(weight) * _unit(np.mean(np.stack(vectors).astype(np.float32), axis=0))
                own.add(int(value))
                continue
            if get_input(kind).holds_files:  # otherwise the value is the input itself (a text)
                value = str(Path(value).resolve())
                own.update(self.db.execute("SELECT id FROM items WHERE path = ?", (value,)).fetchone() or ())
            model = self._model_with({modality_of(kind).name})
            embedded = embed_items(
                model, kind, [value],
                transform=kind_transform(model.config, kind), progress=False, on_error="raise",
            )  # fmt: skip
            total += float(weight) * embedded[0].numpy()
        if np.linalg.norm(total) < 1e-6:
            raise ValueError("the query terms cancel out (their weighted sum is zero)")
        return _unit(total), own

    def _model_with(self, modalities: set[str]):
        """The recorded model with at least these towers, loaded on first need (queries by vector need none);
        refused if its files changed since the index was built."""
        from openbind.factory import create_model

        if self._model is not None and modalities <= set(self._model.modalities):
            return self._model
        fingerprint = model_fingerprint(self.model_source)
        if fingerprint != self.meta["model"]["fingerprint"]:
            raise ValueError(
                f"model {self.model_source} (fingerprint {fingerprint}) is not the model index {self.root} was built "
                f"with (fingerprint {self.meta['model']['fingerprint']}): rebuild the index"
            )
        loaded = set(self._model.modalities) if self._model is not None else set()
        available = set(self.meta["model"]["modalities"])
        self._model = create_model(self.model_source, modalities=sorted((loaded | modalities) & available), progress=False)
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
    progress: bool = True,
) -> tuple[Index, SyncReport]:
    """Index a folder (walked recursively) or a manifest with `model` into the folder `out`. Run again after a
    crash or kill, it continues where the last committed chunk ended. `backend`, `uri`, `collection`: see
    `Index.create`."""
    index = Index.create(out, model, index_type=index_type, memory_budget=memory_budget, backend=backend, uri=uri,
                         collection=collection)  # fmt: skip
    index.add_source(make_source(src, globs))
    return index, index.update(batch_size=batch_size, num_workers=num_workers, chunk_size=chunk_size, progress=progress)


STORES: dict[str, type[Index]] = {"faiss": Index}  # backend -> its Index class; search.milvus adds "milvus"


def _store_settings(
    backend: str, uri: str | None, collection: str | None, index_type: str | None, root: Path
) -> dict[str, Any]:
    """The `store` record of index.json for these options, checked by the backend's class."""
    if backend not in STORES:
        raise ValueError(f"backend must be one of {tuple(STORES)}, got {backend!r}")
    return STORES[backend].store_settings(uri, collection, index_type, root)


def _store_of(meta: dict[str, Any]) -> dict[str, Any]:
    return meta.get("store", {"backend": "faiss"})  # an index made before backends: FAISS


def _index_class(meta: dict[str, Any]) -> type[Index]:
    return STORES[_store_of(meta)["backend"]]


Embedded = tuple[int, str, "np.ndarray | None", "str | None"]  # (file position, input kind, vector, why it failed)


def embed_files(model, chunk: Sequence[Candidate], batch_size: int = 32, num_workers: int = 0) -> list[Embedded]:
    """Every kind of every file of `chunk` embedded in this process (each file's own kind, and the kinds inside
    it: a video's sound), as (position, kind, vector or None, reason or None); `assemble` turns them into files."""
    results: list[Embedded] = []
    by_kind: dict[str, list[int]] = {}
    for i, candidate in enumerate(chunk):
        for kind in kinds_in_file(candidate.kind):
            missing = missing_tower(model.modalities, kind)
            if missing is None:
                by_kind.setdefault(kind, []).append(i)
            else:
                results.append((i, kind, None, missing))
    for kind, positions in by_kind.items():
        values, kept = [], []
        for i in positions:
            try:
                values.append(file_value(kind, chunk[i].path))
                kept.append(i)
            except OpenBindInputError as error:
                results.append((i, kind, None, error.reason))
        result = embed_items(
            model, kind, values, transform=kind_transform(model.config, kind), batch_size=batch_size,
            num_workers=num_workers, on_error="skip", progress=False,
        )  # fmt: skip
        results += [(kept[j], kind, result.tensor[row].numpy(), None) for row, j in enumerate(result.kept)]
        results += [(kept[failure.index], kind, None, failure.reason) for failure in result.failed]
    return results


def assemble(chunk: Sequence[Candidate], results: Iterable[Embedded]) -> tuple[list[dict[str, np.ndarray]], dict[int, str]]:
    """Each file's vectors by kind, in `kinds_in_file` order (frames before sound, whatever embedded first), and
    why files failed: a file fails when its own kind fails; a kind inside it that fails (a silent video) is just
    left out."""
    vectors: list[dict[str, np.ndarray]] = [{} for _ in chunk]
    errors: dict[int, str] = {}
    for i, kind, vector, reason in results:
        if reason is None:
            vectors[i][kind] = vector
        elif kind == chunk[i].kind:
            errors[i] = reason
    return [{k: v[k] for k in kinds_in_file(c.kind) if k in v} for c, v in zip(chunk, vectors)], errors


def missing_tower(modalities: Sequence[str], kind: str) -> str | None:
    """Why a model with these towers cannot embed `kind` (None when it can)."""
    name = modality_of(kind).name
    return None if name in modalities else f"the model has no {name!r} tower"


def file_identity(path: str) -> tuple[int | None, int | None, str | None]:
    """(size, mtime_ns, sha256) of a file, all None when it cannot be read: how `update` tells a changed file."""
    stat = _stat(path)
    return (*stat, _sha256(path)) if stat is not None else (None, None, None)


def _kinds_named(name: str) -> list[str]:
    """An input kind's name, or a modality's name for all its kinds."""
    from openbind.modalities import all_modalities, get_modality

    if name in all_modalities() and name not in input_names():
        return [kind.name for kind in get_modality(name).inputs]
    return [get_input(name).name]


def file_value(kind: str, path: str) -> Any:
    """What to embed of a file: the file itself, or its content for kinds whose inputs are not files (.txt)."""
    if get_input(kind).holds_files:
        return path
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise OpenBindInputError(path, f"cannot read the text: {error}") from None
    if not text:
        raise OpenBindInputError(path, "empty text file")
    return text


def kind_transform(config, kind: str):
    """The per-item transform of `kind` with the model config's options (None for batched kinds: their batch
    loader); a config, not a model, so decoding workers need no weights."""
    if get_input(kind).batched:
        return None
    return get_input(kind).transform(**config.input_options(kind))


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
