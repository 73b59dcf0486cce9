"""Finding a dataset's files beneath `--root` by name, wherever the user's copy put them (archives unpack to
different depths, mirrors add or drop a folder level), and the checks every reader makes of its inputs.

Searches are breadth-first with names sorted, so the file nearest to `root` wins, then the first in name
order; symbolic links to folders are followed once.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from openbind.errors import OpenBindInputError


def dataset_root(root: str | os.PathLike, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise OpenBindInputError(str(root), f"dataset folder not found; expected this layout:\n{layout}")
    return root.resolve()


def find_named(root: Path, names: Sequence[str]) -> dict[str, Path]:
    """The nearest file beneath `root` with each of `names` (exact names); names not found are absent."""
    wanted, found = set(names), {}
    for files in _walk(root):
        for entry in files:
            if entry.name in wanted and entry.name not in found:
                found[entry.name] = Path(entry.path)
        if len(found) == len(wanted):
            break
    return found


def require_files(root: Path, names: Sequence[str], layout: str) -> list[Path]:
    """The nearest file beneath `root` with each of `names`; raise naming the missing ones and the layout."""
    found = find_named(root, names)
    missing = [name for name in names if name not in found]
    if missing:
        raise OpenBindInputError(str(root), f"no {', '.join(missing)} beneath this folder; expected:\n{layout}")
    return [found[name] for name in names]


def find_media(root: Path, stems: Collection[str], suffixes: Collection[str]) -> dict[str, Path]:
    """The nearest file beneath `root` for each of `stems` (name without suffix) whose suffix is one of
    `suffixes` (any case): stem -> path. Stems without a file are absent."""
    wanted, suffixes, found = set(stems), {s.lower() for s in suffixes}, {}
    for files in _walk(root):
        for entry in files:
            stem, suffix = os.path.splitext(entry.name)
            if stem in wanted and stem not in found and suffix.lower() in suffixes:
                found[stem] = Path(entry.path)
        if len(found) == len(wanted):
            break
    return found


def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV with a header row that has (at least) `columns`; raise naming the missing ones."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise OpenBindInputError(
                str(path), f"header {reader.fieldnames} lacks column(s) {missing}; expected {list(columns)}"
            )
        return list(reader)


def chosen_classes(classes: Sequence[Sequence[str]] | None, default: list[list[str]], order: str) -> list[list[str]]:
    """`classes` (from `--classes`) in place of `default`, checked to have one entry per class of `order`."""
    if classes is None:
        return default
    classes = [list(names) for names in classes]
    if len(classes) != len(default):
        raise ValueError(f"--classes gives {len(classes)} classes; this benchmark has {len(default)} ({order})")
    if not all(classes):
        raise ValueError("--classes has a class without a name")
    return classes


def _walk(root: Path) -> Iterator[list[os.DirEntry]]:
    """The files of every folder beneath `root` (itself first), level by level, names sorted."""
    seen, level = set(), [root]
    while level:
        below = []
        for folder in level:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            try:
                with os.scandir(folder) as scan:
                    entries = sorted(scan, key=lambda e: e.name)
            except OSError:  # an unreadable folder holds nothing we can use
                continue
            below += [Path(e.path) for e in entries if e.is_dir()]
            yield [e for e in entries if e.is_file()]
        level = below
