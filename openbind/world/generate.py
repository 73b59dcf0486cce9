"""Write the synthetic world to disk: media files in the formats users have, CSV manifests, class lists and
world.json, all in a temporary directory that is renamed into place at the end (complete or absent).

Every item draws its random numbers from its own stream, seeded by (seed, stream, index), so the output is
byte-identical for a seed and independent of the order of work; train and test use disjoint streams, which
is what makes every test instance (shape, size, colour, position, place, lighting, sound, gait) unseen.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import av
import numpy as np
import soundfile
from PIL import Image
from tqdm import tqdm

from openbind.errors import OpenBindInputError
from openbind.utils import atomic_write_text
from openbind.world.concepts import ACTIVITIES, ENVIRONMENTS, OBJECTS, activity_caption, object_caption
from openbind.world.motion import imu_samples, render_frames, simulate_motion
from openbind.world.objects import sample_thing
from openbind.world.places import DEPTH_RANGE_M, sample_place
from openbind.world.sound import AUDIO_SECONDS, SAMPLE_RATE, render_sound
from openbind.world.stills import THERMAL_GAIN, THERMAL_OFFSET_C, Still, render_still, sample_shot

IMU_RATE_HZ = 200.0
IMU_SECONDS = 5.0
VIDEO_FPS = 12
VIDEO_SECONDS = 2.5
VIDEO_START_S = (IMU_SECONDS - VIDEO_SECONDS) / 2.0  # the video covers the middle of its IMU recording
JPEG_QUALITY = 90
AMBIENCE_PER_ENVIRONMENT = 3
# Several gallery images per (object, environment), so that an image-only query's top 5 can be filled
# by its own environment and the arithmetic test measures whether the sound moves it to the target one.
GALLERY_PER_COMBO = 5
FORMAT_VERSION = 1

# Random streams (the second seed word); train and test never share one.
_ALIGN, _AUDIO, _DEPTH, _THERMAL, _TEST, _VIDEO_TRAIN, _VIDEO_TEST, _GALLERY, _QUERY, _AMBIENCE = range(1, 11)
_PAIRS = (("audio", _AUDIO), ("depth", _DEPTH), ("thermal", _THERMAL))
# Training scenes per object class of each bound pair. Depth and thermal get three times audio's: their towers
# must learn the objects' silhouettes from the maps (five objects share a body temperature within a few degrees),
# and with 40 scenes per class they generalised to unseen instances far worse (docs/quickstart.md).
TRAIN_PER_CLASS: Mapping[str, int] = MappingProxyType({"audio": 40, "depth": 120, "thermal": 120})
_OBJECT_LABELS = ("label", "object", "environment")
_ACTIVITY_LABELS = ("label", "activity", "environment")


@dataclass
class WorldInfo:
    """What write_world produced: manifest paths (absolute), class lists, row counts and the settings."""

    out_dir: Path
    seed: int
    manifests: dict[str, Path]
    objects: tuple[str, ...]
    environments: tuple[str, ...]
    activities: tuple[str, ...]
    counts: dict[str, int]
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """world.json text; manifest paths relative to the world directory so the folder can move."""
        data = asdict(self)
        data["format_version"] = FORMAT_VERSION
        data["out_dir"] = str(self.out_dir)
        data["manifests"] = {name: path.relative_to(self.out_dir).as_posix() for name, path in self.manifests.items()}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> WorldInfo:
        """Read world.json of a written world (paths resolved against where the folder is now)."""
        root = Path(out_dir).resolve()
        data = json.loads((root / "world.json").read_text())
        return cls(
            out_dir=root,
            seed=int(data["seed"]),
            manifests={name: root / rel for name, rel in data["manifests"].items()},
            objects=tuple(data["objects"]),
            environments=tuple(data["environments"]),
            activities=tuple(data["activities"]),
            counts={k: int(v) for k, v in data["counts"].items()},
            config=data["config"],
        )


def write_world(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    train_per_class: int | Mapping[str, int] = TRAIN_PER_CLASS,
    test_per_class: int = 20,
    align_per_combo: int = 30,
    videos_train_per_activity: int = 40,
    videos_test_per_activity: int = 10,
    arithmetic_per_combo: int = 3,
    image_size: int = 160,
    video_size: int = 128,
    processes: int = 1,
    progress: bool = False,
    overwrite: bool = False,
) -> WorldInfo:
    """Generate the paired world under `out_dir` and return its WorldInfo (also written to world.json).

    Per object class: `train_per_class` training scenes for each bound pair (image+audio, image+depth,
    image+thermal; separate scenes per pair, environments balanced; an int for all three or a mapping
    {"audio": n, "depth": n, "thermal": n}, missing pairs getting their TRAIN_PER_CLASS count) and
    `test_per_class` test scenes rendered in every modality. The image-text set has `align_per_combo` images
    of every (object, environment) pair plus three frames of every training video captioned with its
    activity. Per activity: `videos_*_per_activity` ego-motion videos with their IMU. Embedding arithmetic gets
    a gallery of GALLERY_PER_COMBO images per (object, environment) and `arithmetic_per_combo` queries per
    (object, environment): an image of the object there plus an ambience-only sound of another environment,
    cycling through the other environments. An existing non-empty `out_dir` is an error unless `overwrite`.
    `processes` > 1 renders in that many processes, with identical output.
    """
    if isinstance(train_per_class, Mapping):
        unknown = set(train_per_class) - set(TRAIN_PER_CLASS)
        if unknown:
            known = ", ".join(TRAIN_PER_CLASS)
            raise OpenBindInputError(train_per_class, f"unknown pairs {sorted(unknown)}: use {known}")
        per_pair = {pair: train_per_class.get(pair, TRAIN_PER_CLASS[pair]) for pair, _ in _PAIRS}
    else:
        per_pair = {pair: train_per_class for pair, _ in _PAIRS}
    counts = {
        **{f"{pair}_train_per_class": n for pair, n in per_pair.items()},
        "test_per_class": test_per_class, "align_per_combo": align_per_combo,
        "videos_train_per_activity": videos_train_per_activity, "videos_test_per_activity": videos_test_per_activity,
        "arithmetic_per_combo": arithmetic_per_combo,
    }
    if not isinstance(seed, int) or seed < 0:
        raise OpenBindInputError(seed, "seed must be an integer >= 0")
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise OpenBindInputError(value, f"{name} must be an integer >= 1")
    if not isinstance(processes, int) or processes < 1:
        raise OpenBindInputError(processes, "processes must be an integer >= 1")
    for name, value in (("image_size", image_size), ("video_size", video_size)):
        if not isinstance(value, int) or not 32 <= value <= 1024 or value % 2:
            raise OpenBindInputError(value, f"{name} must be an even integer in [32, 1024]")
    out = Path(out_dir).resolve()
    if (out.exists() and not out.is_dir()) or (out.is_dir() and any(out.iterdir()) and not overwrite):
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {
        **counts, "image_size": image_size, "video_size": video_size, "video_fps": VIDEO_FPS,
        "video_seconds": VIDEO_SECONDS, "imu_rate_hz": IMU_RATE_HZ, "imu_seconds": IMU_SECONDS,
        "imu_video_offset_s": VIDEO_START_S, "audio_sample_rate": SAMPLE_RATE,
        "audio_seconds": AUDIO_SECONDS, "depth_unit": "mm", "depth_range_m": DEPTH_RANGE_M,
        "thermal_encoding": f"uint8 = (celsius + {THERMAL_OFFSET_C:g}) * {THERMAL_GAIN:g}",
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        builder = _Builder(tmp, seed, image_size, video_size)
        _render(builder, counts, processes, progress)
        info = builder.finish(out, config)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _ambience_path(i: int) -> str:
    """Ambience sound i belongs to environment i % len(ENVIRONMENTS) (see `_Builder.plan`)."""
    return f"arithmetic/ambience/e{i:05d}_audio.wav"


def _render(builder: _Builder, counts: dict[str, int], processes: int, progress: bool) -> None:
    """Render every planned item, in `processes` processes when > 1; manifest rows land in plan order either
    way, and every file is the same (each item draws from its own seeded generator)."""
    jobs = builder.plan(**counts)
    bar = tqdm(total=len(jobs), desc="world", unit="item", disable=not progress)
    with bar:
        if processes <= 1:
            for job in jobs:
                job()
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        args = (builder.root, builder.seed, builder.image_size, builder.video_size, counts)
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker, initargs=args) as pool:
            for rows in pool.map(_run_job, range(len(jobs)), chunksize=8):
                for manifest, manifest_rows in rows.items():
                    builder.rows.setdefault(manifest, []).extend(manifest_rows)
                bar.update()


_WORKER_BUILDER: _Builder | None = None  # a worker process's own builder and plan
_WORKER_JOBS: list[Callable[[], None]] = []


def _start_worker(root: Path, seed: int, image_size: int, video_size: int, counts: dict[str, int]) -> None:
    global _WORKER_BUILDER
    _WORKER_BUILDER = _Builder(root, seed, image_size, video_size)
    _WORKER_JOBS[:] = _WORKER_BUILDER.plan(**counts)


def _run_job(index: int) -> dict[str, list[dict[str, str]]]:
    """Job `index` of the plan in this worker; the manifest rows it added."""
    _WORKER_BUILDER.rows = {}
    _WORKER_JOBS[index]()
    return _WORKER_BUILDER.rows


def _replace_dir(src: Path, dst: Path) -> None:
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.rename(dst, old / "world")
    os.rename(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _Builder:
    """Plans the items, renders and writes them into `root`, and collects the manifest rows."""

    def __init__(self, root: Path, seed: int, image_size: int, video_size: int):
        self.root, self.seed, self.image_size, self.video_size = root, seed, image_size, video_size
        self.rows: dict[str, list[dict[str, str]]] = {}

    def rng(self, stream: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, index])

    def add(self, manifest: str, **row: str) -> None:
        self.rows.setdefault(manifest, []).append(row)

    def plan(
        self, *, audio_train_per_class: int, depth_train_per_class: int, thermal_train_per_class: int,
        test_per_class: int, align_per_combo: int,
        videos_train_per_activity: int, videos_test_per_activity: int, arithmetic_per_combo: int,
    ) -> list[Callable[[], None]]:
        """Every item as a zero-argument job, in manifest order."""
        n_obj, n_env, n_act = len(OBJECTS), len(ENVIRONMENTS), len(ACTIVITIES)
        combos = [(o, e) for o in range(n_obj) for e in range(n_env)]
        jobs: list[Callable[[], None]] = []
        for i, (o, e) in enumerate(c for c in combos for _ in range(align_per_combo)):
            jobs.append(partial(self.align_scene, i, o, e))
        per_pair = {"audio": audio_train_per_class, "depth": depth_train_per_class, "thermal": thermal_train_per_class}
        for p, (pair, stream) in enumerate(_PAIRS):
            n = per_pair[pair]
            for o, k in itertools.product(range(n_obj), range(n)):
                jobs.append(partial(self.pair_scene, pair, stream, o * n + k, o, (k + o + p) % n_env))
        for o, k in itertools.product(range(n_obj), range(test_per_class)):
            jobs.append(partial(self.test_scene, o * test_per_class + k, o, (k + o) % n_env))
        for split, per in (("train", videos_train_per_activity), ("test", videos_test_per_activity)):
            for a, k in itertools.product(range(n_act), range(per)):
                jobs.append(partial(self.video, split, a * per + k, a, (k + a) % n_env))
        for i, (o, e) in enumerate(c for c in combos for _ in range(GALLERY_PER_COMBO)):
            jobs.append(partial(self.gallery, i, o, e))
        for i in range(n_env * AMBIENCE_PER_ENVIRONMENT):
            jobs.append(partial(self.ambience, i, i % n_env))
        queries = itertools.product(combos, range(arithmetic_per_combo))
        for i, ((o, x), j) in enumerate(queries):  # target environments: the others in turn
            jobs.append(partial(self.query, i, o, x, (x + 1 + (j + o) % (n_env - 1)) % n_env))
        return jobs

    # ------------------------------------------------------------------ items

    def _scene(
        self, rng: np.random.Generator, o: int, e: int, sound: bool
    ) -> tuple[Still, str, np.ndarray | None, dict[str, str]]:
        """Render object `o` in environment `e`: still, caption, sound (if asked) and the label columns."""
        obj, env = OBJECTS[o], ENVIRONMENTS[e]
        place = sample_place(env, rng)
        shot = sample_shot(rng)
        thing = sample_thing(obj, rng)
        still = render_still(place, shot, thing, self.image_size, rng)
        caption = object_caption(obj, env, rng)
        audio = render_sound(place, thing, rng) if sound else None
        labels = {"label": obj.name, "object": obj.name, "environment": env.name}
        return still, caption, audio, labels

    def align_scene(self, i: int, o: int, e: int) -> None:
        still, caption, _, labels = self._scene(self.rng(_ALIGN, i), o, e, sound=False)
        image = self.write_jpeg(f"train/align/a{i:05d}_image.jpg", still.image)
        self.add("align_train", image=image, text=caption, **labels, activity="")

    def pair_scene(self, pair: str, stream: int, i: int, o: int, e: int) -> None:
        still, _, audio, labels = self._scene(self.rng(stream, i), o, e, sound=pair == "audio")
        stem = f"train/{pair}/s{i:05d}"
        image = self.write_jpeg(f"{stem}_image.jpg", still.image)
        other = self.write_modality(pair, stem, still, audio)
        self.add(f"{pair}_train", image=image, **{pair: other}, **labels)

    def test_scene(self, i: int, o: int, e: int) -> None:
        still, caption, audio, labels = self._scene(self.rng(_TEST, i), o, e, sound=True)
        stem = f"test/scenes/s{i:05d}"
        files = {"image": self.write_jpeg(f"{stem}_image.jpg", still.image)}
        for pair, _ in _PAIRS:
            files[pair] = self.write_modality(pair, stem, still, audio)
        self.add("scenes_test", scene=f"s{i:05d}", **files, text=caption, **labels)
        self.add("align_test", image=files["image"], text=caption, **labels, activity="")
        self.add("eval_image_test", image=files["image"], **labels)
        for pair, _ in _PAIRS:
            self.add(f"{pair}_test", image=files["image"], **{pair: files[pair]}, **labels)
            self.add(f"eval_{pair}_test", **{pair: files[pair]}, **labels)

    def video(self, split: str, i: int, a: int, e: int) -> None:
        rng = self.rng(_VIDEO_TRAIN if split == "train" else _VIDEO_TEST, i)
        activity, env = ACTIVITIES[a], ENVIRONMENTS[e]
        place = sample_place(env, rng)
        motion = simulate_motion(activity, rng, IMU_SECONDS)
        times, samples = imu_samples(motion, IMU_RATE_HZ, rng)
        frame_times = VIDEO_START_S + np.arange(int(round(VIDEO_SECONDS * VIDEO_FPS))) / VIDEO_FPS
        frames = render_frames(place, motion, frame_times, self.video_size, activity)
        caption = activity_caption(activity, env, rng)
        stem = f"{split}/video/v{i:05d}"
        video = self.write_mp4(f"{stem}_video.mp4", frames)
        imu = self.write_imu(f"{stem}_imu.csv", times, samples)
        labels = {"label": activity.name, "activity": activity.name, "environment": env.name}
        # Training videos lend several frames to the image-text set (more views of each activity); test one.
        picks = (len(frames) // 4, len(frames) // 2, 3 * len(frames) // 4) if split == "train" else (len(frames) // 2,)
        for k, pick in enumerate(picks):
            frame = self.write_jpeg(f"{stem}_frame{k}.jpg", frames[pick])
            self.add(f"align_{split}", image=frame, text=caption, label=activity.name, object="",
                     environment=env.name, activity=activity.name)
        self.add(f"imu_{split}", video=video, imu=imu, **labels)
        if split == "test":
            self.add("eval_video_test", video=video, **labels)
            self.add("eval_imu_test", imu=imu, **labels)

    def gallery(self, i: int, o: int, e: int) -> None:
        still, _, _, labels = self._scene(self.rng(_GALLERY, i), o, e, sound=False)
        image = self.write_jpeg(f"arithmetic/gallery/g{i:05d}_image.jpg", still.image)
        self.add("arithmetic_gallery_test", image=image, **labels)

    def ambience(self, i: int, e: int) -> None:
        rng = self.rng(_AMBIENCE, i)
        sound = render_sound(sample_place(ENVIRONMENTS[e], rng), None, rng)
        self.write_wav(_ambience_path(i), sound)

    def query(self, i: int, o: int, x: int, y: int) -> None:
        still, _, _, _ = self._scene(self.rng(_QUERY, i), o, x, sound=False)
        image = self.write_jpeg(f"arithmetic/query/q{i:05d}_image.jpg", still.image)
        audio = _ambience_path((i % AMBIENCE_PER_ENVIRONMENT) * len(ENVIRONMENTS) + y)  # that place's k-th
        self.add("arithmetic_test", image=image, audio=audio, label=OBJECTS[o].name, object=OBJECTS[o].name,
                 environment=ENVIRONMENTS[y].name, source_environment=ENVIRONMENTS[x].name)

    # ------------------------------------------------------------------ files

    def _path(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_modality(self, pair: str, stem: str, still: Still, audio: np.ndarray | None) -> str:
        if pair == "audio":
            return self.write_wav(f"{stem}_audio.wav", audio)
        if pair == "depth":
            return self.write_png(f"{stem}_depth.png", still.depth_mm)
        return self.write_png(f"{stem}_thermal.png", still.thermal)

    def write_jpeg(self, rel: str, rgb: np.ndarray) -> str:
        Image.fromarray(rgb).save(self._path(rel), format="JPEG", quality=JPEG_QUALITY)
        return rel

    def write_png(self, rel: str, plane: np.ndarray) -> str:
        """uint16 planes become 16-bit grayscale PNGs (mode I;16), uint8 planes 8-bit ones."""
        image = Image.fromarray(plane)
        image.save(self._path(rel), format="PNG", compress_level=3)
        return rel

    def write_wav(self, rel: str, samples: np.ndarray) -> str:
        soundfile.write(self._path(rel), samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        return rel

    def write_mp4(self, rel: str, frames: list[np.ndarray]) -> str:
        """H.264 (yuv420p, single-threaded so the bytes are reproducible) in an MP4 container."""
        with av.open(str(self._path(rel)), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=VIDEO_FPS)
            stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
            stream.options = {"crf": "20", "preset": "veryfast", "threads": "1"}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        return rel

    def write_imu(self, rel: str, times: np.ndarray, samples: np.ndarray) -> str:
        buffer = io.StringIO()
        np.savetxt(buffer, np.column_stack([times, samples]), fmt="%.4f", delimiter=",",
                   header="t,ax,ay,az,gx,gy,gz", comments="")
        self._path(rel).write_text(buffer.getvalue())
        return rel

    # ------------------------------------------------------------------ manifests

    def finish(self, out: Path, config: dict[str, Any]) -> WorldInfo:
        """Write manifests, class lists and world.json into the temporary root; paths in the info are final."""
        classes = {"objects": [o.name for o in OBJECTS], "environments": [e.name for e in ENVIRONMENTS],
                   "activities": [a.name for a in ACTIVITIES]}
        for name, names in classes.items():
            self._path(f"classes/{name}.txt").write_text("\n".join(names) + "\n")
        manifests = {}
        for name in sorted(self.rows):
            rows = self.rows[name]
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            (self.root / f"{name}.csv").write_text(buffer.getvalue())
            manifests[name] = out / f"{name}.csv"
        info = WorldInfo(
            out_dir=out, seed=self.seed, manifests=manifests, objects=tuple(classes["objects"]),
            environments=tuple(classes["environments"]), activities=tuple(classes["activities"]),
            counts={name: len(rows) for name, rows in sorted(self.rows.items())}, config=config,
        )
        atomic_write_text(self.root / "world.json", info.to_json())
        return info
