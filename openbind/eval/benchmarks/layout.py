"""What the audio benchmark readers share: finding the annotation file under `--root`, finding media files
wherever they were unpacked beneath it (by file name, or by YouTube id and start time in the namings that
community copies of AudioSet, AudioCaps and VGGSound use), reading CSVs with a header, and `--classes`.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import names_from
from openbind.modalities import get_input

_TRAILING_TIME = re.compile(r"^(.+)_\d+(?:\.\d+)?$")  # "{id}_{start}_{end}" -> "{id}_{start}"


def dataset_root(root: str | os.PathLike) -> Path:
    """`--root` as an absolute path, so that items and error messages name files unambiguously."""
    path = Path(root)
    if not path.is_dir():
        raise OpenBindInputError(str(root), "dataset folder not found (--root must be a directory)")
    return path.resolve()


def find_file(root: Path, *relatives: str, layout: str) -> Path:
    """The first of `relatives` that exists under `root`, or one folder down (`--root` may be the folder the
    archive was unpacked into rather than the archive's own top folder). Raises naming what was expected."""
    for relative in relatives:
        if (root / relative).is_file():
            return root / relative
    for relative in relatives:
        found = sorted(p for p in root.glob(f"*/{relative}") if p.is_file())
        if len(found) > 1:
            raise OpenBindInputError(str(root), f"several {relative}: {[str(p) for p in found]}; point --root at one")
        if found:
            return found[0]
    raise OpenBindInputError(str(root), f"expected {' or '.join(relatives)} in this folder; the layout is:\n{layout}")


def read_table(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV with a header that has at least `columns` (a UTF-8 byte-order mark is ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise OpenBindInputError(
                str(path), f"header {reader.fieldnames} lacks column(s) {missing}; expected {','.join(columns)}"
            )
        return [{key: (value or "").strip() for key, value in row.items() if key is not None} for row in reader]


def class_list(default: list[str], classes: list[list[str]] | None, benchmark: str) -> list[list[str]]:
    """The prompt names of each class: `default` (one name each), or `--classes` in the same (index) order."""
    if classes is None:
        return names_from(default)
    if len(classes) != len(default):
        raise ValueError(f"{benchmark} has {len(default)} classes, --classes gives {len(classes)} (one line each)")
    return [list(names) for names in classes]


def no_classes(classes: list[list[str]] | None, benchmark: str) -> None:
    """Retrieval has no class list for `--classes` to replace: refuse it rather than ignore it."""
    if classes is not None:
        raise ValueError(f"{benchmark} is a retrieval benchmark: its queries are captions, --classes does not apply")


def require_items(items: list, skipped: list[str], source: Path) -> None:
    """No file found for any row: the media are elsewhere or named otherwise, which is a layout error."""
    if not items:
        example = f"; e.g. {skipped[0]}" if skipped else ""
        raise OpenBindInputError(str(source), f"no row of it has its media file under --root{example}")


class MediaFiles:
    """Every audio and video file beneath a root, found by one walk (hidden files skipped). Where a name exists
    in several folders the first in sorted order wins; for the same clip as audio and video the audio wins (the
    transform reads only the sound, and reads it faster from an audio file)."""

    def __init__(self, root: Path):
        audio = get_input("audio").suffixes
        media = audio + get_input("video").suffixes
        self.by_name: dict[str, Path] = {}
        self._by_stem: dict[str, Path] = {}
        self._by_stem_start: dict[str, Path] = {}  # stems "{id}_{start}_{end}" without their "_{end}"
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                stem, suffix = os.path.splitext(name)
                if name.startswith(".") or suffix.lower() not in media:
                    continue
                path = Path(folder, name)
                self.by_name.setdefault(name, path)
                keys = [(self._by_stem, stem)]
                match = _TRAILING_TIME.match(stem)
                if match:
                    keys.append((self._by_stem_start, match[1]))
                for index, key in keys:
                    if key not in index or (suffix.lower() in audio and index[key].suffix.lower() not in audio):
                        index[key] = path

    def clip(self, ytid: str, start: str) -> Path | None:
        """The file of YouTube video `ytid`'s clip that starts at `start` seconds (as its CSV writes it, e.g.
        "30.000" or "30"), named `{id}_{start}` with the start as written, as an integer or as 6 digits
        (`{id}_000030`), optionally followed by `_{end}`; or `{id}_{start_ms}_{end_ms}`; each also with a `Y`
        before the id (`Y{id}_30.000_40.000`, DCASE's naming); or, without a time, `Y{id}` or `{id}`."""
        seconds = float(start)
        whole = int(seconds)
        starts = list(dict.fromkeys([start, str(whole), f"{whole:06d}"]))
        ids = (ytid, f"Y{ytid}")
        for stem in (f"{i}_{s}" for i in ids for s in starts):
            if stem in self._by_stem:
                return self._by_stem[stem]
        for key in (f"{i}_{s}" for i in ids for s in [*starts, str(round(seconds * 1000))]):
            if key in self._by_stem_start:
                return self._by_stem_start[key]
        return next((self._by_stem[i] for i in reversed(ids) if i in self._by_stem), None)
