"""Readers of the image and video benchmarks (ImageNet-1k, Places365, Kinetics-400, MSR-VTT) on tiny copies of
the published layouts, in the real formats: JPEG, MP4 (with and without an AAC track), MATLAB v5 meta.mat, and the
annotation files as published."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import scipy.io

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import get_benchmark
from openbind.eval.benchmarks.imagenet import CLASSES_DIR, read_in1k
from openbind.eval.benchmarks.kinetics import read_k400
from openbind.eval.benchmarks.msrvtt import read_msrvtt
from openbind.eval.benchmarks.places365 import clean_name, read_places365
from media import write_image, write_mp4, write_text

# sorted-wnid indices checked by hand against the ILSVRC2012 devkit
TENCH, CRANE_BIRD, CONSTRUCTION_CRANE, TOILET_PAPER = "n01440764", "n02012849", "n03126707", "n15075141"
EXPECTED_INDEX = {TENCH: 0, CRANE_BIRD: 134, CONSTRUCTION_CRANE: 517, TOILET_PAPER: 999}

# --- tiny files ---------------------------------------------------------------------------------------------


def meta_mat(path: Path, id_to_wnid: dict[int, str]) -> Path:
    """The devkit's meta.mat: a 1xN struct array `synsets`, leaf synsets (IDs 1-1000) and one inner synset."""
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]  # fmt: skip
    entries = [(i, w, f"words of {w}", "a gloss", 0, np.zeros((1, 0)), 0, 1300) for i, w in id_to_wnid.items()]
    entries.append((1001, "n00001740", "entity", "the root", 2, np.array([[1, 2]]), 18, 0))
    synsets = np.empty((1, len(entries)), dtype=[(f, "O") for f in fields])
    for j, entry in enumerate(entries):
        for field, value in zip(fields, entry):
            synsets[0, j][field] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"synsets": synsets})
    return path


# --- ImageNet-1k --------------------------------------------------------------------------------------------


def test_imagenet_class_files():
    names = (CLASSES_DIR / "imagenet.txt").read_text(encoding="utf-8").splitlines()
    wnids = (CLASSES_DIR / "imagenet_wnids.txt").read_text(encoding="utf-8").splitlines()
    assert len(names) == len(wnids) == len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert [names[i] for i in EXPECTED_INDEX.values()] == ["tench", "crane bird", "construction crane", "toilet paper"]
    assert all(wnids[i] == w for w, i in EXPECTED_INDEX.items())
    assert (CLASSES_DIR / "LICENSE-open_clip.txt").is_file()


@pytest.fixture
def imagenet_devkit(tmp_path):
    """Images 1-4 flat in ILSVRC2012_img_val/ (image 5 missing); IDs are not class indices (ID 3 -> index 999)."""
    root = tmp_path / "imagenet"
    for i in range(1, 5):
        write_image(root / "ILSVRC2012_img_val" / f"ILSVRC2012_val_{i:08d}.JPEG", seed=i)
    data = root / "ILSVRC2012_devkit_t12" / "data"
    write_text(data / "ILSVRC2012_validation_ground_truth.txt", "2\n3\n1\n4\n2\n")
    meta_mat(data / "meta.mat", {1: TENCH, 2: CONSTRUCTION_CRANE, 3: TOILET_PAPER, 4: CRANE_BIRD})
    return root


def test_imagenet_devkit(imagenet_devkit):
    test = read_in1k(imagenet_devkit)
    assert test.kind == "image" and test.transform is None
    assert [Path(p).name for p in test.items] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 5)]
    assert test.labels == [517, 999, 0, 134]
    assert len(test.classes) == 1000 and test.class_names[517] == "construction crane"
    assert len(test.skipped) == 1 and "ILSVRC2012_val_00000005" in test.skipped[0]
    assert test.choices["layout"] == "devkit"


def test_imagenet_images_directly_in_root(tmp_path):
    root = tmp_path / "val"
    write_image(root / "ILSVRC2012_val_00000001.JPEG")
    write_text(root / "ILSVRC2012_validation_ground_truth.txt", "7\n")
    meta_mat(root / "meta.mat", {7: TOILET_PAPER})
    assert read_in1k(root).labels == [999]


def test_imagenet_class_folders(tmp_path):
    root = tmp_path / "imagenet"
    write_image(root / "val" / TOILET_PAPER / "ILSVRC2012_val_00000002.JPEG")
    write_image(root / "val" / TENCH / "ILSVRC2012_val_00000293.JPEG")
    write_image(root / "val" / TENCH / "ILSVRC2012_val_00002138.JPEG")
    (root / "val" / "n99999999").mkdir()
    (root / "val" / "misc").mkdir()
    test = read_in1k(root)
    assert test.labels == [0, 0, 999] and len(test.items) == 3
    assert test.choices["layout"] == "class folders"
    assert len(test.skipped) == 1 and "n99999999" in test.skipped[0]


def test_imagenet_kaggle(tmp_path):
    root = tmp_path / "kaggle"
    write_text(root / "LOC_val_solution.csv", "ImageId,PredictionString\n"
          f"ILSVRC2012_val_00000003,{CRANE_BIRD} 10 20 30 40 {CRANE_BIRD} 1 2 3 4 \n"
          f"ILSVRC2012_val_00000001,{TOILET_PAPER} 10 20 30 40 \n"
          f"ILSVRC2012_val_00000002,{TENCH} 5 5 9 9 \n")  # fmt: skip
    for i in (1, 3):
        write_image(root / "ILSVRC" / "Data" / "CLS-LOC" / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    test = read_in1k(root)
    assert [Path(p).stem for p in test.items] == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000003"]
    assert test.labels == [999, 134] and test.choices["layout"] == "Kaggle"
    assert len(test.skipped) == 1 and "ILSVRC2012_val_00000002" in test.skipped[0]


def test_imagenet_classes_override(imagenet_devkit):
    classes = [[f"thing {i}", f"object {i}"] for i in range(1000)]
    test = read_in1k(imagenet_devkit, classes=classes)
    assert test.classes == classes and test.class_names[999] == "thing 999" and test.labels == [517, 999, 0, 134]
    with pytest.raises(ValueError, match="in1k has 1000 classes, --classes gives 999"):
        read_in1k(imagenet_devkit, classes=classes[:999])


def test_imagenet_broken_layouts(tmp_path, imagenet_devkit):
    with pytest.raises(OpenBindInputError, match="dataset folder not found"):
        read_in1k(tmp_path / "absent")
    write_image(tmp_path / "bare" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(OpenBindInputError, match="no ImageNet validation labels"):
        read_in1k(tmp_path / "bare")
    (imagenet_devkit / "ILSVRC2012_devkit_t12" / "data" / "meta.mat").unlink()
    with pytest.raises(OpenBindInputError, match="no meta.mat"):
        read_in1k(imagenet_devkit)
    meta_mat(imagenet_devkit / "meta.mat", {1: TENCH})  # the ground truth also names IDs 2-4
    with pytest.raises(OpenBindInputError, match="line 1: '2' is not an ILSVRC2012_ID"):
        read_in1k(imagenet_devkit)
    scipy.io.savemat(imagenet_devkit / "meta.mat", {"classes": np.arange(3)})
    with pytest.raises(OpenBindInputError, match="not the devkit's meta.mat"):
        read_in1k(imagenet_devkit)


# --- Places365 ----------------------------------------------------------------------------------------------


@pytest.fixture
def places(tmp_path):
    root = tmp_path / "places365"
    write_text(root / "filelist_places365-standard" / "categories_places365.txt",
          "/a/airfield 0\n/a/apartment_building/outdoor 1\n/b/bus_interior 2\n")  # fmt: skip
    write_text(root / "filelist_places365-standard" / "places365_val.txt",
          "Places365_val_00000001.jpg 2\nPlaces365_val_00000002.jpg 0\n"
          "Places365_val_00000003.jpg 1\nPlaces365_val_00000004.jpg 1\n")  # fmt: skip
    for i in (1, 2, 4):
        write_image(root / "val_256" / f"Places365_val_{i:08d}.jpg", seed=i)
    write_image(root / "val_large" / "Places365_val_00000001.jpg")
    return root


def test_places365(places):
    test = read_places365(places)
    assert [Path(p).relative_to(places).as_posix() for p in test.items] == [
        "val_256/Places365_val_00000001.jpg", "val_256/Places365_val_00000002.jpg",
        "val_256/Places365_val_00000004.jpg"]  # fmt: skip
    assert test.labels == [2, 0, 1]
    assert test.classes == [["airfield"], ["apartment building outdoor"], ["bus interior"]]
    assert len(test.skipped) == 1 and test.skipped[0].startswith("line 3: no Places365_val_00000003.jpg")


def test_places365_names():
    assert clean_name("/a/apartment_building/outdoor") == "apartment building outdoor"
    assert clean_name("/s/science_museum") == "science museum"
    assert clean_name("/f/field/cultivated") == "field cultivated"


def test_places365_classes_override_and_errors(places):
    test = read_places365(places, classes=[["runway"], ["block of flats", "apartment house"], ["bus inside"]])
    assert test.class_names == ["runway", "block of flats", "bus inside"] and test.labels == [2, 0, 1]
    with pytest.raises(ValueError, match="places365 has 3 classes, --classes gives 2"):
        read_places365(places, classes=[["a"], ["b"]])
    write_text(places / "filelist_places365-standard" / "places365_val.txt", "Places365_val_00000001.jpg 3\n")
    with pytest.raises(OpenBindInputError, match="line 1"):
        read_places365(places)
    (places / "filelist_places365-standard" / "places365_val.txt").unlink()
    with pytest.raises(OpenBindInputError, match="no places365_val.txt"):
        read_places365(places)


# --- Kinetics-400 -------------------------------------------------------------------------------------------

K400_CSV = """label,youtube_id,time_start,time_end,split,is_cc
abseiling,--07WQ2iBlw,1,11,val,0
"passing American football (in game)",-0a_SYAbYd8,4,14,val,0
massaging person's head,0yUjNQkqRKM,30,40,val,0
abseiling,1bJ2_mRTxtw,0,10,val,0
air drumming,zz9T0X8wI3g,120,130,val,0
"""


@pytest.fixture
def kinetics(tmp_path):
    """Row 5's clip (the only 'air drumming') is missing; one clip sits in a label folder, one lacks the times."""
    root = tmp_path / "k400"
    write_text(root / "annotations" / "val.csv", K400_CSV)
    write_mp4(root / "val" / "--07WQ2iBlw_000001_000011.mp4")
    write_mp4(root / "val" / "-0a_SYAbYd8_000004_000014.mp4")
    write_mp4(root / "val" / "massaging person's head" / "0yUjNQkqRKM_000030_000040.mp4")
    write_mp4(root / "val" / "1bJ2_mRTxtw.mp4")
    return root


def test_kinetics(kinetics):
    test = read_k400(kinetics)
    assert test.kind == "video" and test.transform is None
    assert [Path(p).name for p in test.items] == [
        "--07WQ2iBlw_000001_000011.mp4", "-0a_SYAbYd8_000004_000014.mp4", "0yUjNQkqRKM_000030_000040.mp4",
        "1bJ2_mRTxtw.mp4"]  # fmt: skip
    assert test.class_names == ["abseiling", "air drumming", "massaging person's head",
                                "passing American football (in game)"]  # fmt: skip
    assert test.labels == [0, 3, 2, 0]
    assert len(test.skipped) == 1 and test.skipped[0].startswith("line 6: no file for YouTube id zz9T0X8wI3g")


def test_kinetics_label_folders_without_csv(tmp_path):
    root = tmp_path / "k400"
    write_mp4(root / "val" / "air_drumming" / "a.mp4")
    write_mp4(root / "val" / "abseiling" / "b.mp4")
    write_mp4(root / "val" / "abseiling" / "c.mp4")
    test = read_k400(root)
    assert test.class_names == ["abseiling", "air drumming"] and test.labels == [0, 0, 1]
    assert [Path(p).name for p in test.items] == ["b.mp4", "c.mp4", "a.mp4"]


def test_kinetics_classes_override_and_errors(kinetics, tmp_path):
    classes = [["rope descent"], ["drumming in the air"], ["head massage"], ["american football"]]
    test = read_k400(kinetics, classes=classes)
    assert test.class_names == ["rope descent", "drumming in the air", "head massage", "american football"]
    with pytest.raises(ValueError, match="k400 has 4 classes, --classes gives 3"):
        read_k400(kinetics, classes=classes[:3])
    write_text(kinetics / "annotations" / "val.csv", "label,youtube_id,time_start,time_end\nabseiling,x,start,10\n")
    with pytest.raises(OpenBindInputError, match="line 2: time_start"):
        read_k400(kinetics)
    write_text(kinetics / "annotations" / "val.csv", "label,youtube_id\nabseiling,x\n")
    with pytest.raises(OpenBindInputError, match="lacks column"):
        read_k400(kinetics)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OpenBindInputError, match="no val.csv or validate.csv and no label folders"):
        read_k400(tmp_path / "empty")


# --- MSR-VTT ------------------------------------------------------------------------------------------------


@pytest.fixture
def msrvtt(tmp_path):
    root = tmp_path / "msrvtt"
    write_text(root / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\n"
          "ret0,msr7010,video7010,a man is talking about a car\n"
          'ret1,msr7011,video7011,"a girl sings, then dances"\n'
          "ret2,msr7012,video7012,people are running in a race\n")  # fmt: skip
    write_mp4(root / "MSRVTT" / "videos" / "all" / "video7010.mp4", sound=True)
    write_mp4(root / "MSRVTT" / "videos" / "all" / "video7012.mp4")
    return root


def test_msrvtt(msrvtt):
    test = read_msrvtt(msrvtt)
    assert test.kind == "video" and test.transform is None
    assert [Path(p).name for p in test.items] == ["video7010.mp4", "video7012.mp4"]
    assert test.queries == ["a man is talking about a car", "people are running in a race"]
    assert test.query_targets == [[0], [1]]
    assert len(test.skipped) == 1 and test.skipped[0].startswith("line 3: no file for video7011")
    assert test.choices["audio_weight"] == 0.05
    with av.open(test.items[0]) as with_sound, av.open(test.items[1]) as silent:  # the same files feed audio
        assert len(with_sound.streams.audio) == 1 and len(silent.streams.audio) == 0


def test_msrvtt_errors(msrvtt, tmp_path):
    with pytest.raises(ValueError, match="no classes"):
        read_msrvtt(msrvtt, classes=[["a"]])
    (tmp_path / "empty").mkdir()
    with pytest.raises(OpenBindInputError, match="no MSRVTT_JSFUSION_test.csv"):
        read_msrvtt(tmp_path / "empty")
    write_text(msrvtt / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr9999,video9999,a cat\n")
    with pytest.raises(OpenBindInputError, match="none of its media files was found.*no file for video9999"):
        read_msrvtt(msrvtt)


# --- registration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, task, metric, paper, chance",
    [("in1k", "classification", "top1", 77.7, 0.1), ("places365", "classification", "top1", 45.4, 0.27),
     ("k400", "classification", "top1", 50.0, 0.25), ("msrvtt", "retrieval", "R@1", 36.1, 0.1)],
)  # fmt: skip
def test_registered(name, task, metric, paper, chance):
    benchmark = get_benchmark(name)
    assert (benchmark.task, benchmark.metric, benchmark.chance) == (task, metric, chance)
    assert benchmark.paper[metric] == paper
    assert benchmark.layout.startswith("<root>/")


def test_msrvtt_paper_audio_numbers():
    paper = get_benchmark("msrvtt").paper
    assert (paper["audio R@1"], paper["audio R@10"], paper["A+V R@1"], paper["A+V R@10"]) == (6.8, 27.2, 36.8, 70.0)
