"""Few-shot linear probes on frozen embeddings (the paper's appendix B.2): k labelled examples per class train a
linear classifier on top of the frozen encoder; accuracy on the test items, averaged over seeded draws."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from openbind.eval.zeroshot import accuracy


@dataclass(frozen=True)
class ProbeRecipe:
    """AdamW on cross-entropy over unit embeddings, minibatches of `batch_size`, for `epochs` passes."""

    lr: float = 1.6e-3
    weight_decay: float = 0.05
    epochs: int = 50
    batch_size: int = 32


def sample_shots(labels: Sequence[int], k: int, seed: int) -> list[int]:
    """k item positions per class, drawn without replacement (all of a class's items where it has fewer)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c in np.unique(labels)]
    return sorted(int(i) for group in chosen for i in group)


def train_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, recipe: ProbeRecipe, seed: int
) -> torch.nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    probe = torch.nn.Linear(features.shape[1], num_classes)
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    features = F.normalize(features.float(), dim=-1)
    for _ in range(recipe.epochs):
        for batch in torch.randperm(len(features), generator=generator).split(recipe.batch_size):
            loss = F.cross_entropy(probe(features[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return probe


def few_shot(
    train: torch.Tensor,
    train_labels: Sequence[int],
    test: torch.Tensor,
    test_labels: Sequence[int],
    num_classes: int,
    *,
    shots: Sequence[int] = (1, 2, 4, 8),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    recipe: ProbeRecipe = ProbeRecipe(),
) -> dict[str, Any]:
    """Top-1 (percent) of a linear probe trained on k examples per class, for each k: mean and standard
    deviation over `seeds` (each seed draws other examples and another batch order)."""
    train_labels_t = torch.as_tensor(list(train_labels), dtype=torch.long)
    test_labels_t = torch.as_tensor(list(test_labels), dtype=torch.long)
    results: dict[str, Any] = {"recipe": asdict(recipe), "seeds": list(seeds), "shots": {}}
    for k in shots:
        if k < 1:
            raise ValueError(f"shots must be positive, got {k}")
        scores = []
        for seed in seeds:
            chosen = torch.tensor(sample_shots(train_labels, k, seed))
            probe = train_probe(train[chosen], train_labels_t[chosen], num_classes, recipe, seed)
            with torch.no_grad():
                logits = probe(F.normalize(test.float(), dim=-1))
            scores.append(100 * accuracy(logits, test_labels_t, topk=(1,))["top1"])
        results["shots"][str(k)] = {"top1": float(np.mean(scores)), "std": float(np.std(scores)), "per_seed": scores}
    return results
