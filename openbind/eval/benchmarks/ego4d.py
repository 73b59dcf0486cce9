"""Ego4D IMU: which scenario a 5 s IMU window centred on a narration comes from, read from Ego4D v2 as published.

Ego4D ships one IMU CSV per video on the canonical video's clock and narrations as times in that video, so an
item is the CSV with a window start; `ImuWindows` reads the recording (once per process for consecutive windows of
one video) and hands the model's IMU transform the recording cut to start at the window.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import checked_options, chosen_classes, dataset_root
from openbind.io.imu import ImuRecording, parse_imu_csv
from openbind.modalities import get_input
from openbind.modalities.imu.transform import WINDOW_SECONDS

TIME_COLUMN = "canonical_timestamp_ms"  # the canonical video's clock, which narration times use
TEST_FRACTION = 0.1
SPLIT_SALT = "openbind-ego4d-imu-test"
NARRATION_PASSES = ("narration_pass_1", "narration_pass_2")


def in_test_split(video_uid: str) -> bool:
    """Whether a video is held out for this benchmark (a fixed hash of its uid), so training can leave it out."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{video_uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < TEST_FRACTION * 2**64


@dataclass(frozen=True)
class ImuWindow:
    """The 5 s window of a video's IMU CSV starting at `start_s` (seconds of the canonical video)."""

    path: str
    start_s: float

    def key(self) -> str:
        return f"{self.path}#start={self.start_s:.6f}"


@dataclass
class ImuWindows:
    """The per-item transform: the model's IMU transform (one window) on the recording cut at the item's start."""

    options: dict[str, Any]
    transform: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.transform = checked_options(get_input("imu").transform, {**self.options, "clips": 1}, "imu")

    @property
    def fixed_output_shape(self) -> tuple[int, ...] | None:
        return self.transform.fixed_output_shape

    def __call__(self, item: ImuWindow, out: torch.Tensor | None = None) -> torch.Tensor:
        times, samples = ego4d_imu(item.path)
        return self.transform(window_recording(times, samples, item.start_s, item.path), out=out)


@functools.lru_cache(maxsize=1)
def ego4d_imu(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(times in s on the canonical clock, samples [T, 6] ax..gz) of an Ego4D IMU CSV. Ego4D documents rows
    without a canonical time (dropped) and times out of order (sorted; repeated times keep their first row).
    Values stay in the published units: accl_* m/s^2, gyro_* rad/s (GoPro's)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise OpenBindInputError(path, f"cannot read the IMU CSV ({error})") from None
    header, newline, body = text.partition("\n")
    columns = [name.strip() for name in header.split(",")]
    if TIME_COLUMN not in columns:
        raise OpenBindInputError(path, f"no {TIME_COLUMN} column in the header {columns}")
    columns[columns.index(TIME_COLUMN)] = "t_ms"  # the generic parser's name for a time column in milliseconds
    samples, times = parse_imu_csv(",".join(columns) + newline + body.replace("NULL", ""), path)
    keep = np.isfinite(times)
    order = np.argsort(times[keep], kind="stable")
    times, samples = times[keep][order], samples[keep][order]
    first = np.concatenate([[True], np.diff(times) > 0])
    times, samples = times[first], samples[first]
    if len(times) < 2:
        raise OpenBindInputError(path, f"{len(times)} row(s) with a {TIME_COLUMN}; need at least 2")
    return times, samples


def window_recording(times: np.ndarray, samples: np.ndarray, start: float, item: Any) -> ImuRecording:
    """The recording from `start` on, its first sample interpolated at `start` (the first sample held where the
    window begins before the recording), so the IMU transform's first window is exactly [start, start + 5 s).
    A window whose centre lies outside the recording raises OpenBindInputError."""
    centre = start + WINDOW_SECONDS / 2
    if not times[0] <= centre <= times[-1]:
        raise OpenBindInputError(
            item, f"window centre {centre:.3f} s outside the recording ({times[0]:.3f} to {times[-1]:.3f} s)"
        )
    first = int(np.searchsorted(times, start, side="right"))
    last = int(np.searchsorted(times, start + WINDOW_SECONDS, side="right")) + 1
    head = np.array([np.interp(start, times, samples[:, c]) for c in range(samples.shape[1])])
    return ImuRecording(np.vstack([head, samples[first:last]]), np.concatenate([[start], times[first:last]]))


def read_ego4d_imu(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """One 5 s IMU window per narration of the held-out single-scenario videos; label = the video's scenario."""
    base, metadata = _layout(root)
    videos = _load_json(metadata).get("videos")
    if not isinstance(videos, list):
        raise OpenBindInputError(str(metadata), "no 'videos' list (expected Ego4D's ego4d.json)")
    eligible = {
        video["video_uid"]: video["scenarios"][0].strip()
        for video in videos
        if isinstance(video, dict) and video.get("video_uid") and video.get("has_imu")
        and len(video.get("scenarios") or ()) == 1
    }  # fmt: skip
    scenarios = sorted(set(eligible.values()))
    prompts = chosen_classes(classes, scenarios, "ego4d-imu", "the scenarios in alphabetical order")
    narrations = _load_json(base / "annotations" / "narration.json")
    held_out = sorted(uid for uid in eligible if in_test_split(uid))
    items: list[ImuWindow] = []
    labels: list[int] = []
    skipped: list[str] = []
    silent = 0
    for uid in held_out:
        times = _narration_times(narrations.get(uid))
        if not times:
            silent += 1
            continue
        csv = base / "imu" / f"{uid}.csv"
        if not csv.is_file():
            skipped.append(f"video {uid}: no imu/{uid}.csv ({len(times)} narrations)")
            continue
        items.extend(ImuWindow(str(csv), t - WINDOW_SECONDS / 2) for t in times)
        labels.extend([scenarios.index(eligible[uid])] * len(times))
    if not items:
        raise OpenBindInputError(
            str(base / "imu"), f"no IMU CSV for any of the {len(held_out)} held-out videos with narrations"
        )
    return TestSet(
        kind="imu", items=items, labels=labels, classes=prompts, class_names=scenarios,
        keys=[item.key() for item in items], transform=ImuWindows, skipped=skipped,
        choices={
            "videos": f"{len(eligible)} videos of ego4d.json with has_imu and exactly one scenario; classes = "
                      f"their {len(scenarios)} scenarios, sorted",
            "split": f"held-out videos: the first 8 bytes of SHA-256('{SPLIT_SALT}:<video_uid>') below "
                     f"{TEST_FRACTION} of their range ({len(held_out)} videos; in_test_split() gives the rule); "
                     "every narration of a held-out video is one clip",
            "narrations": f"timestamp_sec of {NARRATION_PASSES[0]} ({NARRATION_PASSES[1]} where pass 1 has none); "
                          f"{silent} held-out videos without narrations",
            "window": f"{WINDOW_SECONDS:g} s centred on the narration time on the CSV's {TIME_COLUMN}; the first "
                      "sample is held before the recording starts, the IMU transform's padding applies after it "
                      "ends; windows centred outside the recording fail at embedding time",
            "units": "accl_* (m/s^2) and gyro_* (rad/s) as published, not converted",
            "prompts": "scenario names as published",
        },
    )  # fmt: skip


def _layout(root: str | os.PathLike) -> tuple[Path, Path]:
    """(the v2 folder, ego4d.json) from Ego4D's v2/ folder or the folder holding it."""
    root = dataset_root(root, EGO4D_LAYOUT)
    base = root / "v2" if (root / "v2").is_dir() else root
    metadata = next((p for p in (base / "ego4d.json", base.parent / "ego4d.json") if p.is_file()), None)
    if metadata is None:
        raise OpenBindInputError(str(base / "ego4d.json"), "Ego4D's metadata file ego4d.json not found")
    if not (base / "imu").is_dir():
        raise OpenBindInputError(str(base / "imu"), "no imu/ folder (download Ego4D's imu dataset)")
    return base, metadata


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise OpenBindInputError(str(path), "file not found") from None
    except (OSError, ValueError) as error:
        raise OpenBindInputError(str(path), f"not readable JSON ({error})") from None
    if not isinstance(data, dict):
        raise OpenBindInputError(str(path), "expected a JSON object")
    return data


def _narration_times(entry: Any) -> list[float]:
    """Sorted narration times (s) of one video: its first narration pass that has any."""
    for name in NARRATION_PASSES:
        narration_pass = entry.get(name) if isinstance(entry, dict) else None
        narrations = narration_pass.get("narrations") if isinstance(narration_pass, dict) else None
        times = sorted(float(n["timestamp_sec"]) for n in narrations or ()
                       if isinstance(n, dict) and isinstance(n.get("timestamp_sec"), (int, float)))  # fmt: skip
        if times:
            return times
    return []


EGO4D_LAYOUT = """\
<root>/                       Ego4D's v2/ folder (or the folder holding it)
  ego4d.json                  videos[]: video_uid, scenarios, has_imu (also accepted beside v2/)
  imu/<video_uid>.csv         canonical_timestamp_ms, gyro_x/y/z (rad/s), accl_x/y/z (m/s^2)
  annotations/narration.json  {video_uid: {narration_pass_1: {narrations: [{timestamp_sec, ...}]}}}"""

register_benchmark(
    Benchmark(
        name="ego4d-imu", title="Ego4D IMU (scenario of 5 s windows at narrations)", task="classification",
        read=read_ego4d_imu, layout=EGO4D_LAYOUT, paper={"top1": 25.0}, chance=0.9,
        notes="IMU only; the paper's random clip split is unpublished: held-out videos by a fixed hash of the uid.",
    )
)  # fmt: skip
