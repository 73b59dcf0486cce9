"""MSR-VTT 1k-A (the JSFusion test list: 1,000 videos, one caption each), zero-shot text -> video retrieval.

Each caption is one query whose only right answer is its video. The paper also retrieves with the videos' sound
(text -> audio) and with 0.95 x video + 0.05 x audio embeddings; the items are plain video files, so the same
list serves the video and the audio encoders. Some videos have no sound track: they have no audio score, and
the combined score uses their video embedding alone.
"""

from __future__ import annotations

from pathlib import Path

from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import dataset_root, find_media, no_classes, read_csv, require_files, require_items
from openbind.modalities import get_input

TEST_LIST = "MSRVTT_JSFUSION_test.csv"
AUDIO_WEIGHT = 0.05  # the paper's combined embedding: (1 - w) x video + w x audio
# text -> video, text -> audio ('audio') and text -> the combined embedding ('A+V')
PAPER = {"R@1": 36.1, "audio R@1": 6.8, "audio R@5": 18.5, "audio R@10": 27.2,
         "A+V R@1": 36.8, "A+V R@5": 61.8, "A+V R@10": 70.0}  # fmt: skip

LAYOUT = """\
<root>/
  MSRVTT_JSFUSION_test.csv      key,vid_key,video_id,sentence  (1,000 rows; anywhere beneath <root>)
  videos/all/video7010.mp4 ...  or MSRVTT/videos/all/ (or the videos anywhere beneath <root>)"""


def read_msrvtt(root: str | Path, classes: list[list[str]] | None = None) -> TestSet:
    """One item per video of the test list that is present, one query per row whose video is present.
    Retrieval has no class list, so `classes` must be None."""
    no_classes(classes, "msrvtt")
    root = dataset_root(root, LAYOUT)
    (test_list,) = require_files(root, [TEST_LIST], LAYOUT)
    rows = read_csv(test_list, ["video_id", "sentence"])
    found = find_media(root, {row["video_id"] for row in rows}, get_input("video").suffixes)
    items, queries, targets, skipped, index = [], [], [], [], {}
    for number, row in enumerate(rows, start=2):
        video = row["video_id"]
        if video not in found:
            skipped.append(f"line {number}: no file for {video} beneath {root}; its caption is not a query")
            continue
        if video not in index:
            index[video] = len(items)
            items.append(str(found[video]))
        queries.append(row["sentence"])
        targets.append([index[video]])
    require_items(items, skipped, test_list, LAYOUT)
    return TestSet(
        kind="video", items=items, queries=queries, query_targets=targets, skipped=skipped,
        choices={"queries": f"the sentence of each row of {TEST_LIST}, its video the only target",
                 "audio_weight": AUDIO_WEIGHT,
                 "no sound track": "such a video has no audio score; the combined score uses its video alone"},
    )  # fmt: skip


register_benchmark(
    Benchmark(
        name="msrvtt",
        title="MSR-VTT 1k-A (text -> video)",
        task="retrieval",
        read=read_msrvtt,
        layout=LAYOUT,
        paper=PAPER,
        chance=0.1,
        metric="R@1",
        notes=(
            "Text -> video over the 1,000 test videos; the paper also reports text -> audio (the videos' sound, "
            f"'audio R@k') and text -> {1 - AUDIO_WEIGHT:g} x video + {AUDIO_WEIGHT:g} x audio ('A+V R@k')."
        ),
    )
)
