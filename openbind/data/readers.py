"""Readers of published dataset layouts: each turns a dataset as its publisher ships it into a `Manifest`, so
training and evaluation never see dataset-specific layouts. SUN RGB-D (image + depth), LLVIP (image + thermal),
AudioSet (video + audio) and Ego4D-style clips (video + IMU)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from openbind.data.manifest import SHOWN_MISSING, Manifest, MissingPolicy, from_rows
from openbind.errors import OpenBindInputError
from openbind.modalities import get_input

IMU_SUFFIXES = (".csv", ".npy")  # what the IMU reader accepts; too generic to name IMU in a mixed folder


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
        images = _files(image_dir, get_input("image").suffixes)
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
    visible = {p.name: p for p in _files(visible_dir, get_input("image").suffixes)}
    infrared = {p.name: p for p in _files(infrared_dir, get_input("image").suffixes)}
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
    available = {p.stem: p for p in _files(media_dir, get_input("audio").suffixes)}
    available.update({p.stem: p for p in _files(media_dir, get_input("video").suffixes)})  # a video wins: it has both
    rows, absent = [], []
    for line_number, ytid, start, end, labels in audioset_segments(segments_csv):
        candidates = [f"{ytid}_{start}", f"{ytid}_{int(float(start))}"]
        media = next((available[c] for c in candidates if c in available), None)
        if media is None:
            absent.append(f"data row {line_number}: no file {candidates[0]}.* or {candidates[-1]}.* in {media_dir}")
            continue
        is_video = media.suffix.lower() in get_input("video").suffixes
        rows.append({"video": str(media) if is_video else None, "audio": str(media), "label": labels,
                     "ytid": ytid, "start": start, "end": end})  # fmt: skip
    if absent and missing == "error":
        shown = "\n  ".join(absent[:SHOWN_MISSING])
        raise OpenBindInputError(str(segments_csv), f"{len(absent)} segment(s) not found:\n  {shown}")
    if not rows:
        raise OpenBindInputError(str(segments_csv), f"none of the segments has a file in {media_dir}")
    manifest = from_rows(rows, media_dir)
    manifest.skipped = absent
    return manifest


def audioset_segments(segments_csv: Path) -> list[tuple[int, str, str, str, str]]:
    """The rows of an AudioSet segments CSV as `(data row number, YTID, start, end, labels)`, fields as written
    (`labels`: the comma-separated label ids). Lines starting with '#' are comments; fields are separated by
    `", "` and the label list is quoted. A row that is not 4 fields or whose start is not a number raises."""
    with open(segments_csv, newline="", encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and not line.lstrip().startswith("#")]
    segments = []
    for line_number, fields in enumerate(csv.reader(lines, skipinitialspace=True), start=1):
        if len(fields) != 4:
            raise OpenBindInputError(
                str(segments_csv), f"data row {line_number}: expected 4 fields, got {len(fields)}"
            )
        ytid, start, end, labels = (x.strip() for x in fields)
        if not is_seconds(start):
            raise OpenBindInputError(
                str(segments_csv), f"data row {line_number}: start {start!r} is not a time in seconds"
            )
        segments.append((line_number, ytid, start, end, labels))
    return segments


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
    videos = {p.stem: p for p in _files(root, get_input("video").suffixes)}
    imus = {p.stem: p for p in _files(root, IMU_SUFFIXES)}
    unpaired = sorted(set(videos) ^ set(imus))
    if unpaired:
        raise OpenBindInputError(
            str(root), f"{len(unpaired)} clip(s) without both video and IMU, e.g. {unpaired[:5]}"
        )
    if not videos:
        raise OpenBindInputError(str(root), "no <uid>.mp4 + <uid>.csv pairs found")
    return from_rows([{"video": str(videos[u]), "imu": str(imus[u]), "uid": u} for u in sorted(videos)], root)


def is_seconds(text: str) -> bool:
    """Whether a CSV's start or end field is a time: a finite number of seconds >= 0."""
    try:
        return math.isfinite(float(text)) and float(text) >= 0
    except ValueError:
        return False


def _directory(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise OpenBindInputError(str(path), "dataset directory not found")
    return path.resolve()


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
