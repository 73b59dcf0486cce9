"""openbind.search: building (resumable, incremental), index selection, composed queries, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
pytest.importorskip("av")
pytest.importorskip("soundfile")
pytest.importorskip("PIL.Image")

import openbind  # noqa: E402
from openbind import cli  # noqa: E402
from openbind.errors import OpenBindInputError  # noqa: E402
from openbind.modalities.batch import BatchResult  # noqa: E402
from openbind.search import Index, build_index, choose_index, parse_term  # noqa: E402
from openbind.search import ann  # noqa: E402
from openbind.search import files as files_module  # noqa: E402
from openbind.search import index as index_module  # noqa: E402
from openbind.weights.checkpoint import save_checkpoint  # noqa: E402
from media import write_audio, write_depth, write_image, write_imu_csv, write_mp4  # noqa: E402

DEPTH_GLOB = "depth=**/*_depth.png"


def _checkpoint(directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = openbind.create_model("imagebind_tiny")
    save_checkpoint(model.state_dict(), model.config, directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("model"), 0)


def _folder(root: Path) -> Path:
    """A mixed folder: images, sounds, a video with sound, captions, depth by glob, hostile files, and a
    manifest of depth/thermal/IMU files in a subfolder."""
    (root / "photos").mkdir(parents=True)
    write_image(root / "photos" / "red.jpg", color=(220, 20, 20))
    write_image(root / "photos" / "blue.png", color=(20, 20, 220))
    write_audio(root / "bark.wav", freq=300)
    write_audio(root / "engine.flac", freq=90)
    write_mp4(root / "clip.mp4", sound=True)
    (root / "dog.txt").write_text("a dog barking in a park")
    write_depth(root / "room_depth.png", 1500)
    (root / "bad").mkdir()
    (root / "bad" / "truncated.jpg").write_bytes((root / "photos" / "red.jpg").read_bytes()[:200])
    (root / "bad" / "notaudio.wav").write_bytes(b"this is not audio at all" * 10)
    (root / "bad" / "empty.png").write_bytes(b"")
    return root


def _manifest(root: Path) -> Path:
    root.mkdir(parents=True)
    write_depth(root / "d.png")
    write_image(root / "t.png", gray=True)
    write_imu_csv(root / "m.csv")
    (root / "pairs.csv").write_text("depth,thermal,imu,text\nd.png,t.png,m.csv,a hot room\n")
    return root / "pairs.csv"


@pytest.fixture(scope="module")
def built(tmp_path_factory, model_dir):
    """The mixed folder indexed with the tiny model through the CLI, and the manifest added as a second source."""
    base = tmp_path_factory.mktemp("built")
    folder = _folder(base / "data")
    manifest = _manifest(base / "sensors")
    out = base / "index"
    assert cli.main(["index", "build", str(folder), "--model", str(model_dir), "--out", str(out),
                     "--modality-glob", DEPTH_GLOB, "--batch-size", "4"]) == 0  # fmt: skip
    assert cli.main(["index", "build", str(manifest), "--model", str(model_dir), "--out", str(out)]) == 0
    return folder, manifest, out


def test_mixed_folder_and_manifest_are_indexed_with_a_video_as_frames_and_sound(built, capsys):
    folder, manifest, out = built
    with Index.open(out) as index:
        items = {Path(row["path"]).name: row for row in index.items()}
        assert items["clip.mp4"]["kinds"] == "video,audio"
        assert items["red.jpg"]["kind"] == "image" and items["blue.png"]["kind"] == "image"
        assert items["room_depth.png"]["kind"] == "depth"  # the glob wins over the suffix
        assert items["dog.txt"]["kind"] == "text" and items["engine.flac"]["kind"] == "audio"
        assert {items[n]["kind"] for n in ("d.png", "t.png", "m.csv")} == {"depth", "thermal", "imu"}
        assert len(items["red.jpg"]["sha256"]) == 64 and items["red.jpg"]["size"] > 0
        failed = {Path(p).name for p, _ in index.failures()}
        assert failed == {"truncated.jpg", "notaudio.wav", "empty.png"}
        assert len(index) == len(items) - 3
        meta = json.loads((out / "index.json").read_text())
        assert meta["index"]["type"] == "flat" and meta["model"]["fingerprint"]
        assert len(meta["sources"]) == 2


def test_search_cli_json_with_real_model_excludes_query_file_and_filters(built, capsys):
    folder, _, out = built
    capsys.readouterr()
    query = str(folder / "photos" / "red.jpg")
    assert cli.main(["search", str(out), "--image", query, "--text", "a red photo:0.5", "-k", "50", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    paths = [r["path"] for r in results]
    assert query not in paths and len(paths) == len(set(paths)) > 5
    assert all(r["score"] >= s["score"] for r, s in zip(results, results[1:]))
    assert cli.main(["search", str(out), "a dog", "--modality", "audio", "-k", "50", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert {r["modality"] for r in results} == {"audio"}  # the sound of the video included
    assert {Path(r["path"]).name for r in results} == {"bark.wav", "engine.flac", "clip.mp4"}
    assert cli.main(["search", str(out), "--item", str(results[0]["id"]), "-k", "3"]) == 0
    table = capsys.readouterr().out
    assert results[0]["path"] not in table and len(table.strip().splitlines()) == 4  # header + 3


def _planted(monkeypatch, directions: dict[str, int], dim: int = 64):
    """Replace the embedding of every item by a planted unit vector: the basis vector named by the first key
    found in the item (a path or a text), plus a small item-specific part."""

    def fake(model, kind, items, **kwargs):
        rows = []
        for item in items:
            text = Path(item).name if os.path.exists(str(item)) else str(item)
            hit = next((d for key, d in directions.items() if key in text), dim - 1)
            seed = int(hashlib.sha256(f"{kind}:{text}".encode()).hexdigest()[:8], 16)
            vector = np.random.default_rng(seed).normal(size=dim) * 0.05
            vector[hit] += 1.0
            rows.append(torch.from_numpy(vector / np.linalg.norm(vector)).float())
        tensor = torch.stack(rows) if rows else torch.empty(0, dim)
        return tensor if kwargs.get("on_error") == "raise" else BatchResult(tensor, list(range(len(rows))), [])

    monkeypatch.setattr(index_module, "embed_items", fake)  # query terms
    monkeypatch.setattr(files_module, "embed_items", fake)  # indexed files


DIRECTIONS = {"red": 0, "blue": 1, "bark": 2, "dog": 2, "engine": 3, "car": 3, "clip": 4}


def test_planted_text_image_audio_and_composed_queries(tmp_path, model_dir, monkeypatch):
    _planted(monkeypatch, DIRECTIONS)
    folder = _folder(tmp_path / "data")
    index, report = build_index(folder, model_dir, tmp_path / "index", globs={"depth": ["**/*_depth.png"]}, progress=False)
    assert report.added == 10 and {Path(p).name for p, _ in report.failed} == set()  # planted: nothing fails
    name = lambda results: [Path(r.path).name for r in results]  # noqa: E731
    assert name(index.search([("text", "a red thing", 1.0)], k=1)) == ["red.jpg"]
    assert name(index.search([("text", "a dog", 1.0)], k=1, modalities=["audio"])) == ["bark.wav"]
    assert name(index.search([("audio", str(folder / "bark.wav"), 1.0)], k=1)) == ["dog.txt"]  # itself excluded
    assert "blue.png" not in name(index.search([("image", str(folder / "photos" / "blue.png"), 1.0)], k=20))
    # arithmetic: red + car - red -> the engine
    composed = [("text", "red", 1.0), ("text", "car", 1.0), ("text", "red", -1.0)]
    assert name(index.search(composed, k=1))[0] == "engine.flac"
    assert parse_term("text", "a car:0.5") == ("text", "a car", 0.5)
    assert parse_term("text", "C:\\photos\\x.jpg") == ("text", "C:\\photos\\x.jpg", 1.0)
    assert parse_term("text", "sunny", -1.0) == ("text", "sunny", -1.0)
    vector = np.eye(64, dtype=np.float32)[4]
    assert name(index.search(vector, k=1)) == ["clip.mp4"]
    with pytest.raises(ValueError, match="cancel out"):
        index.search([("text", "red", 1.0), ("text", "red", -1.0)])


def test_update_after_adding_changing_and_deleting_files(tmp_path, model_dir, monkeypatch):
    _planted(monkeypatch, DIRECTIONS)
    folder = _folder(tmp_path / "data")
    index, _ = build_index(folder, model_dir, tmp_path / "index", progress=False)
    before = {r["path"]: r for r in index.items()}
    (folder / "engine.flac").unlink()
    write_image(folder / "photos" / "green.jpg", color=(20, 220, 20))
    (folder / "dog.txt").write_text("a car on a road")  # changed content, "car" direction now
    os.utime(folder / "bark.wav", ns=(1, 1))  # touched only: the sha256 keeps its vectors
    report = index.update(progress=False)
    assert (report.added, report.changed, report.removed) == (1, 1, 1)
    after = {r["path"]: r for r in index.items()}
    assert str(folder / "engine.flac") not in after and str(folder / "photos" / "green.jpg") in after
    bark = str(folder / "bark.wav")
    assert after[bark]["id"] == before[bark]["id"] and after[bark]["mtime_ns"] == 1
    dog = str(folder / "dog.txt")
    assert after[dog]["id"] != before[dog]["id"] and after[dog]["sha256"] != before[dog]["sha256"]
    assert [Path(r.path).name for r in index.search([("text", "car", 1.0)], k=1)] == ["dog.txt"]
    assert index.update(progress=False).unchanged == len(after)
    # add and remove by path, outside the sources
    extra = tmp_path / "extra.png"
    write_image(extra, color=(1, 2, 3))
    index.add([extra])
    assert str(extra) in {r["path"] for r in index.items()}
    assert index.update(progress=False).unchanged == len(after) + 1  # kept while it exists
    assert index.remove([extra, after[bark]["id"]]) == 2
    assert not {str(extra), bark} & {r["path"] for r in index.items()}
    with pytest.raises(OpenBindInputError):
        index.add([tmp_path / "notes.xyz"])


KILLED_BUILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import pytest
from test_search import _planted, DIRECTIONS
from openbind.search import build_index, index as index_module

mp = pytest.MonkeyPatch()
_planted(mp, DIRECTIONS)
commit = index_module.Index.commit
calls = []
def killing(self, *args):
    result = commit(self, *args)
    calls.append(1)
    if len(calls) == {after}:
        os.kill(os.getpid(), signal.SIGKILL)
    return result
index_module.Index.commit = killing
build_index({src!r}, {model!r}, {out!r}, chunk_size=2, globs={{"depth": ["**/*_depth.png"]}}, progress=False)
"""


def _contents(path: Path) -> tuple[list, dict]:
    with Index.open(path) as index:
        rows = [(r["path"], r["kind"], r["kinds"], r["status"], r["sha256"]) for r in index.items()]
        vectors = {r[0]: index.item_vectors(r[0]) for r in rows if r[3] == "ok"}
    return rows, vectors


def test_a_build_killed_with_sigkill_resumes_to_the_same_index(tmp_path, model_dir, monkeypatch):
    folder = _folder(tmp_path / "data")
    out = tmp_path / "killed"
    script = KILLED_BUILD.format(tests=str(Path(__file__).parent), after=3, src=str(folder), model=str(model_dir),
                                 out=str(out))  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    with Index.open(out) as partial:
        assert len(partial.items()) == 6  # three chunks of two committed
    _planted(monkeypatch, DIRECTIONS)
    _, report = build_index(folder, model_dir, out, chunk_size=2, globs={"depth": ["**/*_depth.png"]}, progress=False)
    assert report.added == 4 and report.unchanged == 6
    build_index(folder, model_dir, tmp_path / "clean", globs={"depth": ["**/*_depth.png"]}, progress=False)
    rows, vectors = _contents(out)
    clean_rows, clean_vectors = _contents(tmp_path / "clean")
    assert rows == clean_rows
    for path, kinds in clean_vectors.items():
        assert vectors[path].keys() == kinds.keys()
        for kind, vector in kinds.items():
            assert np.array_equal(vectors[path][kind], vector) and vector.dtype == np.float16
    assert not list((out / "chunks").glob("*.npy"))  # everything published, no orphan left


def test_index_type_is_chosen_from_size_dimension_and_budget():
    assert choose_index(1_000, 1024)["type"] == "flat"
    assert choose_index(500_000, 1024)["type"] == "hnsw"
    spec = choose_index(5_000_000, 1024, memory_budget=8 << 30)
    assert spec["type"] == "ivf_sq8" and spec["factory"].startswith("IVF") and spec["params"]["nprobe"] > 0
    spec = choose_index(100_000_000, 1024, memory_budget=16 << 30)
    assert spec["type"] == "ivf_pq" and spec["params"]["rerank"] > 1 and not spec["on_disk"]
    assert spec["index_bytes"] == 100_000_000 * (int(spec["factory"].split("PQ")[1].split("x")[0]) + 8)
    assert choose_index(100_000_000, 1024, memory_budget=512 << 20)["on_disk"]  # not even 1-byte codes fit
    assert choose_index(10, 64, index_type="hnsw")["type"] == "hnsw"
    with pytest.raises(ValueError, match="index_type"):
        choose_index(10, 64, index_type="annoy")



def test_float32_chunks_of_a_memory_map_match_slicing(tmp_path):
    vectors = np.random.default_rng(1).standard_normal((1_000, 16)).astype(np.float16)
    np.save(tmp_path / "v.npy", vectors)
    for source in (np.load(tmp_path / "v.npy", mmap_mode="r"), vectors):
        got = np.concatenate([chunk.copy() for _, chunk in ann.float32_chunks(source, rows=300)])
        assert got.dtype == np.float32 and np.array_equal(got, vectors.astype(np.float32))


def test_sharded_on_disk_index_matches_one_process_build_of_the_same_trained_index(tmp_path):
    import faiss

    vectors = np.random.default_rng(0).standard_normal((4_000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(tmp_path / "v.npy", vectors.astype(np.float16))
    spec = choose_index(len(vectors), 64, index_type="ivf_sq8")
    path = ann.build_sharded(tmp_path / "v.npy", spec, 3, tmp_path / "out", workers=2)
    merged = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
    single = faiss.read_index(str(tmp_path / "out" / "trained.index"))
    single.add(vectors.astype(np.float16).astype(np.float32))
    assert merged.ntotal == single.ntotal == len(vectors) and not list((tmp_path / "out").glob("shard-*"))
    queries = vectors[:100]
    options = ann.search_parameters(spec, 10)
    assert np.array_equal(merged.search(queries, 10, params=options)[1], single.search(queries, 10, params=options)[1])


def _notes(folder: Path) -> Path:
    """400 texts and one "red" (the planted direction 0): enough vectors to train an IVF index."""
    folder.mkdir()
    for i in range(400):
        (folder / f"{i:03d}.txt").write_text(f"note {i}")
    (folder / "red.txt").write_text("red")
    return folder


@pytest.mark.parametrize("index_type", ["hnsw", "ivf_sq8", "ivf_pq", None])
def test_each_index_type_finds_the_planted_item_and_is_recorded(tmp_path, model_dir, monkeypatch, index_type):
    _planted(monkeypatch, DIRECTIONS)
    folder = _notes(tmp_path / "many")
    if index_type is None:  # automatic choice, with thresholds shrunk to this size
        monkeypatch.setattr(ann, "FLAT_MAX", 100)
    index, _ = build_index(folder, model_dir, tmp_path / "index", index_type=index_type, memory_budget=100_000,
                           progress=False)  # fmt: skip
    spec = json.loads((tmp_path / "index" / "index.json").read_text())["index"]
    assert spec["type"] == (index_type or "ivf_sq8") and spec["count"] == 401
    assert [Path(r.path).name for r in index.search(np.eye(64, dtype=np.float32)[0], k=1)] == ["red.txt"]
    assert len(index.search(np.eye(64, dtype=np.float32)[0], k=5)) == 5


def test_an_index_past_the_memory_budget_keeps_its_lists_on_disk_and_answers_as_in_memory(tmp_path, model_dir,
                                                                                         monkeypatch):
    _planted(monkeypatch, DIRECTIONS)
    folder = _notes(tmp_path / "many")
    queries = np.random.default_rng(3).standard_normal((20, 64)).astype(np.float32)
    found = {}
    for name, budget in (("memory", 1 << 20), ("disk", 10_000)):
        index, _ = build_index(folder, model_dir, tmp_path / name, index_type="ivf_sq8", memory_budget=budget,
                               progress=False)  # fmt: skip
        assert index.meta["index"]["on_disk"] == (name == "disk")
        found[name] = [[(r.id, round(r.score, 5)) for r in index.search(q, k=5)] for q in queries]
        index.close()
    assert found["disk"] == found["memory"]
    generation = tmp_path / "disk" / "gen-1"
    assert (generation / "merged.ivfdata").is_file() and not list(generation.glob("*shard*"))
    assert not (generation / "trained.index").exists()
    (folder / "000.txt").unlink()
    with Index.open(tmp_path / "disk") as index:  # reopened from disk, updated into a new on-disk generation
        assert [(r.id, round(r.score, 5)) for r in index.search(queries[0], k=5)] == found["disk"][0]
        assert index.update(progress=False).removed == 1
        assert index.meta["generation"] == 2 and not (tmp_path / "disk" / "gen-1").exists()
        assert [Path(r.path).name for r in index.search(np.eye(64, dtype=np.float32)[0], k=1)] == ["red.txt"]


def test_searches_from_many_threads_agree_with_one_thread(built):
    from concurrent.futures import ThreadPoolExecutor

    _, _, out = built
    with Index.open(out) as index:
        vectors = [v.astype(np.float32) for item in index.items() if item["status"] == "ok"
                   for v in index.item_vectors(item["id"]).values()]  # fmt: skip
        alone = [[(r.id, r.score) for r in index.search(v, k=3, modalities=["image", "audio"])] for v in vectors]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(
                lambda v: [(r.id, r.score) for r in index.search(v, k=3, modalities=["image", "audio"])], vectors * 4))
        assert together == alone * 4 and index.item(index.items()[0]["id"])["path"] == index.items()[0]["path"]
        with pytest.raises(KeyError):
            index.item(10**9)


def test_memory_mapped_open(built):
    _, _, out = built
    with Index.open(out, mmap=True) as index:
        assert isinstance(index.store.generation.vectors, np.memmap)
        vector = index.store.generation.vectors[0].astype(np.float32)
        assert index.search(vector, k=1)[0].score == pytest.approx(1.0, abs=1e-2)


def test_another_model_is_refused_naming_both(built, tmp_path, capsys):
    folder, _, out = built
    other = _checkpoint(tmp_path / "other", 1)
    with pytest.raises(ValueError, match="built with model .* not with .*other"):
        Index.open(out, model=other)
    assert cli.main(["search", str(out), "a dog", "--model", str(other)]) == 2
    assert "not comparable" in capsys.readouterr().err
    with pytest.raises(ValueError, match="built with model"):
        build_index(folder, other, out, progress=False)
