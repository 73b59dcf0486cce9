"""Which FAISS index fits a collection, chosen from its size, its dimension and a memory budget (autofaiss's rules,
simplified), and searching it with the recorded parameters.

- `flat` (exact inner product) below `FLAT_MAX` vectors: exact, and fast enough there;
- `hnsw` (HNSW32 over the float32 vectors) while its `4*d + 8*M` bytes per vector fit the budget: the best
  recall per millisecond;
- `ivf_sq8` (inverted lists, 8-bit scalar quantization: d bytes per vector) when HNSW does not fit;
- `ivf_pq` (product quantization to m bytes per vector, m the largest that fits) beyond, with the top candidates
  re-scored exactly from the stored float16 vectors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLAT_MAX = 100_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
IVF_NPROBE = 16
PQ_RERANK = 10  # PQ search keeps this many candidates per result, re-scored from the float16 vectors
DEFAULT_MEMORY_BUDGET = 4 << 30
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
    if index_type == "ivf_sq8":
        return {**spec, "factory": f"IVF{nlist},SQ8", "params": params}
    divisors = [m for m in range(1, dim + 1) if dim % m == 0 and m <= max(1, dim // 2)]
    fitting = [m for m in divisors if count * (m + 8) <= memory_budget]
    m = max(fitting) if fitting else min(divisors)
    bits = max(1, min(8, int(math.log2(max(count // 39, 2)))))  # 39 training points per centroid, as for IVF
    return {**spec, "factory": f"IVF{nlist},PQ{m}x{bits}", "params": {**params, "rerank": PQ_RERANK}}


def build_faiss(spec: dict[str, Any], vectors: np.ndarray):
    """A trained and filled FAISS index (inner product) over float32 unit `vectors`, per `spec`."""
    import faiss

    index = faiss.index_factory(vectors.shape[1], spec["factory"], faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained and len(vectors):
        index.train(vectors)
    if len(vectors):
        index.add(vectors)
    return index


def search_faiss(index, spec: dict[str, Any], query: np.ndarray, k: int, allowed: np.ndarray | None):
    """(scores, positions) of the `k` best vectors for one query, only among `allowed` positions when given."""
    import faiss

    selector = faiss.IDSelectorBatch(allowed.astype(np.int64)) if allowed is not None else None
    params = spec["params"]
    if spec["type"] == "hnsw":
        options = faiss.SearchParametersHNSW(efSearch=max(params["efSearch"], k))
    elif spec["type"] in ("ivf_sq8", "ivf_pq"):
        options = faiss.SearchParametersIVF(nprobe=params["nprobe"])
    else:
        options = faiss.SearchParameters()
    if selector is not None:
        options.sel = selector
    scores, positions = index.search(query.reshape(1, -1).astype(np.float32), k, params=options)
    keep = positions[0] >= 0
    return scores[0][keep], positions[0][keep]
