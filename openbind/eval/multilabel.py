"""Multi-label classification scores: average precision per class and their mean (AudioSet's mAP).

Written here rather than taken from scikit-learn (which the tests check it against): it is a few lines of torch on
the scores already in memory, and the evaluation needs no extra dependency for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from openbind.errors import OpenBindInputError


def label_matrix(labels: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """bool [N, C]: item i has class c."""
    matrix = torch.zeros(len(labels), num_classes, dtype=torch.bool)
    for i, classes in enumerate(labels):
        for c in classes:
            if not 0 <= c < num_classes:
                raise OpenBindInputError(c, f"class index outside [0, {num_classes})")
            matrix[i, c] = True
    return matrix


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """float [C]: per column, the mean over positives of the precision at each positive's rank (scores sorted
    descending; ties broken by position, as a stable sort does); NaN for a column without positives."""
    order = torch.argsort(scores.float(), dim=0, descending=True, stable=True)
    hits = torch.gather(positives, 0, order).float()
    precision = hits.cumsum(dim=0) / torch.arange(1, len(scores) + 1, dtype=torch.float32)[:, None]
    count = hits.sum(dim=0)
    return torch.where(count > 0, (precision * hits).sum(dim=0) / count.clamp(min=1), float("nan"))


def mean_average_precision(scores: torch.Tensor, positives: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(mAP over the classes that have positives, per-class AP with NaN for the others)."""
    if scores.shape != positives.shape:
        raise OpenBindInputError(tuple(scores.shape), f"scores and labels differ in shape: {tuple(positives.shape)}")
    per_class = average_precision(scores, positives)
    present = ~per_class.isnan()
    if not present.any():
        raise OpenBindInputError("labels", "no class has a positive item: mAP is undefined")
    return per_class[present].mean().item(), per_class
