"""Shared benchmark helpers: analytic multiply-adds per modality, timing, tables, and the drivers of the input
pipeline benchmarks (per item, DataLoader workers, two independent processes)."""

from __future__ import annotations

import argparse
import math
import multiprocessing
import multiprocessing.pool
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from openbind.model.config import EncoderConfig
from openbind.data.items import ItemDataset, collate_items

def clips_per_item(config: EncoderConfig) -> int:
    """Clips one item holds in its default input (audio: 3), read off the example input's shape."""
    example = config.example_input(1)
    return example.shape[1] if example.ndim == max(config.item_ndims) + 2 else 1


def encoder_macs(config: EncoderConfig, embed_dim: int) -> float:
    """Multiply-adds of one clip through an encoder: stem + trunk (projections, MLP, attention) + head."""
    n = config.num_tokens()
    d = config.width
    keys = n + (1 if config.kv_bias else 0)
    per_block = n * (4 * d * d + 2 * config.mlp_ratio * d * d) + 2 * n * keys * d
    return config.stem_macs() + config.depth * per_block + d * embed_dim


def time_call(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-|-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


def gflops(macs: float, seconds: float) -> float:
    return 2 * macs / seconds / 1e9 if seconds > 0 and math.isfinite(seconds) else float("nan")


def _transform_all(paths: list, transform: Callable) -> None:
    torch.set_num_threads(1)
    for path in paths:
        transform(path)


def process_pair() -> multiprocessing.pool.Pool:
    """The 2 processes of the "2 independent processes" rows, forked from this one as torch forks DataLoader
    workers on Linux: they start from the same memory state (glibc's allocator adapts to a process's history;
    a freshly spawned process decoding depth maps takes about 1,600 page faults per map, a forked one none)."""
    return multiprocessing.get_context("fork").Pool(2)


def two_processes(pool: multiprocessing.pool.Pool, paths: list, transform: Callable) -> Callable[[], object]:
    """A timed case: half the files in each of 2 independent 1-thread processes of `pool` (`process_pair`,
    started once): what the machine itself gives 2 workers, with nothing crossing between processes."""
    halves = [(paths[: len(paths) // 2], transform), (paths[len(paths) // 2 :], transform)]
    return lambda: pool.starmap(_transform_all, halves)


def per_file(items: list, transform: Callable[[Any], object], threads: int | None = None) -> Callable[[], object]:
    """Per-item calls in this process, at `threads` torch intra-op threads (None: the default)."""

    def run() -> None:
        default = torch.get_num_threads()
        torch.set_num_threads(threads or default)
        try:
            for item in items:
                transform(item)
        finally:
            torch.set_num_threads(default)

    return run


def _check_one_thread(worker_id: int) -> None:
    """The worker rows assume torch's 1 thread per DataLoader worker: refuse to measure anything else."""
    if torch.get_num_threads() != 1:
        raise RuntimeError(f"DataLoader worker {worker_id} runs {torch.get_num_threads()} torch threads, not 1")


def through_loader(
    modality: str, items: list, transform: Callable[[Any], torch.Tensor], batch: int, workers: int
) -> Callable[[], object]:
    """An epoch of openbind's `ItemDataset` + `collate_items` in a DataLoader with `workers` kept processes
    (what `openbind.preprocess.loader` builds; torch runs each worker at 1 thread)."""
    dataset = ItemDataset(modality, items, transform)
    loader = DataLoader(
        dataset, batch_size=batch, num_workers=workers, persistent_workers=True, collate_fn=collate_items,
        worker_init_fn=_check_one_thread,
    )  # fmt: skip

    def epoch() -> None:  # each batch dropped as the next comes, as a training or embedding loop does
        for batch in loader:
            assert not batch.failed

    epoch()  # start the workers once: the timed epochs measure steady-state throughput
    return epoch


def measure(cases: dict[str, tuple[Callable[[], object], int]], repeats: int) -> dict[str, float]:
    """files/s per case: median over `repeats` rounds, the cases alternating within each round."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (run, count) in cases.items():
            start = time.perf_counter()
            run()
            rates[name].append(count / (time.perf_counter() - start))
    return {name: median(values) for name, values in rates.items()}


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """--quick, --repeats, --passes and --workers, as the input benchmarks take them."""
    parser.add_argument("--quick", action="store_true", help="few items and repeats: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="alternated repeats per case (default 5)")
    parser.add_argument("--passes", type=int, default=None, help="times each timed run goes through the items")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2], help="DataLoader worker counts, a row each (on a machine "
        "with more cores, e.g. 2 4 8 shows how the loader scales)"
    )


def parallel_cases(
    pool: multiprocessing.pool.Pool,
    modality: str,
    items: list,
    transform: Callable,
    batch: int,
    worker_counts: list[int],
) -> dict[str, tuple[Callable[[], object], int]]:
    """The timed cases that use 2 cores or more: a DataLoader per worker count, and 2 independent processes."""
    cases = {}
    for workers in worker_counts:
        loader = through_loader(modality, items, transform, batch, workers)
        cases[f"openbind, DataLoader {workers} workers"] = (loader, len(items))
    cases["openbind, 2 independent processes"] = (two_processes(pool, items, transform), len(items))
    return cases


def print_rates(rates: dict[str, dict[str, float]], unit: str, repeats: int, passes: int) -> None:
    """A row per input and case: `unit`s per second, and the ratio to the 1-thread openbind process."""
    print(f"{repeats} repeats of {passes} passes, median {unit}/s; ratio: to the 1-thread openbind process")
    rows = []
    for kind, by_name in rates.items():
        single = by_name["openbind, 1 process, 1 thread"]
        rows += [[kind, name, f"{rate:,.2f}", f"{rate / single:.2f}x"] for name, rate in by_name.items()]
    print_table(["input", "pipeline", f"{unit}/s", "ratio"], rows)
