"""How many searches per second does `openbind serve` answer, with dynamic batching across requests and without?

Two servers (`openbind serve` in child processes, one torch thread per forward pass unless --threads says
otherwise) over the same index: one batching (--max-batch 32, no wait), one not (--max-batch 1: every query its
own forward pass). N concurrent clients (asyncio + aiohttp, in this process, a connection each) send search
requests back to back, a different text query each time (or an uploaded image with --query image). The variants alternate within each round; the
table holds the medians over rounds of requests/s and latency percentiles, the errors (any answer but 200), the
mean items per forward pass seen in the server's /metrics, and the server's CPU time per request (what bounds
requests/s on a machine of its own). The servers' limit on concurrent requests is raised above the largest N, so
the 429s that protect a real server do not count as errors here.

Then the control, once the servers are stopped: the same model in this process, N forward passes of one item
against one pass of N (N: the items per pass the batching server reached at 32 clients), the tower's own batching
gain; with the forward pass's share of a request's server CPU it bounds what batching can gain on the server.

Without --model/--index it writes a small world to a temp dir, saves `imagebind_world` (the quickstart's
architecture) with random weights, and indexes the world's images, sounds and captions; it says so in its output.

    python benchmarks/bench_serve.py [--clients 1 8 32 128] [--rounds 3] [--requests 400] [--query text|image]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import torch

import openbind
from common import print_table
from openbind.search import build_index
from openbind.weights.checkpoint import save_checkpoint
from openbind.world import write_world

VARIANTS = {"batching off": ["--max-batch", "1"], "dynamic batching": ["--max-batch", "32"]}
WORDS = ["red", "blue", "round", "small", "loud", "quiet", "metal", "wooden", "cat", "car", "kettle", "bird", "rain"]


def world_index(tmp: Path, items: int) -> tuple[Path, Path, Path]:
    """(model, index, a query image): `imagebind_world` random weights, and an index of a small world's images,
    sounds and captions (`items` of each)."""
    write_world(tmp / "world", train_per_class=1, test_per_class=2, align_per_combo=1, videos_train_per_activity=1,
                videos_test_per_activity=1, arithmetic_per_combo=1)  # fmt: skip
    torch.manual_seed(0)
    model = openbind.create_model("imagebind_world")
    save_checkpoint(model.state_dict(), model.config, tmp / "model")
    corpus = tmp / "corpus"
    corpus.mkdir()
    images = sorted((tmp / "world").rglob("*_image.jpg"))[:items]
    for pattern, found in (("*_image.jpg", images), ("*_audio.wav", sorted((tmp / "world").rglob("*_audio.wav"))[:items])):
        for i, path in enumerate(found):
            (corpus / f"{i:05d}_{path.name}").symlink_to(path)
    with open(tmp / "world" / "align_train.csv") as f:
        for i, row in zip(range(items), csv.DictReader(f)):
            (corpus / f"{i:05d}.txt").write_text(row["text"])
    build_index(corpus, tmp / "model", tmp / "index", progress=False)
    return tmp / "model", tmp / "index", images[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    index: Path, model: Path | None, options: list[str], max_clients: int, log: Path
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "openbind.cli", "serve", str(index), "--port", str(port), "--log-level", "warning",
               "--max-concurrent", str(4 * max_clients), *options]  # fmt: skip
    if model is not None:
        command += ["--model", str(model)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the server did not become ready in 300 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere): capacity on a machine of one's
    own, less sensitive than requests/s to what else runs on a shared one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_counts(url: str) -> tuple[float, float]:
    """(forward passes, items) over every tower so far, from the server's metrics."""
    text = httpx.get(f"{url}/metrics").text
    passes = sum(float(v) for v in re.findall(r"^openbind_batch_size_count\{[^}]*\} (\S+)$", text, re.M))
    items = sum(float(v) for v in re.findall(r"^openbind_batch_size_sum\{[^}]*\} (\S+)$", text, re.M))
    return passes, items


async def load(url: str, clients: int, requests: int, image: bytes | None) -> tuple[float, list[float], int]:
    """(requests/s, latencies in s, errors) of `requests` searches sent by `clients` concurrent clients.

    Each client has its own connection, opened and used once before the clock starts. aiohttp, not httpx: it
    costs the clients' process about a third of the CPU per request (0.2 ms against 0.65 ms, measured), which
    matters when the clients share the server's cores."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))

    async def search(session: aiohttp.ClientSession, i: int) -> int:
        if image is None:
            text = f"a {WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} thing number {i}"
            body: dict[str, Any] = {"json": {"query": text, "k": 10}}
        else:
            form = aiohttp.FormData()
            form.add_field("image", image, filename="q.jpg", content_type="image/jpeg")
            form.add_field("json", '{"k": 10}')
            body = {"data": form}
        async with session.post("/v1/search", **body) as answer:
            await answer.read()
            return answer.status

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for i in counter:
            start = time.perf_counter()
            try:
                errors += await search(session, i) != 200
            except aiohttp.ClientError:  # a dropped connection is an error too
                errors += 1
            latencies.append(time.perf_counter() - start)

    timeout = aiohttp.ClientTimeout(total=120)
    sessions = [aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1), timeout=timeout)
                for _ in range(clients)]  # fmt: skip
    try:
        await asyncio.gather(*(search(session, -1) for session in sessions))  # connect and warm up
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for session in sessions))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    return requests / elapsed, latencies, errors


def tower_times(index: Path, model: Path | None, kind: str, query: bytes | None, items: int, repeats: int = 7
                ) -> tuple[float, float]:  # fmt: skip
    """The control: (ms per item of `items` forward passes of one item, ms per item of one pass of `items`) through
    the index's model on this process's torch threads (the caller sets the servers'), the two alternating,
    medians over `repeats`. Their ratio is the most any batching can gain on the forward pass itself."""
    from openbind import preprocess
    from openbind.modalities import get_input, modality_of
    from openbind.search import Index

    with Index.open(index, model=model) as opened:
        towers = opened.model_for(set(opened.meta["model"]["modalities"])).eval()
    options = towers.config.input_options(kind)
    if get_input(kind).batched:  # texts: one distinct query each, as the clients send
        inputs = preprocess.load(kind, [f"a {WORDS[i % len(WORDS)]} thing number {i}" for i in range(items)], **options)
    else:
        one = preprocess.transform_for(kind, **options)(query).unsqueeze(0)
        inputs = one.expand(items, *one.shape[1:]).contiguous()
    tower = modality_of(kind).name
    singles, batched = [], []
    with torch.inference_mode():
        towers.encode(tower, inputs)  # warm up
        for _ in range(repeats):
            start = time.perf_counter()
            for row in inputs:
                towers.encode(tower, row.unsqueeze(0))
            singles.append((time.perf_counter() - start) / items)
            start = time.perf_counter()
            towers.encode(tower, inputs)
            batched.append((time.perf_counter() - start) / items)
    return statistics.median(singles) * 1000, statistics.median(batched) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the variants alternate within each")
    parser.add_argument("--requests", type=int, default=400, help="requests per cell (at least 2 per client)")
    parser.add_argument("--query", choices=["text", "image"], default="text")
    parser.add_argument("--model", type=Path, default=None, help="the index's model (default: the recorded one)")
    parser.add_argument("--index", type=Path, default=None, help="an index folder (default: a small world's)")
    parser.add_argument("--image", type=Path, default=None, help="the query image of --query image")
    parser.add_argument("--items", type=int, default=64, help="items per kind of the world index")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="the servers' --threads (torch threads per forward pass; default 1, the server's "
                        "default); several: both variants with each, all alternating; the control uses the first")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.index is None:
            print("index: a small world (images, sounds, captions) with imagebind_world random weights, in a temp dir")
            model, index, image_path = world_index(Path(tmp), args.items)
        else:
            print(f"index: {args.index}")
            model, index, image_path = args.model, args.index, args.image
        image = image_path.read_bytes() if args.query == "image" else None
        if args.query == "image" and image is None:
            parser.error("--query image with --index needs --image")
        variants = [(threads, name) for threads in args.threads for name in VARIANTS]
        servers = {(threads, name): start_server(index, model, [*VARIANTS[name], "--threads", str(threads)],
                                                 max(args.clients), Path(tmp) / f"server{i}.log")
                   for i, (threads, name) in enumerate(variants)}  # fmt: skip
        try:
            cells: dict[tuple[int, int, str], list[tuple[float, float, float, float, int, float, float]]] = {}
            for _ in range(args.rounds):
                for clients in args.clients:
                    for (threads, name), (process, url) in servers.items():
                        passes, items = batch_counts(url)
                        cpu = cpu_seconds(process.pid)
                        requests = max(args.requests, 2 * clients)
                        rate, latencies, errors = asyncio.run(load(url, clients, requests, image))
                        cpu = (cpu_seconds(process.pid) - cpu) / requests
                        after_passes, after_items = batch_counts(url)
                        mean_batch = (after_items - items) / max(after_passes - passes, 1)
                        cells.setdefault((clients, threads, name), []).append((
                            rate, percentile(latencies, 0.5), percentile(latencies, 0.95), percentile(latencies, 0.99),
                            errors, mean_batch, cpu,
                        ))  # fmt: skip
        finally:
            for i, (process, _) in enumerate(servers.values()):
                process.terminate()
                process.wait(timeout=30)
                log = (Path(tmp) / f"server{i}.log").read_text()
                if "Traceback" in log or "ERROR" in log:
                    print(f"server {i} logged errors:\n{log[-3000:]}")
        rows = []
        for clients in args.clients:
            for threads, name in variants:
                off = statistics.median(r[0] for r in cells[(clients, threads, "batching off")])
                runs = cells[(clients, threads, name)]
                rate = statistics.median(r[0] for r in runs)
                rows.append([clients, threads, name, f"{rate:.1f}", f"{rate / off:.2f}x",
                             *(f"{statistics.median(r[i] for r in runs) * 1000:.0f}" for i in (1, 2, 3)),
                             sum(r[4] for r in runs), f"{statistics.median(r[5] for r in runs):.1f}",
                             f"{statistics.median(r[6] for r in runs) * 1000:.1f}"])  # fmt: skip
        print(f"query: {args.query}; {args.rounds} rounds, medians; vs off: against batching off with the same threads")
        print_table(["clients", "threads", "server", "requests/s", "vs off", "p50 ms", "p95 ms", "p99 ms", "errors",
                     "items per pass", "server CPU ms per request"], rows)  # fmt: skip
        control(args, cells, index, model, image)


def control(args: argparse.Namespace, cells: dict, index: Path, model: Path | None, image: bytes | None) -> None:
    """The tower's own batching gain at the batch size the server reached, the server's gain as a fraction of it,
    how much of the server CPU saved per request the forward pass accounts for, and the gain that batching the
    forward pass alone allows when requests/s is bound by the server's CPU (Amdahl: 1 / (1 - s + s / gain), s the
    forward pass's share of a request's CPU)."""
    clients = 32 if 32 in args.clients else max(args.clients)
    threads = args.threads[0]
    median = {name: [statistics.median(r[i] for r in cells[(clients, threads, name)]) for i in range(7)]
              for name in VARIANTS}  # fmt: skip
    items = max(1, round(median["dynamic batching"][5]))
    torch.set_num_threads(threads)
    single, batched = tower_times(index, model, args.query, image, items)
    tower_gain = single / batched
    gain = median["dynamic batching"][0] / median["batching off"][0]
    off_cpu, on_cpu = median["batching off"][6] * 1000, median["dynamic batching"][6] * 1000
    print(f"control at {clients} clients, {threads} torch threads, {items} items per pass (the batching server's mean), the tower alone: "
          f"{single:.2f} ms per item one at a time, {batched:.2f} ms per item in one pass: {tower_gain:.2f}x")
    print(f"server gain at {clients} clients: {gain:.2f}x, {gain / tower_gain:.0%} of the tower's own gain")
    print(f"server CPU per request: {off_cpu:.2f} ms batching off, {on_cpu:.2f} ms batching; of the "
          f"{off_cpu - on_cpu:.2f} ms saved, the forward pass itself accounts for {single - batched:.2f} ms")
    share = min(single / off_cpu, 1.0)
    bound = 1 / (1 - share + share / tower_gain)
    print(f"the forward pass is {share:.0%} of a request's server CPU with batching off: batching the forward pass "
          f"alone bounds the CPU-bound gain at {bound:.2f}x (the server reached {gain / bound:.0%} of it)")


if __name__ == "__main__":
    main()
