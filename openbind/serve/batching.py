"""Dynamic batching across requests: one queue per tower; the items queued when the tower is free (and those
arriving within `max_wait_ms`, default 0) are embedded as one batch, and each request gets its own rows back.
Waiting only costs a lone request latency: under load, items queue while the previous batch runs (measured on
the quickstart model: no gain from a 5 ms wait at 8 or 32 clients, and a lone image request 15 ms instead of 9).

A request's items are queued one by one, so a batch mixes items of several requests; items of different shapes
for the same tower (an image and a video through the vision tower) run as separate forward passes of the same
round. Each tower runs its forward passes on its own thread, so the event loop never waits on the model.
`max_batch=1` turns batching off (every item is its own forward pass), which the benchmark compares against.

Works with any model that has `.encode(modality, batch) -> [N, D]` unit embeddings (the torch `ImageBind`, or a
runtime with the same method).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

Encode = Callable[[str, torch.Tensor], torch.Tensor]  # (modality, [N, ...] inputs) -> [N, D] unit embeddings


@dataclass(frozen=True)
class BatchSettings:
    """`max_batch`: most items in one forward pass (1: no batching); `max_wait_ms`: how long the first item of
    a batch waits for others (0: none; it takes what is queued)."""

    max_batch: int = 32
    max_wait_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


@dataclass
class _Pending:
    item: torch.Tensor  # one item's model input
    future: asyncio.Future


class Batcher:
    """Queues per tower, each drained by one task that runs `encode` on that tower's own thread.

    `on_batch(modality, size)` and `on_queue(modality, depth)` report to the metrics."""

    def __init__(
        self,
        encode: Encode,
        settings: BatchSettings = BatchSettings(),
        on_batch: Callable[[str, int], None] = lambda modality, size: None,
        on_queue: Callable[[str, int], None] = lambda modality, depth: None,
    ):
        self.encode = encode
        self.settings = settings
        self.on_batch = on_batch
        self.on_queue = on_queue
        self._queues: dict[str, asyncio.Queue[_Pending]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}

    async def embed(self, modality: str, items: torch.Tensor) -> torch.Tensor:
        """[N, D] embeddings of N model-ready items of one tower, batched with whatever else is queued."""
        queue = self._queue(modality)
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future = loop.create_future()
            queue.put_nowait(_Pending(item, future))
            futures.append(future)
        self.on_queue(modality, queue.qsize())
        return torch.stack(await asyncio.gather(*futures))

    def depth(self, modality: str) -> int:
        """Items waiting for the tower."""
        queue = self._queues.get(modality)
        return queue.qsize() if queue is not None else 0

    def close(self) -> None:
        """Stop the towers' tasks and threads; requests still waiting are cancelled."""
        for task in self._tasks.values():
            task.cancel()
        for thread in self._threads.values():
            thread.shutdown(wait=False, cancel_futures=True)
        self._tasks.clear()
        self._threads.clear()
        self._queues.clear()

    def _queue(self, modality: str) -> asyncio.Queue[_Pending]:
        if modality not in self._queues:
            self._queues[modality] = asyncio.Queue()
            self._threads[modality] = ThreadPoolExecutor(1, thread_name_prefix=f"openbind-{modality}")
            self._tasks[modality] = asyncio.get_running_loop().create_task(self._drain(modality))
        return self._queues[modality]

    async def _drain(self, modality: str) -> None:
        queue = self._queues[modality]
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.settings.max_wait_ms / 1000
            while len(batch) < self.settings.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            self.on_queue(modality, queue.qsize())
            await self._run(modality, [p for p in batch if not p.future.done()], loop)

    async def _run(self, modality: str, batch: list[_Pending], loop: asyncio.AbstractEventLoop) -> None:
        """One forward pass per distinct item shape; each item's future gets its row or the error."""
        groups: dict[tuple[int, ...], list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(tuple(pending.item.shape), []).append(pending)
        for group in groups.values():
            self.on_batch(modality, len(group))
            try:
                rows = await loop.run_in_executor(
                    self._threads[modality], self.encode, modality, torch.stack([p.item for p in group])
                )
            except Exception as error:  # the requests fail, the tower keeps serving
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            for pending, row in zip(group, rows):
                if not pending.future.done():
                    pending.future.set_result(row)
