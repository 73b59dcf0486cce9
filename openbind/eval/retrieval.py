"""Cross-modal retrieval metrics: recall@k and median rank on normalized embeddings (cosine similarity).

Relevance is by id, so one query may match several gallery items and one gallery item several queries (a clip
with five captions: every caption carries the clip's id). A query's rank is the position of its best-placed
relevant item; ties with irrelevant items count against the query, so a collapsed model that embeds
everything alike scores at the bottom, not at the top.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from openbind.errors import OpenBindInputError


def retrieval_ranks(
    query_emb: torch.Tensor,
    gallery_emb: torch.Tensor,
    query_ids: Sequence[Any] | torch.Tensor,
    gallery_ids: Sequence[Any] | torch.Tensor,
    *,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """[Q] long: the 1-based rank of each query's best relevant gallery item, ranked by cosine similarity."""
    if len(query_emb) != len(query_ids) or len(gallery_emb) != len(gallery_ids):
        raise OpenBindInputError(
            "ids",
            f"{len(query_ids)} query ids for {len(query_emb)} queries, "
            f"{len(gallery_ids)} gallery ids for {len(gallery_emb)} gallery items",
        )
    if len(query_emb) == 0 or len(gallery_emb) == 0:
        raise OpenBindInputError("embeddings", "retrieval needs at least one query and one gallery item")
    codes: dict[Hashable, int] = {}
    query_codes = torch.tensor([codes.setdefault(as_key(i), len(codes)) for i in _id_list(query_ids)])
    gallery_codes = torch.tensor([codes.setdefault(as_key(i), len(codes)) for i in _id_list(gallery_ids)])
    gallery = F.normalize(gallery_emb.float(), dim=-1)
    gallery_codes = gallery_codes.to(gallery.device)
    query_codes = query_codes.to(gallery.device)
    ranks = []
    for start in range(0, len(query_emb), chunk_size):
        queries = F.normalize(query_emb[start : start + chunk_size].float().to(gallery.device), dim=-1)
        sims = queries @ gallery.T
        relevant = query_codes[start : start + chunk_size, None] == gallery_codes[None, :]
        missing = (~relevant.any(dim=1)).nonzero().flatten()
        if len(missing):
            first = start + int(missing[0])
            raise OpenBindInputError(
                _id_list(query_ids)[first], f"query {first} has no gallery item with its id: recall is undefined"
            )
        best = sims.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)
        ranks.append(1 + ((sims >= best) & ~relevant).sum(dim=1))
    return torch.cat(ranks).cpu()


def recall_at_k(
    query_emb: torch.Tensor,
    gallery_emb: torch.Tensor,
    query_ids: Sequence[Any] | torch.Tensor,
    gallery_ids: Sequence[Any] | torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """{"R@1": fraction, ..., "median_rank": ..., "mean_rank": ..., "num_queries": Q}.

    A query hits at k if any of its top-k gallery items shares its id. The median rank is the usual MdR
    (the mean of the two middle ranks for an even count).
    """
    ranks = retrieval_ranks(query_emb, gallery_emb, query_ids, gallery_ids).float()
    out = {f"R@{k}": (ranks <= k).float().mean().item() for k in ks}
    out["median_rank"] = ranks.quantile(0.5).item()
    out["mean_rank"] = ranks.mean().item()
    out["num_queries"] = len(ranks)
    return out


def recall_both_directions(
    a_emb: torch.Tensor,
    b_emb: torch.Tensor,
    a_ids: Sequence[Any] | torch.Tensor,
    b_ids: Sequence[Any] | torch.Tensor,
    *,
    names: tuple[str, str] = ("a", "b"),
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, dict[str, float]]:
    """{"a->b": recall_at_k(a queries, b gallery), "b->a": the reverse}, keyed with `names`."""
    first, second = names
    return {
        f"{first}->{second}": recall_at_k(a_emb, b_emb, a_ids, b_ids, ks),
        f"{second}->{first}": recall_at_k(b_emb, a_emb, b_ids, a_ids, ks),
    }


def _id_list(ids: Sequence[Any] | torch.Tensor) -> list[Any]:
    return ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)


def as_key(value: Any) -> Hashable:
    """Ids and labels as dict keys: lists (from tensors or JSON) become tuples."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, list):
        return tuple(as_key(v) for v in value)
    try:
        hash(value)
    except TypeError:
        raise OpenBindInputError(value, "ids and labels must be hashable (numbers, strings, tuples)") from None
    return value
