"""SUN-D and NYU-D: indoor scene classification from a depth map alone, read from SUN RGB-D (and NYU Depth v2) as
published.

SUN RGB-D stores depth as 16-bit PNGs in millimetres with a 3-bit circular shift (its toolbox's `read3dPoints.m`
undoes it and clips at 8 m); the model sees disparity = baseline * fx / depth, with fx from each scene's
`intrinsics.txt` and the stereo baseline of its sensor. So an item is a record of the file plus those two numbers,
and `DepthItems` builds the model's depth transform per item.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.errors import OpenBindInputError
from openbind.eval.fewshot import ProbeRecipe
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import (
    checked_options,
    chosen_classes,
    dataset_root,
    find_named,
    prompt_words,
    read_mat,
    require_files,
)
from openbind.modalities.depth.transform import KINECT_BASELINE_M, KINECT_FOCAL_PX, DepthTransform

SUN_D_SCENES = (
    "bathroom", "bedroom", "classroom", "computer_room", "conference_room", "corridor", "dining_area", "dining_room",
    "discussion_area", "furniture_store", "home_office", "kitchen", "lab", "lecture_theatre", "library",
    "living_room", "office", "rest_space", "study_space",
)  # fmt: skip
# Stereo baselines (m) by SUN RGB-D sensor folder, as in Omnivore's disparity conversion of SUN RGB-D.
SENSOR_BASELINES_M = {"kv1": 0.075, "kv2": 0.075, "realsense": 0.095, "xtion": 0.095}
MAX_DEPTH_M = 8.0  # SUN RGB-D's toolbox clips depth at 8 m
DEPTH_FOLDERS = ("depth_bfx", "depth")  # the in-filled maps, else the raw ones
SPLIT_FILE = Path("SUNRGBDtoolbox", "traintestSUNRGBD", "allsplit.mat")
SPLIT_PATH = re.compile(r"(?:^|/)SUNRGBD/(.+)$")  # '/n/fs/sun3d/data/SUNRGBD/kv1/...' -> 'kv1/...'

NYU_MAIN_SCENES = (
    "bedroom", "kitchen", "living_room", "bathroom", "dining_room", "office", "home_office", "classroom", "bookstore",
)  # fmt: skip
# NYU Depth v2's 18 other scene types, spelled as in its sceneTypes ("excercise_room" included).
NYU_OTHER_SCENES = (
    "basement", "cafe", "computer_lab", "conference_room", "dinette", "excercise_room", "foyer", "furniture_store",
    "home_storage", "indoor_balcony", "laundry_room", "office_kitchen", "playroom", "printer_room", "reception_room",
    "student_lounge", "study", "study_room",
)  # fmt: skip
# SUN RGB-D's scene.txt renames of NYU types.
SUN_TO_NYU_SCENE = {"computer_room": "computer_lab", "study_space": "study_room", "lobby": "foyer"}
NYU_FRAMES = 1449
NYU_FRAME_SHAPE = (480, 640)
# SUN RGB-D's NYUdata frames are NYU's 640x480 frames cut to the valid region of the NYU toolbox's crop_image
# (rows 45-471, columns 41-601, 1-based): the same crop makes both NYU-D layouts see the same pixels.
NYU_CROP = (slice(44, 471), slice(40, 601))
NYU_MAT = "nyu_depth_v2_labeled.mat"


def scene_prompt(name: str) -> str:
    """A scene type as words: 'lecture_theatre' -> 'lecture theatre', NYU's 'excercise_room' -> 'exercise room'."""
    return prompt_words(name.replace("excercise", "exercise"))


@dataclass(frozen=True)
class SceneDepth:
    """A SUN RGB-D depth PNG with its scene's focal length (px) and its sensor's baseline (m)."""

    path: str
    focal_px: float
    baseline_m: float

    def key(self) -> str:
        return f"{self.path}#focal={self.focal_px:g},baseline={self.baseline_m:g}"

    def depth_options(self) -> dict[str, Any]:
        return {"encoding": "sunrgbd", "max_depth_m": MAX_DEPTH_M, "focal_px": self.focal_px,
                "baseline_m": self.baseline_m}  # fmt: skip

    def load(self) -> str:
        return self.path


@dataclass(frozen=True)
class NyuFrame:
    """Frame `index` (1-based, as in NYU's splits.mat) of `nyu_depth_v2_labeled.mat`: depth in metres."""

    path: str
    index: int

    def key(self) -> str:
        return f"{self.path}#frame={self.index}"

    def depth_options(self) -> dict[str, Any]:
        return {"encoding": "metres", "max_depth_m": MAX_DEPTH_M, "focal_px": KINECT_FOCAL_PX,
                "baseline_m": KINECT_BASELINE_M}  # fmt: skip

    def load(self) -> np.ndarray:
        return nyu_depth_frame(self.path, self.index)


@dataclass
class DepthItems:
    """The per-item depth transform: the model's depth options, with the encoding, clipping, focal length and
    baseline that the item's dataset fixes."""

    options: dict[str, Any]
    base: DepthTransform = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base = checked_options(DepthTransform, self.options, "depth")

    @property
    def fixed_output_shape(self) -> tuple[int, int, int]:
        return self.base.fixed_output_shape

    def __call__(self, item: SceneDepth | NyuFrame, out: torch.Tensor | None = None) -> torch.Tensor:
        return DepthTransform(**{**self.options, **item.depth_options()})(item.load(), out=out)


def nyu_depth_frame(path: str, index: int) -> np.ndarray:
    """Depth (m, float32) of 1-based frame `index`, cut to SUN RGB-D's crop; the file stays open per process."""
    depths = _open_nyu_depths(path, os.getpid())
    if not 1 <= index <= depths.count:
        raise OpenBindInputError(path, f"frame {index} out of range: the file holds {depths.count} frames")
    try:
        frame = depths.frame(index - 1)
    except (OSError, ValueError) as error:
        raise OpenBindInputError(path, f"cannot read depth frame {index} ({error})") from None
    if frame.shape != NYU_FRAME_SHAPE:
        raise OpenBindInputError(path, f"depth frames of {frame.shape}; NYU Depth v2 frames are {NYU_FRAME_SHAPE}")
    return np.ascontiguousarray(frame[NYU_CROP], dtype=np.float32)


@dataclass
class _MatDepths:
    """NYU's `depths`: an HDF5 dataset [frames, width, height] (v7.3, MATLAB's column-major order as h5py sees
    it) read one frame at a time, or a v5 file's whole array [height, width, frames]."""

    data: Any
    hdf5: bool

    @property
    def count(self) -> int:
        return self.data.shape[0] if self.hdf5 else self.data.shape[2]

    def frame(self, i: int) -> np.ndarray:
        return np.asarray(self.data[i]).T if self.hdf5 else self.data[:, :, i]


@functools.lru_cache(maxsize=1)
def _open_nyu_depths(path: str, pid: int) -> _MatDepths:
    """One open file per process (`pid` is in the key: a forked worker must not use its parent's HDF5 handle)."""
    import h5py

    try:
        if h5py.is_hdf5(path):
            depths = h5py.File(path, "r").get("depths")
            hdf5 = True
        else:
            from scipy.io import loadmat

            depths = loadmat(path, variable_names=["depths"]).get("depths")
            hdf5 = False
    except (OSError, ValueError) as error:
        raise OpenBindInputError(path, f"cannot read the MATLAB file ({error})") from None
    if depths is None or depths.ndim != 3:
        raise OpenBindInputError(path, "no 3-D variable 'depths' (NYU Depth v2's labelled .mat holds one)")
    return _MatDepths(depths, hdf5)


class _Unusable(Exception):
    """A scene that cannot be used; the reader lists it in `TestSet.skipped`."""


def _one_png(folder: Path) -> Path | None:
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    return pngs[0] if len(pngs) == 1 else None


def scene_depth(scene: Path, sensor: str) -> tuple[SceneDepth, bool]:
    """The depth record of a SUN RGB-D scene folder and whether it fell back to raw `depth/`."""
    for folder in DEPTH_FOLDERS:
        png = _one_png(scene / folder)
        if png is not None:
            break
    else:
        raise _Unusable(f"no single depth PNG in {' or '.join(DEPTH_FOLDERS)}/")
    if sensor not in SENSOR_BASELINES_M:
        raise _Unusable(f"unknown sensor folder {sensor!r} (expected one of {sorted(SENSOR_BASELINES_M)})")
    intrinsics = scene / "intrinsics.txt"
    try:
        focal = float(intrinsics.read_text(encoding="utf-8").split()[0])
    except (OSError, IndexError, ValueError):
        raise _Unusable("no readable intrinsics.txt (3x3, first number fx)") from None
    if not focal > 0:
        raise _Unusable(f"intrinsics.txt gives focal length {focal}")
    return SceneDepth(str(png), focal, SENSOR_BASELINES_M[sensor]), folder != DEPTH_FOLDERS[0]


def _scene_type(scene: Path) -> str:
    try:
        return scene.joinpath("scene.txt").read_text(encoding="utf-8").strip().lower().replace(" ", "_")
    except OSError:
        raise _Unusable("no readable scene.txt") from None


# --- SUN-D --------------------------------------------------------------------------------------------------


def read_sun_d(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """SUN-D: SUN RGB-D's test split (`alltest` of the toolbox's allsplit.mat) restricted to 19 scene types."""
    return _read_sun_split(root, classes, "alltest")


def read_sun_d_train(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """SUN RGB-D's train split (`alltrain`) over the same 19 scene types: the few-shot protocol's training set."""
    return _read_sun_split(root, classes, "alltrain")


def _sun_layout(root: str | os.PathLike) -> tuple[Path, Path]:
    """(the SUNRGBD folder, allsplit.mat) from the folder holding both archives, or SUNRGBD/ itself."""
    root = dataset_root(root, SUN_LAYOUT)
    sun = root / "SUNRGBD" if (root / "SUNRGBD").is_dir() else root
    if not any((sun / sensor).is_dir() for sensor in SENSOR_BASELINES_M):
        raise OpenBindInputError(
            str(root), f"no SUN RGB-D sensor folder ({', '.join(SENSOR_BASELINES_M)}) here or in SUNRGBD/"
        )
    candidates = (root / SPLIT_FILE, sun / SPLIT_FILE, sun.parent / SPLIT_FILE)
    split = next((path for path in candidates if path.is_file()), None)
    if split is None:
        raise OpenBindInputError(
            str(root / SPLIT_FILE), "SUN RGB-D's split file not found: unpack SUNRGBDtoolbox.zip beside SUNRGBD/"
        )
    return sun, split


def _read_sun_split(root: str | os.PathLike, classes: list[list[str]] | None, variable: str) -> TestSet:
    """The split's scenes whose scene.txt is a class: SUN-D's 19, or with `classes` (a dataset in this layout
    with other classes) the scene types those name, matched with '_' and ' ' alike, the first name a class's."""
    if classes is None:
        scene_types, prompts = list(SUN_D_SCENES), [[scene_prompt(s)] for s in SUN_D_SCENES]
    else:
        if not classes or not all(classes):
            raise ValueError("--classes needs at least one class, each with a name")
        scene_types, prompts = [names[0].strip().lower().replace(" ", "_") for names in classes], classes
    sun, split = _sun_layout(root)
    entries = read_mat(split, [variable])[variable]
    if not isinstance(entries, list):
        raise OpenBindInputError(str(split), f"{variable} is not a cell array of scene paths")
    items, labels, skipped, fallback = [], [], [], []
    outside = Counter()
    for row, entry in enumerate(entries, start=1):
        match = SPLIT_PATH.search(entry.strip().rstrip("/"))
        if match is None:
            skipped.append(f"{variable} entry {row}: {entry!r} is not a path under SUNRGBD/")
            continue
        relative = match.group(1)
        scene = sun / relative
        try:
            if not scene.is_dir():
                raise _Unusable("no such scene folder")
            scene_type = _scene_type(scene)
            if scene_type not in scene_types:
                outside[scene_type] += 1
                continue
            item, fell_back = scene_depth(scene, relative.split("/")[0])
        except _Unusable as reason:
            skipped.append(f"{variable} entry {row} ({relative}): {reason}")
            continue
        items.append(item)
        labels.append(scene_types.index(scene_type))
        if fell_back:
            fallback.append(relative)
    if not items:
        raise OpenBindInputError(
            str(sun), f"none of the {len(entries)} scenes of {variable} is usable: {skipped[:3] or 'none is SUN-D'}"
        )
    return TestSet(
        kind="depth", items=items, labels=labels, classes=prompts,
        class_names=list(SUN_D_SCENES) if classes is None else [names[0] for names in classes],
        keys=[item.key() for item in items], transform=DepthItems, skipped=skipped,
        choices={
            "split": f"{variable} of {SPLIT_FILE.as_posix()} ({len(entries)} scenes), kept where scene.txt is one "
                     f"of the {len(scene_types)} class types ({sum(outside.values())} scenes of other types left out)",
            **_depth_choices(fallback),
            "prompts": "scene.txt names with '_' -> ' '",
        },
    )  # fmt: skip


def _depth_choices(fallback: list[str]) -> dict[str, Any]:
    return {
        "depth": f"{DEPTH_FOLDERS[0]}/ (in-filled); {len(fallback)} scene(s) without it use raw {DEPTH_FOLDERS[1]}/",
        "depth_fallback": fallback,
        "disparity": "baseline * fx / depth; fx = first number of the scene's intrinsics.txt; baseline 0.075 m for "
                     "kv1/kv2, 0.095 m for realsense/xtion; depth decoded with the 3-bit rotation, metres clipped "
                     f"at {MAX_DEPTH_M:g} m",
    }  # fmt: skip


# --- NYU-D --------------------------------------------------------------------------------------------------

NYU_CLASSES = [[scene_prompt(s)] for s in NYU_MAIN_SCENES] + [[scene_prompt(s) for s in NYU_OTHER_SCENES]]
NYU_CLASS_NAMES = [scene_prompt(s) for s in NYU_MAIN_SCENES] + ["other"]


def read_nyu_d(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """NYU-D: the 654 test frames of NYU Depth v2's splits.mat, from SUN RGB-D's `kv1/NYUdata/` copy or from NYU's
    own `nyu_depth_v2_labeled.mat`; 10 classes, the 10th ("other") scored over NYU's 18 remaining scene types."""
    prompts = chosen_classes(classes, NYU_CLASSES, "nyu-d")
    root = dataset_root(root, NYU_LAYOUT)
    nyudata = next(
        (d for d in (root / "SUNRGBD" / "kv1" / "NYUdata", root / "kv1" / "NYUdata", root / "NYUdata", root)
         if d.name == "NYUdata" and d.is_dir()),
        None,
    )  # fmt: skip
    mat = None if nyudata is not None else find_named(root, [NYU_MAT]).get(NYU_MAT)
    if nyudata is None and mat is None:
        raise OpenBindInputError(
            str(root), f"neither SUN RGB-D's kv1/NYUdata/ nor NYU's {NYU_MAT} found; expected:\n{NYU_LAYOUT}"
        )
    (splits,) = require_files(root, ["splits.mat"], NYU_LAYOUT)
    scene_types = None if mat is None else read_mat(mat, ["sceneTypes"])["sceneTypes"]
    frames = len(scene_types) if scene_types is not None else NYU_FRAMES
    test = _frame_numbers(read_mat(splits, ["testNdxs"])["testNdxs"], frames, splits)
    items, labels, skipped, fallback = [], [], [], []
    unknown: Counter[str] = Counter()
    for number in test:
        if scene_types is not None:
            items.append(NyuFrame(str(mat), number))
            labels.append(_nyu_label(scene_types[number - 1].strip(), unknown))
            continue
        relative = f"NYU{number:04d}"
        try:
            scene = nyudata / relative
            if not scene.is_dir():
                raise _Unusable("no such scene folder")
            sun_type = _scene_type(scene)
            item, fell_back = scene_depth(scene, "kv1")
        except _Unusable as reason:
            skipped.append(f"testNdxs frame {number} (kv1/NYUdata/{relative}): {reason}")
            continue
        items.append(item)
        labels.append(_nyu_label(SUN_TO_NYU_SCENE.get(sun_type, sun_type), unknown))
        if fell_back:
            fallback.append(f"kv1/NYUdata/{relative}")
    if not items:
        raise OpenBindInputError(str(nyudata), f"none of the {len(test)} test frames is usable: {skipped[:3]}")
    layout = (
        {"layout": f"SUN RGB-D's copy {nyudata}; labels from scene.txt, mapped back to NYU's types "
                   f"({', '.join(f'{k} -> {v}' for k, v in SUN_TO_NYU_SCENE.items())})", **_depth_choices(fallback)}
        if nyudata is not None else
        {"layout": f"NYU's {mat}; labels from its sceneTypes",
         "depth": "NYU's in-painted depths (m), cut to SUN RGB-D's crop of NYU frames (rows 45-471, columns "
                  "41-601, 1-based) so both layouts see the same pixels",
         "disparity": f"0.075 m * {KINECT_FOCAL_PX} px (Kinect fx) / depth, metres clipped at {MAX_DEPTH_M:g} m"}
    )  # fmt: skip
    return TestSet(
        kind="depth", items=items, labels=labels, classes=prompts, class_names=list(NYU_CLASS_NAMES),
        keys=[item.key() for item in items], transform=DepthItems, skipped=skipped,
        choices={
            **layout,
            "split": f"testNdxs of {splits} ({len(test)} frames), all kept: the paper reports 653 without naming "
                     "the frame it dropped (at most 1/654 = 0.15 points of difference)",
            "other": f"'other' = NYU's {len(NYU_OTHER_SCENES)} remaining scene types, scored as the best of them",
            "scene_types_read_as_other": dict(unknown),
            "prompts": "scene types with '_' -> ' ', NYU's 'excercise' spelled 'exercise'",
        },
    )  # fmt: skip


def _frame_numbers(values: np.ndarray, frames: int, path: Path) -> list[int]:
    numbers = np.asarray(values, dtype=np.float64)
    if numbers.size == 0 or not np.all(numbers == np.round(numbers)) or numbers.min() < 1 or numbers.max() > frames:
        raise OpenBindInputError(str(path), f"testNdxs must hold 1-based frame numbers 1..{frames}")
    return [int(n) for n in numbers]


def _nyu_label(nyu_type: str, unknown: Counter[str]) -> int:
    """Class index of a NYU scene type: one of the 9 named classes, else 'other' (types NYU does not list are
    counted in `unknown`: none of the 9 names is ever renamed, so they can only be 'other')."""
    if nyu_type in NYU_MAIN_SCENES:
        return NYU_MAIN_SCENES.index(nyu_type)
    if nyu_type not in NYU_OTHER_SCENES:
        unknown[nyu_type] += 1
    return len(NYU_MAIN_SCENES)


SUN_LAYOUT = """\
<root>/                       the folder holding both archives (or SUNRGBD/, the toolbox beside or inside it)
  SUNRGBD/
    kv1/{NYUdata,b3dodata}/  kv2/{kinect2data,align_kv2}/  realsense/{lg,sa,sh,shr}/  xtion/{sun3ddata,...}/
      <scene>/depth_bfx/<name>.png   in-filled depth (raw depth/<name>.png is used where it is missing)
      <scene>/intrinsics.txt         3x3 camera matrix, first number fx
      <scene>/scene.txt              scene type, e.g. living_room
  SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat   alltest / alltrain"""

NYU_LAYOUT = """\
either SUN RGB-D's copy of NYU Depth v2:
<root>/                       any folder above SUNRGBD/kv1/NYUdata/ (or NYUdata itself)
  SUNRGBD/kv1/NYUdata/NYU0001 ... NYU1449/   depth_bfx/*.png, intrinsics.txt, scene.txt (as in SUN-D)
  splits.mat                  NYU's split (testNdxs), anywhere beneath root
or NYU's own files:
<root>/
  nyu_depth_v2_labeled.mat    depths (m), sceneTypes; MATLAB v7.3 (or v5); anywhere beneath root
  splits.mat"""

register_benchmark(
    Benchmark(
        name="nyu-d", title="NYU-D (NYU Depth v2, 10 scenes)", task="classification", read=read_nyu_d,
        layout=NYU_LAYOUT, paper={"top1": 54.0}, chance=10.0,
        notes="Depth only; the class 'other' is scored as the best of NYU's 18 remaining scene types.",
    )
)  # fmt: skip
register_benchmark(
    Benchmark(
        name="sun-d", title="SUN-D (SUN RGB-D depth, 19 scenes)", task="classification", read=read_sun_d,
        layout=SUN_LAYOUT, paper={"top1": 35.1}, chance=5.26,
        probe=ProbeRecipe(lr=1e-2, weight_decay=0.0, epochs=60), read_train=read_sun_d_train,
        notes="Depth only. Few-shot probes (--few-shot) train on SUN RGB-D's alltrain split of the same 19 scenes.",
    )
)  # fmt: skip
