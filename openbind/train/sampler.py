"""`MixedPairBatchSampler`: global batches of one pair type each, interleaved, sharded over ranks, resumable."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np


class PairKey(NamedTuple):
    """What `MixedPairBatchSampler` yields per sample: the dataset in the mix, its item, the global batch."""

    dataset: int
    index: int
    batch: int = -1


class MixedPairBatchSampler:
    """Global batches of one dataset each, interleaved, sharded over ranks, deterministic and resumable.

    Per epoch, dataset d is shuffled (seeded by seed, epoch, d) and cut into global batches of `batch_size`
    (one int, or one per dataset, each a multiple of world_size). The batches of all datasets are interleaved
    evenly in proportion to their counts (stride scheduling with a seeded phase per dataset), so any stretch
    of training sees each pair type at its share. Rank r takes the r-th of world_size equal slices of each
    global batch, so the global batches are the same for every world size. drop_last=False keeps each
    dataset's last partial batch when it has at least world_size items (split as evenly as possible).

    Iterating yields lists of `PairKey`. `position` counts the global batches of this epoch already yielded;
    `state_dict()` / `load_state_dict()` save and restore it (with the epoch) so a resumed run continues with
    exactly the batches an uninterrupted one would see, for any world size. With DataLoader workers the sampler
    runs ahead of training: resume from the `batch` of the last batch trained on + 1 instead.
    """

    def __init__(
        self,
        datasets_lengths: Sequence[int],
        batch_size: int | Sequence[int],
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ):
        self.lengths = [int(n) for n in datasets_lengths]
        sizes = [batch_size] * len(self.lengths) if isinstance(batch_size, int) else list(batch_size)
        if not self.lengths or len(sizes) != len(self.lengths):
            raise ValueError(f"need one batch size per dataset: {len(sizes)} sizes for {len(self.lengths)} datasets")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if any(b <= 0 or b % world_size for b in sizes):
            raise ValueError(f"batch sizes {sizes} must be positive multiples of world_size {world_size}")
        if seed < 0 or epoch < 0:
            raise ValueError("seed and epoch must be >= 0")
        self.batch_sizes = sizes
        self.seed, self.rank, self.world_size, self.drop_last = seed, rank, world_size, drop_last
        self.epoch, self.position = epoch, 0
        self._plan: tuple[int, list[tuple[int, int, int]], list[np.ndarray]] | None = None
        if not len(self):
            raise ValueError(f"no batch: dataset sizes {self.lengths} are below the batch sizes {sizes}")

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its first batch."""
        self.epoch, self.position = epoch, 0

    def _batches_of(self, d: int) -> list[tuple[int, int]]:
        n, b = self.lengths[d], self.batch_sizes[d]
        bounds = [(s, s + b) for s in range(0, n - b + 1, b)]
        rest = n % b
        if not self.drop_last and rest >= self.world_size:
            bounds.append((n - rest, n))
        return bounds

    def global_batches(self) -> tuple[list[tuple[int, int, int]], list[np.ndarray]]:
        """(the epoch's batches as (dataset, start, stop) into its permutation, the permutations)."""
        if self._plan is None or self._plan[0] != self.epoch:
            streams = np.random.SeedSequence([self.seed, self.epoch]).spawn(len(self.lengths) + 1)
            perms = [np.random.default_rng(streams[d]).permutation(n) for d, n in enumerate(self.lengths)]
            phases = np.random.default_rng(streams[-1]).random(len(self.lengths))
            batches, keys, ids = [], [], []
            for d in range(len(self.lengths)):
                bounds = self._batches_of(d)
                for j, (start, stop) in enumerate(bounds):
                    batches.append((d, start, stop))
                    keys.append((j + phases[d]) / len(bounds))
                    ids.append(d)
            order = np.lexsort((np.asarray(ids), np.asarray(keys))) if batches else []
            self._plan = (self.epoch, [batches[i] for i in order], perms)
        return self._plan[1], self._plan[2]

    def local_batch(self, number: int) -> list[PairKey]:
        """This rank's slice of global batch `number` of the epoch."""
        batches, perms = self.global_batches()
        d, start, stop = batches[number]
        size, w = stop - start, self.world_size
        lo = start + self.rank * (size // w) + min(self.rank, size % w)
        hi = lo + size // w + (1 if self.rank < size % w else 0)
        return [PairKey(d, int(i), number) for i in perms[d][lo:hi]]

    def __iter__(self) -> Iterator[list[PairKey]]:
        total = len(self.global_batches()[0])
        if self.position >= total:
            self.position = 0
        while self.position < total:
            batch = self.local_batch(self.position)
            self.position += 1
            yield batch

    def __len__(self) -> int:
        """Batches the next iteration yields (the rest of the epoch, or all of it after the end)."""
        total = len(self.global_batches()[0])
        return total - self.position if self.position < total else total

    def num_batches(self) -> int:
        return len(self.global_batches()[0])

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "lengths": list(self.lengths),
            "batch_sizes": list(self.batch_sizes),
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at `state["position"]` of `state["epoch"]`; the data and batching must be the same."""
        for key in ("seed", "lengths", "batch_sizes", "drop_last"):
            if key in state and state[key] != self.state_dict()[key]:
                raise ValueError(f"cannot resume: {key} was {state[key]}, now {self.state_dict()[key]}")
        self.epoch = int(state.get("epoch", self.epoch))
        position = int(state["position"])
        if not 0 <= position <= self.num_batches():
            raise ValueError(f"position {position} is outside the epoch's {self.num_batches()} batches")
        self.position = position
