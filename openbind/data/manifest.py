"""Training manifests: which files (and captions) make up a dataset, as rows of modality -> absolute path.

A manifest is a CSV (or TSV) with a header, or a JSONL file (one JSON object per line). Columns named after an
input kind of a registered modality (`openbind.modalities.input_names()`: image, video, text, audio, depth,
thermal, imu for the built-ins) hold file paths relative to the manifest's directory (absolute paths are kept),
except kinds whose cell is the input itself (`text`: the caption). An empty cell means "this row has no such
input". Every other column (`label`, ids, extra labels) is kept as metadata. Example:

    image,depth,label
    scene1/rgb.jpg,scene1/depth.png,bedroom

`openbind.data.readers` turns the published layouts of the paper's datasets into the same `Manifest`;
`write_manifest` saves any manifest as a CSV that `read_manifest` reads back.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from openbind.errors import OpenBindInputError
from openbind.modalities import get_input, input_names
from openbind.utils import atomic_open

MissingPolicy = Literal["error", "skip"]

SHOWN_MISSING = 20  # a manifest with thousands of missing files names only the first ones


@dataclass
class Manifest:
    """Rows of one dataset. `rows[i]` maps each column to its value: an absolute path for file modalities, the
    caption for `text`, None where the row has no entry, and the raw value of metadata columns.

    `source`: the manifest file (None for a reader's output); `root`: the directory relative paths are
    resolved against; `skipped`: rows left out because a file was missing (only with missing="skip");
    `transforms`: per-modality transforms this layout needs instead of the modality defaults (e.g. SUN RGB-D's
    depth encoding); `PairDataset` uses them unless the caller gives its own.
    """

    rows: list[dict[str, Any]]
    modalities: list[str]
    metadata: list[str]
    root: Path
    source: Path | None = None
    skipped: list[str] = field(default_factory=list)
    transforms: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the rows (resolved paths included): equal fingerprints mean the same data in the same order,
        so anything keyed by row index (an embedding cache) stays valid exactly as long as this does."""
        digest = hashlib.sha256()
        for row in self.rows:
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def name(self) -> str:
        return str(self.source) if self.source is not None else str(self.root)


def read_manifest(path: str | os.PathLike, *, missing: MissingPolicy = "error") -> Manifest:
    """Read a CSV/TSV (by suffix) or JSONL (.jsonl, .ndjson) manifest; see the module docstring for the format.

    Every referenced file must exist: with missing="error" one OpenBindInputError lists them all with their row
    and line numbers; with missing="skip" those rows are dropped and described in `Manifest.skipped`.
    """
    path = Path(path)
    if not path.is_file():
        raise OpenBindInputError(str(path), "manifest not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        columns, records = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        records = _read_jsonl(path)
        columns = list(dict.fromkeys(key for _, record in records for key in record))
    else:
        raise OpenBindInputError(
            str(path), f"unknown manifest format {suffix or '(none)'!r}; use .csv, .tsv or .jsonl"
        )
    modalities = [c for c in input_names() if c in columns]
    if not modalities:
        raise OpenBindInputError(
            str(path), f"no modality column: got columns {columns}, expected at least one of {input_names()}"
        )
    root = path.parent.resolve()
    rows = []
    for line, record in records:
        row = {column: record.get(column) for column in columns}
        for modality in modalities:
            row[modality] = _cell(row[modality], modality, line, path, root)
        rows.append((line, row))
    if not rows:
        raise OpenBindInputError(str(path), "no data rows")
    return _checked(rows, modalities, [c for c in columns if c not in modalities], root, path, missing)


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise OpenBindInputError(str(path), "empty file: no header row")
            header = [h.strip() for h in header]
            duplicates = sorted({h for h in header if header.count(h) > 1})
            if duplicates or "" in header:
                raise OpenBindInputError(str(path), f"header has empty or duplicate column names {duplicates}")
            records = []
            for values in reader:
                if not values or not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise OpenBindInputError(
                        str(path), f"line {reader.line_num} has {len(values)} fields, the header {len(header)}"
                    )
                records.append((reader.line_num, dict(zip(header, values))))
    except (UnicodeDecodeError, csv.Error) as error:
        raise OpenBindInputError(str(path), f"cannot parse as UTF-8 CSV ({error})") from error
    return header, records


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise OpenBindInputError(str(path), f"line {line_number} is not JSON ({error})") from None
                if not isinstance(record, dict):
                    raise OpenBindInputError(str(path), f"line {line_number} is not a JSON object")
                records.append((line_number, record))
    except UnicodeDecodeError as error:
        raise OpenBindInputError(str(path), f"cannot read as UTF-8 ({error})") from error
    if not records:
        raise OpenBindInputError(str(path), "empty file: no rows")
    return records


def _cell(value: Any, modality: str, line: int, path: Path, root: Path) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise OpenBindInputError(str(path), f"line {line}: {modality} must be a string, got {type(value).__name__}")
    if not get_input(modality).holds_files:
        return value
    return os.path.normpath(root / value.strip())  # an absolute value stays as it is


def _checked(
    rows: list[tuple[int, dict[str, Any]]],
    modalities: list[str],
    metadata: list[str],
    root: Path,
    source: Path | None,
    missing: MissingPolicy,
) -> Manifest:
    """The manifest, after checking that every referenced file exists (all of them, reported together)."""
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    kept, problems = [], []
    for number, (line, row) in enumerate(rows, start=1):
        absent = [
            f"row {number} (line {line}) {m}: {row[m]}"
            for m in modalities
            if get_input(m).holds_files and row[m] is not None and not os.path.isfile(row[m])
        ]
        problems.extend(absent)
        if not absent:
            kept.append(row)
    if problems and missing == "error":
        shown = "\n  ".join(problems[:SHOWN_MISSING])
        more = f"\n  ... and {len(problems) - SHOWN_MISSING} more" if len(problems) > SHOWN_MISSING else ""
        raise OpenBindInputError(
            str(source or root), f"{len(problems)} referenced file(s) missing:\n  {shown}{more}"
        )
    return Manifest(kept, modalities, metadata, root, source, skipped=problems)


def write_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Save `manifest` as a CSV (atomically) with file paths relative to the CSV's directory where possible."""
    path = Path(path)
    root = path.parent.resolve()
    files = [m for m in manifest.modalities if get_input(m).holds_files]
    columns = manifest.modalities + manifest.metadata
    with atomic_open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in manifest.rows:
            writer.writerow([_relative(row[c], root) if c in files else _text(row.get(c)) for c in columns])
    return path


def _relative(value: str | None, root: Path) -> str:
    if value is None:
        return ""
    try:
        return os.path.relpath(value, root)
    except ValueError:  # another drive (Windows)
        return value


def _text(value: Any) -> str:
    """A metadata value as a CSV cell: strings as they are, other JSON values (numbers, lists) as JSON."""
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def from_rows(
    rows: Iterable[dict[str, Any]],
    root: str | os.PathLike,
    *,
    missing: MissingPolicy = "error",
    transforms: dict[str, Callable[[Any], Any]] | None = None,
) -> Manifest:
    """A manifest from in-memory rows (paths absolute or relative to `root`), checked like a manifest file."""
    root = Path(root).resolve()
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    modalities = [c for c in input_names() if c in columns]
    if not modalities:
        raise OpenBindInputError(str(root), f"no rows with a modality (columns {columns})")
    resolved = []
    for number, row in enumerate(rows, start=1):
        full = {c: row.get(c) for c in columns}
        for m in modalities:
            full[m] = _cell(full[m], m, number, root, root)
        resolved.append((number, full))
    manifest = _checked(resolved, modalities, [c for c in columns if c not in modalities], root, None, missing)
    manifest.transforms = dict(transforms or {})
    return manifest
