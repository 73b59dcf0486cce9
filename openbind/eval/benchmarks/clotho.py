"""Clotho (Drossos et al. 2020) evaluation split: 1,045 recordings with 5 captions each; the paper retrieves
each recording from each of its captions (text -> audio)."""

from __future__ import annotations

import os
from pathlib import Path

from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import dataset_root, find_media, no_classes, read_csv, require_files, require_items
from openbind.modalities import get_input

LAYOUT = """\
clotho/
  clotho_captions_evaluation.csv  file_name,caption_1,...,caption_5 (or anywhere beneath --root)
  evaluation/Santa Motor.wav      the recordings (clotho_audio_evaluation.7z unpacked; names with spaces);
                                  found by name anywhere beneath (any audio suffix), e.g. beside the CSV"""

CAPTIONS = tuple(f"caption_{i}" for i in range(1, 6))


def read_clotho(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """One item per recording of the captions CSV that has a file; each of its captions is one query."""
    no_classes(classes, "clotho")
    root = dataset_root(root, LAYOUT)
    (table,) = require_files(root, ["clotho_captions_evaluation.csv"], LAYOUT)
    rows = read_csv(table, ("file_name", *CAPTIONS))
    files = find_media(root, {Path(row["file_name"]).stem for row in rows}, get_input("audio").suffixes)
    test = TestSet(kind="audio", items=[])
    for number, row in enumerate(rows, start=1):
        path = files.get(Path(row["file_name"]).stem)
        if path is None:
            test.skipped.append(f"row {number}: no file {row['file_name']!r}; its captions dropped")
            continue
        test.items.append(str(path))
        for column in CAPTIONS:
            if not row[column]:
                test.skipped.append(f"row {number}: empty {column}")
                continue
            test.queries.append(row[column])
            test.query_targets.append([len(test.items) - 1])
    require_items(test.items, test.skipped, table, LAYOUT)
    test.choices = {"queries": "each of the 5 captions of a recording retrieves it among all recordings"}
    return test


CLOTHO = register_benchmark(
    Benchmark(
        name="clotho",
        title="Clotho evaluation text-to-audio retrieval",
        task="retrieval",
        read=read_clotho,
        layout=LAYOUT,
        paper={"R@1": 6.0, "R@10": 28.4},
        metric="R@1",
        notes="5 captions per recording, each one query (text -> audio).",
    )
)
