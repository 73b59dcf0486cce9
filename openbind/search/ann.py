"""Which FAISS index fits a collection, chosen from its size, its dimension and a memory budget (autofaiss's rules,
simplified), and searching it with the recorded parameters.

- `flat` (exact inner product) below `FLAT_MAX` vectors: exact, and fast enough there;
- `hnsw` (HNSW32 over the float32 vectors) while its `4*d + 8*M` bytes per vector fit the budget: the best
  recall per millisecond;
- `ivf_sq8` (inverted lists, 8-bit scalar quantization: d bytes per vector) when HNSW does not fit;
- `ivf_pq` (product quantization to m bytes per vector, m the largest that fits) beyond, with the top candidates
  re-scored exactly from the stored float16 vectors.

An IVF index whose codes still outgrow the budget keeps its inverted lists on disk (`build_sharded`).
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

FLAT_MAX = 100_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
IVF_NPROBE = 16
PQ_RERANK = 10  # PQ search keeps this many candidates per result, re-scored from the float16 vectors
# PQ sub-vectors of at least this many dimensions: faiss trains 8-d sub-quantizers about 10x slower per code byte
# than 16-d ones (measured: 54 s for PQ128x8 of 1024-d on 12,800 points, 5 s for PQ64x8, one thread), and the
# re-ranking from float16 vectors recovers what the shorter codes lose
PQ_MIN_SUBDIM = 16
DEFAULT_MEMORY_BUDGET = 4 << 30
TRAIN_POINTS_PER_LIST = 50  # k-means sample per IVF list: faiss wants >= 39; training time grows with it
ADD_CHUNK = 65_536  # vectors converted to float32 at a time while filling an index
INDEX_TYPES = ("flat", "hnsw", "ivf_sq8", "ivf_pq")


def parse_size(text: str) -> int:
    """`"4G"`, `"512M"`, `"1000000"` -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = (text[:-1], units[text[-1].upper()]) if text and text[-1].upper() in units else (text, 1)
    try:
        return int(float(number) * unit)
    except ValueError:
        raise ValueError(f"a memory size is a number with an optional K, M, G or T suffix, got {text!r}") from None


def choose_index(
    count: int, dim: int, memory_budget: int = DEFAULT_MEMORY_BUDGET, index_type: str | None = None
) -> dict[str, Any]:
    """The index spec (type, FAISS factory string, search parameters) for `count` vectors of `dim`."""
    if index_type is not None and index_type not in INDEX_TYPES:
        raise ValueError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be > 0 bytes, got {memory_budget}")
    if index_type is None:
        if count < FLAT_MAX:
            index_type = "flat"
        elif count * (4 * dim + 8 * HNSW_M) <= memory_budget:
            index_type = "hnsw"
        elif count * (dim + 8) <= memory_budget:
            index_type = "ivf_sq8"
        else:
            index_type = "ivf_pq"
    spec: dict[str, Any] = {"type": index_type, "count": count, "dim": dim, "memory_budget": memory_budget}
    if index_type == "flat":
        return {**spec, "factory": "Flat", "params": {}}
    if index_type == "hnsw":
        return {**spec, "factory": f"HNSW{HNSW_M},Flat", "params": {"efSearch": HNSW_EF_SEARCH}}
    # autofaiss: about 4 sqrt(N) lists, a power of two; at least 39 training points per list
    nlist = max(1, min(2 ** round(math.log2(4 * math.sqrt(max(count, 1)))), count // 39))
    params = {"nprobe": min(IVF_NPROBE, nlist)}
    spec["nlist"] = nlist
    if index_type == "ivf_sq8":
        return _placed({**spec, "factory": f"IVF{nlist},SQ8", "params": params}, count * (dim + 8))
    divisors = [m for m in range(1, dim + 1) if dim % m == 0 and m <= max(1, dim // PQ_MIN_SUBDIM)]
    fitting = [m for m in divisors if count * (m + 8) <= memory_budget]
    m = max(fitting) if fitting else min(divisors)
    bits = max(1, min(8, int(math.log2(max(count // 39, 2)))))  # 39 training points per centroid, as for IVF
    spec = {**spec, "factory": f"IVF{nlist},PQ{m}x{bits}", "params": {**params, "rerank": PQ_RERANK}}
    return _placed(spec, count * (m + 8))


def _placed(spec: dict[str, Any], index_bytes: int) -> dict[str, Any]:
    """An IVF spec with the bytes of its codes and ids, and whether they outgrow the memory budget: then its
    inverted lists are built in shards and kept on disk (`build_sharded`)."""
    return {**spec, "index_bytes": index_bytes, "on_disk": index_bytes > spec["memory_budget"]}


def build_faiss(spec: dict[str, Any], vectors: np.ndarray):
    """A trained and filled FAISS index (inner product) over unit `vectors`, per `spec`.

    `vectors` may be float16 and memory-mapped: IVF training reads a sample (`TRAIN_POINTS_PER_LIST` per list,
    at least 256 lists' worth for PQ's codebooks) and vectors are added `ADD_CHUNK` at a time, so besides the
    index only one chunk is held as float32, never a float32 copy of the collection."""
    import faiss

    index = faiss.index_factory(vectors.shape[1], spec["factory"], faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained and len(vectors):
        _train(index, spec, vectors)
    for _, chunk in float32_chunks(vectors):
        index.add(chunk)
    return index


def _train(index, spec: dict[str, Any], vectors: np.ndarray) -> None:
    """Train `index` on a sample of `vectors`: `TRAIN_POINTS_PER_LIST` per list, at least 256 lists' worth (PQ's
    codebooks), gathered chunk by chunk in file order."""
    count, size = len(vectors), TRAIN_POINTS_PER_LIST * max(spec.get("nlist", 1), 256)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(count, size, replace=False)) if count > size else np.arange(count)
    picked = np.empty((len(sample), vectors.shape[1]), np.float32)  # filled in place: one copy of the sample
    for start, chunk in float32_chunks(vectors):
        low, high = np.searchsorted(sample, [start, start + len(chunk)])
        picked[low:high] = chunk[sample[low:high] - start]
    index.train(picked)


def build_sharded(
    vectors_path: str | os.PathLike, spec: dict[str, Any], shards: int, out_dir: str | os.PathLike,
    workers: int | None = None,
) -> Path:  # fmt: skip
    """An IVF index over the float16 .npy at `vectors_path` whose inverted lists live in a file, for collections
    whose index outgrows memory (as autofaiss and clip-retrieval build them): trained once on a sample
    (`out_dir/trained.index`), `shards` contiguous slices filled in parallel processes and written to disk, then
    merged list by list by FAISS's `merge_ondisk` into `out_dir/merged.ivfdata`, so no process holds the whole
    index. Returns `out_dir/merged.index`; open it with `faiss.read_index(path, faiss.IO_FLAG_ONDISK_SAME_DIR)`
    (the lists stay memory-mapped; faiss 1.15's `IO_FLAG_MMAP` crashes searching them)."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    if not spec["type"].startswith("ivf"):
        raise ValueError(f"only IVF indexes have inverted lists to keep on disk, got {spec['type']!r}")
    vectors = np.load(vectors_path, mmap_mode="r")
    if not 1 <= shards <= len(vectors):
        raise ValueError(f"shards must be in [1, {len(vectors)}] (the vectors), got {shards}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    index = faiss.index_factory(vectors.shape[1], spec["factory"], faiss.METRIC_INNER_PRODUCT)
    _train(index, spec, vectors)
    faiss.write_index(index, str(out / "trained.index"))
    bounds = np.linspace(0, len(vectors), shards + 1).astype(int).tolist()
    paths = [str(out / f"shard-{i}.index") for i in range(shards)]
    spawn = multiprocessing.get_context("spawn")  # a forked faiss (OpenMP) can hang
    with ProcessPoolExecutor(workers or min(shards, os.cpu_count() or 1), mp_context=spawn) as pool:
        list(pool.map(_fill_shard, [str(vectors_path)] * shards, [str(out / "trained.index")] * shards,
                      bounds[:-1], bounds[1:], paths))  # fmt: skip
    merge_ondisk(index, paths, str(out / "merged.ivfdata"))
    faiss.write_index(index, str(out / "merged.index"))
    for path in paths:
        os.unlink(path)
    return out / "merged.index"


def _fill_shard(vectors_path: str, trained_path: str, start: int, stop: int, out_path: str) -> None:
    """Rows [start, stop) of the vectors file, under their global ids, added to a copy of the trained index,
    written to `out_path` (a worker of `build_sharded`)."""
    import faiss

    index = faiss.read_index(trained_path)
    whole = np.load(vectors_path, mmap_mode="r")
    dim = whole.shape[1]
    rows = np.memmap(vectors_path, whole.dtype, "r", whole.offset + start * dim * whole.itemsize, (stop - start, dim))
    for first, chunk in float32_chunks(rows):
        index.add_with_ids(chunk, np.arange(start + first, start + first + len(chunk)))
    faiss.write_index(index, out_path)


def float32_chunks(vectors: np.ndarray, rows: int = ADD_CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 rows) of `vectors`, `rows` at a time, in one reused buffer (valid until the next).

    A memory-mapped .npy is read with explicit reads, not by slicing its map: file-backed pages count in the
    process's RSS once touched, so slicing would add the whole file (2 GB at 10^6 1024-d float16 vectors) to
    the peak RSS of a build, where reads leave them only in the page cache."""
    count, dim = vectors.shape
    out = np.empty((min(rows, count), dim), np.float32)
    mapped = isinstance(vectors, np.memmap) and isinstance(vectors.base, mmap.mmap) and vectors.flags.c_contiguous
    if not mapped:
        for start in range(0, count, rows):
            chunk = out[: min(rows, count - start)]
            np.copyto(chunk, vectors[start : start + len(chunk)])
            yield start, chunk
        return
    raw = np.empty(out.shape, vectors.dtype)
    with open(vectors.filename, "rb", buffering=0) as file:
        file.seek(vectors.offset)
        for start in range(0, count, rows):
            n = min(rows, count - start)
            if file.readinto(raw[:n]) != raw[:n].nbytes:
                raise OSError(f"{vectors.filename} ended before row {start + n:,}")
            np.copyto(out[:n], raw[:n])
            yield start, out[:n]


def search_parameters(spec: dict[str, Any], k: int):
    """FAISS search parameters of `spec`'s type from its recorded `params` (efSearch at least `k`)."""
    import faiss

    params = spec["params"]
    if spec["type"] == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=max(params["efSearch"], k))
    if spec["type"] in ("ivf_sq8", "ivf_pq"):
        return faiss.SearchParametersIVF(nprobe=params["nprobe"])
    return faiss.SearchParameters()


def search_faiss(index, spec: dict[str, Any], query: np.ndarray, k: int, allowed: np.ndarray | None):
    """(scores, positions) of the `k` best vectors for one query, only among `allowed` positions when given."""
    import faiss

    options = search_parameters(spec, k)
    if allowed is not None:
        options.sel = faiss.IDSelectorBatch(allowed.astype(np.int64))
    scores, positions = index.search(query.reshape(1, -1).astype(np.float32), k, params=options)
    keep = positions[0] >= 0
    return scores[0][keep], positions[0][keep]
