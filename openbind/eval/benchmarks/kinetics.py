"""Kinetics-400 validation (19,906 clips of about 10 s; copies usually hold around 19,880 of them: YouTube videos
disappear), zero-shot top-1 over 400 action classes. Class index = the label's rank in alphabetical order, the
order of the published label list; the labels are already words ("air drumming") and are used as written.
"""

from __future__ import annotations

from pathlib import Path

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import (
    chosen_classes,
    dataset_root,
    find_media,
    find_named,
    prompt_words,
    read_csv,
    require_items,
)
from openbind.modalities import get_input

ANNOTATIONS = ("val.csv", "validate.csv")  # the CVDF mirror's name, then DeepMind's original

LAYOUT = """\
<root>/
  annotations/val.csv     label,youtube_id,time_start,time_end,split,is_cc  (or validate.csv, anywhere beneath <root>)
  val/abc123def45_000010_000020.mp4 ...    {youtube_id}_{time_start:06d}_{time_end:06d}.mp4, or {youtube_id}.mp4,
                                           anywhere beneath <root> (e.g. in label folders val/<label>/)
without the CSV: val/<label>/*.mp4 (or <root>/<label>/*.mp4), the label from the folder name ('_' as spaces)"""


def read_k400(root: str | Path, classes: list[list[str]] | None = None) -> TestSet:
    """The validation clips that are present, labelled from the CSV (else from their label folders); `classes`
    replaces the labels, in alphabetical order of the labels."""
    root = dataset_root(root, LAYOUT)
    found = find_named(root, ANNOTATIONS)
    annotation = next((found[name] for name in ANNOTATIONS if name in found), None)
    if annotation is not None:
        items, names, labels, skipped = _from_csv(root, annotation)
        source = f"{annotation.relative_to(root)}; clips missing from the copy are skipped"
    else:
        items, names, labels = _from_label_folders(root)
        source, skipped = "label folders, '_' read as a space", []
    require_items(items, skipped, annotation or root, LAYOUT)
    index = {label: i for i, label in enumerate(labels)}
    classes = chosen_classes(classes, labels, "k400", "alphabetical order of the labels")
    return TestSet(
        kind="video", items=items, labels=[index[n] for n in names], classes=classes,
        class_names=[c[0] for c in classes], skipped=skipped,
        choices={"labels": source, "class order": "alphabetical"},
    )  # fmt: skip


def _from_csv(root: Path, annotation: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """(video paths, their labels, every label of the CSV sorted, skipped rows)."""
    rows = read_csv(annotation, ["label", "youtube_id", "time_start", "time_end"])
    stems = []
    for number, row in enumerate(rows, start=2):
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (TypeError, ValueError):
            raise OpenBindInputError(str(annotation), f"line {number}: time_start/time_end are not numbers") from None
        stems.append((f"{row['youtube_id']}_{start:06d}_{end:06d}", row["youtube_id"]))
    found = find_media(root, {stem for pair in stems for stem in pair}, get_input("video").suffixes)
    items, names, skipped = [], [], []
    for number, (row, (clip, video)) in enumerate(zip(rows, stems), start=2):
        path = found.get(clip) or found.get(video)
        if path is None:
            skipped.append(f"line {number}: no file for YouTube id {video} ({clip}.mp4) beneath {root}")
            continue
        items.append(str(path))
        names.append(row["label"])
    return items, names, sorted({row["label"] for row in rows}), skipped


def _from_label_folders(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(video paths, their labels, every folder's label sorted): each folder of val/ (or <root>) is a class."""
    suffixes = get_input("video").suffixes
    parent = root / "val" if (root / "val").is_dir() else root
    items, names, labels = [], [], []
    for folder in sorted(p for p in parent.iterdir() if p.is_dir()):
        videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        labels.append(prompt_words(folder.name))
        items += [str(p) for p in videos]
        names += [labels[-1]] * len(videos)
    if not items:
        raise OpenBindInputError(str(root), f"no {' or '.join(ANNOTATIONS)} and no label folders; expected:\n{LAYOUT}")
    return items, names, sorted(set(labels))


register_benchmark(
    Benchmark(
        name="k400",
        title="Kinetics-400 (val)",
        task="classification",
        read=read_k400,
        layout=LAYOUT,
        paper={"top1": 50.0},
        chance=0.25,
        notes="Validation clips present in the copy (YouTube videos disappear; missing ones are listed as skipped).",
    )
)
