"""Validation pairs: a seeded split of a training manifest, their loss, and the best weights of a run.

Without `--val`, a run holds out part of each training manifest (`defaults.validation_size`), chosen by the
seed alone, so a resumed run holds out the same rows. The trainer scores them at every checkpoint and keeps the
trained weights with the lowest validation loss in `best/`; the exported `model/` is that best step.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.data.manifest import Manifest
from openbind.train.loss import contrastive_accuracy, contrastive_loss
from openbind.train.pairs import collate_pairs
from openbind.utils import atomic_write_text
from openbind.weights.checkpoint import read_state_dict, save_state_dict

BEST_WEIGHTS, BEST_RECORD = "model.safetensors", "best.json"


def split_manifest(manifest: Manifest, anchor: str, other: str, size: int, seed: int) -> tuple[Manifest, Manifest]:
    """(training rows, `size` validation rows) among the rows that hold both `anchor` and `other`; rows without
    them stay on the training side. The validation rows are a seeded random choice, in manifest order."""
    paired = [i for i, row in enumerate(manifest.rows) if row.get(anchor) is not None and row.get(other) is not None]
    if not 0 <= size < len(paired):
        raise ValueError(f"cannot hold out {size} of {len(paired)} pairs for validation")
    chosen = set(np.random.default_rng([seed, len(paired)]).permutation(paired)[:size].tolist())
    train = [row for i, row in enumerate(manifest.rows) if i not in chosen]
    val = [row for i, row in enumerate(manifest.rows) if i in chosen]
    return dataclasses.replace(manifest, rows=train), dataclasses.replace(manifest, rows=val)


@torch.no_grad()
def validation_metrics(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    embed: Callable[[dict[str, Any]], tuple[torch.Tensor, torch.Tensor]],
    scale: float | torch.Tensor,
) -> dict[str, float]:
    """Mean symmetric InfoNCE loss and in-batch accuracy over `dataset` in consecutive chunks of `batch_size`
    (the training batch, so the loss compares with the training loss and its chance level); a last chunk of
    fewer than two pairs is left out. `embed(batch)` returns (anchor, other) unit embeddings."""
    losses, accuracies, weights = [], [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = collate_pairs(items)
        if batch["other"] is None or batch["other"].shape[0] < 2:
            continue
        anchor, other = embed(batch)
        losses.append(float(contrastive_loss(anchor.float(), other.float(), scale, gather=False)))
        accuracies.append(float(contrastive_accuracy(anchor, other)[0]))
        weights.append(batch["other"].shape[0])
    if not weights:
        raise ValueError("the validation set has no two good pairs to compare")
    return {
        "val_loss": float(np.average(losses, weights=weights)),
        "val_accuracy": float(np.average(accuracies, weights=weights)),
    }


def read_best(directory: Path) -> dict[str, Any] | None:
    """The record of the best step so far ({"step", "val_loss", "val_accuracy"}), None before the first."""
    path = directory / BEST_RECORD
    return json.loads(path.read_text()) if path.is_file() and (directory / BEST_WEIGHTS).is_file() else None


def write_best(directory: Path, state: dict[str, torch.Tensor], record: dict[str, Any]) -> None:
    """Keep `state` as the best weights; the record is written last, so it always describes the weights."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / BEST_RECORD).unlink(missing_ok=True)
    save_state_dict({k: v.detach().cpu() for k, v in state.items()}, directory / BEST_WEIGHTS)
    atomic_write_text(directory / BEST_RECORD, json.dumps(record, indent=2))


def read_best_weights(directory: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(directory / BEST_WEIGHTS)
