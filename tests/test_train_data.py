"""Training data pipeline: manifests, dataset layouts, pair datasets, the mixing batch sampler, the cache."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from openbind.errors import OpenBindInputError
from openbind.modalities.depth.transform import DepthTransform
from openbind.data.manifest import read_manifest, write_manifest
from openbind.data.readers import read_audioset, read_ego4d, read_llvip, read_sunrgbd
from openbind.modalities.batch import ItemFailure
from openbind.data.items import transform_signature
from openbind.train.cache import EmbeddingCache, module_fingerprint
from openbind.train.loader import make_loader
from openbind.train.pairs import ConcatPairs, PairDataset, collate_pairs, replication_order
from openbind.train.sampler import MixedPairBatchSampler, PairKey
from media import write_audio, write_depth, write_image, write_imu_csv, write_mp4

# --- tiny files ---------------------------------------------------------------------------------------------


def csv_manifest(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


# --- manifests ----------------------------------------------------------------------------------------------


def test_csv_manifest_resolves_relative_paths_and_keeps_metadata(tmp_path):
    write_image(tmp_path / "data" / "img" / "a.png")
    write_image(tmp_path / "data" / "img" / "b.png", seed=1)
    path = csv_manifest(
        tmp_path / "data" / "train.csv",
        ["image", "text", "label", "source"],
        [["img/a.png", "a red square", "3", "web"], ["img/b.png", "", "5", "book"]],
    )
    manifest = read_manifest(path)
    assert manifest.modalities == ["image", "text"]
    assert manifest.metadata == ["label", "source"]
    assert len(manifest) == 2
    first, second = manifest.rows
    assert first["image"] == str((tmp_path / "data" / "img" / "a.png").resolve())
    assert first["text"] == "a red square" and first["label"] == "3" and first["source"] == "web"
    assert second["text"] is None  # an empty cell: this row has no caption
    assert manifest.source == path and len(manifest.fingerprint) == 64


def test_jsonl_manifest_and_absolute_paths(tmp_path):
    image = write_image(tmp_path / "x.png")
    audio = write_audio(tmp_path / "sub" / "x.wav")
    lines = [
        {"image": str(image), "audio": "sub/x.wav", "label": 7, "tags": ["dog", "bark"]},
        {"image": "x.png", "text": "a dog"},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    manifest = read_manifest(path)
    assert manifest.modalities == ["image", "text", "audio"]
    assert manifest.metadata == ["label", "tags"]
    assert manifest.rows[0]["audio"] == str(audio.resolve()) and manifest.rows[0]["image"] == str(image)
    assert manifest.rows[0]["label"] == 7 and manifest.rows[0]["tags"] == ["dog", "bark"]
    assert manifest.rows[1]["audio"] is None and manifest.rows[1]["text"] == "a dog"


def test_missing_files_are_all_reported_with_rows(tmp_path):
    write_image(tmp_path / "ok.png")
    path = csv_manifest(
        tmp_path / "m.csv",
        ["image", "depth"],
        [["ok.png", "d1.png"], ["ok.png", ""], ["gone.png", "d3.png"]],
    )
    with pytest.raises(OpenBindInputError) as info:
        read_manifest(path)
    message = str(info.value)
    assert "3 referenced file(s) missing" in message
    assert "row 1 (line 2) depth" in message and "d1.png" in message
    assert "row 3 (line 4) image" in message and "row 3 (line 4) depth" in message
    kept = read_manifest(path, missing="skip")
    assert len(kept) == 1 and kept.rows[0]["depth"] is None and len(kept.skipped) == 3


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", "", "no header"),
        ("nomod.csv", "path,label\na.png,1\n", "no modality column"),
        ("ragged.csv", "image,label\na.png\n", "line 2 has 1 fields"),
        ("dup.csv", "image,image\na.png,b.png\n", "duplicate"),
        ("headeronly.csv", "image,label\n", "no data rows"),
        ("bad.jsonl", '{"image": "a.png"}\nnot json\n', "line 2 is not JSON"),
        ("list.jsonl", '["a.png"]\n', "not a JSON object"),
        ("num.jsonl", '{"image": 3}\n', "must be a string"),
        ("m.parquet", "x", "unknown manifest format"),
    ],
)
def test_manifest_errors(tmp_path, name, content, reason):
    (tmp_path / name).write_text(content)
    with pytest.raises(OpenBindInputError, match=reason):
        read_manifest(tmp_path / name)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(OpenBindInputError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_write_manifest_round_trip(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    source = csv_manifest(tmp_path / "a" / "m.csv", ["image", "text", "label"], [["x.png", '"hi, there"', "1"]])
    manifest = read_manifest(source)
    copy = read_manifest(write_manifest(manifest, tmp_path / "b" / "copy.csv"))
    assert copy.rows == manifest.rows and copy.fingerprint == manifest.fingerprint
    assert "../a/x.png" in (tmp_path / "b" / "copy.csv").read_text()


# --- dataset layouts ----------------------------------------------------------------------------------------


def test_sunrgbd_layout(tmp_path):
    root = tmp_path / "SUNRGBD"
    for i, (sensor, label) in enumerate([("kv1/NYUdata/NYU0001", "bedroom"), ("kv2/align/0002", None)]):
        scene = root / sensor
        write_image(scene / "image" / f"{i}.jpg")
        write_depth(scene / "depth" / f"{i}.png")
        if i == 0:
            write_depth(scene / "depth_bfx" / f"{i}.png")
            (scene / "scene.txt").write_text(f"{label}\n")
    manifest = read_sunrgbd(root)
    assert manifest.modalities == ["image", "depth"] and manifest.metadata == ["label", "scene"]
    assert [r["scene"] for r in manifest.rows] == ["kv1/NYUdata/NYU0001", "kv2/align/0002"]
    assert manifest.rows[0]["depth"].endswith("depth_bfx/0.png") and manifest.rows[1]["depth"].endswith("depth/1.png")
    assert [r["label"] for r in manifest.rows] == ["bedroom", None]
    assert manifest.transforms["depth"] == DepthTransform(encoding="sunrgbd")
    write_image(root / "broken" / "image" / "z.jpg")  # no depth folder
    with pytest.raises(OpenBindInputError, match="broken: 1 image"):
        read_sunrgbd(root)


def test_llvip_layout(tmp_path):
    for name in ("010001.jpg", "010002.jpg"):
        write_image(tmp_path / "visible" / "train" / name)
        write_image(tmp_path / "infrared" / "train" / name, gray=True)
    write_image(tmp_path / "visible" / "test" / "190001.jpg")
    write_image(tmp_path / "infrared" / "test" / "190001.jpg", gray=True)
    train = read_llvip(tmp_path)
    assert train.modalities == ["image", "thermal"] and [r["name"] for r in train.rows] == ["010001.jpg", "010002.jpg"]
    assert train.rows[1]["thermal"] == str(tmp_path.resolve() / "infrared" / "train" / "010002.jpg")
    assert len(read_llvip(tmp_path, split="test")) == 1
    write_image(tmp_path / "visible" / "train" / "010003.jpg")
    with pytest.raises(OpenBindInputError, match="1 file.*without a pair.*010003"):
        read_llvip(tmp_path)


def test_audioset_layout(tmp_path):
    segments = tmp_path / "balanced_train_segments.csv"
    segments.write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
        'abc123, 5.000, 15.000, "/m/04rlf"\n'
        'gone99, 0.000, 10.000, "/m/0jbk"\n'
    )
    media = tmp_path / "clips"
    write_mp4(media / "--PJHxphWEs_30.000.mp4", sound=True)
    write_audio(media / "abc123_5.wav")
    manifest = read_audioset(segments, media)
    assert manifest.modalities == ["video", "audio"]
    first, second = manifest.rows
    assert first["video"] == first["audio"] == str(media.resolve() / "--PJHxphWEs_30.000.mp4")
    assert first["label"] == "/m/09x0r,/t/dd00088" and first["ytid"] == "--PJHxphWEs" and first["end"] == "40.000"
    assert second["video"] is None and second["audio"].endswith("abc123_5.wav")
    assert len(manifest.skipped) == 1 and "gone99" in manifest.skipped[0]
    with pytest.raises(OpenBindInputError, match="1 segment"):
        read_audioset(segments, media, missing="error")


def test_ego4d_layout(tmp_path):
    write_mp4(tmp_path / "clip_a.mp4")
    write_imu_csv(tmp_path / "clip_a.csv")
    manifest = read_ego4d(tmp_path)
    assert manifest.modalities == ["video", "imu"] and manifest.rows[0]["uid"] == "clip_a"
    write_mp4(tmp_path / "clip_b.mp4")
    with pytest.raises(OpenBindInputError, match="clip_b"):
        read_ego4d(tmp_path)


# --- pair datasets ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    files = {
        "image": write_image(root / "i.png"),
        "depth": write_depth(root / "d.png"),
        "thermal": write_image(root / "t.png", gray=True),
        "audio": write_audio(root / "a.wav"),
        "video": write_mp4(root / "v.mp4", sound=True),
        "imu": write_imu_csv(root / "m.csv"),
    }
    header = ["image", "video", "text", "audio", "depth", "thermal", "imu"]
    row = [files["image"].name, files["video"].name, "a tiny test scene", files["audio"].name,
           files["depth"].name, files["thermal"].name, files["imu"].name]  # fmt: skip
    return read_manifest(csv_manifest(root / "all.csv", header, [row, row]))


@pytest.mark.parametrize(
    ("anchor", "other", "anchor_shape", "other_shape"),
    [
        ("image", "text", (3, 224, 224), (77,)),
        ("image", "audio", (3, 224, 224), (1, 128, 204)),
        ("image", "depth", (3, 224, 224), (1, 224, 224)),
        ("image", "thermal", (3, 224, 224), (1, 224, 224)),
        ("video", "imu", (3, 2, 224, 224), (6, 2000)),
        ("video", "audio", (3, 2, 224, 224), (1, 128, 204)),
    ],
)
def test_pair_dataset_shapes(media, anchor, other, anchor_shape, other_shape):
    dataset = PairDataset(media, anchor, other)
    item = dataset[1]
    assert item["index"] == 1
    assert tuple(item["anchor"].shape) == anchor_shape and tuple(item["other"].shape) == other_shape
    assert item["anchor"].dtype == torch.float32
    assert item["other"].dtype == (torch.int64 if other == "text" else torch.float32)
    batch = collate_pairs([dataset[0], dataset[1]])
    assert tuple(batch["anchor"].shape) == (2, *anchor_shape) and batch["index"].tolist() == [0, 1]
    assert batch["num_bad"] == 0


def test_pair_dataset_values_follow_the_transforms(media):
    from openbind.modalities.depth.transform import DepthTransform
    from openbind.modalities.vision.transform import ImageTransform
    from openbind.modalities.text.tokenizer import tokenize

    item = PairDataset(media, "image", "text")[0]
    assert torch.equal(item["anchor"], ImageTransform()(media.rows[0]["image"]))
    assert torch.equal(item["other"], tokenize("a tiny test scene")[0])
    depth = PairDataset(media, "image", "depth", transforms={"depth": DepthTransform(max_disparity=None)})[0]
    assert torch.allclose(depth["other"], torch.full((1, 224, 224), 0.075 * 518.857901 / 2.0))


def test_pair_dataset_without_anchor_and_row_filtering(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", seed=2)
    manifest = read_manifest(csv_manifest(tmp_path / "m.csv", ["image", "text"], [["a.png", "x"], ["b.png", ""]]))
    dataset = PairDataset(manifest, "image", "text", load_anchor=False)
    assert len(dataset) == 1 and dataset.rows == [0]
    item = dataset[0]
    assert item["anchor"] is None and item["other"].shape == (77,)
    assert collate_pairs([item])["anchor"] is None
    with pytest.raises(ValueError, match="anchor must be") as bad_option:
        PairDataset(manifest, "text", "image")
    assert not isinstance(bad_option.value, OpenBindInputError)  # a bad option, not a bad item
    with pytest.raises(OpenBindInputError, match="no \\['audio'\\] column"):
        PairDataset(manifest, "image", "audio")


def test_corrupt_file_is_skipped_and_reported(tmp_path):
    for name in ("a", "b", "c", "d"):
        write_image(tmp_path / f"{name}.png", seed=ord(name))
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    rows = [[f"{n}.png", f"caption {n}"] for n in "abcd"]
    dataset = PairDataset(read_manifest(csv_manifest(tmp_path / "m.csv", ["image", "text"], rows)), "image", "text")
    bad = dataset[2]
    assert isinstance(bad, ItemFailure) and bad.index == 2 and bad.kind == "image" and bad.item.endswith("c.png")
    loader = make_loader([dataset], 4, seed=0, epoch=0, num_workers=0)
    batches = list(loader)
    assert len(batches) == 1
    batch = batches[0]
    assert batch["anchor"].shape == (3, 3, 224, 224) and sorted(batch["index"].tolist()) == [0, 1, 3]
    assert batch["num_bad"] == 1 and batch["bad_items"][0].dataset == 0 and batch["batch"] == 0
    assert len(loader.bad_items) == 1 and "row 2" in loader.bad_item_report() and "c.png" in loader.bad_item_report()


def test_bad_items_cross_worker_processes(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    rows = [["a.png", "one"], ["b.png", "two"]]
    dataset = PairDataset(read_manifest(csv_manifest(tmp_path / "m.csv", ["image", "text"], rows)), "image", "text")
    loader = make_loader([dataset], 2, seed=1, epoch=0, num_workers=1)
    batch = next(iter(loader))
    assert batch["index"].tolist() == [0] and batch["num_bad"] == 1
    assert loader.bad_items[0].index == 1 and "empty" in loader.bad_items[0].reason


def test_all_bad_batch_keeps_its_position():
    bad = [
        ItemFailure(i, f"{i}.png", OpenBindInputError(f"{i}.png", "corrupt"), kind="image", dataset=1, batch=7)
        for i in range(2)
    ]
    batch = collate_pairs(bad)
    assert batch["anchor"] is None and batch["other"] is None and batch["index"].numel() == 0
    assert batch["dataset"] == 1 and batch["batch"] == 7 and batch["num_bad"] == 2
    assert collate_pairs([None])["num_bad"] == 1


def test_replication():
    order = replication_order(10, 2.5)
    assert len(order) == 25
    counts = Counter(order.tolist())
    assert sorted(counts.values()) == [2] * 5 + [3] * 5
    assert np.array_equal(order, replication_order(10, 2.5))
    assert len(replication_order(10, 0.3)) == 3 and len(set(replication_order(10, 0.3).tolist())) == 3
    assert len(replication_order(3, 0.01)) == 1
    with pytest.raises(ValueError):
        replication_order(10, 0)


def test_pair_dataset_replication_length(tmp_path):
    write_image(tmp_path / "a.png")
    rows = [["a.png", f"c{i}"] for i in range(4)]
    dataset = PairDataset(
        read_manifest(csv_manifest(tmp_path / "m.csv", ["image", "text"], rows)), "image", "text", replication=1.25
    )
    assert len(dataset) == 5
    assert sorted(dataset.row_index(i) for i in range(4)) == [0, 1, 2, 3]
    with pytest.raises(IndexError):
        dataset.row_index(5)


# --- batch sampler ------------------------------------------------------------------------------------------


def epoch_batches(lengths, batch_size, *, seed=0, epoch=0, rank=0, world_size=1, drop_last=True):
    sampler = MixedPairBatchSampler(
        lengths, batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size, drop_last=drop_last
    )
    return [[tuple(k) for k in batch] for batch in sampler]


def test_sampler_is_deterministic_and_covers_each_dataset_once():
    lengths = [100, 37, 64]
    batches = epoch_batches(lengths, 8)
    assert batches == epoch_batches(lengths, 8)
    assert batches != epoch_batches(lengths, 8, epoch=1) and batches != epoch_batches(lengths, 8, seed=1)
    assert len(batches) == 100 // 8 + 37 // 8 + 64 // 8
    for batch in batches:
        assert len(batch) == 8 and len({d for d, _, _ in batch}) == 1  # one pair type per batch
    assert [b[0][2] for b in batches] == list(range(len(batches)))  # keys carry the global batch number
    for d, n in enumerate(lengths):
        seen = [i for batch in batches for dd, i, _ in batch if dd == d]
        assert len(seen) == len(set(seen)) == (n // 8) * 8 and all(0 <= i < n for i in seen)


def test_sampler_mixes_in_proportion():
    lengths = [800, 200, 400]  # 100, 25, 50 batches of 8
    sequence = [batch[0][0] for batch in epoch_batches(lengths, 8, seed=3)]
    total = len(sequence)
    for prefix in range(1, total + 1):
        counts = Counter(sequence[:prefix])
        for d, n in enumerate(lengths):
            assert abs(counts[d] - prefix * (n // 8) / total) < 2.0


def test_sampler_global_batch_is_the_same_for_any_world_size():
    lengths = [90, 50]
    single = epoch_batches(lengths, 12, seed=5)
    for world in (2, 3, 4):
        ranks = [epoch_batches(lengths, 12, seed=5, rank=r, world_size=world) for r in range(world)]
        assert all(len(r) == len(single) for r in ranks)
        for b, batch in enumerate(single):
            assert all(len(ranks[r][b]) == 12 // world for r in range(world))
            assert [k for r in range(world) for k in ranks[r][b]] == batch


def test_sampler_partial_batches_with_drop_last_false():
    single = epoch_batches([21], 8, drop_last=False)
    assert [len(b) for b in single] == [8, 8, 5]
    two = [epoch_batches([21], 8, rank=r, world_size=2, drop_last=False) for r in range(2)]
    assert [len(b) for b in two[0]] == [4, 4, 3] and [len(b) for b in two[1]] == [4, 4, 2]
    assert two[0][2] + two[1][2] == single[2]
    assert [len(b) for b in epoch_batches([17], 8, world_size=2, drop_last=False)] == [4, 4]  # 1 < world_size


def test_sampler_per_dataset_batch_sizes():
    batches = epoch_batches([64, 64], [16, 8])
    sizes = Counter((b[0][0], len(b)) for b in batches)
    assert sizes == {(0, 16): 4, (1, 8): 8}


def test_sampler_resume_reproduces_the_remaining_batches():
    lengths = [60, 30]
    full = MixedPairBatchSampler(lengths, 6, seed=11, epoch=2, world_size=2, rank=1)
    expected = [list(b) for b in full]
    interrupted = MixedPairBatchSampler(lengths, 6, seed=11, epoch=2, world_size=2, rank=1)
    iterator = iter(interrupted)
    consumed = [next(iterator) for _ in range(4)]
    state = json.loads(json.dumps(interrupted.state_dict()))  # survives a checkpoint
    assert state["position"] == 4 and state["epoch"] == 2
    resumed = MixedPairBatchSampler(lengths, 6, seed=11, epoch=0, world_size=2, rank=1)
    resumed.load_state_dict(state)
    assert len(resumed) == len(expected) - 4
    assert consumed + [list(b) for b in resumed] == expected
    # one process resuming a 2-rank run continues with the same global batches
    single = MixedPairBatchSampler(lengths, 6, seed=11, epoch=0)
    single.load_state_dict(state)
    ranks = [list(MixedPairBatchSampler(lengths, 6, seed=11, epoch=2, world_size=2, rank=r)) for r in range(2)]
    assert [list(b) for b in single] == [a + b for a, b in zip(ranks[0][4:], ranks[1][4:])]
    with pytest.raises(ValueError, match="lengths"):
        MixedPairBatchSampler([60, 31], 6, seed=11, epoch=2).load_state_dict(state)


def test_sampler_set_epoch_and_reiteration():
    sampler = MixedPairBatchSampler([40], 8, seed=0, epoch=0)
    first = [list(b) for b in sampler]
    assert isinstance(first[0][0], PairKey) and first[0][0].batch == 0
    assert [list(b) for b in sampler] == first  # a finished epoch restarts from its beginning
    sampler.set_epoch(1)
    assert [list(b) for b in sampler] != first


def test_sampler_rejects_bad_configs():
    with pytest.raises(ValueError, match="multiples of world_size"):
        MixedPairBatchSampler([100], 10, seed=0, epoch=0, world_size=4)
    with pytest.raises(ValueError, match="no batch"):
        MixedPairBatchSampler([5], 8, seed=0, epoch=0)
    with pytest.raises(ValueError, match="rank"):
        MixedPairBatchSampler([100], 8, seed=0, epoch=0, rank=2, world_size=2)


def test_loader_mixes_pair_types_and_resumes(media):
    depth = PairDataset(media, "image", "depth", replication=2)  # 4 items
    text = PairDataset(media, "image", "text", replication=4)  # 8 items
    loader = make_loader([depth, text], 2, seed=0, epoch=0)
    batches = list(loader)
    assert len(batches) == 6 and len(loader) == 6
    assert Counter(b["pair"] for b in batches) == {("image", "depth"): 2, ("image", "text"): 4}
    for b in batches:
        assert b["other"].shape[1:] == ((1, 224, 224) if b["pair"] == ("image", "depth") else (77,))
    resumed = list(make_loader([depth, text], 2, seed=0, epoch=0, start_batch=batches[2]["batch"] + 1))
    assert [(b["dataset"], b["index"].tolist()) for b in resumed] == [
        (b["dataset"], b["index"].tolist()) for b in batches[3:]
    ]
    keys = ConcatPairs([depth, text])
    assert keys[(1, 0)]["pair"] == ("image", "text")


# --- embedding cache ----------------------------------------------------------------------------------------


def test_cache_round_trip_persistence_and_invalidation(tmp_path):
    path = tmp_path / "cache" / "anchors.npy"
    key = {"fingerprint": "tower-a", "manifest_hash": "m1", "transform_signature": "t1"}
    cache = EmbeddingCache(path, 5, 4, **key)
    assert cache.reset_reason == "no cache yet" and not cache.complete and cache.get([0]) is None
    values = torch.randn(5, 4)
    cache.put([3, 1], values[[3, 1]])
    assert torch.allclose(cache.get([1, 3]), values[[1, 3]], atol=1e-2)  # float16 storage
    assert cache.get([0, 1]) is None and cache.num_filled == 2
    cache.close()

    reopened = EmbeddingCache(path, 5, 4, **key)
    assert reopened.reset_reason is None and reopened.num_filled == 2
    assert torch.equal(reopened.get(torch.tensor([1, 3])), cache_values(values[[1, 3]]))
    reopened.put(range(5), values)
    assert reopened.complete
    reopened.flush()

    for changed in ({"fingerprint": "tower-b"}, {"manifest_hash": "m2"}, {"transform_signature": "t2"}):
        stale = EmbeddingCache(path, 5, 4, **{**key, **changed})
        assert stale.num_filled == 0 and stale.get([1]) is None and "another" in stale.reset_reason
    assert EmbeddingCache(path, 6, 4, **key).num_filled == 0


def cache_values(x: torch.Tensor) -> torch.Tensor:
    return x.half().float()


def test_cache_unflushed_rows_are_not_trusted_and_float32(tmp_path):
    path = tmp_path / "c.npy"
    key = {"fingerprint": "f", "manifest_hash": "m", "dtype": "float32"}
    with EmbeddingCache(path, 3, 2, **key) as cache:
        cache.put([0], torch.tensor([[1.0, 2.0]]))
    crashed = EmbeddingCache(path, 3, 2, **key)
    assert torch.equal(crashed.get([0]), torch.tensor([[1.0, 2.0]]))
    crashed.put([1], torch.tensor([[3.0, 4.0]]))  # never flushed: a crash here
    again = EmbeddingCache(path, 3, 2, **key)
    assert again.get([1]) is None and again.num_filled == 1
    (tmp_path / "c.npy.json").write_text("{not json")
    assert EmbeddingCache(path, 3, 2, **key).reset_reason.startswith("unreadable cache index")
    with pytest.raises(ValueError, match="NaN"):
        again.put([2], torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(IndexError):
        again.get([3])


def test_cache_for_dataset_keys_manifest_and_transform(media, tmp_path):
    from openbind.modalities.vision.transform import ImageTransform

    tower = torch.nn.Linear(3, 2)
    fingerprint = module_fingerprint(tower)
    dataset = PairDataset(media, "image", "text")
    cache = EmbeddingCache.for_dataset(tmp_path / "e.npy", dataset, 2, fingerprint=fingerprint)
    cache.put([0, 1], torch.ones(2, 2))
    cache.close()
    assert EmbeddingCache.for_dataset(tmp_path / "e.npy", dataset, 2, fingerprint=fingerprint).complete
    other = PairDataset(media, "image", "text", transforms={"image": ImageTransform(size=112)})
    assert transform_signature(other.transforms["image"]) != transform_signature(dataset.transforms["image"])
    assert not EmbeddingCache.for_dataset(tmp_path / "e.npy", other, 2, fingerprint=fingerprint).complete
    with torch.no_grad():
        tower.weight[0, 0] += 1
    assert module_fingerprint(tower) != fingerprint
