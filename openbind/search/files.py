"""Embedding indexed files: what to embed of a file, the vectors of a chunk of files, and a file's identity.

Shared by the in-process build (`Index.update`), `openbind embed` and its Ray engine, so every path embeds a file
the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openbind.errors import OpenBindInputError
from openbind.eval.embedding import embed_items
from openbind.modalities import all_modalities, get_input, get_modality, input_names, kinds_in_file, modality_of
from openbind.search.sources import Candidate

Embedded = tuple[int, str, "np.ndarray | None", "str | None"]  # (file position, input kind, vector, why it failed)


def embed_files(model, chunk: Sequence[Candidate], batch_size: int = 32, num_workers: int = 0) -> list[Embedded]:
    """Every kind of every file of `chunk` embedded in this process (each file's own kind, and the kinds inside
    it: a video's sound), as (position, kind, vector or None, reason or None); `assemble` turns them into files."""
    results: list[Embedded] = []
    by_kind: dict[str, list[int]] = {}
    for i, candidate in enumerate(chunk):
        for kind in kinds_in_file(candidate.kind):
            missing = missing_tower(model.modalities, kind)
            if missing is None:
                by_kind.setdefault(kind, []).append(i)
            else:
                results.append((i, kind, None, missing))
    for kind, positions in by_kind.items():
        values, kept = [], []
        for i in positions:
            try:
                values.append(file_value(kind, chunk[i].path))
                kept.append(i)
            except OpenBindInputError as error:
                results.append((i, kind, None, error.reason))
        result = embed_items(
            model, kind, values, transform=kind_transform(model.config, kind), batch_size=batch_size,
            num_workers=num_workers, on_error="skip", progress=False,
        )  # fmt: skip
        results += [(kept[j], kind, result.tensor[row].numpy(), None) for row, j in enumerate(result.kept)]
        results += [(kept[failure.index], kind, None, failure.reason) for failure in result.failed]
    return results


def assemble(chunk: Sequence[Candidate], results: Iterable[Embedded]) -> tuple[list[dict[str, np.ndarray]], dict[int, str]]:
    """Each file's vectors by kind, in `kinds_in_file` order (frames before sound, whatever embedded first), and
    why files failed: a file fails when its own kind fails; a kind inside it that fails (a silent video) is just
    left out."""
    vectors: list[dict[str, np.ndarray]] = [{} for _ in chunk]
    errors: dict[int, str] = {}
    for i, kind, vector, reason in results:
        if reason is None:
            vectors[i][kind] = vector
        elif kind == chunk[i].kind:
            errors[i] = reason
    return [{k: v[k] for k in kinds_in_file(c.kind) if k in v} for c, v in zip(chunk, vectors)], errors


def missing_tower(modalities: Sequence[str], kind: str) -> str | None:
    """Why a model with these towers cannot embed `kind` (None when it can)."""
    name = modality_of(kind).name
    return None if name in modalities else f"the model has no {name!r} tower"


def file_value(kind: str, path: str) -> Any:
    """What to embed of a file: the file itself, or its content for kinds whose inputs are not files (.txt)."""
    if get_input(kind).holds_files:
        return path
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise OpenBindInputError(path, f"cannot read the text: {error}") from None
    if not text:
        raise OpenBindInputError(path, "empty text file")
    return text


def kind_transform(config, kind: str):
    """The per-item transform of `kind` with the model config's options (None for batched kinds: their batch
    loader); a config, not a model, so decoding workers need no weights."""
    if get_input(kind).batched:
        return None
    return get_input(kind).transform(**config.input_options(kind))


def kinds_named(name: str) -> list[str]:
    """The input kinds a user means by `name`: an input kind's name, or a modality's name for all its kinds."""
    if name in all_modalities() and name not in input_names():
        return [kind.name for kind in get_modality(name).inputs]
    return [get_input(name).name]


def file_identity(path: str) -> tuple[int | None, int | None, str | None]:
    """(size, mtime_ns, sha256) of a file, all None when it cannot be read: how `update` tells a changed file."""
    stat = file_stat(path)
    return (*stat, file_sha256(path)) if stat is not None else (None, None, None)


def file_stat(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns), or None when the file is gone."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def file_sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
