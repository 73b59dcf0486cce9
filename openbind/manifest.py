"""Training manifests: which files (and captions) make up a dataset, as rows of modality -> absolute path.

A manifest is a CSV (or TSV) with a header, or a JSONL file (one JSON object per line). Columns named after a
modality (`MODALITIES`) hold file paths relative to the manifest's directory (absolute paths are kept), except
`text`, which holds the caption itself. An empty cell means "this row has no such file". Every other column
(`label`, ids, extra labels) is kept as metadata. Example:

    image,depth,label
    scene1/rgb.jpg,scene1/depth.png,bedroom

The readers below turn the published layouts of the paper's datasets (SUN RGB-D, LLVIP, AudioSet, Ego4D)
into the same `Manifest`, so the training code never sees dataset-specific layouts; `write_manifest` saves
any manifest as a CSV that `read_manifest` reads back.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from openbind.errors import OpenBindInputError
from openbind.utils import atomic_open

MODALITIES = ("image", "video", "text", "audio", "depth", "thermal", "imu")
TEXT = "text"  # the only modality whose cell is the content itself, not a file
MissingPolicy = Literal["error", "skip"]

_SHOWN_MISSING = 20  # a manifest with thousands of missing files names only the first ones
_VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_IMU_SUFFIXES = (".csv", ".npy")


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
    modalities = [c for c in MODALITIES if c in columns]
    if not modalities:
        raise OpenBindInputError(
            str(path), f"no modality column: got columns {columns}, expected at least one of {list(MODALITIES)}"
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
    if modality == TEXT:
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
            if m != TEXT and row[m] is not None and not os.path.isfile(row[m])
        ]
        problems.extend(absent)
        if not absent:
            kept.append(row)
    if problems and missing == "error":
        shown = "\n  ".join(problems[:_SHOWN_MISSING])
        more = f"\n  ... and {len(problems) - _SHOWN_MISSING} more" if len(problems) > _SHOWN_MISSING else ""
        raise OpenBindInputError(
            str(source or root), f"{len(problems)} referenced file(s) missing:\n  {shown}{more}"
        )
    return Manifest(kept, modalities, metadata, root, source, skipped=problems)


def write_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Save `manifest` as a CSV (atomically) with file paths relative to the CSV's directory where possible."""
    path = Path(path)
    root = path.parent.resolve()
    files = [m for m in manifest.modalities if m != TEXT]
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
    modalities = [c for c in MODALITIES if c in columns]
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


# --- Published dataset layouts ------------------------------------------------------------------------------


def read_sunrgbd(
    root: str | os.PathLike, *, depth_folders: Sequence[str] = ("depth_bfx", "depth")
) -> Manifest:
    """SUN RGB-D as released (SUNRGBD.zip): every directory under `root` that holds an `image/` folder is one
    scene, e.g. `kv1/NYUdata/NYU0001/`:

        <scene>/image/<name>.jpg        the RGB image (exactly one)
        <scene>/depth_bfx/<name>.png    refined depth, or <scene>/depth/<name>.png (the first of `depth_folders`
                                        that the scene has wins; one PNG)
        <scene>/scene.txt               optional scene class (e.g. "bedroom") -> `label`

    Rows: image, depth, label, scene (the scene directory relative to `root`). The depth PNGs store millimetres
    with a 3-bit circular shift, so the manifest asks for `DepthTransform(encoding="sunrgbd")`.
    Scenes without a depth PNG, or with several images, raise one error listing them.
    """
    from openbind.modalities.depth.transform import DepthTransform

    root = _directory(root)
    rows, problems = [], []
    for image_dir in sorted(root.rglob("image")):
        if not image_dir.is_dir():
            continue
        scene = image_dir.parent
        images = _files(image_dir, _IMAGE_SUFFIXES)
        depth_dir = next((scene / d for d in depth_folders if (scene / d).is_dir()), None)
        depths = _files(depth_dir, (".png",)) if depth_dir is not None else []
        if len(images) != 1 or len(depths) != 1:
            problems.append(f"{scene.relative_to(root)}: {len(images)} image(s), {len(depths)} depth PNG(s)")
            continue
        label_file = scene / "scene.txt"
        label = label_file.read_text(encoding="utf-8").strip() if label_file.is_file() else None
        rows.append({"image": str(images[0]), "depth": str(depths[0]), "label": label,
                     "scene": str(scene.relative_to(root))})  # fmt: skip
    if problems:
        raise OpenBindInputError(str(root), "scenes need one image and one depth PNG:\n  " + "\n  ".join(problems))
    if not rows:
        raise OpenBindInputError(str(root), "no SUN RGB-D scene (a directory with image/ and depth/) found")
    return from_rows(rows, root, transforms={"depth": DepthTransform(encoding="sunrgbd")})


def read_llvip(root: str | os.PathLike, split: Literal["train", "test"] = "train") -> Manifest:
    """LLVIP as released: `root/visible/<split>/<name>.jpg` and `root/infrared/<split>/<name>.jpg`, paired by
    file name (the `Annotations/` folder is not used). Rows: image, thermal, name. A name present on one side
    only raises an error listing them.
    """
    root = _directory(root)
    visible_dir, infrared_dir = root / "visible" / split, root / "infrared" / split
    for folder in (visible_dir, infrared_dir):
        if not folder.is_dir():
            raise OpenBindInputError(
                str(folder), "LLVIP folder missing (expected visible/<split> and infrared/<split>)"
            )
    visible = {p.name: p for p in _files(visible_dir, _IMAGE_SUFFIXES)}
    infrared = {p.name: p for p in _files(infrared_dir, _IMAGE_SUFFIXES)}
    unpaired = sorted(set(visible) ^ set(infrared))
    if unpaired:
        raise OpenBindInputError(str(root), f"{len(unpaired)} file(s) without a pair, e.g. {unpaired[:5]}")
    if not visible:
        raise OpenBindInputError(str(root), f"no images in {visible_dir}")
    rows = [{"image": str(visible[n]), "thermal": str(infrared[n]), "name": n} for n in sorted(visible)]
    return from_rows(rows, root)


def read_audioset(
    segments_csv: str | os.PathLike, media_dir: str | os.PathLike, *, missing: MissingPolicy = "skip"
) -> Manifest:
    """AudioSet: the released segments CSV plus a folder of downloaded clips.

    `segments_csv` (e.g. balanced_train_segments.csv): lines starting with '#' are comments; each row is
    `YTID, start_seconds, end_seconds, "positive_labels"` (comma-separated label ids). `media_dir` holds one
    file per segment named `<YTID>_<start>` + a video suffix (.mp4 .mkv .webm .avi .mov) or an audio suffix
    (.wav .flac .ogg .mp3 .m4a), where <start> is the CSV's start_seconds as written ("30.000") or as an integer
    ("30"). A video file gives a row with `video` and `audio` both pointing to it (the audio is its own track);
    an audio file gives an audio-only row. Rows: video, audio, label (the label ids, comma-separated), ytid,
    start, end. Segments not downloaded (YouTube videos disappear) are skipped by default and listed in
    `Manifest.skipped`; missing="error" raises instead.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    segments_csv, media_dir = Path(segments_csv), _directory(media_dir)
    if not segments_csv.is_file():
        raise OpenBindInputError(str(segments_csv), "AudioSet segments CSV not found")
    available = {p.stem: p for p in _files(media_dir, _AUDIO_SUFFIXES)}
    available.update({p.stem: p for p in _files(media_dir, _VIDEO_SUFFIXES)})  # a video wins: it has both
    rows, absent = [], []
    with open(segments_csv, newline="", encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and not line.lstrip().startswith("#")]
    for line_number, fields in enumerate(csv.reader(lines, skipinitialspace=True), start=1):
        if len(fields) != 4:
            raise OpenBindInputError(
                str(segments_csv), f"data row {line_number}: expected 4 fields, got {len(fields)}"
            )
        ytid, start, end, labels = (x.strip() for x in fields)
        candidates = [f"{ytid}_{start}"]
        try:
            candidates.append(f"{ytid}_{int(float(start))}")
        except ValueError:
            raise OpenBindInputError(
                str(segments_csv), f"data row {line_number}: start {start!r} is not a number"
            ) from None
        media = next((available[c] for c in candidates if c in available), None)
        if media is None:
            absent.append(f"data row {line_number}: no file {candidates[0]}.* or {candidates[-1]}.* in {media_dir}")
            continue
        is_video = media.suffix.lower() in _VIDEO_SUFFIXES
        rows.append({"video": str(media) if is_video else None, "audio": str(media), "label": labels,
                     "ytid": ytid, "start": start, "end": end})  # fmt: skip
    if absent and missing == "error":
        shown = "\n  ".join(absent[:_SHOWN_MISSING])
        raise OpenBindInputError(str(segments_csv), f"{len(absent)} segment(s) not found:\n  {shown}")
    if not rows:
        raise OpenBindInputError(str(segments_csv), f"none of the segments has a file in {media_dir}")
    manifest = from_rows(rows, media_dir)
    manifest.skipped = absent
    return manifest


def read_ego4d(root: str | os.PathLike) -> Manifest:
    """Ego4D-style video + IMU pairs, one pair per clip, already cut to the same time span:

        <root>/<uid>.mp4   the video clip
        <root>/<uid>.csv   its IMU (or <uid>.npy), starting at the clip's first frame; a CSV that
                           `openbind.io.imu.read_imu` reads: columns ax, ay, az (m/s^2), gx, gy, gz (rad/s)
                           and a time column (t, seconds; t_ms for milliseconds)

    Cut Ego4D's long videos and their IMU streams into such clips first (e.g. 5 s windows, the IMU model's
    span). Rows: video, imu, uid. A video without IMU (or the reverse) raises an error listing them.
    """
    root = _directory(root)
    videos = {p.stem: p for p in _files(root, _VIDEO_SUFFIXES)}
    imus = {p.stem: p for p in _files(root, _IMU_SUFFIXES)}
    unpaired = sorted(set(videos) ^ set(imus))
    if unpaired:
        raise OpenBindInputError(
            str(root), f"{len(unpaired)} clip(s) without both video and IMU, e.g. {unpaired[:5]}"
        )
    if not videos:
        raise OpenBindInputError(str(root), "no <uid>.mp4 + <uid>.csv pairs found")
    return from_rows([{"video": str(videos[u]), "imu": str(imus[u]), "uid": u} for u in sorted(videos)], root)


def _directory(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise OpenBindInputError(str(path), "dataset directory not found")
    return path.resolve()


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
