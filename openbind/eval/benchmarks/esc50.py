"""ESC-50 (Piczak 2015): 2,000 five-second environmental recordings in 50 classes, split into 5 folds of 400.
The paper scores zero-shot top-1 on each fold and reports the mean of the five."""

from __future__ import annotations

import os

from openbind.errors import OpenBindInputError
from openbind.eval.fewshot import ProbeRecipe
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import (
    chosen_classes,
    dataset_root,
    prompt_words,
    read_csv,
    require_files,
    require_items,
)

LAYOUT = """\
ESC-50-master/            the GitHub archive unpacked (or a clone); --root may also be a folder above it
  meta/esc50.csv          filename,fold,target,category,esc10,src_file,take (1-100032-A-0.wav,1,0,dog,...)
  audio/1-100032-A-0.wav  2,000 clips of 5 s ({fold}-{clip id}-{take}-{target}.wav)"""


def read_esc50(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """Every clip of meta/esc50.csv, labelled by `target`, grouped by `fold`; the class names are the
    `category` of each target, snake_case turned into words."""
    (meta,) = require_files(dataset_root(root, LAYOUT), ["meta/esc50.csv"], LAYOUT)
    audio = meta.parent.parent / "audio"
    rows = read_csv(meta, ("filename", "fold", "target", "category"))
    categories: dict[int, str] = {}
    test = TestSet(kind="audio", items=[], groups=[])
    for number, row in enumerate(rows, start=1):
        try:
            target, fold = int(row["target"]), int(row["fold"])
        except ValueError:
            raise OpenBindInputError(
                str(meta), f"row {number}: target {row['target']!r} and fold {row['fold']!r} must be integers"
            ) from None
        if categories.setdefault(target, row["category"]) != row["category"]:
            raise OpenBindInputError(
                str(meta), f"row {number}: target {target} is {row['category']!r}, earlier {categories[target]!r}"
            )
        path = audio / row["filename"]
        if not path.is_file():
            test.skipped.append(f"row {number}: no file {path}")
            continue
        test.items.append(str(path))
        test.labels.append(target)
        test.groups.append(fold)
    if sorted(categories) != list(range(len(categories))):
        raise OpenBindInputError(str(meta), f"targets must be 0..N-1, got {sorted(categories)}")
    require_items(test.items, test.skipped, meta, LAYOUT)
    test.class_names = [prompt_words(categories[t]) for t in range(len(categories))]
    test.classes = chosen_classes(classes, test.class_names, "esc50", "target order")
    test.choices = {
        "class names": "each target's category with '_' as spaces (chirping_birds -> chirping birds)",
        "groups": "the fold (1-5) of each clip: top-1 per fold of 400 and the mean of the five",
    }
    return test


ESC50 = register_benchmark(
    Benchmark(
        name="esc50",
        title="ESC-50 environmental sounds (5 folds)",
        task="classification",
        read=read_esc50,
        layout=LAYOUT,
        paper={"top1": 66.9},
        chance=2.0,
        metric="top1",
        probe=ProbeRecipe(lr=1.6e-3, weight_decay=0.05, epochs=50),  # the paper: fold 1 tested, AdamW, 50 epochs
        notes="Zero-shot top-1 on each fold and their mean. Few-shot (paper appendix B.2): fold 1 is the test set, "
        "k in {1, 2, 4, 8} clips per class train a linear classifier. The paper prints chance as 2.75; "
        "one in 50 classes is 2.0.",
    )
)
