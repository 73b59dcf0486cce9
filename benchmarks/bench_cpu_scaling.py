"""What K processes at once get from this machine: the ceiling for K DataLoader workers.

The input benchmarks compare DataLoader workers with one process; whether 2 workers can reach 2x depends on the
machine before it depends on openbind. Each kernel here runs in 1 process, then in K processes forked at once
(1 torch thread each), and the table gives their total rate over the 1-process rate: K.00x where K cores add up,
less where they share something. Kernels:

  python     a pure Python loop (the interpreter: scalar, branchy, in cache)
  matmul     a 128x128 float32 matmul repeated in cache (wide vector FMA: shows a clock that drops with the
             number of busy cores, e.g. AVX-512 licences; run again under ATEN_CPU_CAPABILITY=avx2
             MKL_ENABLE_INSTRUCTIONS=AVX2 to compare)
  copy-16MB  copying 8 MB into 8 MB (a share of the last-level cache)
  copy-256MB copying 128 MB into 128 MB (memory bandwidth)

    python benchmarks/bench_cpu_scaling.py [--quick] [--processes 2 4 8] [--seconds 1] [--repeats 5]
                                           [--kernels python matmul copy-16MB copy-256MB]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from common import print_table


def _python_loop(n: int) -> None:
    total = 0
    for i in range(n * 10_000):
        total += i * i


def _buffers(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "matmul":
        return torch.randn(128, 128), torch.empty(128, 128)
    size = {"copy-16MB": 8, "copy-256MB": 128}[name] << 18  # float32 elements in that many MB
    return torch.randn(size), torch.empty(size)


_barrier: Any = None  # set in each pool process: its processes start their timed runs together


def _start_pool_process(barrier: Any) -> None:
    global _barrier
    _barrier = barrier
    torch.set_num_threads(1)


def _run(name: str, n: int) -> tuple[float, float]:
    """(start, end) on the system's monotonic clock of `n` units of kernel `name`, buffers made and touched
    first and, in a pool, the pool's processes started together. Runs at 1 torch thread (set by `main` and by
    `_start_pool_process`)."""
    if name == "python":
        step: Callable[[], None] = lambda: _python_loop(1)
    else:
        source, target = _buffers(name)
        step = (lambda: torch.mm(source, source, out=target)) if name == "matmul" else (lambda: target.copy_(source))
    step()
    if _barrier is not None:
        _barrier.wait()
    start = time.monotonic()
    for _ in range(n):
        step()
    return start, time.monotonic()


def _units_for(name: str, seconds: float) -> int:
    """How many units take about `seconds` in one process."""
    n = 1
    while (elapsed := _elapsed([_run(name, n)])) < seconds / 8:
        n *= 2
    return max(1, round(n * seconds / elapsed))


def _elapsed(spans: list[tuple[float, float]]) -> float:
    """Wall time from the first start to the last end: K processes count as K only where they overlap."""
    return max(end for _, end in spans) - min(start for start, _ in spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat: a smoke run")
    parser.add_argument("--processes", type=int, nargs="+", default=[2], help="process counts K, a column each")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one process's timed run")
    parser.add_argument("--repeats", type=int, default=5, help="alternated repeats; the table gives medians")
    parser.add_argument("--kernels", nargs="+", default=["python", "matmul", "copy-16MB", "copy-256MB"])
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 0.05, 1
    torch.set_num_threads(1)
    counts = [1, *args.processes]
    print(f"{os.cpu_count()} CPUs; torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    context = multiprocessing.get_context("fork")
    pools = {k: context.Pool(k, _start_pool_process, (context.Barrier(k),)) for k in counts}
    rates: dict[tuple[str, int], list[float]] = {}
    for name in args.kernels:
        units = _units_for(name, args.seconds)
        for _ in range(args.repeats):
            for k in counts:  # alternated, so that drifts of the machine's speed hit every count alike
                spans = pools[k].starmap(_run, [(name, units)] * k, chunksize=1)
                rates.setdefault((name, k), []).append(k * units / _elapsed(spans))
    for pool in pools.values():
        pool.close()
    rows = []
    for name in args.kernels:
        single = statistics.median(rates[(name, 1)])
        ratios = [f"{statistics.median(rates[(name, k)]) / single:.2f}x" for k in args.processes]
        rows.append([name, f"{single:,.1f}", *ratios])
    print(f"median of {args.repeats}; ratio: total rate of K processes at once / rate of 1 process")
    print_table(["kernel", "1 process, units/s", *(f"{k} processes" for k in args.processes)], rows)


if __name__ == "__main__":
    main()
