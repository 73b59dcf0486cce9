"""VGGSound (Chen et al. 2020): 10 s YouTube clips in 309 classes; the paper scores zero-shot top-1 on the test
split. The CSV lists the clips; the videos are whatever copy the user downloaded (many are gone)."""

from __future__ import annotations

import csv
import os

from openbind.data.readers import is_seconds
from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import MediaFiles, chosen_classes, dataset_root, require_files, require_items

LAYOUT = """\
vggsound/
  vggsound.csv                    (or anywhere beneath --root) no header: youtube_id,start_seconds,label,train|test (labels with commas quoted)
  any/folders/{id}_000030.mp4     each clip anywhere beneath: {id}_{start:06d} or {id}_{start:06d}_{end:06d},
                                  also {id}_{start}; .wav, .flac, any audio suffix, or a video (.mp4, ...)
                                  whose sound track is used"""

_SPLITS = ("train", "test")


def read_vggsound(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """The test rows that have a file; classes: every label of the CSV (both splits) in alphabetical order."""
    root = dataset_root(root, LAYOUT)
    (table,) = require_files(root, ["vggsound.csv"], LAYOUT)
    with open(table, newline="", encoding="utf-8-sig") as f:
        rows = [[field.strip() for field in row] for row in csv.reader(f, skipinitialspace=True) if row]
    if rows and len(rows[0]) == 4 and rows[0][3] not in _SPLITS and not is_seconds(rows[0][1]):
        rows = rows[1:]  # a header line, which some copies add
    for number, row in enumerate(rows, start=1):
        if len(row) != 4 or row[3] not in _SPLITS or not is_seconds(row[1]):
            raise OpenBindInputError(
                str(table), f"row {number}: {row} is not youtube_id, start_seconds, label, train|test"
            )
    names = sorted({row[2] for row in rows})
    index = {name: i for i, name in enumerate(names)}
    media = MediaFiles(root)
    test = TestSet(kind="audio", items=[])
    for number, (ytid, start, label, split) in enumerate(rows, start=1):
        if split != "test":
            continue
        path = media.clip(ytid, start)
        if path is None:
            test.skipped.append(f"row {number}: no file for YTID {ytid} (start {start})")
            continue
        test.items.append(str(path))
        test.labels.append(index[label])
    require_items(test.items, test.skipped, table, LAYOUT)
    test.class_names = names
    test.classes = chosen_classes(classes, names, "vggsound", "alphabetical order of the labels")
    test.choices = {
        "class names": "the CSV's labels as written, indexed in alphabetical order of all its labels",
        "clips": "the test rows with a file beneath --root (the paper had 14,073)",
    }
    return test


VGGSOUND = register_benchmark(
    Benchmark(
        name="vggsound",
        title="VGGSound test split (309 classes)",
        task="classification",
        read=read_vggsound,
        layout=LAYOUT,
        paper={"top1": 27.8},
        chance=0.32,
        metric="top1",
        notes="Videos disappear from YouTube, so every copy lacks some test clips: they are skipped and listed.",
    )
)
