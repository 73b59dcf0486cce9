"""What an index holds: the files of its sources (folders walked recursively, manifests), each with its input kind.

A folder's files get their kind from their suffix through the registry; kinds with no suffix of their own (depth
and thermal PNGs, IMU CSVs) come from `--modality-glob KIND=PATTERN` rules, which win over suffixes. A manifest's
columns of file-holding input kinds each give their files as items. Sources are recorded in the index as JSON
dicts, so `update` walks them again.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbind.modalities import get_input, input_for_path

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class Candidate:
    """One file to index: its absolute path, its input kind and the position of its source (-1: added by path)."""

    path: str
    kind: str
    source: int


def make_source(src: str | os.PathLike, globs: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The JSON record of a source: a folder (with its kind -> patterns rules) or a manifest file."""
    path = Path(src).resolve()
    if path.is_dir():
        rules = {get_input(kind).name: list(patterns) for kind, patterns in (globs or {}).items()}
        return {"folder": str(path), "globs": rules}
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return {"manifest": str(path)}
    raise ValueError(f"source {src!r} is neither a folder nor a manifest ({', '.join(MANIFEST_SUFFIXES)})")


def parse_globs(rules: Sequence[str]) -> dict[str, list[str]]:
    """`["depth=**/*_depth.png", ...]` -> {"depth": ["**/*_depth.png"]} (the kind is checked against the registry)."""
    globs: dict[str, list[str]] = {}
    for rule in rules:
        kind, sep, pattern = rule.partition("=")
        if not sep or not pattern:
            raise ValueError(f"--modality-glob takes MODALITY=PATTERN, got {rule!r}")
        try:
            name = get_input(kind.strip()).name
        except KeyError as error:
            raise ValueError(str(error).strip('"')) from None
        globs.setdefault(name, []).append(pattern.strip())
    return globs


def walk(sources: Sequence[Mapping[str, Any]]) -> Iterator[Candidate]:
    """Every file of every source, in a stable order (sorted paths), with its input kind."""
    for position, source in enumerate(sources):
        if "manifest" in source:
            yield from _manifest_files(source["manifest"], position)
        else:
            yield from _folder_files(Path(source["folder"]), source.get("globs", {}), position)


def _folder_files(root: Path, globs: Mapping[str, Sequence[str]], position: int) -> Iterator[Candidate]:
    if not root.is_dir():
        raise ValueError(f"source folder {root} does not exist any more")
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            path = Path(directory, name)
            kind = _kind_of(path.relative_to(root).as_posix(), globs)
            if kind is not None:
                yield Candidate(str(path), kind, position)


def _kind_of(relative: str, globs: Mapping[str, Sequence[str]]) -> str | None:
    for kind, patterns in globs.items():
        # `**/` also matches at the top level, as in shells with globstar
        if any(fnmatch.fnmatchcase(relative, p) or (p.startswith("**/") and fnmatch.fnmatchcase(relative, p[3:]))
               for p in patterns):  # fmt: skip
            return kind
    found = input_for_path(relative)
    return found.name if found is not None else None


def _manifest_files(path: str, position: int) -> Iterator[Candidate]:
    from openbind.data.manifest import read_manifest

    manifest = read_manifest(path, missing="skip")
    seen: set[str] = set()
    for kind in manifest.modalities:
        if not get_input(kind).holds_files:
            continue
        for row in manifest.rows:
            file = row.get(kind)
            if file is not None and str(file) not in seen:
                seen.add(str(file))
                yield Candidate(str(file), kind, position)
