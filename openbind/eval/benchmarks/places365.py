"""Places365-Standard validation (36,500 images, 100 per class), zero-shot top-1 over 365 scene classes.

The devkit names classes by path (`/a/apartment_building/outdoor`) and no canonical cleaned list exists, so
the prompt name is the path made into words: the one-letter prefix dropped, `_` and `/` turned into spaces
("apartment building outdoor").
"""

from __future__ import annotations

from pathlib import Path

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import (
    chosen_classes,
    dataset_root,
    find_media,
    prompt_words,
    require_files,
    require_items,
)
from openbind.modalities import get_input

CATEGORIES = "categories_places365.txt"
VAL_LIST = "places365_val.txt"

LAYOUT = """\
<root>/
  categories_places365.txt          /a/airfield 0  (class path, index; anywhere beneath <root>)
  places365_val.txt                 Places365_val_00000001.jpg 165  (anywhere beneath <root>)
  val_256/Places365_val_00000001.jpg ...   or val_large/ (or the images anywhere beneath <root>;
                                           with both, val_256 is used)"""


def read_places365(root: str | Path, classes: list[list[str]] | None = None) -> TestSet:
    """The validation images listed in places365_val.txt with their class index; `classes` replaces the 365
    names, in the index order of categories_places365.txt."""
    root = dataset_root(root, LAYOUT)
    categories, val_list = require_files(root, [CATEGORIES, VAL_LIST], LAYOUT)
    paths = _categories(categories)
    classes = chosen_classes(classes, [clean_name(p) for p in paths], "places365", f"the order of {CATEGORIES}")
    rows = _val_rows(val_list, len(paths))
    found = find_media(root, [Path(name).stem for name, _ in rows], get_input("image").suffixes)
    items, labels, skipped = [], [], []
    for number, (name, label) in enumerate(rows, start=1):
        path = found.get(Path(name).stem)
        if path is None:
            skipped.append(f"line {number}: no {name} beneath {root}")
            continue
        items.append(str(path))
        labels.append(label)
    require_items(items, skipped, val_list, LAYOUT)
    return TestSet(
        kind="image", items=items, labels=labels, classes=classes, class_names=[c[0] for c in classes],
        skipped=skipped,
        choices={"class names": "path without its one-letter prefix, '_' and '/' as spaces",
                 "images": "nearest copy beneath the root, val_256 before val_large"},
    )  # fmt: skip


def clean_name(path: str) -> str:
    """`/a/apartment_building/outdoor` -> `apartment building outdoor`."""
    parts = path.strip("/").split("/")
    if len(parts) > 1 and len(parts[0]) == 1:
        parts = parts[1:]
    return prompt_words(" ".join(parts))


def _categories(path: Path) -> list[str]:
    """Class paths by index; the indices must be 0..n-1, each once."""
    by_index = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise OpenBindInputError(str(path), f"line {number}: {line!r}, expected '/a/airfield 0'")
        by_index[int(fields[1])] = fields[0]
    if sorted(by_index) != list(range(len(by_index))) or not by_index:
        raise OpenBindInputError(str(path), "class indices must run 0, 1, ... without gaps or repeats")
    return [by_index[i] for i in range(len(by_index))]


def _val_rows(path: Path, num_classes: int) -> list[tuple[str, int]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) >= num_classes:
            expected = f"'Places365_val_00000001.jpg <class 0..{num_classes - 1}>'"
            raise OpenBindInputError(str(path), f"line {number}: {line!r}, expected {expected}")
        rows.append((fields[0], int(fields[1])))
    return rows


register_benchmark(
    Benchmark(
        name="places365",
        title="Places365 (val)",
        task="classification",
        read=read_places365,
        layout=LAYOUT,
        paper={"top1": 45.4},
        chance=0.27,
        notes="36,500 validation images; class names made from the devkit's class paths.",
    )
)
