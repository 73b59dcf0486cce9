"""Embedding a corpus into Parquet shards (here, or on a Ray cluster), and an index built from such shards.

So that a cluster embeds and one machine indexes: `embed_corpus(src, model, out)` walks a folder or manifest
exactly as `openbind index build` does, fixes the item list once (`plan.parquet`), cuts it into shards of
`shard_size` items and writes `shards/shard-<n>.parquet` for each, atomically; a rerun into the same folder
embeds only the shards that are missing. `build_index_from_embeddings(dir, out)` then fills an `Index` from the
shards without loading the model.

A shard has one row per vector (a video gives two, its frames and its sound) and one row per failed file:

    id (int64: the item's position in the plan), path, kind (the file's input kind), modality (the vector's
    input kind), embedding (fixed-size list of float32 or float16; null for a failed file), size, mtime_ns,
    sha256, model_fingerprint, error (why the file failed; null otherwise)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from openbind.search.files import assemble, embed_files, file_identity
from openbind.search.index import Index, describe_model
from openbind.search.sources import Candidate, make_source, walk
from openbind.utils import atomic_path, atomic_write_text

PLAN_NAME = "embed.json"
ITEMS_NAME = "plan.parquet"
SHARDS_DIR = "shards"
DTYPES = ("float32", "float16")
ENGINES = ("local", "ray")
FORMAT = 1

Identity = tuple["int | None", "int | None", "str | None"]  # (size, mtime_ns, sha256)


@dataclass
class EmbedReport:
    """What an `embed_corpus` run did: shards written now and found complete, and the (path, reason) of the
    files that failed in the shards written now."""

    shards: int = 0
    written: int = 0
    skipped: int = 0
    items: int = 0
    vectors: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """The fixed item list of an embedding folder and its settings (`embed.json` + `plan.parquet`)."""

    root: Path
    meta: dict[str, Any]
    items: list[Candidate]

    @property
    def shard_size(self) -> int:
        return self.meta["shard_size"]

    @property
    def num_shards(self) -> int:
        return -(-len(self.items) // self.shard_size)

    def shard(self, number: int) -> list[Candidate]:
        return self.items[number * self.shard_size : (number + 1) * self.shard_size]

    def shard_path(self, number: int) -> Path:
        return self.root / SHARDS_DIR / f"shard-{number:05d}.parquet"

    def missing(self) -> list[int]:
        """The shards not written yet (a shard file exists only complete: it is renamed into place)."""
        return [n for n in range(self.num_shards) if not self.shard_path(n).is_file()]


def plan_corpus(
    src: str | os.PathLike, model: str | os.PathLike, out: str | os.PathLike, *,
    globs: dict[str, list[str]] | None = None, shard_size: int = 1024, dtype: str = "float32",
) -> Plan:  # fmt: skip
    """The plan of `out`: made now from `src` (walked as `index build` walks it), or the one already there when
    it was made for the same model and source (so an interrupted job resumes with the same shards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    root = Path(out)
    source = make_source(src, globs)
    recorded = describe_model(model)
    if (root / PLAN_NAME).is_file():
        plan = read_plan(root)
        if plan.meta["model"]["fingerprint"] != recorded["fingerprint"] or plan.meta["source"] != source:
            raise ValueError(
                f"{root} holds embeddings of {plan.meta['source']} by model {plan.meta['model']['source']} "
                f"(fingerprint {plan.meta['model']['fingerprint']}), not of {source} by {model} (fingerprint "
                f"{recorded['fingerprint']}): use another --out"
            )
        return plan
    items = list(walk([source]))
    table = pa.table({"path": [c.path for c in items], "kind": [c.kind for c in items]})
    with atomic_path(root / ITEMS_NAME) as tmp:
        pq.write_table(table, tmp)
    meta = {"format": FORMAT, "model": recorded, "source": source, "shard_size": shard_size, "dtype": dtype,
            "items": len(items)}  # fmt: skip
    atomic_write_text(root / PLAN_NAME, json.dumps(meta, indent=2))  # last: a plan exists only whole
    return Plan(root, meta, items)


def read_plan(root: str | os.PathLike) -> Plan:
    """The plan of an embedding folder written by `embed_corpus`."""
    import pyarrow.parquet as pq

    root = Path(root)
    if not (root / PLAN_NAME).is_file():
        raise ValueError(f"{root} is not an embedding folder (no {PLAN_NAME}); write one with `openbind embed`")
    meta = json.loads((root / PLAN_NAME).read_text())
    table = pq.read_table(root / ITEMS_NAME).to_pydict()
    return Plan(root, meta, [Candidate(p, k, 0) for p, k in zip(table["path"], table["kind"])])


def embed_corpus(
    src: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    globs: dict[str, list[str]] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    shard_size: int = 1024,
    dtype: str = "float32",
    progress: bool = True,
) -> EmbedReport:
    """Embed every file of `src` with `model` into Parquet shards in `out`; resumable per shard.

    `engine="local"`: in this process, decoding in `num_workers` DataLoader workers. `engine="ray"`: on Ray Data
    (the cluster at `ray_address`, or a local one), decoding in CPU tasks and embedding in `num_workers` actors
    (default: one per GPU, or one), each loading the model once; the paths must be readable on every node."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
    if ray_address is not None and engine != "ray":
        raise ValueError("ray_address needs engine='ray'")
    plan = plan_corpus(src, model, out, globs=globs, shard_size=shard_size, dtype=dtype)
    todo = plan.missing()
    report = EmbedReport(shards=plan.num_shards, skipped=plan.num_shards - len(todo))
    if not todo:
        return report
    (plan.root / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(todo), desc=f"embed {plan.root.name}", unit="shard", disable=not progress) as bar:
        if engine == "ray":
            from openbind.search.ray_engine import embed_shards_with_ray

            finished = embed_shards_with_ray(plan, todo, model, batch_size, num_workers, ray_address)
        else:
            finished = _embed_shards_here(plan, todo, model, batch_size, num_workers)
        for number, results, identities in finished:
            written = write_shard(plan, number, results, identities)
            report.written += 1
            report.items += len(plan.shard(number))
            report.vectors += written.vectors
            report.failed += written.failed
            bar.update(1)
    return report


def _embed_shards_here(plan: Plan, todo: Sequence[int], model: str | os.PathLike, batch_size: int, num_workers: int):
    """(shard, embedded kinds, file identities) of each shard to write, embedded in this process."""
    from openbind.factory import create_model
    from openbind.modalities import kinds_in_file, modality_of

    needed = {modality_of(k).name for n in todo for c in plan.shard(n) for k in kinds_in_file(c.kind)}
    loaded = create_model(str(model), modalities=sorted(needed & set(plan.meta["model"]["modalities"])), progress=False)
    for number in todo:
        chunk = plan.shard(number)
        results = embed_files(loaded, chunk, batch_size, num_workers)
        yield number, results, [file_identity(c.path) for c in chunk]


@dataclass
class _Written:
    vectors: int
    failed: list[tuple[str, str]]


def write_shard(plan: Plan, number: int, results: Iterable[tuple], identities: Sequence[Identity]) -> _Written:
    """Write shard `number` from its embedded kinds (`index.embed_files`'s tuples, from either engine) and its
    files' identities: one row per vector, one per failed file, renamed into place whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunk = plan.shard(number)
    vectors, errors = assemble(chunk, results)
    start = number * plan.shard_size
    dim, dtype = plan.meta["model"]["embed_dim"], plan.meta["dtype"]
    rows = [(i, kind, vectors[i].get(kind)) for i in range(len(chunk))
            for kind in ([chunk[i].kind] if i in errors else vectors[i])]  # fmt: skip
    matrix = np.zeros((len(rows), dim), dtype)
    valid = np.array([v is not None for _, _, v in rows], bool)
    for r, (_, _, vector) in enumerate(rows):
        if vector is not None:
            matrix[r] = vector
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim, mask=pa.array(~valid))
    table = pa.table({
        "id": pa.array([start + i for i, _, _ in rows], pa.int64()),
        "path": [chunk[i].path for i, _, _ in rows],
        "kind": [chunk[i].kind for i, _, _ in rows],
        "modality": [kind for _, kind, _ in rows],
        "embedding": embedding,
        "size": pa.array([identities[i][0] for i, _, _ in rows], pa.int64()),
        "mtime_ns": pa.array([identities[i][1] for i, _, _ in rows], pa.int64()),
        "sha256": pa.array([identities[i][2] for i, _, _ in rows], pa.string()),
        "model_fingerprint": [plan.meta["model"]["fingerprint"]] * len(rows),
        "error": pa.array([errors.get(i) for i, _, _ in rows], pa.string()),
    })  # fmt: skip
    with atomic_path(plan.shard_path(number)) as tmp:
        pq.write_table(table, tmp)
    return _Written(int(valid.sum()), [(chunk[i].path, reason) for i, reason in sorted(errors.items())])


def build_index_from_embeddings(
    embeddings: str | os.PathLike, out: str | os.PathLike, *, index_type: str | None = None,
    memory_budget: int | None = None, progress: bool = True,
) -> tuple[Index, int]:  # fmt: skip
    """An index in `out` filled from the shards of an `embed_corpus` folder (the model as they record it; the
    model's files are needed only for queries), one committed chunk per shard, so a killed run resumes.
    Returns the index and the number of items added now."""
    from openbind.search.ann import DEFAULT_MEMORY_BUDGET
    import pyarrow.parquet as pq

    plan = read_plan(embeddings)
    missing = plan.missing()
    if missing:
        raise ValueError(
            f"{plan.root}: {len(missing)} of {plan.num_shards} shards are not written yet (first: shard {missing[0]});"
            " run `openbind embed` again to finish them"
        )
    index = Index.create(out, plan.meta["model"]["source"], index_type=index_type, recorded=plan.meta["model"],
                         memory_budget=memory_budget or DEFAULT_MEMORY_BUDGET)  # fmt: skip
    index.add_source(plan.meta["source"])
    position = index.meta["sources"].index(plan.meta["source"])
    known = set(index.catalog.files())
    added = 0
    for number in tqdm(range(plan.num_shards), desc=f"index {index.root.name}", unit="shard", disable=not progress):
        shard = pq.read_table(plan.shard_path(number))
        good = shard.column("embedding").drop_null().combine_chunks().flatten().to_numpy(zero_copy_only=False)
        matrix = good.reshape(-1, plan.meta["model"]["embed_dim"]).astype(np.float32)
        table = shard.drop_columns(["embedding"]).to_pydict()
        position_of = np.cumsum([e is None for e in table["error"]]) - 1  # row -> its row of `matrix`
        if set(table["model_fingerprint"]) - {plan.meta["model"]["fingerprint"]}:
            raise ValueError(f"{plan.shard_path(number)} was embedded with another model than {plan.root}'s plan")
        by_id: dict[int, int] = {}
        chunk, vectors, errors, identities = [], [], {}, []
        for row in range(len(table["id"])):
            if table["path"][row] in known:
                continue
            i = by_id.setdefault(table["id"][row], len(chunk))
            if i == len(chunk):
                chunk.append(Candidate(table["path"][row], table["kind"][row], position))
                vectors.append({})
                identities.append((table["size"][row], table["mtime_ns"][row], table["sha256"][row]))
            if table["error"][row] is not None:
                errors[i] = table["error"][row]
            else:
                vectors[i][table["modality"][row]] = matrix[position_of[row]]
        if chunk:
            index.commit(chunk, vectors, errors, identities)
            added += len(chunk)
    index.publish()
    return index, added
