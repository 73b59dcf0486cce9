"""AudioSet's evaluation segments (multi-label, 527 classes, mAP) and AudioCaps' text-to-audio retrieval test,
whose clips are AudioSet segments. Google ships only the CSVs: the audio is whatever copy the user downloaded,
found beneath `--root` by YouTube id in the common namings (`layout.MediaFiles.clip`)."""

from __future__ import annotations

import os

from openbind.data.readers import audioset_segments, is_seconds
from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import (
    MediaFiles,
    chosen_classes,
    dataset_root,
    no_classes,
    read_csv,
    require_files,
    require_items,
)

_NAMINGS = """\
  any/folders/Y{YTID}.wav     the audio of each segment, anywhere beneath: Y{YTID}.wav, {YTID}.wav,
                              {YTID}_{start}.wav (start as written, 30.000, or as an integer, 30),
                              {YTID}_{start_ms}_{end_ms}.flac, Y{YTID}_30.000_40.000.wav, ...;
                              any audio suffix, or a video (.mp4, .mkv, ...) whose sound track is used"""

AUDIOSET_LAYOUT = f"""\
audioset/                     the folder holding Google's CSVs (they may also be anywhere beneath --root)
  eval_segments.csv           # comments, then YTID, start_seconds, end_seconds, "mid1,mid2"
  class_labels_indices.csv    index,mid,display_name (527 rows)
{_NAMINGS}"""

AUDIOCAPS_LAYOUT = f"""\
audiocaps/
  retrieval_test.csv          audiocap_id,youtube_id,start_time,caption (5 captions per clip; anywhere
                              beneath --root, e.g. AudioCaps_retrieval_dataset/retrieval_test.csv)
{_NAMINGS}"""


def read_audioset(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """The segments of eval_segments.csv that have a file; labels: the class indices of their MIDs."""
    root = dataset_root(root, AUDIOSET_LAYOUT)
    segments_csv, index_csv = require_files(root, ["eval_segments.csv", "class_labels_indices.csv"], AUDIOSET_LAYOUT)
    class_rows = read_csv(index_csv, ("index", "mid", "display_name"))
    if [row["index"] for row in class_rows] != [str(i) for i in range(len(class_rows))]:
        raise OpenBindInputError(str(index_csv), "the index column must count 0, 1, 2, ... in row order")
    class_of = {row["mid"]: i for i, row in enumerate(class_rows)}
    segments = audioset_segments(segments_csv)
    media = MediaFiles(root)
    test = TestSet(kind="audio", items=[])
    for number, ytid, start, _, labels in segments:
        mids = [mid.strip() for mid in labels.split(",")]
        unknown = [mid for mid in mids if mid not in class_of]
        if unknown:
            raise OpenBindInputError(str(segments_csv), f"data row {number}: labels {unknown} not in {index_csv.name}")
        path = media.clip(ytid, start)
        if path is None:
            test.skipped.append(f"data row {number}: no file for YTID {ytid} (start {start})")
            continue
        test.items.append(str(path))
        test.labels.append(sorted({class_of[mid] for mid in mids}))
    require_items(test.items, test.skipped, segments_csv, AUDIOSET_LAYOUT)
    test.class_names = [row["display_name"] for row in class_rows]
    test.classes = chosen_classes(classes, test.class_names, "audioset", f"the index order of {index_csv.name}")
    test.choices = {
        "class names": "display_name as written, one prompt name per class (commas kept: 'Male speech, man speaking')",
        "segments": "those of eval_segments.csv with a file beneath --root (the paper had 19,048)",
    }
    return test


def read_audiocaps(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """One item per clip (rows grouped by youtube_id and start_time, in order of first appearance); each
    caption is a query whose target is its clip."""
    no_classes(classes, "audiocaps")
    root = dataset_root(root, AUDIOCAPS_LAYOUT)
    (table,) = require_files(root, ["retrieval_test.csv"], AUDIOCAPS_LAYOUT)
    rows = read_csv(table, ("youtube_id", "start_time", "caption"))
    media = MediaFiles(root)
    test = TestSet(kind="audio", items=[])
    clip_item: dict[tuple[str, str], int | None] = {}
    for number, row in enumerate(rows, start=1):
        clip = row["youtube_id"], row["start_time"]
        if not is_seconds(clip[1]):
            raise OpenBindInputError(str(table), f"row {number}: start_time {clip[1]!r} is not a time in seconds")
        if clip not in clip_item:
            path = media.clip(*clip)
            if path is None:
                test.skipped.append(f"row {number}: no file for YTID {clip[0]} (start {clip[1]}); its captions dropped")
            else:
                test.items.append(str(path))
            clip_item[clip] = None if path is None else len(test.items) - 1
        if clip_item[clip] is None:
            continue
        if not row["caption"]:
            test.skipped.append(f"row {number}: empty caption")
            continue
        test.queries.append(row["caption"])
        test.query_targets.append([clip_item[clip]])
    require_items(test.items, test.skipped, table, AUDIOCAPS_LAYOUT)
    test.choices = {"clips": "rows grouped by (youtube_id, start_time); clips without a file and their captions are "
                    "dropped (the paper had 796 clips)"}  # fmt: skip
    return test


AUDIOSET = register_benchmark(
    Benchmark(
        name="audioset",
        title="AudioSet eval segments (527 classes, multi-label)",
        task="multilabel",
        read=read_audioset,
        layout=AUDIOSET_LAYOUT,
        paper={"mAP": 17.6},
        chance=0.62,
        metric="mAP",
        notes="mAP: the mean over classes of the average precision (classes without a positive segment in the "
        "evaluated set are left out). YouTube videos disappear, so every copy lacks some segments: they are "
        "skipped and listed. A file must hold the 10 s segment, not the whole video. Chance as the paper prints it.",
    )
)

AUDIOCAPS = register_benchmark(
    Benchmark(
        name="audiocaps",
        title="AudioCaps text-to-audio retrieval",
        task="retrieval",
        read=read_audiocaps,
        layout=AUDIOCAPS_LAYOUT,
        paper={"R@1": 9.3, "R@10": 42.3},
        metric="R@1",
        notes="Each caption retrieves its clip among all clips (text -> audio).",
    )
)
