"""`openbind embed --engine ray`: the shards of `openbind.search.shards` embedded on Ray Data.

The items go through `ray.data.from_items`; decoding (each input kind's own transform) runs in CPU tasks, which
also take each file's size, mtime and sha256 where the file is read; embedding runs in a pool of `EmbedActor`s,
each loading the model once (one GPU each when the cluster has GPUs). Ray streams between the two stages with
backpressure; only the vectors come back to the driver, which writes each shard as soon as its last row
arrives, with the same writer (and so the same schema and atomic rename) as the in-process engine.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from openbind.errors import OpenBindInputError
from openbind.modalities import kinds_in_file, modality_of
from openbind.search.files import Embedded, file_identity, file_value, kind_transform, missing_tower

if TYPE_CHECKING:  # the shards module starts this engine
    from openbind.search.shards import Identity, Plan


def embed_shards_with_ray(
    plan: Plan, todo: Sequence[int], model: str | os.PathLike, batch_size: int, num_workers: int, address: str | None
) -> Iterator[tuple[int, list[Embedded], list[Identity]]]:
    """(shard, embedded kinds, file identities) of each shard in `todo`, in the order they finish. Connects to
    the cluster at `address` ("auto", "ray://host:10001") unless Ray is initialised already; without an address,
    starts a local Ray."""
    import ray

    from openbind.factory import get_model_config

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    config = get_model_config(str(model))
    available = plan.meta["model"]["modalities"]
    needed = sorted({modality_of(k).name for n in todo for c in plan.shard(n) for k in kinds_in_file(c.kind)} & set(available))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = plan.shard_size
    rows = [{"id": n * size + i, "path": c.path, "kind": c.kind} for n in todo for i, c in enumerate(plan.shard(n))]
    dataset = (
        ray.data.from_items(rows)
        .map_batches(decode_batch, fn_kwargs={"config": config, "modalities": available}, batch_size=batch_size)
        .map_batches(
            EmbedActor, fn_constructor_kwargs={"model": str(model), "modalities": needed}, batch_size=batch_size,
            concurrency=num_workers or max(1, gpus), num_gpus=1 if gpus else 0,
        )
    )  # fmt: skip
    expected = {n: sum(len(kinds_in_file(c.kind)) for c in plan.shard(n)) for n in todo}
    pending: dict[int, list[Embedded]] = {n: [] for n in todo}
    identities: dict[int, list[Identity]] = {n: [(None, None, None)] * len(plan.shard(n)) for n in todo}
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        for r in range(len(batch["id"])):
            number, i = divmod(int(batch["id"][r]), size)
            error = str(batch["error"][r]) or None
            pending[number].append((i, str(batch["modality"][r]), None if error else batch["embedding"][r], error))
            identities[number][i] = _identity_from_columns(batch, r)
            if len(pending[number]) == expected[number]:
                yield number, pending.pop(number), identities.pop(number)


def decode_batch(batch: dict[str, np.ndarray], config: Any, modalities: Sequence[str]) -> dict[str, Any]:
    """A Ray task: items (id, path, kind) -> one row per kind in each file, its model input serialised (a
    decoded tensor) or why it failed, and the file's (size, mtime_ns, sha256) (-1 / "" when unreadable)."""
    out: dict[str, list] = {k: [] for k in ("id", "path", "kind", "modality", "input", "error", "size", "mtime_ns", "sha256")}
    by_kind: dict[str, list[tuple[int, Any]]] = {}
    for r in range(len(batch["id"])):
        path, kind = str(batch["path"][r]), str(batch["kind"][r])
        size, mtime_ns, digest = file_identity(path)
        for inner in kinds_in_file(kind):
            error = missing_tower(modalities, inner)
            if error is None:
                try:
                    by_kind.setdefault(inner, []).append((len(out["id"]), file_value(inner, path)))
                except OpenBindInputError as failure:
                    error = failure.reason
            for key, value in (("id", int(batch["id"][r])), ("path", path), ("kind", kind), ("modality", inner),
                               ("input", b""), ("error", error or ""), ("size", -1 if size is None else size),
                               ("mtime_ns", -1 if mtime_ns is None else mtime_ns), ("sha256", digest or "")):  # fmt: skip
                out[key].append(value)
    from openbind.eval.embedding import load_batch

    for kind, entries in by_kind.items():
        result = load_batch(kind, [value for _, value in entries], kind_transform(config, kind))
        for row, j in enumerate(result.kept):
            buffer = io.BytesIO()
            np.save(buffer, result.tensor[row].numpy())
            out["input"][entries[j][0]] = buffer.getvalue()
        for failure in result.failed:
            out["error"][entries[failure.index][0]] = failure.error.reason
    return {key: np.array(values, dtype=object if key in ("input", "path", "kind", "modality", "error", "sha256")
                          else np.int64) for key, values in out.items()}  # fmt: skip


class EmbedActor:
    """A Ray actor holding the model (loaded once, on its GPU if it has one): decoded rows -> their vectors."""

    def __init__(self, model: str, modalities: Sequence[str]):
        import torch

        from openbind.factory import create_model

        self.model = create_model(model, modalities=list(modalities), progress=False)
        if torch.cuda.is_available() and isinstance(self.model, torch.nn.Module):  # an ONNX export runs on the CPU
            self.model.to("cuda")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from openbind.eval.embedding import embed_items

        embedding = np.zeros((len(batch["id"]), self.model.config.embed_dim), np.float32)
        by_kind: dict[str, list[int]] = {}
        for r, error in enumerate(batch["error"]):
            if not error:
                by_kind.setdefault(str(batch["modality"][r]), []).append(r)
        for kind, rows in by_kind.items():
            inputs = torch.from_numpy(np.stack([np.load(io.BytesIO(batch["input"][r])) for r in rows]))
            embedding[rows] = embed_items(self.model, kind, inputs, batch_size=len(rows), progress=False,
                                          on_error="raise").numpy()  # fmt: skip
        return {**{k: v for k, v in batch.items() if k != "input"}, "embedding": embedding}


def _identity_from_columns(batch: dict[str, np.ndarray], r: int) -> Identity:
    size, mtime_ns, digest = int(batch["size"][r]), int(batch["mtime_ns"][r]), str(batch["sha256"][r])
    return (None, None, None) if size < 0 else (size, mtime_ns, digest or None)
