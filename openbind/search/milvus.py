"""An index whose vectors are searched in Milvus, for collections past one machine's memory or shared as a service.

The index folder stays the catalogue: `index.json` (model, sources, settings, and `store`: the Milvus URI and
collection) and `items.sqlite` (items, their bookkeeping and failures), so discovery, resume and update are the
same code for every store. Only the published vectors differ: instead of a FAISS generation, `publish`
upserts the vectors of committed chunks into one Milvus collection per index, deletes the dropped ones, and marks
them published (`vectors.file = 'milvus'`) in one SQLite transaction. Two SQLite triggers record what Milvus must
learn: a deleted vector row (a removed or changed file) queues its id for deletion, and a touched item (new size
and mtime, same sha256) marks its vectors stale so their bookkeeping fields are upserted again. Upserts and
deletes by primary key are idempotent and vector ids are never reused, so a publish killed half way is redone by
the next one.

The URI is a local `.db` file (Milvus Lite, embedded) or `http://host:19530` (a Milvus server or cluster): the
same `MilvusClient` calls serve both. Collection fields: `id` (the vector id, primary key), `item_id`, `path`,
`modality` (the vector's input kind, used by filters), `size`, `mtime_ns`, `sha256` and `vector` (FLOAT_VECTOR
of the model's dimension, inner product over unit vectors: cosine). The model fingerprint is a collection
property, checked on every open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openbind.search.store import SearchResult, VectorStore

PUBLISHED = "milvus"  # vectors.file of a vector that is in the collection and up to date
STALE = "milvus-stale"  # in the collection, with the bookkeeping fields of an older size/mtime
FINGERPRINT = "openbind.fingerprint"
METRIC = "IP"
MAX_TOPK = 16_384  # Milvus's limit on one search's results
BATCH = 1_000  # rows per upsert, ids per delete or query

_SCHEMA = """
CREATE TABLE IF NOT EXISTS milvus_deletions(id INTEGER PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS milvus_on_delete AFTER DELETE ON vectors
BEGIN INSERT OR IGNORE INTO milvus_deletions(id) VALUES (OLD.id); END;
CREATE TRIGGER IF NOT EXISTS milvus_on_touch AFTER UPDATE OF size, mtime_ns ON items
BEGIN UPDATE vectors SET file = 'milvus-stale' WHERE item = NEW.id AND file = 'milvus'; END;
"""


class MilvusStore(VectorStore):
    """An index's published vectors in a Milvus collection (see the module's docstring)."""

    client: Any = None

    @classmethod
    def settings(cls, uri: str | None, collection: str | None, index_type: str | None, root: Path) -> dict[str, Any]:
        """The `store` record: a local file URI made absolute (so the index opens from anywhere), and the
        collection (default: `openbind_` + the index folder's name)."""
        if index_type is not None:
            raise ValueError("the milvus backend picks its own index (AUTOINDEX); index_type is a FAISS option")
        if not uri:
            raise ValueError("the milvus backend needs a uri: a local .db file (Milvus Lite) or http://host:19530")
        if "://" not in uri:
            path = Path(uri).expanduser().resolve()
            if path.suffix != ".db":
                raise ValueError(f"a local Milvus Lite uri is a file ending in .db, got {uri!r}")
            uri = str(path)
        name = collection or "openbind_" + re.sub(r"[^A-Za-z0-9_]", "_", root.resolve().name)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", name):
            raise ValueError(f"a Milvus collection name is letters, digits and '_', not starting with a digit: {name!r}")
        return {"backend": "milvus", "uri": uri, "collection": name}

    def open(self, mmap: bool | None = None) -> None:
        """Connect to the collection, creating it on first use, and check it holds this model's vectors."""
        from pymilvus import DataType, MilvusClient

        self.index.catalog.script(_SCHEMA)
        store, model = self.index.meta["store"], self.index.meta["model"]
        self.collection = store["collection"]
        self.client = MilvusClient(store["uri"])
        if not self.client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("item_id", DataType.INT64)
            schema.add_field("path", DataType.VARCHAR, max_length=65_535)
            schema.add_field("modality", DataType.VARCHAR, max_length=128)
            schema.add_field("size", DataType.INT64)
            schema.add_field("mtime_ns", DataType.INT64)
            schema.add_field("sha256", DataType.VARCHAR, max_length=64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=model["embed_dim"])
            params = self.client.prepare_index_params()
            params.add_index("vector", index_type="AUTOINDEX", metric_type=METRIC)
            params.add_index("modality", index_type="INVERTED")
            self.client.create_collection(self.collection, schema=schema, index_params=params)
        recorded = self.client.describe_collection(self.collection).get("properties", {}).get(FINGERPRINT)
        if recorded is None and not self.stored_count():  # new (or its creation was cut short)
            self.client.alter_collection_properties(self.collection, properties={FINGERPRINT: model["fingerprint"]})
        elif recorded != model["fingerprint"]:
            self.close()
            raise ValueError(
                f"Milvus collection {self.collection} at {store['uri']} holds vectors of model fingerprint "
                f"{recorded}, not of this index's model {model['source']} (fingerprint {model['fingerprint']}): "
                "use another collection"
            )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def stored_count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def stored(self, rows: Sequence[tuple[int, str, int]]) -> list[np.ndarray]:
        """Vectors of published rows from Milvus, of the others from their chunk files."""
        local = [row for row in rows if not row[1].startswith(PUBLISHED)]
        found = dict(zip([row[0] for row in local], super().stored(local)))
        remote = [row[0] for row in rows if row[1].startswith(PUBLISHED)]
        for start in range(0, len(remote), BATCH):
            for hit in self.client.query(self.collection, ids=remote[start : start + BATCH], output_fields=["vector"]):
                found[hit["id"]] = np.asarray(hit["vector"], np.float32).astype(np.float16)
        return [found[row[0]] for row in rows]

    def publish(self) -> None:
        """Bring the collection up to date with the catalogue: upsert new and stale vectors, delete queued ids,
        then record both in one transaction (the index deletes the chunk files after)."""
        catalog = self.index.catalog
        rows = catalog.query(
            "SELECT v.id, v.file, v.row, v.item, v.kind, i.path, i.size, i.mtime_ns, i.sha256 FROM vectors v "
            "JOIN items i ON v.item = i.id WHERE v.file != ? ORDER BY v.id", (PUBLISHED,)
        )  # fmt: skip
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            self.client.upsert(self.collection, [
                {"id": r[0], "item_id": r[3], "path": r[5], "modality": r[4], "size": r[6], "mtime_ns": r[7],
                 "sha256": r[8], "vector": vector.astype(np.float32).tolist()}
                for r, vector in zip(part, self.stored([r[:3] for r in part]))
            ])  # fmt: skip
        deleted = [row[0] for row in catalog.query("SELECT id FROM milvus_deletions")]
        for start in range(0, len(deleted), BATCH):
            self.client.delete(self.collection, ids=deleted[start : start + BATCH])
        self.client.flush(self.collection)
        with catalog.transaction() as db:
            db.executemany("UPDATE vectors SET file = ?, row = -1 WHERE id = ?", [(PUBLISHED, r[0]) for r in rows])
            db.executemany("DELETE FROM milvus_deletions WHERE id = ?", [(i,) for i in deleted])
        count = catalog.query("SELECT COUNT(*) FROM vectors")[0][0]
        meta = self.index.meta
        meta["index"] = {"type": "milvus", "factory": f"Milvus AUTOINDEX ({METRIC}) {self.collection} at "
                         f"{meta['store']['uri']}", "count": count, "dim": meta["model"]["embed_dim"]}  # fmt: skip
        self.index.write_meta()

    def nearest(self, vector: np.ndarray, k: int, kinds: Sequence[str] | None, excluded: set[int]) -> list[SearchResult]:
        """The `k` best items, searched in Milvus; modality and exclusion filters become a filter expression."""
        if k > MAX_TOPK:
            raise ValueError(f"k must be <= {MAX_TOPK} with the milvus backend, got {k}")
        total = self.index.catalog.query("SELECT COUNT(*) FROM vectors WHERE file LIKE 'milvus%'")[0][0]
        clauses = []
        if kinds:
            clauses.append(f"modality in {json.dumps(sorted(kinds))}")
        if excluded:
            clauses.append(f"item_id not in {json.dumps(sorted(excluded))}")
        wanted = k * 2
        while total:
            depth = min(wanted, total, MAX_TOPK)
            hits = self.client.search(
                self.collection, data=[vector.astype(np.float32).tolist()], limit=depth, filter=" and ".join(clauses),
                output_fields=["item_id", "path", "modality"], search_params={"metric_type": METRIC},
            )[0]  # fmt: skip
            results: dict[int, SearchResult] = {}
            for hit in hits:  # best first; a video's second vector is not a second result
                entity = hit["entity"]
                results.setdefault(entity["item_id"], SearchResult(
                    entity["item_id"], entity["path"], entity["modality"], float(hit["distance"])))  # fmt: skip
            if len(results) >= k or len(hits) < depth or depth == min(total, MAX_TOPK):
                return list(results.values())[:k]
            wanted *= 2
        return []

