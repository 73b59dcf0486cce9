"""The audio benchmark readers (ESC-50, AudioSet, AudioCaps, VGGSound, Clotho) on tiny copies of the published
layouts: real WAV/FLAC/MP4 files, the CSVs as their publishers write them (comment lines, quoting, no header)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openbind.eval.fewshot import ProbeRecipe
from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.audioset import read_audiocaps, read_audioset
from openbind.eval.benchmarks.base import get_benchmark
from openbind.eval.benchmarks.clotho import read_clotho
from openbind.eval.benchmarks.esc50 import read_esc50
from openbind.eval.benchmarks.layout import MediaFiles
from openbind.eval.benchmarks.vggsound import read_vggsound
from media import write_audio, write_mp4, write_text


# --- finding clips by YouTube id ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ytid, start",
    [
        ("Y--PJHxphWEs.wav", "--PJHxphWEs", "30.000"),
        ("YYb_0jZbJ1Ws.wav", "Yb_0jZbJ1Ws", "0.000"),  # an id that starts with Y
        ("--PJHxphWEs_30000_40000.flac", "--PJHxphWEs", "30.000"),
        ("Y--PJHxphWEs_30.000_40.000.wav", "--PJHxphWEs", "30.000"),
        ("--PJHxphWEs_30.000.wav", "--PJHxphWEs", "30.000"),
        ("--PJHxphWEs_30.wav", "--PJHxphWEs", "30.000"),
        ("--PJHxphWEs.wav", "--PJHxphWEs", "30.000"),
        ("a_b-cdefghi_000030.mp4", "a_b-cdefghi", "30"),
        ("a_b-cdefghi_000030_000040.wav", "a_b-cdefghi", "30"),
        ("a_b-cdefghi_2500_12500.flac", "a_b-cdefghi", "2.500"),
    ],
)
def test_clip_namings(tmp_path, name, ytid, start):
    write_text(tmp_path / "deep" / "er" / name, "x")
    write_text(tmp_path / "other" / "ZZZZZZZZZZZ_30.wav", "x")
    media = MediaFiles(tmp_path)
    assert media.clip(ytid, start) == tmp_path / "deep" / "er" / name
    untimed = name in (f"Y{ytid}.wav", f"{ytid}.wav")  # such a name holds the only clip of its video
    assert (media.clip(ytid, "20") is not None) == untimed


def test_clip_prefers_audio_and_a_timed_name(tmp_path):
    for name in ("abcdefghijk_10.mp4", "abcdefghijk_10.flac", "abcdefghijk.wav", "._abcdefghijk_10.wav"):
        write_text(tmp_path / name, "x")
    assert MediaFiles(tmp_path).clip("abcdefghijk", "10.000").name == "abcdefghijk_10.flac"


# --- ESC-50 -------------------------------------------------------------------------------------------------

ESC_CSV = """filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-100038-A-14.wav,1,2,chirping_birds,False,100038,A
2-102414-A-17.wav,2,1,door_wood_knock,False,102414,A
2-104436-A-0.wav,2,0,dog,True,104436,A
3-110389-A-14.wav,3,2,chirping_birds,False,110389,A
"""


@pytest.fixture
def esc50(tmp_path):
    root = tmp_path / "ESC-50-master"
    write_text(root / "meta" / "esc50.csv", ESC_CSV)
    for line in ESC_CSV.splitlines()[1:-1]:  # the last clip is missing
        write_audio(root / "audio" / line.split(",")[0])
    return root


def test_esc50(esc50):
    for root in (esc50, esc50.parent):  # the archive's folder, or the folder it was unpacked into
        test = read_esc50(root)
        assert test.kind == "audio" and test.transform is None
        assert [Path(p).name for p in test.items] == [
            "1-100032-A-0.wav", "1-100038-A-14.wav", "2-102414-A-17.wav", "2-104436-A-0.wav"
        ]  # fmt: skip
        assert test.labels == [0, 2, 1, 0] and test.groups == [1, 1, 2, 2]
        assert test.class_names == ["dog", "door wood knock", "chirping birds"]
        assert test.classes == [["dog"], ["door wood knock"], ["chirping birds"]]
        assert test.skipped == [f"row 5: no file {esc50.resolve() / 'audio' / '3-110389-A-14.wav'}"]
    benchmark = get_benchmark("esc50")
    assert benchmark.probe == ProbeRecipe(lr=1.6e-3, weight_decay=0.05, epochs=50) and benchmark.paper == {"top1": 66.9} and benchmark.chance == 2.0


def test_esc50_classes_override(esc50):
    test = read_esc50(esc50, [["a dog", "a puppy"], ["knocking"], ["birds"]])
    assert test.classes == [["a dog", "a puppy"], ["knocking"], ["birds"]]
    assert test.class_names == ["dog", "door wood knock", "chirping birds"]
    with pytest.raises(ValueError, match="3 classes, --classes gives 2"):
        read_esc50(esc50, [["a"], ["b"]])
    with pytest.raises(ValueError, match="esc50: class 2 of --classes .* has no name"):
        read_esc50(esc50, [["a"], [], ["c"]])


def test_esc50_broken_layouts(tmp_path, esc50):
    with pytest.raises(OpenBindInputError, match="meta/esc50.csv"):
        read_esc50(esc50 / "audio")
    with pytest.raises(OpenBindInputError, match="dataset folder not found"):
        read_esc50(tmp_path / "nowhere")
    write_text(tmp_path / "ESC-50-copy" / "meta" / "esc50.csv", ESC_CSV)
    with pytest.raises(OpenBindInputError, match="several meta/esc50.csv"):
        read_esc50(tmp_path)
    write_text(esc50 / "meta" / "esc50.csv", ESC_CSV.replace(",2,chirping_birds,", ",7,chirping_birds,"))
    with pytest.raises(OpenBindInputError, match=r"targets must be 0..N-1"):
        read_esc50(esc50)
    write_text(esc50 / "meta" / "esc50.csv", ESC_CSV.replace("1,0,dog", "1,x,dog", 1))
    with pytest.raises(OpenBindInputError, match="row 1: target 'x'"):
        read_esc50(esc50)
    write_text(esc50 / "meta" / "esc50.csv", "filename,fold,category\n")
    with pytest.raises(OpenBindInputError, match=r"lacks column\(s\) \['target'\]"):
        read_esc50(esc50)
    write_text(esc50 / "meta" / "esc50.csv", ESC_CSV)
    for wav in (esc50 / "audio").iterdir():
        wav.unlink()
    with pytest.raises(OpenBindInputError, match="none of its media files was found.*row 1: no file"):
        read_esc50(esc50)


# --- AudioSet and AudioCaps ---------------------------------------------------------------------------------

SEGMENTS_CSV = """# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=5, num_segs=5, num_unique_labels=4, num_positive_labels=7
# YTID, start_seconds, end_seconds, positive_labels
--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_,/m/0bt9lr"
--BfvyPmVMo, 20.000, 30.000, "/m/03l9g"
--U7joUcTCo, 0.000, 10.000, "/m/01b_21"
-0DdlOuIFUI, 50.000, 60.000, "/m/0bt9lr,/m/068hy"
-0Gj8-vB1q4, 30.000, 40.000, "/m/01b_21,/m/03l9g"
"""

LABELS_CSV = """index,mid,display_name
0,/m/068hy,"Domestic animals, pets"
1,/m/07q6cd_,Squeak
2,/m/0bt9lr,Dog
3,/m/03l9g,Hammer
4,/m/01b_21,Cough
"""


@pytest.fixture
def audioset(tmp_path):
    root = tmp_path / "audioset"
    write_text(root / "eval_segments.csv", SEGMENTS_CSV)
    write_text(root / "class_labels_indices.csv", LABELS_CSV)
    write_audio(root / "eval" / "audio" / "Y--4gqARaEJE.wav")
    write_audio(root / "flac" / "--BfvyPmVMo_20000_30000.flac")
    write_mp4(root / "videos" / "-0DdlOuIFUI_50.000.mp4", sound=True)
    write_audio(root / "-0Gj8-vB1q4_30.wav")  # --U7joUcTCo is missing
    return root


def test_audioset(audioset):
    test = read_audioset(audioset)
    assert test.kind == "audio" and test.transform is None
    assert [Path(p).name for p in test.items] == [
        "Y--4gqARaEJE.wav", "--BfvyPmVMo_20000_30000.flac", "-0DdlOuIFUI_50.000.mp4", "-0Gj8-vB1q4_30.wav"
    ]  # fmt: skip
    assert test.labels == [[0, 1, 2], [3], [0, 2], [3, 4]]
    assert test.class_names == ["Domestic animals, pets", "Squeak", "Dog", "Hammer", "Cough"]
    assert test.classes[0] == ["Domestic animals, pets"] and len(test.classes) == 5
    assert test.skipped == ["data row 3: no file for YTID --U7joUcTCo (start 0.000)"]
    assert get_benchmark("audioset").task == "multilabel" and get_benchmark("audioset").paper == {"mAP": 17.6}


def test_a_video_counts_by_its_sound_track(audioset):
    from openbind.modalities.audio.transform import AudioTransform

    video = read_audioset(audioset).items[2]
    assert AudioTransform(sampler="paper")(video).shape == (1, 1, 128, 204)


def test_audioset_classes_override_and_errors(audioset):
    five = [[f"class {i}"] for i in range(5)]
    assert read_audioset(audioset, five).classes == five
    with pytest.raises(ValueError, match="audioset has 5 classes, --classes gives 4"):
        read_audioset(audioset, five[:4])
    write_text(audioset / "eval_segments.csv", SEGMENTS_CSV.replace("/m/03l9g", "/m/unknown", 1))
    with pytest.raises(OpenBindInputError, match=r"data row 2: labels \['/m/unknown'\]"):
        read_audioset(audioset)
    write_text(audioset / "eval_segments.csv", SEGMENTS_CSV + 'abcdefghijk, soon, 10.000, "/m/03l9g"\n')
    with pytest.raises(OpenBindInputError, match="data row 6: start 'soon' is not a time"):
        read_audioset(audioset)
    (audioset / "class_labels_indices.csv").unlink()
    with pytest.raises(OpenBindInputError, match="no class_labels_indices.csv beneath"):
        read_audioset(audioset)


AUDIOCAPS_CSV = """audiocap_id,youtube_id,start_time,caption
97151,vfY_TJq7n_U,130,Rustling occurs and a person speaks
97152,vfY_TJq7n_U,130,"A man talks, then paper rustles"
97153,--4gqARaEJE,0,A dog barks
97154,gone0000000,30,Wind blows
97155,--4gqARaEJE,0,Dogs bark and a squeak
97156,--4gqARaEJE,20,A dog barks later
"""


def test_audiocaps(tmp_path):
    root = tmp_path / "audiocaps"
    write_text(root / "AudioCaps_retrieval_dataset" / "retrieval_test.csv", AUDIOCAPS_CSV)
    write_audio(root / "audio" / "test" / "vfY_TJq7n_U_130000_140000.wav")
    write_audio(root / "audio" / "test" / "--4gqARaEJE_0.flac")
    write_audio(root / "audio" / "test" / "--4gqARaEJE_20.flac")
    test = read_audiocaps(root)
    assert test.kind == "audio"
    assert [Path(p).name for p in test.items] == [
        "vfY_TJq7n_U_130000_140000.wav", "--4gqARaEJE_0.flac", "--4gqARaEJE_20.flac"
    ]  # fmt: skip
    assert test.queries == [
        "Rustling occurs and a person speaks", "A man talks, then paper rustles", "A dog barks",
        "Dogs bark and a squeak", "A dog barks later",
    ]  # fmt: skip
    assert test.query_targets == [[0], [0], [1], [1], [2]]
    assert test.skipped == ["row 4: no file for YTID gone0000000 (start 30); its captions dropped"]
    assert get_benchmark("audiocaps").paper == {"R@1": 9.3, "R@10": 42.3}
    with pytest.raises(ValueError, match="retrieval"):
        read_audiocaps(root, [["x"]])
    with pytest.raises(OpenBindInputError, match="(?s)no retrieval_test.csv beneath.*AudioCaps_retrieval_dataset/retrieval_test.csv"):
        read_audiocaps(root / "audio")


# --- VGGSound -----------------------------------------------------------------------------------------------

VGGSOUND_CSV = """---g-f_I2yQ,1,people marching,test
--0PQM4-hqg,30,waterfall burbling,train
--56QUhyDQM,185,"engine accelerating, revving, vroom",test
--5OkAjCI7g,40,"playing tabla",test
-1nDNUChAqY,0,dog barking,test
--8puiAGLhs,30,alarm clock ringing,train
"""


@pytest.fixture
def vggsound(tmp_path):
    root = tmp_path / "vggsound"
    write_text(root / "vggsound.csv", VGGSOUND_CSV)
    write_mp4(root / "video" / "---g-f_I2yQ_000001.mp4", sound=True)
    write_audio(root / "audio" / "--56QUhyDQM_000185_000195.wav")
    write_audio(root / "audio" / "scratch" / "-1nDNUChAqY_000000.flac")  # --5OkAjCI7g is missing
    write_audio(root / "audio" / "--0PQM4-hqg_000030.wav")  # a train clip: not read
    return root


def test_vggsound(vggsound):
    test = read_vggsound(vggsound)
    names = [
        "alarm clock ringing", "dog barking", "engine accelerating, revving, vroom", "people marching",
        "playing tabla", "waterfall burbling",
    ]  # fmt: skip
    assert test.class_names == names and test.classes == [[n] for n in names]
    assert [Path(p).name for p in test.items] == [
        "---g-f_I2yQ_000001.mp4", "--56QUhyDQM_000185_000195.wav", "-1nDNUChAqY_000000.flac"
    ]  # fmt: skip
    assert test.labels == [3, 2, 1]
    assert test.skipped == ["row 4: no file for YTID --5OkAjCI7g (start 40)"]
    six = [[f"c{i}"] for i in range(6)]
    assert read_vggsound(vggsound, six).classes == six
    with pytest.raises(ValueError, match="vggsound has 6 classes, --classes gives 1"):
        read_vggsound(vggsound, six[:1])


def test_vggsound_header_and_broken_rows(vggsound):
    write_text(vggsound / "vggsound.csv", "youtube_id,start_seconds,label,split\n" + VGGSOUND_CSV)
    assert len(read_vggsound(vggsound).items) == 3
    write_text(vggsound / "vggsound.csv", VGGSOUND_CSV + "abcdefghijk,10,dog barking,validation\n")
    with pytest.raises(OpenBindInputError, match="row 7: .* is not youtube_id, start_seconds, label, train\\|test"):
        read_vggsound(vggsound)
    (vggsound / "vggsound.csv").unlink()
    with pytest.raises(OpenBindInputError, match="no vggsound.csv beneath"):
        read_vggsound(vggsound)


# --- Clotho -------------------------------------------------------------------------------------------------

CLOTHO_CSV = """file_name,caption_1,caption_2,caption_3,caption_4,caption_5
Santa Motor.wav,A machine whines and squeals.,A motor runs.,An engine hums.,"A car, idling.",A motor.
"01 barreau bunker, fence.wav",Wind on a fence.,A fence rattles.,Metal clangs.,Wind blows.,Rattling.
Gone missing.wav,One.,Two.,Three.,Four.,Five.
"""


def test_clotho(tmp_path):
    root = tmp_path / "clotho"
    write_text(root / "clotho_captions_evaluation.csv", CLOTHO_CSV)
    write_audio(root / "evaluation" / "Santa Motor.wav")
    write_audio(root / "01 barreau bunker, fence.wav")  # beside the CSV
    test = read_clotho(root)
    assert [Path(p).name for p in test.items] == ["Santa Motor.wav", "01 barreau bunker, fence.wav"]
    assert len(test.queries) == 10 and test.queries[3] == "A car, idling." and test.queries[5] == "Wind on a fence."
    assert test.query_targets == [[0]] * 5 + [[1]] * 5
    assert test.skipped == ["row 3: no file 'Gone missing.wav'; its captions dropped"]
    assert get_benchmark("clotho").paper == {"R@1": 6.0, "R@10": 28.4}
    with pytest.raises(ValueError, match="retrieval"):
        read_clotho(root, [["x"]])
    write_text(root / "clotho_captions_evaluation.csv", "file_name,caption_1\nSanta Motor.wav,A motor.\n")
    with pytest.raises(OpenBindInputError, match="lacks column"):
        read_clotho(root)
