"""The vector store of a search index: FAISS in the index folder against Milvus Lite (`--backend milvus`).

N items, each one text file with one random unit vector of dimension D (1024: imagebind_huge's joint space),
committed straight into the catalogue (no model runs: this measures the store, not the towers). For each
backend: the first publish (FAISS: a new generation with its index; Milvus: upserting every vector), an update
that adds 1% more items (FAISS rebuilds its generation from all vectors; Milvus upserts the new ones only),
the median latency of single queries (top 10, with and without a modality filter), and the top-10 overlap of
Milvus with FAISS.

    .venv/bin/python benchmarks/bench_search_milvus.py [--items 20000] [--dim 1024] [--queries 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import median, print_table, time_call
from openbind.factory import create_model, get_model_config
from openbind.search import Index
from openbind.search.sources import Candidate
from openbind.weights.checkpoint import save_checkpoint


def _model(directory: Path, dim: int) -> Path:
    """A tiny random checkpoint whose joint space has `dim` dimensions (the store only needs its fingerprint)."""
    config = dataclasses.replace(get_model_config("imagebind_tiny"), embed_dim=dim)
    torch.manual_seed(0)
    save_checkpoint(create_model(config, modalities=["text"], progress=False).state_dict(), config, directory)
    return directory


def _fill(index: Index, files: list[Path], vectors: np.ndarray, kinds: list[str], chunk: int = 2_000) -> None:
    for start in range(0, len(files), chunk):
        part = range(start, min(start + chunk, len(files)))
        index.commit([Candidate(str(files[i]), kinds[i], -1) for i in part],
                      [{kinds[i]: vectors[i]} for i in part], {})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    total = args.items + args.items // 100
    vectors = rng.normal(size=(total, args.dim)).astype(np.float32)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    kinds = ["text" if i % 2 else "image" for i in range(total)]  # "image": a stand-in kind for the filter
    rows, top = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = _model(root / "model", args.dim)
        (root / "files").mkdir()
        files = [root / "files" / f"{i:07d}.txt" for i in range(total)]
        for i, path in enumerate(files):
            path.write_text(f"item {i}")
        for backend in ("faiss", "milvus"):
            options = {"backend": "milvus", "uri": str(root / "vectors.db")} if backend == "milvus" else {}
            index = Index.create(root / backend, model, **options)
            _fill(index, files[: args.items], vectors[: args.items], kinds)
            first = time_call(index.publish)
            _fill(index, files[args.items :], vectors[args.items :], kinds[args.items :])
            update = time_call(index.publish)
            plain = median([time_call(lambda q=q: index.search(q, k=10)) for q in queries])
            filtered = median([time_call(lambda q=q: index.search(q, k=10, modalities=["text"])) for q in queries])
            top[backend] = [[r.id for r in index.search(q, k=10)] for q in queries]
            rows.append([backend, index.meta["index"]["factory"].split(" at ")[0], f"{first:.2f}", f"{update:.2f}",
                         f"{plain * 1e3:.1f}", f"{filtered * 1e3:.1f}"])  # fmt: skip
            index.close()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top["faiss"], top["milvus"])])
    print(f"{args.items:,} items (+{total - args.items:,} in the update), dim {args.dim}, {args.queries} queries")
    print_table(["backend", "index", "first publish s", "update (+1%) s", "query ms", "query, filtered ms"], rows)
    print(f"top-10 overlap of Milvus with FAISS: {overlap:.3f}")


if __name__ == "__main__":
    main()
