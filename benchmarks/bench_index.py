"""The search index types of `openbind.search.ann` at 10^4..10^6 vectors: what `choose_index`'s rules give.

Synthetic data shaped like joint embeddings: unit 1024-d vectors around N/200 random centres (at most 5,000;
noise of norm 0.7, so a vector's cosine to its centre is about 0.8), stored as the index stores them (float16,
written in chunks into a memory-mapped .npy); queries are drawn the same way. Ground truth is exact inner
product search over those float16 values. Per size and index type, in a fresh process each (peak RSS is that
process's VmHWM): build time (`ann.build_faiss`: IVF trained on a sample, vectors added in chunks), peak RSS,
the FAISS file's size, then the search knob (nprobe, efSearch; for ivf_pq also the re-rank depth) tuned the way
autofaiss tunes to a latency target: the smallest value whose recall@10 on tuning queries reaches `--recall`,
by binary search over a ladder; then queries/s one at a time and in batches of 64, and recall@10 on other
queries. Types that cannot meet the targets at a size are skipped with the reason.

    python benchmarks/bench_index.py [--quick] [--sizes 10000 100000 1000000] [--types flat hnsw ivf_sq8 ivf_pq]
                                     [--memory-budget 4G] [--recall 0.95] [--queries 1000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from openbind.search import ann

NOISE = 0.7  # norm of the noise added to a unit centre
CHUNK = 65_536
IVF_LADDER = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
RERANK_LADDER = [2, 5, 10, 20]  # ivf_pq: candidates per result re-scored from the float16 vectors


def _draw(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    points = centres[rng.integers(len(centres), size=count)]
    points = points + rng.standard_normal(points.shape, dtype=np.float32) * (NOISE / np.sqrt(centres.shape[1]))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def make_data(folder: Path, count: int, dim: int, queries: int) -> tuple[Path, np.ndarray]:
    """The float16 vectors file (written chunk by chunk, never whole in memory) and float32 queries."""
    rng = np.random.default_rng(count)
    centres = rng.standard_normal((min(max(count // 200, 16), 5_000), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    path = folder / f"vectors-{count}.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(count, dim))
    for start in range(0, count, CHUNK):
        out[start : start + CHUNK] = _draw(rng, centres, min(CHUNK, count - start))
    out.flush()
    del out
    return path, _draw(rng, centres, queries).astype(np.float32)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of the exact `k` best inner products per query, best first, read from `vectors` in chunks."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(vectors), CHUNK):
        scores = queries @ np.asarray(vectors[start : start + CHUNK], np.float32).T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged = np.concatenate([best, top + start], axis=1)
        keep = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores, best = np.take_along_axis(merged_scores, keep, 1), np.take_along_axis(merged, keep, 1)
    return best


def search(index: Any, spec: dict[str, Any], vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` best per query, as `Index.search` finds them: FAISS with the spec's parameters,
    and for a `rerank` spec that many candidates per result re-scored exactly from the float16 vectors."""
    rerank = spec["params"].get("rerank", 1)
    _, positions = index.search(queries, k * rerank, params=ann.search_parameters(spec, k))
    if rerank == 1:
        return positions
    positions = np.sort(positions, axis=1)  # memory-mapped rows read in file order
    rows = vectors[np.maximum(positions, 0).ravel()].astype(np.float32).reshape(*positions.shape, -1)
    scores = np.einsum("qd,qcd->qc", queries, rows)
    scores[positions < 0] = -np.inf
    return np.take_along_axis(positions, np.argsort(-scores, axis=1)[:, :k], 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def _knob(spec: dict[str, Any]) -> str | None:
    return {"hnsw": "efSearch", "ivf_sq8": "nprobe", "ivf_pq": "nprobe"}.get(spec["type"])


def tune(index: Any, spec: dict[str, Any], vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
         target: float) -> dict[str, Any]:  # fmt: skip
    """`spec` with its knob set to the smallest ladder value whose recall@k reaches `target` (the largest if
    none does): recall grows with the knob, and speed falls, so that value is the fastest that qualifies."""
    knob = _knob(spec)
    if knob is None:
        return spec
    k = truth.shape[1]  # HNSW searches with efSearch >= k anyway
    ladder = [v for v in IVF_LADDER if (knob == "nprobe" or v >= k) and v <= spec.get("nlist", IVF_LADDER[-1])]
    low, high = 0, len(ladder) - 1
    while low < high:
        middle = (low + high) // 2
        trial = {**spec, "params": {**spec["params"], knob: ladder[middle]}}
        if recall(search(index, trial, vectors, queries, k), truth) >= target:
            high = middle
        else:
            low = middle + 1
    return {**spec, "params": {**spec["params"], knob: ladder[low]}}


def _rate(run: Any, count: int, seconds: float = 2.0) -> float:
    """Queries/s of `run(i)` over i < count, stopping after about `seconds`."""
    start, done = time.perf_counter(), 0
    while done < count and (done == 0 or time.perf_counter() - start < seconds):
        run(done)
        done += 1
    return done / (time.perf_counter() - start)


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10
    return 0


def run_case(vectors_path: str, data_path: str, index_type: str, budget: int, target: float, k: int,
             folder: str) -> dict[str, Any]:  # fmt: skip
    """One size and index type, in its own process: build, write, tune, time, score."""
    vectors = np.load(vectors_path, mmap_mode="r")
    data = np.load(data_path)
    spec = ann.choose_index(len(vectors), vectors.shape[1], budget, index_type)
    start = time.perf_counter()
    index = ann.build_faiss(spec, vectors)
    build = time.perf_counter() - start
    build_rss = _peak_rss()
    import faiss

    index_path = Path(folder) / f"{index_type}.index"
    faiss.write_index(index, str(index_path))
    tuning = (data["tune"], data["tune_truth"])
    if index_type == "ivf_pq":  # the fastest (re-rank depth, nprobe) pair reaching the target
        candidates = [tune(index, {**spec, "params": {**spec["params"], "rerank": r}}, vectors, *tuning, target)
                      for r in RERANK_LADDER]  # fmt: skip
        qualified = [c for c in candidates if recall(search(index, c, vectors, *tuning[:1], k), tuning[1]) >= target]
        spec = max(qualified or candidates[-1:], key=lambda c: _rate(
            lambda i: search(index, c, vectors, tuning[0][i * 64 : (i + 1) * 64], k), len(tuning[0]) // 64))
    else:
        spec = tune(index, spec, vectors, *tuning, target)
    queries, truth = data["eval"], data["eval_truth"]
    found = np.concatenate([search(index, spec, vectors, queries[i : i + 64], k) for i in range(0, len(queries), 64)])
    single = _rate(lambda i: search(index, spec, vectors, queries[i : i + 1], k), len(queries))
    batched = _rate(lambda i: search(index, spec, vectors, queries[i * 64 : (i + 1) * 64], k), len(queries) // 64)
    return {
        "factory": spec["factory"], "params": spec["params"], "build_s": build, "build_rss": build_rss,
        "peak_rss": _peak_rss(), "disk": index_path.stat().st_size, "qps_1": single, "qps_64": batched * 64,
        "recall": recall(found, truth),
    }  # fmt: skip


def skip_reason(index_type: str, count: int, dim: int, budget: int) -> str | None:
    """Why a type is hopeless at this size (None: measure it)."""
    if index_type == "flat" and count > 10 * ann.FLAT_MAX:
        return (f"a float32 copy of {count * dim * 4 / 1e9:.1f} GB (2x the float16 vectors) and {count * dim:,} "
                "multiply-adds per query")  # fmt: skip
    if index_type == "hnsw" and count * (4 * dim + 8 * ann.HNSW_M) > budget:
        return f"HNSW{ann.HNSW_M} over float32 needs {count * (4 * dim + 8 * ann.HNSW_M) / 1e9:.2f} GB > the budget"
    return None


def main() -> None:
    from common import print_table  # here, not at the top: the case processes must not import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3,000 128-d vectors, few queries: a smoke run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--types", nargs="+", default=list(ann.INDEX_TYPES), choices=ann.INDEX_TYPES)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--memory-budget", default="4G", help="as `openbind index build --memory-budget`")
    parser.add_argument("--recall", type=float, default=0.95, help="recall@10 the search knobs are tuned to")
    parser.add_argument("--queries", type=int, default=1024, help="timed and scored queries (another 256 tune)")
    parser.add_argument("--workdir", default=None, help="where vectors and indexes go (default: a temp dir)")
    args = parser.parse_args()
    sizes, queries, tuning = ([3_000], 128, 64) if args.quick else (args.sizes, args.queries, 256)
    dim = 128 if args.quick else args.dim  # PQ training at 1024-d takes minutes even on a few thousand vectors
    if min(sizes) < 1 or queries < 64 or not 0 < args.recall <= 1:
        raise ValueError("sizes must be >= 1, --queries >= 64 and --recall in (0, 1]")
    budget, k = ann.parse_size(args.memory_budget), 10
    folder = Path(tempfile.mkdtemp(prefix="bench_index-", dir=args.workdir))
    rows, notes = [], []
    spawn = multiprocessing.get_context("spawn")
    try:
        for count in sizes:
            start = time.perf_counter()
            vectors_path, all_queries = make_data(folder, count, dim, queries + tuning)
            made = time.perf_counter() - start
            vectors = np.load(vectors_path, mmap_mode="r")
            start = time.perf_counter()
            truth = exact_top(vectors, all_queries, k)
            exact_rate = len(all_queries) / (time.perf_counter() - start)
            data_path = folder / "queries.npz"
            np.savez(data_path, eval=all_queries[:queries], eval_truth=truth[:queries], tune=all_queries[queries:],
                     tune_truth=truth[queries:])  # fmt: skip
            chosen = ann.choose_index(count, dim, budget)["type"]
            f16 = count * dim * 2
            print(f"N={count:,}: float16 vectors {f16 / 1e9:.2f} GB written in {made:.0f} s; exact search over "
                  f"them (numpy, chunked) {exact_rate:,.0f} queries/s batched; choose_index picks {chosen}",
                  flush=True)  # fmt: skip
            for index_type in args.types:
                reason = skip_reason(index_type, count, dim, budget)
                if reason:
                    notes.append(f"N={count:,} {index_type}: skipped, {reason}")
                    print(notes[-1], flush=True)
                    continue
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    r = pool.submit(run_case, str(vectors_path), str(data_path), index_type, budget, args.recall, k,
                                    str(folder)).result()  # fmt: skip
                knobs = ", ".join(f"{name} {value}" for name, value in r["params"].items()) or "exact"
                rows.append([
                    f"{count:,}", index_type + (" *" if index_type == chosen else ""), r["factory"], knobs,
                    f"{r['build_s']:.1f}", f"{r['peak_rss'] / 1e9:.2f} ({r['peak_rss'] / f16:.1f}x)",
                    f"{r['disk'] / 1e6:,.0f}", f"{r['qps_1']:,.0f}", f"{r['qps_64']:,.0f}", f"{r['recall']:.3f}",
                ])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
                (folder / f"{index_type}.index").unlink()
            vectors_path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nrecall@{k} target {args.recall}, memory budget {args.memory_budget}; * = choose_index's pick; "
          "peak RSS: the case's process (x: over the float16 vectors)")  # fmt: skip
    print_table(["N", "type", "factory", "tuned", "build s", "peak RSS GB", "index MB", "q/s 1", "q/s 64",
                 "recall@10"], rows)  # fmt: skip
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
