"""`make_loader`: the DataLoader over a mix of pair datasets, seeded per (seed, epoch, rank), resumable at any
global batch, that keeps the epoch's bad items."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from openbind.modalities.batch import ItemFailure
from openbind.train.pairs import ConcatPairs, PairDataset, collate_pairs
from openbind.train.sampler import MixedPairBatchSampler


class PairLoader(DataLoader):
    """A DataLoader that keeps the bad items of the current (or last finished) epoch in `bad_items`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.bad_items: list[ItemFailure] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.bad_items = []
        for batch in super().__iter__():
            self.bad_items.extend(batch["bad_items"])
            yield batch

    def bad_item_report(self) -> str:
        """One line per bad item of the epoch (empty string when there was none)."""
        return "\n".join(
            f"dataset {b.dataset} row {b.index} batch {b.batch} {b.kind} {b.item}: {b.reason}"
            for b in self.bad_items
        )


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs from the seed torch gives each worker (base seed + worker id)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    datasets: Sequence[PairDataset],
    batch_size: int | Sequence[int],
    *,
    seed: int,
    epoch: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    start_batch: int = 0,
    persistent_workers: bool = False,
    drop_last: bool = True,
    pin_memory: bool = False,
) -> PairLoader:
    """A loader over the mix of `datasets`: global batch `batch_size` (this rank loads batch_size /
    world_size), starting at global batch `start_batch` of `epoch`. Worker RNGs are seeded from (seed, epoch,
    rank). The batch sampler is `loader.batch_sampler` (call its `set_epoch` when reusing the loader)."""
    sampler = MixedPairBatchSampler(
        [len(d) for d in datasets], batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
        drop_last=drop_last,
    )  # fmt: skip
    sampler.load_state_dict({"epoch": epoch, "position": start_batch})
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1))
    return PairLoader(
        ConcatPairs(datasets),
        batch_sampler=sampler,
        collate_fn=collate_pairs,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=persistent_workers and num_workers > 0,
        pin_memory=pin_memory,
    )
