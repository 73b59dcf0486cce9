"""What the benchmark readers share: checking `--root`, finding a dataset's files beneath it wherever the user's
copy put them (archives unpack to different depths, mirrors add or drop a folder level), reading CSVs and MATLAB
files, `--classes`, and the errors that show the expected layout.

Searches are breadth-first with names sorted, so the file nearest to `root` wins, then the first in path order;
hidden names (`.*`, such as macOS's `._` copies) are skipped and symbolic links to folders are followed once.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import names_from
from openbind.modalities import get_input

_TRAILING_TIME = re.compile(r"^(.+)_\d+(?:\.\d+)?$")  # "{id}_{start}_{end}" -> "{id}_{start}"


def dataset_root(root: str | os.PathLike, layout: str) -> Path:
    """`root` resolved, so that items and errors name files unambiguously; a missing folder shows `layout`."""
    path = Path(root)
    if not path.is_dir():
        raise OpenBindInputError(str(root), f"dataset folder not found; expected this layout:\n{layout}")
    return path.resolve()


def find_named(root: Path, names: Sequence[str]) -> dict[str, Path]:
    """The nearest file beneath `root` for each of `names`: a file name, or a path such as `meta/esc50.csv` that
    the file's path must end with. Names not found are absent. Two at the nearest depth raise: `root` then holds
    two copies of the dataset, and picking one could pair it with the other's files."""
    wanted = {name: PurePosixPath(name).parts for name in names}
    found: dict[str, Path] = {}
    for files in _levels(root):
        level: dict[str, list[Path]] = {}
        for path in files:
            tail = path.relative_to(root).parts
            for name, parts in wanted.items():
                if name not in found and tail[-len(parts) :] == parts:
                    level.setdefault(name, []).append(path)
        for name, paths in level.items():
            if len(paths) > 1:
                raise OpenBindInputError(str(root), f"several {name}: {[str(p) for p in paths]}; point --root at one")
            found[name] = paths[0]
        if len(found) == len(wanted):
            break
    return found


def require_files(root: Path, names: Sequence[str], layout: str) -> list[Path]:
    """`find_named` for files a reader cannot do without; raise naming the missing ones and the layout."""
    found = find_named(root, names)
    missing = [name for name in names if name not in found]
    if missing:
        raise OpenBindInputError(str(root), f"no {', '.join(missing)} beneath this folder; expected:\n{layout}")
    return [found[name] for name in names]


def find_media(root: Path, stems: Collection[str], suffixes: Collection[str]) -> dict[str, Path]:
    """The nearest file beneath `root` for each of `stems` (a name without its suffix) with one of `suffixes` (any
    case); stems without one are absent. Copies at one depth are alternatives (Places365's val_256/ and
    val_large/), so the first in path order wins."""
    wanted, suffixes, found = set(stems), {s.lower() for s in suffixes}, {}
    for files in _levels(root):
        for path in files:
            stem, suffix = os.path.splitext(path.name)
            if stem in wanted and suffix.lower() in suffixes:
                found.setdefault(stem, path)
        if len(found) == len(wanted):
            break
    return found


class MediaFiles:
    """Every audio and video file beneath a root by YouTube id and start time, in the namings community copies of
    AudioSet, AudioCaps and VGGSound use. Of two files for one clip the audio wins (the transform reads only the
    sound, and reads it faster from an audio file), then the nearest, then the first in path order."""

    def __init__(self, root: Path):
        audio = get_input("audio").suffixes
        media = audio + get_input("video").suffixes
        self._by_stem: dict[str, Path] = {}
        self._by_stem_start: dict[str, Path] = {}  # stems "{id}_{start}_{end}" without their "_{end}"
        for files in _levels(root):
            for path in files:
                stem, suffix = os.path.splitext(path.name)
                if suffix.lower() not in media:
                    continue
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


def require_items(items: Sequence[Any], skipped: Sequence[str], source: Path, layout: str) -> None:
    """No file found for any entry: the media are elsewhere or named otherwise, which is a layout error."""
    if not items:
        example = f" (e.g. {skipped[0]})" if skipped else ""
        reason = f"none of its media files was found beneath --root{example}; expected:\n{layout}"
        raise OpenBindInputError(str(source), reason)


def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV with a header that has at least `columns` (a UTF-8 byte-order mark is ignored), values
    stripped and short rows padded with "", so that readers compare plain strings."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise OpenBindInputError(
                str(path), f"header {reader.fieldnames} lacks column(s) {missing}; expected {','.join(columns)}"
            )
        return [{key: (value or "").strip() for key, value in row.items() if key is not None} for row in reader]


def chosen_classes(
    classes: Sequence[Sequence[str]] | None,
    default: Sequence[str | Sequence[str]],
    benchmark: str,
    order: str = "label order",
) -> list[list[str]]:
    """The prompt names of each class: `default` (a name or several each), or `--classes`, which must give every
    class of `order` at least one name, since a class index means nothing otherwise."""
    if classes is None:
        return names_from(default)
    if len(classes) != len(default):
        raise ValueError(f"{benchmark} has {len(default)} classes, --classes gives {len(classes)} "
                         f"(one line per class, in {order})")  # fmt: skip
    empty = [i for i, names in enumerate(classes, start=1) if not names]
    if empty:
        raise ValueError(f"{benchmark}: class {empty[0]} of --classes ({order}) has no name")
    return [list(names) for names in classes]


def no_classes(classes: Sequence[Sequence[str]] | None, benchmark: str) -> None:
    """Retrieval has no class list for `--classes` to replace: refuse it rather than ignore it."""
    if classes is not None:
        raise ValueError(f"{benchmark} is a retrieval benchmark: it has no classes for --classes to replace")


def prompt_words(name: str) -> str:
    """A publisher's identifier as the words a prompt wants: 'chirping_birds' -> 'chirping birds'."""
    return name.replace("_", " ").strip()


def checked_options(factory: Callable[..., Any], options: dict[str, Any], kind: str) -> Any:
    """`factory(**options)`, with unknown option names reported as ValueError like bad values are."""
    try:
        return factory(**options)
    except TypeError as error:
        raise ValueError(f"bad {kind} options {sorted(options)}: {error}") from None


def read_mat(path: Path, names: Sequence[str]) -> dict[str, Any]:
    """Variables of a MATLAB file, v5 (scipy) or v7.3 (HDF5, h5py), since copies hold either: numeric arrays
    flattened to 1-D, cell arrays of strings as lists of str; `var.field` reads a field of a struct array over its
    elements (ImageNet's `synsets.WNID`), single numbers as a 1-D array. A missing variable or an unreadable file
    raises OpenBindInputError."""
    import h5py

    if not path.is_file():
        raise OpenBindInputError(str(path), "MATLAB file not found")
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                return {name: _hdf5_value(f, _variable(f, name, path)) for name in names}
        from scipy.io import loadmat

        variables = loadmat(path, variable_names=list(dict.fromkeys(name.split(".")[0] for name in names)))
        return {name: _v5_value(_variable(variables, name, path)) for name in names}
    except OpenBindInputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OpenBindInputError(str(path), f"cannot read the MATLAB file ({error})") from None


def _variable(variables: Any, name: str, path: Path) -> Any:
    """Variable `name`, or for `var.field` that field (a v5 struct array's dtype field, a v7.3 group's member)."""
    value = variables
    for part in name.split("."):
        fields = (value.dtype.names or ()) if isinstance(value, np.ndarray) else value
        if part not in fields:
            raise OpenBindInputError(str(path), f"no variable {name!r} in this MATLAB file")
        value = value[part]
    return value


def _hdf5_value(f: Any, dataset: Any) -> Any:
    """A v7.3 variable: a cell array is a dataset of object references, each to a uint16 character array."""
    import h5py

    data = dataset[()]
    if data.dtype == h5py.ref_dtype:
        return ["".join(map(chr, np.asarray(f[ref][()]).ravel())) for ref in data.ravel()]
    return np.asarray(data).ravel()


def _v5_value(value: np.ndarray) -> Any:
    if value.dtype != object:
        return np.asarray(value).ravel()
    cells = [np.asarray(cell) for cell in value.ravel()]
    if cells and all(cell.dtype.kind in "biuf" and cell.size == 1 for cell in cells):
        return np.array([cell.item() for cell in cells])
    return [_v5_string(cell) for cell in cells]


def _v5_string(cell: np.ndarray) -> str:
    if cell.size == 0:
        return ""
    if cell.dtype.kind != "U":
        raise ValueError(f"expected a cell array of strings, found a cell of {cell.dtype}")
    return "".join(cell.ravel().tolist())


def _levels(root: Path) -> Iterator[list[Path]]:
    """The files beneath `root` a depth at a time (root's own first), each depth in path order."""
    seen, level = set(), [root]
    while level:
        files, below = [], []
        for folder in level:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            try:
                with os.scandir(folder) as scan:
                    entries = sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
            except OSError:  # an unreadable folder holds nothing we can use
                continue
            below += [Path(e.path) for e in entries if e.is_dir()]
            files += [Path(e.path) for e in entries if e.is_file()]
        yield files
        level = below
