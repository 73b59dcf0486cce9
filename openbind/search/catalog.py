"""The catalogue of an index (`items.sqlite`): its items, why files failed, and where each vector is stored.

    items    id, path (unique), input kind, source, size, mtime_ns, sha256, kinds embedded, status, error
    vectors  id, item, input kind, and where the float16 vector lives: file (relative to the index) + row

One connection, shared by the threads of a server behind a lock (a sqlite3 connection is not safe to use from two
threads at once); every change is one transaction, so a killed process leaves the last committed state.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, source INTEGER NOT NULL,
    size INTEGER, mtime_ns INTEGER, sha256 TEXT, kinds TEXT NOT NULL, status TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS vectors(
    id INTEGER PRIMARY KEY AUTOINCREMENT, item INTEGER NOT NULL, kind TEXT NOT NULL, file TEXT NOT NULL,
    row INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vectors_item ON vectors(item);
CREATE INDEX IF NOT EXISTS items_sha256 ON items(sha256);
"""
BATCH = 500  # ids per `IN (...)` query, below SQLite's variable limit

Identity = tuple["int | None", "int | None", "str | None"]  # (size, mtime_ns, sha256)


class Catalog:
    """The SQLite file of an index, safe to share between threads."""

    def __init__(self, path: str | Path):
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @staticmethod
    def create(path: str | Path) -> None:
        sqlite3.connect(path).executescript(_SCHEMA).close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- plain access, for the vector stores' own tables

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def script(self, sql: str) -> None:
        with self._lock:
            self._db.executescript(sql)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, inside one transaction (committed on success, rolled back on an exception)."""
        with self._lock, self._db:
            yield self._db

    # ---- items

    def count(self) -> int:
        return self.query("SELECT COUNT(*) FROM items WHERE status = 'ok'")[0][0]

    def items(self) -> list[dict[str, Any]]:
        """Every item row (failed ones included), by id."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM items ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor]

    def item(self, item_id: int) -> dict[str, Any] | None:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM items WHERE id = ?", (item_id,))
            row = cursor.fetchone()
            return None if row is None else dict(zip([d[0] for d in cursor.description], row))

    def failures(self) -> list[tuple[str, str]]:
        return self.query("SELECT path, error FROM items WHERE status = 'failed' ORDER BY path")

    def item_id(self, path: str) -> int | None:
        row = self.query("SELECT id FROM items WHERE path = ?", (path,))
        return row[0][0] if row else None

    def items_with_sha256(self, digest: str) -> list[int]:
        return [row[0] for row in self.query("SELECT id FROM items WHERE sha256 = ?", (digest,))]

    def files(self) -> dict[str, tuple]:
        """path -> (path, id, kind, size, mtime_ns, sha256) of every item."""
        return {row[0]: row for row in self.query("SELECT path, id, kind, size, mtime_ns, sha256 FROM items")}

    def added_files(self) -> list[tuple[str, str]]:
        """(path, kind) of the files added by path rather than found in a source."""
        return self.query("SELECT path, kind FROM items WHERE source = -1")

    def touch(self, rows: Sequence[tuple[int, int, int]]) -> None:
        """New (size, mtime_ns) of items whose content did not change, as (size, mtime_ns, id)."""
        with self.transaction() as db:
            db.executemany("UPDATE items SET size = ?, mtime_ns = ? WHERE id = ?", rows)

    def delete(self, ids: Sequence[int]) -> None:
        with self.transaction() as db:
            _delete(db, ids)

    def record(
        self, chunk: Sequence[Any], identities: Sequence[Identity], kinds: Sequence[str], errors: dict[int, str],
        vectors: Sequence[tuple[int, str]], file: str | None,
    ) -> None:  # fmt: skip
        """One embedded chunk of candidates in one transaction, replacing their previous rows: each file's
        identity, the kinds embedded (comma-separated) or why it failed, and its vectors as (file position, kind),
        stored at rows 0, 1, ... of `file`."""
        with self.transaction() as db:
            _delete(db, [r[0] for c in chunk for r in db.execute("SELECT id FROM items WHERE path = ?", (c.path,))])
            item_ids = [
                db.execute(
                    "INSERT INTO items(path, kind, source, size, mtime_ns, sha256, kinds, status, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.path, c.kind, c.source, *identity, "" if i in errors else kinds[i],
                     "failed" if i in errors else "ok", errors.get(i)),
                ).lastrowid
                for i, (c, identity) in enumerate(zip(chunk, identities))
            ]  # fmt: skip
            db.executemany(
                "INSERT INTO vectors(item, kind, file, row) VALUES (?, ?, ?, ?)",
                [(item_ids[i], kind, file, row) for row, (i, kind) in enumerate(vectors)],
            )

    # ---- vectors

    def vectors_of(self, item_id: int) -> list[tuple[str, int, str, int]]:
        """(kind, vector id, file, row) of one item's vectors."""
        return self.query("SELECT kind, id, file, row FROM vectors WHERE item = ? ORDER BY id", (item_id,))

    def vector_locations(self) -> list[tuple[int, str, int]]:
        """(vector id, file, row) of every vector, by id."""
        return self.query("SELECT id, file, row FROM vectors ORDER BY id")

    def referenced_files(self) -> set[str]:
        return {file for (file,) in self.query("SELECT DISTINCT file FROM vectors")}

    def vector_ids(self, kinds: Sequence[str] | None, excluded: set[int]) -> list[int]:
        """Ids of the vectors of these input kinds (all when None), leaving out the items `excluded`."""
        sql, args = "SELECT id FROM vectors WHERE 1", []
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        if excluded:
            sql += f" AND item NOT IN ({','.join('?' * len(excluded))})"
            args += sorted(excluded)
        return [row[0] for row in self.query(sql, args)]

    def owners(self, vector_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
        """vector id -> (item id, path, input kind of the vector)."""
        found = {}
        for start in range(0, len(vector_ids), BATCH):
            part = list(vector_ids[start : start + BATCH])
            found.update({r[0]: r[1:] for r in self.query(
                "SELECT v.id, i.id, i.path, v.kind FROM vectors v JOIN items i ON v.item = i.id "
                f"WHERE v.id IN ({','.join('?' * len(part))})", part)})  # fmt: skip
        return found


def _delete(db: sqlite3.Connection, ids: Sequence[int]) -> None:
    for item_id in ids:
        db.execute("DELETE FROM vectors WHERE item = ?", (item_id,))
        db.execute("DELETE FROM items WHERE id = ?", (item_id,))
