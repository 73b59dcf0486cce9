"""Embedding arithmetic (paper Sec. 5): an image of object A in environment X plus audio of environment Y
should retrieve images of A in Y.

Following the paper, embeddings are normalized, combined as 0.5*a + 0.5*b and renormalized. The hit rate
is read against the same query without the audio (and the audio alone): composition only shows when it
beats both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from openbind.errors import OpenBindInputError
from openbind.eval.retrieval import as_key


def compose(a: torch.Tensor, b: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """normalize(weight * normalize(a) + (1 - weight) * normalize(b)), row by row."""
    if a.shape != b.shape:
        raise OpenBindInputError(b, f"cannot compose embeddings of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    mixed = weight * F.normalize(a.float(), dim=-1) + (1 - weight) * F.normalize(b.float(), dim=-1)
    return F.normalize(mixed, dim=-1)


def arithmetic_hit_rate(
    image_emb: torch.Tensor,
    audio_emb: torch.Tensor,
    gallery_emb: torch.Tensor,
    gallery_labels: Sequence[Any] | torch.Tensor,
    target_labels: Sequence[Any] | torch.Tensor,
    k: int = 5,
    *,
    weight: float = 0.5,
) -> dict[str, float]:
    """{"hit_rate", "image_only_hit_rate", "audio_only_hit_rate", "k", "num_queries"}.

    Query i is `compose(image_emb[i], audio_emb[i])`; it hits when one of its k nearest gallery items
    (cosine) has the label `target_labels[i]`. Labels are any hashable values, e.g. (object, environment)
    tuples. Leave the query images out of the gallery if they should not compete for the k places.
    """
    if not len(image_emb) == len(audio_emb) == len(target_labels):
        raise OpenBindInputError(
            "queries", f"{len(image_emb)} images, {len(audio_emb)} audios and {len(target_labels)} targets"
        )
    if len(gallery_emb) != len(gallery_labels):
        raise OpenBindInputError("gallery", f"{len(gallery_labels)} labels for {len(gallery_emb)} items")
    if len(image_emb) == 0 or k < 1:
        raise OpenBindInputError("queries", "need at least one query and k >= 1")
    codes: dict[Any, int] = {}
    gallery_codes = torch.tensor([codes.setdefault(as_key(v), len(codes)) for v in _as_list(gallery_labels)])
    targets = torch.tensor([codes.get(as_key(v), -1) for v in _as_list(target_labels)])
    absent = (targets < 0).nonzero().flatten()
    if len(absent):
        first = int(absent[0])
        raise OpenBindInputError(_as_list(target_labels)[first], f"target of query {first} is not in the gallery")
    gallery = F.normalize(gallery_emb.float(), dim=-1)
    queries = {
        "hit_rate": compose(image_emb, audio_emb, weight),
        "image_only_hit_rate": F.normalize(image_emb.float(), dim=-1),
        "audio_only_hit_rate": F.normalize(audio_emb.float(), dim=-1),
    }
    out: dict[str, float] = {}
    for name, query in queries.items():
        top = (query.to(gallery.device) @ gallery.T).topk(min(k, len(gallery)), dim=1).indices.cpu()
        out[name] = (gallery_codes[top] == targets[:, None]).any(dim=1).float().mean().item()
    out["k"] = k
    out["num_queries"] = len(targets)
    return out


def _as_list(values: Sequence[Any] | torch.Tensor) -> list[Any]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)
