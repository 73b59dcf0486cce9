"""Benchmark readers of depth, thermal and IMU datasets (SUN-D, NYU-D, LLVIP, Ego4D IMU) on tiny copies of the
published layouts in their real formats."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import get_benchmark
from openbind.eval.benchmarks.ego4d import ImuWindow, ImuWindows, in_test_split, read_ego4d_imu
from openbind.eval.benchmarks.llvip import ThermalCrops, read_llvip
from openbind.eval.benchmarks.sunrgbd import (
    NYU_CLASS_NAMES,
    SUN_D_SCENES,
    DepthItems,
    NyuFrame,
    read_nyu_d,
    read_sun_d,
    read_sun_d_train,
)
from openbind.modalities.depth.transform import KINECT_FOCAL_PX
from openbind.modalities.thermal.transform import ThermalTransform

RAW = {"max_disparity": None, "mean": 0.0, "std": 1.0}  # depth options that leave the disparity as it is

# --- tiny files in the published formats ----------------------------------------------------------------------


def sun_png(path: Path, millimetres: int, size=(16, 12)) -> None:
    """A SUN RGB-D depth PNG: 16-bit millimetres rotated left by 3 bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = ((millimetres << 3) | (millimetres >> 13)) & 0xFFFF
    Image.fromarray(np.full((size[1], size[0]), stored, dtype=np.uint16)).save(path)


def sun_scene(sun: Path, relative: str, scene_type: str | None, fx: float = 520.0, folder: str = "depth_bfx",
              millimetres: int = 2000, intrinsics: bool = True) -> None:  # fmt: skip
    scene = sun / relative
    Image.new("RGB", (16, 12)).save(_mkdir(scene / "image") / "0000001.jpg")
    sun_png(scene / folder / "0000001.png", millimetres)
    if folder == "depth_bfx":
        sun_png(scene / "depth" / "0000001.png", 9999)  # the raw map must not be used when depth_bfx exists
    if intrinsics:
        (scene / "intrinsics.txt").write_text(f"{fx} 0 320.5 \n0 {fx} 240.5 \n0 0 1 \n")
    if scene_type is not None:
        (scene / "scene.txt").write_text(scene_type)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def cell(strings: list[str]) -> np.ndarray:
    """A MATLAB 1xN cell array of strings, as savemat writes it."""
    array = np.empty((1, len(strings)), dtype=object)
    array[0, :] = strings
    return array


def toolbox_split(path: Path, test: list[str], train: list[str]) -> None:
    prefix = "/n/fs/sun3d/data/SUNRGBD/"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"alltest": cell([prefix + t for t in test]), "alltrain": cell([prefix + t for t in train])})


def nyu_splits(path: Path, test: list[int], train: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    column = lambda numbers: np.array(numbers, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    scipy.io.savemat(path, {"testNdxs": column(test), "trainNdxs": column(train)})


def nyu_labeled_mat(path: Path, scene_types: list[str], version: str) -> None:
    """nyu_depth_v2_labeled.mat: frame n (1-based) holds n metres inside SUN RGB-D's crop, 0.5 m on the border."""
    depths = np.full((len(scene_types), 480, 640), 0.5, dtype=np.float32)
    for n in range(len(scene_types)):
        depths[n, 44:471, 40:601] = n + 1
    if version == "v5":
        types = np.empty((len(scene_types), 1), dtype=object)
        types[:, 0] = scene_types
        scipy.io.savemat(path, {"depths": depths.transpose(1, 2, 0), "sceneTypes": types}, do_compression=True)
        return
    # MATLAB v7.3: HDF5 after a 512-byte header, arrays in column-major order, cells as object references
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("depths", data=depths.transpose(0, 2, 1), compression="gzip")
        refs = [f.create_dataset(f"#refs#/{i}", data=np.array([[ord(c)] for c in name], dtype=np.uint16)).ref
                for i, name in enumerate(scene_types)]  # fmt: skip
        f.create_dataset("sceneTypes", data=np.array([refs], dtype=h5py.ref_dtype))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2012 HDF5 schema 1.00 .")


def disparity(transform: DepthItems, item) -> torch.Tensor:
    out = transform(item)
    assert out.shape == (1, 224, 224) and out.dtype == torch.float32
    return out


# --- SUN-D ----------------------------------------------------------------------------------------------------


@pytest.fixture
def sun_root(tmp_path):
    sun = tmp_path / "SUNRGBD"
    sun_scene(sun, "kv1/NYUdata/NYU0001", "bedroom", fx=518.857901)
    sun_scene(sun, "kv2/kinect2data/000002_2014-05-26", "living_room", fx=529.5, folder="depth", millimetres=4000)
    sun_scene(sun, "realsense/lg/2014_10_24-14_58_56-1311000046", "idk")  # not one of the 19
    sun_scene(sun, "xtion/sun3ddata/mit_32_d507/d507_2/0000103", "computer_room", fx=570.3)
    sun_scene(sun, "xtion/xtion_align_data/0005", "office", intrinsics=False)
    sun_scene(sun, "kv2/align_kv2/0010", "study_space")
    toolbox_split(
        tmp_path / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat",
        test=["kv1/NYUdata/NYU0001", "kv2/kinect2data/000002_2014-05-26/",
              "realsense/lg/2014_10_24-14_58_56-1311000046", "xtion/sun3ddata/mit_32_d507/d507_2/0000103",
              "xtion/sun3ddata/gone", "xtion/xtion_align_data/0005"],
        train=["kv2/align_kv2/0010"],
    )  # fmt: skip
    return tmp_path


def test_sun_d_reads_the_test_split_of_19_scenes(sun_root):
    test = read_sun_d(sun_root)
    assert test.kind == "depth" and len(test.classes) == 19 and test.class_names == list(SUN_D_SCENES)
    assert test.classes[3] == ["computer room"] and test.classes[13] == ["lecture theatre"]
    sun = sun_root / "SUNRGBD"
    assert [Path(item.path) for item in test.items] == [
        sun / "kv1/NYUdata/NYU0001/depth_bfx/0000001.png",
        sun / "kv2/kinect2data/000002_2014-05-26/depth/0000001.png",
        sun / "xtion/sun3ddata/mit_32_d507/d507_2/0000103/depth_bfx/0000001.png",
    ]
    assert test.labels == [1, 15, 3]  # bedroom, living_room, computer_room
    assert [(i.focal_px, i.baseline_m) for i in test.items] == [(518.857901, 0.075), (529.5, 0.075), (570.3, 0.095)]
    assert test.choices["depth_fallback"] == ["kv2/kinect2data/000002_2014-05-26"]
    assert "1 scenes of other types" in test.choices["split"]
    assert len(test.skipped) == 2
    assert test.skipped[0] == "alltest entry 5 (xtion/sun3ddata/gone): no such scene folder"
    assert "entry 6 (xtion/xtion_align_data/0005): no readable intrinsics.txt" in test.skipped[1]
    assert test.item_keys()[0].endswith("NYU0001/depth_bfx/0000001.png#focal=518.858,baseline=0.075")
    assert len(set(test.item_keys())) == 3


def test_sun_d_transform_gives_disparity_per_scene(sun_root):
    test = read_sun_d(sun_root)
    transform = pickle.loads(pickle.dumps(test.transform(RAW)))  # DataLoader workers get a pickled copy
    assert transform.fixed_output_shape == (1, 224, 224)
    first, second, third = (disparity(transform, item) for item in test.items)
    torch.testing.assert_close(first, torch.full((1, 224, 224), 0.075 * 518.857901 / 2.0))
    torch.testing.assert_close(second, torch.full((1, 224, 224), 0.075 * 529.5 / 4.0))  # raw depth/ at 4 m
    torch.testing.assert_close(third, torch.full((1, 224, 224), 0.095 * 570.3 / 2.0))
    out = torch.empty(1, 224, 224)
    assert transform(test.items[0], out=out) is out
    with pytest.raises(ValueError, match="bad depth options"):
        test.transform({"no_such_option": 1})


def test_sun_d_clips_depth_at_8_m(tmp_path):
    sun_scene(tmp_path / "SUNRGBD", "kv1/b3dodata/img_0063", "kitchen", millimetres=12000)
    toolbox_split(tmp_path / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat", ["kv1/b3dodata/img_0063"], [])
    test = read_sun_d(tmp_path)
    torch.testing.assert_close(
        disparity(test.transform(RAW), test.items[0]), torch.full((1, 224, 224), 0.075 * 520 / 8)
    )


def test_sun_d_root_variants_and_train_split(sun_root, tmp_path):
    expected = read_sun_d(sun_root).items
    assert read_sun_d(sun_root / "SUNRGBD").items == expected  # toolbox beside SUNRGBD/
    (sun_root / "SUNRGBDtoolbox").rename(sun_root / "SUNRGBD" / "SUNRGBDtoolbox")
    assert read_sun_d(sun_root / "SUNRGBD").items == expected  # toolbox inside it
    train = read_sun_d_train(sun_root / "SUNRGBD")
    assert train.labels == [SUN_D_SCENES.index("study_space")] and "alltrain" in train.choices["split"]
    bench = get_benchmark("sun-d")
    assert bench.probe.epochs == 60 and bench.read_train is not None and bench.paper == {"top1": 35.1} and bench.chance == 5.26 and "allsplit.mat" in bench.layout


def test_sun_d_class_override_and_broken_layouts(sun_root, tmp_path):
    """--classes names the scene types of a dataset in SUN RGB-D's layout: scenes of other types are left out."""
    names = [["living room", "a lounge"], ["bedroom"]]
    test = read_sun_d(sun_root, classes=names)
    assert test.classes == names and test.class_names == ["living room", "bedroom"] and test.labels == [1, 0]
    assert "(3 scenes of other types left out)" in test.choices["split"]  # computer room + 2 non-SUN-D types
    with pytest.raises(ValueError, match="at least one class"):
        read_sun_d(sun_root, classes=[])
    with pytest.raises(OpenBindInputError, match="sensor folder"):
        read_sun_d(tmp_path / "SUNRGBD" / "kv1")
    (sun_root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat").unlink()
    with pytest.raises(OpenBindInputError, match="allsplit.mat.*split file not found"):
        read_sun_d(sun_root)
    toolbox_split(sun_root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat", ["kv9/nowhere"], [])
    with pytest.raises(OpenBindInputError, match="none of the 1 scenes"):
        read_sun_d(sun_root)
    scipy.io.savemat(sun_root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat", {"other": np.zeros(2)})
    with pytest.raises(OpenBindInputError, match="no variable 'alltest'"):
        read_sun_d(sun_root)


# --- NYU-D ----------------------------------------------------------------------------------------------------


def test_nyu_d_from_sun_rgbd_maps_renamed_scene_types_back(tmp_path):
    nyudata = "SUNRGBD/kv1/NYUdata"
    scene_types = {1: "bedroom", 2: "computer_room", 3: "kitchen", 4: "lobby", 6: "weird_room", 7: "living_room"}
    for number, scene_type in scene_types.items():
        sun_scene(tmp_path, f"{nyudata}/NYU{number:04d}", scene_type, fx=518.857901)
    nyu_splits(tmp_path / "SUNRGBD" / "splits.mat", test=[1, 2, 3, 4, 5, 6, 7], train=[8])
    test = read_nyu_d(tmp_path)
    assert read_nyu_d(tmp_path / "SUNRGBD").items == test.items
    assert test.kind == "depth" and test.class_names == NYU_CLASS_NAMES and len(test.classes) == 10
    assert test.classes[2] == ["living room"] and "exercise room" in test.classes[9] and len(test.classes[9]) == 18
    assert test.labels == [0, 9, 1, 9, 9, 2]  # NYU0005 is missing
    assert [Path(i.path).parts[-3] for i in test.items] == ["NYU0001", "NYU0002", "NYU0003", "NYU0004", "NYU0006",
                                                            "NYU0007"]  # fmt: skip
    assert len(test.skipped) == 1 and "frame 5 (kv1/NYUdata/NYU0005): no such scene folder" in test.skipped[0]
    assert test.choices["scene_types_read_as_other"] == {"weird_room": 1}
    assert "7 frames), all kept" in test.choices["split"]
    torch.testing.assert_close(disparity(test.transform(RAW), test.items[0]),
                               torch.full((1, 224, 224), 0.075 * 518.857901 / 2.0))  # fmt: skip


@pytest.mark.parametrize("version", ["v7.3", "v5"])
def test_nyu_d_from_nyu_labeled_mat(tmp_path, version):
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    nyu_labeled_mat(mat, ["bedroom", "excercise_room", "living_room", "study", "bookstore"], version)
    nyu_splits(tmp_path / "nyu" / "splits.mat", test=[2, 3, 4, 5], train=[1])  # found beneath root
    assert h5py.is_hdf5(mat) == (version == "v7.3")
    test = read_nyu_d(tmp_path)
    assert test.items == [NyuFrame(str(mat.resolve()), n) for n in (2, 3, 4, 5)]
    assert test.labels == [9, 2, 9, 8] and test.skipped == [] and test.choices["scene_types_read_as_other"] == {}
    assert test.item_keys()[0].endswith("nyu_depth_v2_labeled.mat#frame=2")
    transform = pickle.loads(pickle.dumps(test.transform(RAW)))
    for item in test.items[:2]:  # frame n holds n metres inside the crop: the border (0.5 m) must be cut away
        expected = torch.full((1, 224, 224), 0.075 * KINECT_FOCAL_PX / item.index)
        torch.testing.assert_close(disparity(transform, item), expected)
    with pytest.raises(OpenBindInputError, match="frame 9 out of range"):
        transform(NyuFrame(str(mat.resolve()), 9))


def test_nyu_d_errors(tmp_path):
    with pytest.raises(OpenBindInputError, match="neither SUN RGB-D's kv1/NYUdata/ nor NYU's"):
        read_nyu_d(tmp_path)
    sun_scene(tmp_path, "SUNRGBD/kv1/NYUdata/NYU0001", "bedroom")
    with pytest.raises(OpenBindInputError, match="splits.mat"):
        read_nyu_d(tmp_path)
    nyu_splits(tmp_path / "splits.mat", test=[1, 1450], train=[2])
    with pytest.raises(OpenBindInputError, match="1-based frame numbers 1..1449"):
        read_nyu_d(tmp_path)
    nyu_splits(tmp_path / "splits.mat", test=[1], train=[2])
    with pytest.raises(ValueError, match="10 classes"):
        read_nyu_d(tmp_path, classes=[["a"]] * 9)
    assert read_nyu_d(tmp_path, classes=[["a"]] * 10).classes == [["a"]] * 10
    assert get_benchmark("nyu-d").paper == {"top1": 54.0} and get_benchmark("nyu-d").chance == 10.0


# --- LLVIP ----------------------------------------------------------------------------------------------------


def voc(path: Path, objects: list[tuple[str, tuple[int, int, int, int]]], size=(64, 48)) -> None:
    boxes = "".join(
        f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{b[0]}</xmin>\n\t\t\t<ymin>{b[1]}</ymin>\n"
        f"\t\t\t<xmax>{b[2]}</xmax>\n\t\t\t<ymax>{b[3]}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for name, b in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{path.stem}.jpg</filename>\n\t<source>\n"
        f"\t\t<database>LLVIP</database>\n\t</source>\n\t<size>\n\t\t<width>{size[0]}</width>\n"
        f"\t\t<height>{size[1]}</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n{boxes}"
        "</annotation>\n"
    )


@pytest.fixture
def llvip_root(tmp_path):
    root = tmp_path / "LLVIP"
    rng = np.random.default_rng(0)
    for name in ("190001", "190002", "190003"):
        gray = rng.integers(0, 256, (48, 64), dtype=np.uint8)
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(_mkdir(root / "infrared" / "test") / f"{name}.jpg")
        Image.fromarray(gray).save(_mkdir(root / "visible" / "test") / f"{name}.jpg")
    voc(root / "Annotations" / "190001.xml", [("person", (2, 3, 12, 23)), ("car", (30, 30, 40, 40)),
                                              ("person", (14, 3, 24, 23))])  # fmt: skip
    voc(root / "Annotations" / "190002.xml", [("person", (1, 1, 63, 47))])  # no room for a background box
    return tmp_path  # 190003 has no annotation


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_llvip_crops_people_and_random_background(llvip_root):
    test = read_llvip(llvip_root)  # the folder holding LLVIP/
    assert test.kind == "thermal" and test.class_names == ["person", "background"]
    assert test.classes == [["person", "man", "woman", "people"], ["street", "road", "car", "light", "tree"]]
    image1 = str(llvip_root.resolve() / "LLVIP" / "infrared" / "test" / "190001.jpg")
    people = [(2, 3, 12, 23), (14, 3, 24, 23)]
    assert [(i.path, i.box) for i in test.items[:2]] == [(image1, people[0]), (image1, people[1])]
    backgrounds = test.items[2:4]
    assert [i.label for i in test.items] == test.labels == [0, 0, 1, 1, 0]
    for background, person in zip(backgrounds, people):
        assert background.path == image1
        assert (background.box[2] - background.box[0], background.box[3] - background.box[1]) == (10, 20)
        assert not any(overlaps(background.box, p) for p in people)
        assert background.box[2] <= 64 and background.box[3] <= 48
    assert test.items[4].box == (1, 1, 63, 47) and test.items[4].path.endswith("190002.jpg")
    assert "1 person boxes got none" in test.choices["background"] and "3 person boxes" in test.choices["crops"]
    assert test.skipped == ["190003.jpg: no annotation Annotations/190003.xml"]
    assert test.item_keys()[0] == f"{image1}#box=2,3,12,23"
    assert read_llvip(llvip_root / "LLVIP").items == test.items  # seeded: the same boxes every time


def test_llvip_transform_crops_then_applies_the_thermal_transform(llvip_root):
    test = read_llvip(llvip_root)
    transform = pickle.loads(pickle.dumps(test.transform({})))
    item = test.items[0]
    expected = ThermalTransform()(Image.open(item.path).crop(item.box))
    torch.testing.assert_close(transform(item), expected)
    assert transform.fixed_output_shape == (1, 224, 224)
    out = torch.empty(1, 224, 224)
    assert transform(test.items[2], out=out) is out
    bad = type(item)(item.path, (0, 0, 65, 10), 0)
    with pytest.raises(OpenBindInputError, match="outside the 64x48 image"):
        transform(bad)
    assert isinstance(test.transform({"scale": "max"}), ThermalCrops)
    with pytest.raises(ValueError, match="scale"):
        test.transform({"scale": "bogus"})


def test_llvip_class_override_and_errors(llvip_root, tmp_path):
    assert read_llvip(llvip_root, classes=[["pedestrian"], ["empty street"]]).classes == [["pedestrian"],
                                                                                          ["empty street"]]  # fmt: skip
    with pytest.raises(ValueError, match="2 classes"):
        read_llvip(llvip_root, classes=[["a"], ["b"], ["c"]])
    with pytest.raises(OpenBindInputError, match="infrared/test/ and Annotations/"):
        read_llvip(_mkdir(tmp_path / "nothing"))
    (llvip_root / "LLVIP" / "Annotations" / "190001.xml").write_text("<annotation><object>")
    assert "190001.jpg: unreadable annotation" in read_llvip(llvip_root).skipped[0]
    bench = get_benchmark("llvip")
    assert bench.paper == {"top1": 63.4} and bench.chance == 50.0


# --- Ego4D IMU ------------------------------------------------------------------------------------------------

HEADER = "component_idx,component_timestamp_ms,canonical_timestamp_ms,gyro_x,gyro_y,gyro_z,accl_x,accl_y,accl_z"


def ego4d_imu_csv(path: Path, seconds: float = 20.0, rate: float = 200.0) -> None:
    """Ego4D's IMU CSV: gyro_x = 0.01 * canonical time (s), gravity on accl_z; one row without a canonical time
    (written NULL, another empty), two rows out of order and one repeated time, as Ego4D documents."""
    times_ms = np.arange(int(seconds * rate)) * 1000.0 / rate
    rows = [f"0,{t:.6f},{t:.6f},{t / 1e5:.9f},0.02,-0.01,0.1,-0.2,9.81" for t in times_ms]
    rows[10], rows[11] = rows[11], rows[10]
    rows.insert(20, rows[20])
    rows.insert(5, "0,3.0,NULL,0.5,0.5,0.5,1,1,1")
    rows.insert(7, "0,4.0,,0.5,0.5,0.5,1,1,1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")


def uids(held_out: bool, count: int) -> list[str]:
    chosen = [
        u for u in (f"{i:08x}-8e0c-4d4c-b2f5-6a1f2e9d{i:04x}" for i in range(400)) if in_test_split(u) == held_out
    ]
    return chosen[:count]


@pytest.fixture
def ego4d_root(tmp_path):
    a, b, c, d, f, g = uids(True, 6)
    (e,) = uids(False, 1)
    base = tmp_path / "v2"
    videos = [
        {"video_uid": a, "scenarios": ["Cooking"], "has_imu": True, "duration_sec": 20.0},
        {"video_uid": b, "scenarios": ["Carpenter"], "has_imu": True},
        {"video_uid": c, "scenarios": ["Cooking", "Cleaning / laundry"], "has_imu": True},  # two scenarios
        {"video_uid": d, "scenarios": ["Playing cards"], "has_imu": False},
        {"video_uid": e, "scenarios": ["Walking the dog"], "has_imu": True},  # not held out: a class, no items
        {"video_uid": f, "scenarios": ["Cooking"], "has_imu": True},  # IMU not downloaded
        {"video_uid": g, "scenarios": ["Carpenter"], "has_imu": True},  # no narrations
    ]
    _mkdir(base)
    (base / "ego4d.json").write_text(json.dumps({"date": "220208", "version": "v2", "videos": videos}))
    narration = lambda *times: {"narrations": [{"timestamp_sec": t, "timestamp_frame": int(t * 30),  # noqa: E731
                                                "narration_text": "#C C does something"} for t in times]}  # fmt: skip
    (_mkdir(base / "annotations") / "narration.json").write_text(json.dumps({
        a: {"narration_pass_1": narration(10.0, 3.0), "narration_pass_2": narration(4.0)},
        b: {"narration_pass_1": {"narrations": []}, "narration_pass_2": narration(4.5)},
        c: {"narration_pass_1": narration(5.0)}, e: {"narration_pass_1": narration(5.0)},
        f: {"narration_pass_1": narration(5.0, 6.0)}, g: {"status": "redacted"},
    }))  # fmt: skip
    for uid in (a, b, c, e, g):
        ego4d_imu_csv(base / "imu" / f"{uid}.csv")
    return tmp_path, (a, b, f)


def test_ego4d_imu_windows_at_narrations(ego4d_root):
    root, (a, b, f) = ego4d_root
    test = read_ego4d_imu(root / "v2")
    assert test.kind == "imu" and test.class_names == ["Carpenter", "Cooking", "Walking the dog"]
    assert test.classes == [["Carpenter"], ["Cooking"], ["Walking the dog"]]
    imu = root.resolve() / "v2" / "imu"
    expected = sorted([(a, 0.5, 1), (a, 7.5, 1), (b, 2.0, 0)])  # pass 1 of a (sorted); pass 2 of b
    assert test.items == [ImuWindow(str(imu / f"{uid}.csv"), start) for uid, start, _ in expected]
    assert test.labels == [label for *_, label in expected]
    assert test.skipped == [f"video {f}: no imu/{f}.csv (2 narrations)"]
    assert "1 held-out videos without narrations" in test.choices["narrations"]
    assert "5 videos" in test.choices["videos"] and "3 scenarios" in test.choices["videos"]
    assert "(4 videos;" in test.choices["split"]
    assert test.item_keys()[0].endswith(f"{expected[0][0]}.csv#start={expected[0][1]:.6f}")
    assert read_ego4d_imu(root).items == test.items  # the folder holding v2/
    bench = get_benchmark("ego4d-imu")
    assert bench.paper == {"top1": 25.0} and bench.chance == 0.9


def test_ego4d_imu_transform_cuts_the_window(ego4d_root):
    root, _ = ego4d_root
    test = read_ego4d_imu(root)
    transform = pickle.loads(pickle.dumps(test.transform({})))
    assert transform.fixed_output_shape == (6, 2000)
    item = next(i for i in test.items if i.start_s == 7.5)
    window = transform(item)
    assert window.shape == (6, 2000) and window.dtype == torch.float32
    steps = 7.5 + np.arange(2000) * 0.0025
    np.testing.assert_allclose(window[3].numpy(), 0.01 * steps, rtol=1e-5)  # gx follows canonical time
    np.testing.assert_allclose(window[2].numpy(), 9.81, rtol=1e-6)  # channels reordered: accl first
    early = transform(ImuWindow(item.path, -1.5))  # starts before the recording: its first sample is held
    np.testing.assert_allclose(early[3, :600].numpy(), 0.0, atol=1e-7)
    np.testing.assert_allclose(early[3, 1000].numpy(), 0.01, rtol=1e-5)
    out = torch.empty(6, 2000)
    assert transform(item, out=out).data_ptr() == out.data_ptr() and torch.equal(out, window)
    with pytest.raises(OpenBindInputError, match="window centre 22.500 s outside the recording"):
        transform(ImuWindow(item.path, 20.0))
    with pytest.raises(ValueError, match="pad"):
        test.transform({"pad": "mirror"})


def test_ego4d_imu_override_and_errors(ego4d_root, tmp_path):
    root, _ = ego4d_root
    names = [["carpentry"], ["cooking", "making food"], ["dog walking"]]
    assert read_ego4d_imu(root, classes=names).classes == names
    with pytest.raises(ValueError, match="3 classes"):
        read_ego4d_imu(root, classes=names[:2])
    (root / "v2" / "ego4d.json").rename(root / "ego4d.json")  # metadata beside v2/ is accepted too
    assert len(read_ego4d_imu(root).items) == 3
    (root / "v2" / "annotations" / "narration.json").unlink()
    with pytest.raises(OpenBindInputError, match="narration.json': file not found"):
        read_ego4d_imu(root)
    with pytest.raises(OpenBindInputError, match="ego4d.json not found"):
        read_ego4d_imu(_mkdir(tmp_path / "other" / "v2" / "imu").parent)
    bad = root / "v2" / "imu" / "broken.csv"
    bad.write_text("gyro_x,gyro_y,gyro_z,accl_x,accl_y,accl_z\n0,0,0,0,0,9.8\n")
    with pytest.raises(OpenBindInputError, match="no canonical_timestamp_ms column"):
        ImuWindows({})(ImuWindow(str(bad), 0.0))
