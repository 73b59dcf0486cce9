"""The synthetic world: deterministic files in the user formats, consistent physics, complete manifests."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image, ImageFilter

from openbind.errors import OpenBindInputError
from openbind.world import ACTIVITIES, ENVIRONMENTS, OBJECTS, WorldInfo, generate, write_world
from openbind.world.generate import (
    GALLERY_PER_COMBO, IMU_RATE_HZ, IMU_SECONDS, TRAIN_PER_CLASS, VIDEO_FPS, VIDEO_SECONDS,
)
from openbind.world.motion import MOTION_RATE, simulate_motion
from openbind.world.objects import sample_thing
from openbind.world.places import render_place, sample_place
from openbind.world.sound import render_sound
from openbind.world.stills import render_still, sample_shot

SMALL = dict(
    train_per_class=2, test_per_class=1, align_per_combo=1, videos_train_per_activity=1,
    videos_test_per_activity=1, arithmetic_per_combo=1,
)
N_OBJ, N_ENV, N_ACT = len(OBJECTS), len(ENVIRONMENTS), len(ACTIVITIES)
MEDIA_COLUMNS = ("image", "video", "audio", "depth", "thermal", "imu")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> WorldInfo:
    return write_world(tmp_path_factory.mktemp("w") / "world", seed=0, **SMALL)


def _rows(info: WorldInfo, name: str) -> list[dict[str, str]]:
    with open(info.manifests[name], newline="") as f:
        return list(csv.DictReader(f))


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and p.name != "world.json"
    }


def test_same_seed_gives_identical_bytes_and_other_seed_differs(world, tmp_path):
    again = write_world(tmp_path / "again", seed=0, processes=2, **SMALL)  # the fixture used one process
    other = write_world(tmp_path / "other", seed=1, **SMALL)
    first, second, third = _digests(world.out_dir), _digests(again.out_dir), _digests(other.out_dir)
    assert first == second
    assert set(first) == set(third)  # same layout ...
    media = [k for k in first if not k.endswith((".csv", ".txt"))]
    changed = sum(first[k] != third[k] for k in media)
    assert changed == len(media)  # ... but every media file differs
    a = json.loads((world.out_dir / "world.json").read_text())
    b = json.loads((again.out_dir / "world.json").read_text())
    assert {k: v for k, v in a.items() if k != "out_dir"} == {k: v for k, v in b.items() if k != "out_dir"}


def test_counts_match_the_arguments(world):
    expected = {
        "align_train": N_OBJ * N_ENV * 1 + N_ACT * 1 * 3,  # three frames of each training video
        "align_test": N_OBJ * 1 + N_ACT * 1,
        "audio_train": N_OBJ * 2, "depth_train": N_OBJ * 2, "thermal_train": N_OBJ * 2,
        "audio_test": N_OBJ, "depth_test": N_OBJ, "thermal_test": N_OBJ, "scenes_test": N_OBJ,
        "eval_image_test": N_OBJ, "eval_audio_test": N_OBJ, "eval_depth_test": N_OBJ, "eval_thermal_test": N_OBJ,
        "imu_train": N_ACT, "imu_test": N_ACT, "eval_video_test": N_ACT, "eval_imu_test": N_ACT,
        "arithmetic_test": N_OBJ * N_ENV, "arithmetic_gallery_test": N_OBJ * N_ENV * GALLERY_PER_COMBO,
    }
    assert world.counts == expected
    assert {name: len(_rows(world, name)) for name in world.manifests} == expected
    assert world.objects == tuple(o.name for o in OBJECTS) and len(world.objects) >= 10
    assert len(world.environments) >= 4 and len(world.activities) >= 5
    loaded = WorldInfo.load(world.out_dir)
    assert loaded == world
    for name in ("objects", "environments", "activities"):
        lines = (world.out_dir / "classes" / f"{name}.txt").read_text().splitlines()
        assert tuple(lines) == getattr(world, name)


def test_manifest_columns_follow_the_pairs_of_the_paper(world):
    pairs = {"align": ("image", "text"), "audio": ("image", "audio"), "depth": ("image", "depth"),
             "thermal": ("image", "thermal"), "imu": ("video", "imu")}
    for pair, columns in pairs.items():
        for split in ("train", "test"):
            header = list(_rows(world, f"{pair}_{split}")[0])
            assert tuple(header[:2]) == columns and "label" in header
            assert not set(MEDIA_COLUMNS + ("text",)).difference(columns) & set(header)
    assert list(_rows(world, "scenes_test")[0])[:5] == ["scene", "image", "audio", "depth", "thermal"]
    assert list(_rows(world, "eval_audio_test")[0]) == ["audio", "label", "object", "environment"]
    assert list(_rows(world, "eval_imu_test")[0]) == ["imu", "label", "activity", "environment"]


def test_every_manifest_file_exists_and_decodes(world):
    seen: set[str] = set()
    for name in world.manifests:
        for row in _rows(world, name):
            for column in MEDIA_COLUMNS:
                if row.get(column):
                    seen.add(row[column])
                    assert not Path(row[column]).is_absolute()
    for rel in sorted(seen):
        path = world.out_dir / rel
        if rel.endswith(".jpg"):
            with Image.open(path) as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size in ((160, 160), (128, 128))
        elif rel.endswith("_depth.png"):
            with Image.open(path) as im:
                assert im.mode == "I;16" and im.size == (160, 160)
        elif rel.endswith("_thermal.png"):
            with Image.open(path) as im:
                assert im.mode == "L" and im.size == (160, 160)
        elif rel.endswith(".wav"):
            info = soundfile.info(str(path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert 2.0 <= info.duration <= 4.0
        elif rel.endswith(".mp4"):
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264" and float(stream.average_rate) == VIDEO_FPS
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            assert len(frames) == round(VIDEO_FPS * VIDEO_SECONDS) and frames[0].shape == (128, 128, 3)
        elif rel.endswith("_imu.csv"):
            lines = path.read_text().splitlines()
            assert lines[0] == "t,ax,ay,az,gx,gy,gz"
            assert len(lines) - 1 == round(IMU_SECONDS * IMU_RATE_HZ)
        else:
            pytest.fail(f"unexpected file {rel}")


def _imu(world: WorldInfo, rel: str) -> np.ndarray:
    return np.loadtxt(world.out_dir / rel, delimiter=",", skiprows=1)


def test_imu_is_physical(world):
    rows = {row["activity"]: row["imu"] for row in _rows(world, "imu_train")}
    assert set(rows) == {a.name for a in ACTIVITIES}
    data = {name: _imu(world, rel) for name, rel in rows.items()}
    for name, d in data.items():
        assert np.allclose(np.diff(d[:, 0]), 1 / IMU_RATE_HZ, atol=1e-4), name
        assert abs(np.linalg.norm(d[:, 1:4].mean(0)) - 9.81) < 0.5, name  # gravity, whatever the gait
    rest = data["sitting still"]
    assert abs(np.linalg.norm(rest[:, 1:4], axis=1).mean() - 9.81) < 0.3
    assert np.abs(rest[:, 4:]).mean() < 0.05
    assert data["turning left"][:, 5].mean() > 0.5 and data["turning right"][:, 5].mean() < -0.5  # yaw rate
    bounce = {name: np.linalg.norm(d[:, 1:4], axis=1).std() for name, d in data.items()}
    assert bounce["running"] > bounce["walking"] > 5 * bounce["sitting still"]
    magnitude = np.linalg.norm(data["walking"][:, 1:4], axis=1)
    spectrum = np.abs(np.fft.rfft(magnitude - magnitude.mean()))
    step_hz = np.argmax(spectrum) * IMU_RATE_HZ / len(magnitude)
    assert 1.6 <= step_hz <= 2.2  # the step frequency bump


def test_turning_moves_the_picture_the_way_the_gyroscope_says():
    for activity, sign in ((ACTIVITIES[2], 1), (ACTIVITIES[3], -1)):
        rng = np.random.default_rng(5)
        place = sample_place(ENVIRONMENTS[1], rng)
        motion = simulate_motion(activity, rng, 5.0)
        views = []
        for t in (2.0, 2.05):
            i = int(t * MOTION_RATE)
            x, h, z = motion.position[i]
            views.append(render_place(place, 128, motion.rotation[i], (x, z), h).rgb.mean(0)[40])
        a, b = views[0] - views[0].mean(), views[1] - views[1].mean()
        shift = max(range(-20, 21), key=lambda s: float(np.dot(np.roll(a, s), b)))
        assert np.sign(motion.gyro[2000, 1]) == sign and np.sign(shift) == sign and abs(shift) >= 3


def _still(o: int, e: int, k: int):
    rng = np.random.default_rng([o, e, k])
    env = ENVIRONMENTS[e]
    place, shot = sample_place(env, rng), sample_shot(rng)
    return render_still(place, shot, sample_thing(OBJECTS[o], rng), 160, rng)


def _grow(mask: np.ndarray, size: int, grow: bool) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MaxFilter(size) if grow else ImageFilter.MinFilter(size))) > 0


@pytest.mark.parametrize("o", range(N_OBJ))
def test_depth_and_thermal_show_the_object_of_the_image(o):
    for e in range(N_ENV):
        still = _still(o, e, 0)
        core, ring = _grow(still.mask, 5, False), _grow(still.mask, 9, True) & ~still.mask
        rows, cols = np.nonzero(still.mask)
        extent = max(rows.max() - rows.min(), cols.max() - cols.min()) / 160
        assert 0.25 < extent and 0.03 < still.mask.mean() < 0.6 and core.any()  # large objects
        depth = still.depth_mm.astype(float)
        assert still.depth_mm.dtype == np.uint16 and (depth == 0).any()  # invalid pixels exist
        valid = depth[depth > 0]
        assert 500 <= valid.min() and valid.max() <= 10_000
        near = np.median(depth[core & (depth > 0)])
        assert near < np.median(depth[~still.mask & (depth > 0)]) - 300
        thermal = still.thermal.astype(float)
        assert abs(np.median(thermal[core]) - np.median(thermal[ring])) >= 4


def test_depth_and_thermal_files_have_plausible_values(world):
    for row in _rows(world, "scenes_test"):
        with Image.open(world.out_dir / row["depth"]) as im:
            depth = np.asarray(im)
        assert depth.dtype == np.uint16 and 0.2 < (depth > 0).mean() < 1.0  # sky and sea read 0
        assert 500 <= depth[depth > 0].min() and depth.max() <= 10_000
        with Image.open(world.out_dir / row["thermal"]) as im:
            thermal = np.asarray(im)
        assert thermal.dtype == np.uint8 and thermal.max() - thermal.min() > 20


def test_object_sounds_are_distinct():
    """A linear read-out of plain spectral statistics separates the classes of freshly drawn sounds."""

    def features(samples: np.ndarray) -> np.ndarray:
        x = samples.astype(np.float32) / 32768
        frames = x[: len(x) // 400 * 400].reshape(-1, 400) * np.hanning(400)
        bands = np.log(np.abs(np.fft.rfft(frames, axis=1)[:, 1:201]) ** 2 + 1e-6).reshape(len(frames), 40, 5).mean(2)
        bands -= bands.mean()
        return np.concatenate([bands.mean(0), bands.std(0)])

    def sample(split: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for o, obj in enumerate(OBJECTS):
            for k in range(6):
                rng = np.random.default_rng([split, o, k])
                place = sample_place(ENVIRONMENTS[k % N_ENV], rng)
                xs.append(features(render_sound(place, sample_thing(obj, rng), rng)))
                ys.append(o)
        return np.array(xs), np.array(ys)

    (x, y), (xt, yt) = sample(0), sample(1)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mean) / std, (xt - mean) / std
    weights = np.linalg.solve(x.T @ x + 10 * np.eye(x.shape[1]), x.T @ np.eye(N_OBJ)[y])
    assert ((xt @ weights).argmax(1) == yt).mean() >= 0.85


def test_align_captions_name_every_concept(world):
    rows = _rows(world, "align_train")
    pairs = {(r["object"], r["environment"]) for r in rows if r["object"]}
    assert pairs == {(o.name, e.name) for o in OBJECTS for e in ENVIRONMENTS}
    where = {e.name: e.where for e in ENVIRONMENTS}
    for r in rows:
        named = r["object"] or r["activity"]
        assert named and named in r["text"], r
    # Every environment is named in captions of its own images (some captions name only the thing).
    named_environments = {r["environment"] for r in rows if where[r["environment"]] in r["text"]}
    assert named_environments == set(where)
    activities = {r["activity"] for r in rows if r["activity"]}
    assert activities == {a.name for a in ACTIVITIES}
    frames = [r["image"] for r in rows if r["activity"]]
    assert all(f.startswith("train/video/") for f in frames)


def test_test_instances_are_unseen(world):
    train, test = set(), set()
    for name in world.manifests:
        for row in _rows(world, name):
            for column in MEDIA_COLUMNS:
                if row.get(column):
                    target = train if row[column].startswith("train/") else test
                    target.add(hashlib.sha256((world.out_dir / row[column]).read_bytes()).hexdigest())
    assert train and test and not train & test
    for rows in (_rows(world, "audio_train"), _rows(world, "scenes_test")):
        assert len({r["image"] for r in rows}) == len(rows)


def test_never_paired_and_arithmetic_manifests_are_complete(world):
    for row in _rows(world, "scenes_test"):
        assert all((world.out_dir / row[c]).is_file() for c in ("image", "audio", "depth", "thermal"))
        assert row["scene"] in row["audio"] and row["scene"] in row["depth"]
    gallery = {(r["object"], r["environment"]) for r in _rows(world, "arithmetic_gallery_test")}
    assert gallery == {(o.name, e.name) for o in OBJECTS for e in ENVIRONMENTS}
    for row in _rows(world, "arithmetic_test"):
        assert row["environment"] != row["source_environment"]
        assert (row["object"], row["environment"]) in gallery


def test_training_scenes_per_pair_can_differ(tmp_path):
    info = write_world(tmp_path / "w", seed=0, **{**SMALL, "train_per_class": {"depth": 3, "thermal": 1}})
    counts = {pair: len(_rows(info, f"{pair}_train")) for pair in ("audio", "depth", "thermal")}
    assert counts == {"audio": TRAIN_PER_CLASS["audio"] * N_OBJ, "depth": 3 * N_OBJ, "thermal": N_OBJ}
    assert info.config["depth_train_per_class"] == 3
    with pytest.raises(OpenBindInputError, match="unknown pairs"):
        write_world(tmp_path / "bad", train_per_class={"sonar": 2})


def test_output_is_complete_or_absent(tmp_path, monkeypatch):
    with pytest.raises(OpenBindInputError):
        write_world(tmp_path / "bad", train_per_class=0)
    assert not (tmp_path / "bad").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(generate, "render_sound", broken)
    with pytest.raises(RuntimeError):
        write_world(tmp_path / "half", **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_world(out, **SMALL)
    assert (out / "keep.txt").exists()
    info = write_world(out, overwrite=True, image_size=48, video_size=48, **SMALL)
    assert not (out / "keep.txt").exists() and (out / "world.json").is_file() and info.out_dir == out.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]
