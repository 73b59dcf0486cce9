"""The default vector store: FAISS generations in the index folder.

    gen-<g>/   vectors.npy (float16, row = FAISS position), ids.npy (the vector id of each row), faiss.index
               (and merged.ivfdata when the index's inverted lists are kept on disk)

Publishing writes a whole new generation into a hidden staging folder, renames it into place, then switches
`index.json` to it; a reader maps FAISS positions to vector ids through the generation it opened, and a server
swaps generations by replacing one reference, so no reader ever sees a half-written index.

An IVF index whose codes outgrow the memory budget is built the way autofaiss and clip-retrieval build theirs:
trained once on a sample, filled in shards by parallel processes, and merged list by list into one inverted-lists
file that queries read memory-mapped (`ann.build_sharded`).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openbind.search.ann import DEFAULT_MEMORY_BUDGET, build_faiss, build_sharded, choose_index, search_faiss
from openbind.search.store import SearchResult, VectorStore
from openbind.utils import fsync_dir

MMAP_BYTES = 64 << 20  # vectors files above this are memory-mapped, not read
GATHER_ROWS = 65_536  # vectors copied into a new generation at a time


@dataclass(frozen=True)
class Generation:
    """One published generation, opened: replaced as a whole, never changed."""

    spec: dict[str, Any]
    vectors: np.ndarray  # float16, row = FAISS position
    ids: np.ndarray  # vector id of each row, ascending
    faiss: Any


class FaissStore(VectorStore):
    generation: Generation | None = None

    @classmethod
    def settings(cls, uri: str | None, collection: str | None, index_type: str | None, root: Path) -> dict[str, Any]:
        """The FAISS index lives in the index folder, so nothing to record."""
        if uri is not None or collection is not None:
            raise ValueError("uri and collection are options of the milvus backend")
        return {"backend": "faiss"}

    def open(self, mmap: bool | None = None) -> None:
        """Load the published generation: memory-mapped when `mmap` (default: when its vectors file is larger
        than 64 MiB); an index with on-disk inverted lists always reads them mapped."""
        import faiss

        meta = self.index.meta
        if not meta["generation"]:
            self.generation = None
            return
        folder = self.index.root / f"gen-{meta['generation']}"
        spec = meta["index"]
        mmap = mmap if mmap is not None else (folder / "vectors.npy").stat().st_size > MMAP_BYTES
        if spec.get("on_disk"):
            flags = faiss.IO_FLAG_ONDISK_SAME_DIR  # faiss's IO_FLAG_MMAP crashes searching merged lists
        else:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        self.generation = Generation(
            spec, np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None), np.load(folder / "ids.npy"),
            faiss.read_index(str(folder / "faiss.index"), flags),
        )  # fmt: skip

    def publish(self) -> None:
        """Gather every vector into a new generation (vectors, ids, FAISS index), switch index.json to it, point
        the vector rows at it, delete the generations nothing refers to, and open the new one."""
        import faiss

        index = self.index
        self._delete_unreferenced()
        rows = index.catalog.vector_locations()
        settings, dim = index.meta["settings"], index.meta["model"]["embed_dim"]
        budget = settings.get("memory_budget", DEFAULT_MEMORY_BUDGET)
        spec = choose_index(len(rows), dim, budget, settings.get("index_type"))
        number = index.meta["generation"] + 1
        staging = Path(tempfile.mkdtemp(prefix=".gen-", dir=index.root))
        gather_vectors(index.root, rows, dim, staging / "vectors.npy")
        np.save(staging / "ids.npy", np.array([r[0] for r in rows], np.int64))
        if spec.get("on_disk"):
            shards = min(len(rows), max(os.cpu_count() or 1, math.ceil(spec["index_bytes"] / max(budget // 2, 1))))
            os.rename(build_sharded(staging / "vectors.npy", spec, shards, staging), staging / "faiss.index")
            os.unlink(staging / "trained.index")
        else:
            vectors = np.load(staging / "vectors.npy", mmap_mode="r")
            faiss.write_index(build_faiss(spec, vectors), str(staging / "faiss.index"))
            del vectors
        for name in os.listdir(staging):
            with open(staging / name, "rb") as f:
                os.fsync(f.fileno())
        os.rename(staging, index.root / f"gen-{number}")
        fsync_dir(index.root)
        index.meta.update(generation=number, index=spec)
        index.write_meta()
        with index.catalog.transaction() as db:
            db.executemany(
                "UPDATE vectors SET file = ?, row = ? WHERE id = ?",
                [(f"gen-{number}/vectors.npy", position, r[0]) for position, r in enumerate(rows)],
            )
        self._delete_unreferenced()
        self.open(index.mmap)

    def _delete_unreferenced(self) -> None:
        """Delete staging folders and generations that neither index.json nor a vector row refers to (the
        leftovers of a killed run included)."""
        referenced = self.index.catalog.referenced_files()
        current = f"gen-{self.index.meta['generation']}"
        for path in self.index.root.iterdir():
            if path.name.startswith(".gen-") or (path.name.startswith("gen-") and path.name != current and
                                                 f"{path.name}/vectors.npy" not in referenced):  # fmt: skip
                shutil.rmtree(path)

    def nearest(self, vector: np.ndarray, k: int, kinds: Sequence[str] | None, excluded: set[int]) -> list[SearchResult]:
        """Searched in FAISS, then re-scored exactly from the float16 vectors where the spec says so (PQ)."""
        generation = self.generation  # one reference: a publish in another thread swaps it whole
        if generation is None or not len(generation.ids):
            return []
        allowed = self._allowed(generation, kinds, excluded)
        spec, total = generation.spec, len(generation.ids)
        rerank = spec["params"].get("rerank", 1)
        wanted = k * 2
        while True:
            depth = min(wanted * rerank, total)
            scores, positions = search_faiss(generation.faiss, spec, vector, depth, allowed)
            if rerank > 1:  # exact scores of the candidates, from the stored float16 vectors
                positions = np.sort(positions)
                scores = generation.vectors[positions].astype(np.float32) @ vector
            results = self._best_per_item(generation, scores, positions)
            if len(results) >= k or depth >= total or (allowed is not None and depth >= len(allowed)):
                return results[:k]
            wanted *= 2

    def _allowed(self, generation: Generation, kinds: Sequence[str] | None, excluded: set[int]) -> np.ndarray | None:
        """FAISS positions the results may come from (None: all)."""
        if not kinds and not excluded:
            return None
        vector_ids = np.array(self.index.catalog.vector_ids(kinds, excluded), np.int64)
        positions = np.searchsorted(generation.ids, vector_ids)
        found = positions < len(generation.ids)  # vectors committed after this generation are not searchable yet
        found[found] = generation.ids[positions[found]] == vector_ids[found]
        return positions[found]

    def _best_per_item(self, generation: Generation, scores: np.ndarray, positions: np.ndarray) -> list[SearchResult]:
        order = np.argsort(-scores, kind="stable")
        ids = [int(generation.ids[positions[i]]) for i in order]
        owners = self.index.catalog.owners(ids)
        results: dict[int, SearchResult] = {}
        for vector_id, i in zip(ids, order):
            if vector_id in owners and owners[vector_id][0] not in results:
                item_id, path, kind = owners[vector_id]
                results[item_id] = SearchResult(item_id, path, kind, float(scores[i]))
        return list(results.values())


def gather_vectors(root: Path, rows: Sequence[tuple[int, str, int]], dim: int, out: Path) -> None:
    """Write the float16 vectors of `rows` ((vector id, file, row) in id order, files relative to `root`) to the
    .npy file `out`, `GATHER_ROWS` at a time, so a generation of any size is written without holding it."""
    files: dict[str, np.ndarray] = {}
    with open(out, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
                  "shape": (len(rows), dim)}  # fmt: skip
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, len(rows), GATHER_ROWS):
            block = rows[start : start + GATHER_ROWS]
            gathered = np.empty((len(block), dim), np.float16)
            by_file: dict[str, list[tuple[int, int]]] = defaultdict(list)
            for position, (_, file, row) in enumerate(block):
                by_file[file].append((position, row))
            for file, pairs in by_file.items():
                if file not in files:
                    files[file] = np.load(root / file, mmap_mode="r")
                positions, source_rows = zip(*pairs)
                gathered[list(positions)] = files[file][list(source_rows)]
            f.write(gathered.tobytes())
