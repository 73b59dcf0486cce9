"""openbind embed (Parquet shards, in-process and on Ray) and openbind index build --from-embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("av")
pytest.importorskip("pyarrow")

import pyarrow.parquet as pq  # noqa: E402

from openbind import cli  # noqa: E402
from openbind.search import Index, build_index  # noqa: E402
from openbind.search.shards import build_index_from_embeddings, embed_corpus, read_plan  # noqa: E402
from test_search import DEPTH_GLOB, _checkpoint, _folder  # noqa: E402

GLOBS = {"depth": ["**/*_depth.png"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("model"), 0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, model_dir):
    """The mixed folder of test_search embedded in-process through the CLI, in shards of 4 items."""
    base = tmp_path_factory.mktemp("corpus")
    folder = _folder(base / "data")
    out = base / "emb"
    assert cli.main(["embed", str(folder), "--model", str(model_dir), "--out", str(out), "--modality-glob", DEPTH_GLOB,
                     "--shard-size", "4", "--batch-size", "3"]) == 0  # fmt: skip
    return folder, out


def _rows(out: Path) -> list[dict]:
    return [row for path in sorted((out / "shards").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_shards_hold_one_row_per_vector_and_per_failed_file(corpus, model_dir):
    folder, out = corpus
    plan = read_plan(out)
    assert len(plan.items) == 10 and plan.num_shards == 3 and not plan.missing()
    table = pq.read_table(plan.shard_path(0))
    assert table.column_names == ["id", "path", "kind", "modality", "embedding", "size", "mtime_ns", "sha256",
                                  "model_fingerprint", "error"]  # fmt: skip
    kind = table.schema.field("embedding").type
    assert kind.list_size == 64 and str(kind.value_type) == "float"
    rows = _rows(out)
    by_name = {}
    for row in rows:
        by_name.setdefault(Path(row["path"]).name, []).append(row)
    assert [r["modality"] for r in by_name["clip.mp4"]] == ["video", "audio"]
    assert by_name["room_depth.png"][0]["kind"] == "depth" and by_name["dog.txt"][0]["kind"] == "text"
    failed = {name for name, rs in by_name.items() if rs[0]["error"]}
    assert failed == {"truncated.jpg", "notaudio.wav", "empty.png"}
    assert all(r["embedding"] is None for n in failed for r in by_name[n])
    good = [r for r in rows if r["error"] is None]
    assert all(abs(np.linalg.norm(r["embedding"]) - 1) < 1e-4 and len(r["sha256"]) == 64 for r in good)
    assert {r["model_fingerprint"] for r in rows} == {plan.meta["model"]["fingerprint"]}


def test_a_rerun_writes_only_missing_shards_and_another_model_is_refused(corpus, model_dir, tmp_path):
    folder, out = corpus
    before = _rows(out)
    plan = read_plan(out)
    plan.shard_path(1).unlink()
    report = embed_corpus(folder, model_dir, out, globs=GLOBS, shard_size=4, progress=False)
    assert (report.written, report.skipped, report.items) == (1, 2, 4)
    after = _rows(out)
    assert [(r["id"], r["path"], r["modality"]) for r in after] == [(r["id"], r["path"], r["modality"]) for r in before]
    with pytest.raises(ValueError, match="not of .* use another --out"):
        embed_corpus(folder, _checkpoint(tmp_path / "other", 1), out, globs=GLOBS, progress=False)
    with pytest.raises(ValueError, match="engine"):
        embed_corpus(folder, model_dir, tmp_path / "x", engine="spark", progress=False)


def test_an_index_from_shards_equals_a_direct_build_and_answers_queries(corpus, model_dir, tmp_path, capsys):
    folder, out = corpus
    index_dir = tmp_path / "from_shards"
    assert cli.main(["index", "build", "--from-embeddings", str(out), "--out", str(index_dir)]) == 0
    direct, _ = build_index(folder, model_dir, tmp_path / "direct", globs=GLOBS, batch_size=3, progress=False)
    with Index.open(index_dir) as index:
        fields = ("path", "kind", "kinds", "status", "size", "mtime_ns", "sha256")
        assert [[r[f] for f in fields] for r in index.items()] == [[r[f] for f in fields] for r in direct.items()]
        for row in index.items():
            if row["status"] == "ok":
                ours, theirs = index.item_vectors(row["path"]), direct.item_vectors(row["path"])
                assert ours.keys() == theirs.keys()
                assert all(np.allclose(ours[k], theirs[k], atol=2e-3) for k in ours)
        assert index.meta["model"]["fingerprint"] == direct.meta["model"]["fingerprint"]
        assert index.update(progress=False).unchanged == 10  # the recorded source, walked here: nothing new
    capsys.readouterr()
    assert cli.main(["search", str(index_dir), "a dog", "--model", str(model_dir), "--modality", "audio", "--json"]) == 0
    found = {Path(r["path"]).name for r in json.loads(capsys.readouterr().out)["results"]}
    assert found == {"bark.wav", "engine.flac", "clip.mp4"}
    read_plan(out).shard_path(1).rename(tmp_path / "moved.parquet")
    with pytest.raises(ValueError, match="1 of 3 shards are not written"):
        build_index_from_embeddings(out, tmp_path / "partial", progress=False)
    (tmp_path / "moved.parquet").rename(read_plan(out).shard_path(1))
    assert cli.main(["index", "build", str(folder), "--from-embeddings", str(out), "--out", str(tmp_path / "y")]) == 2


def _start_local_ray(ray) -> None:
    """A local Ray node for the test, with one retry: Ray gives its raylet a fixed 30 s to register, and on a
    loaded 2-core CI machine it once missed that window (a bare `Exception` from `ray.init`, no raylet log)."""
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception:
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


def test_ray_engine_writes_the_same_shards_as_the_in_process_engine(corpus, model_dir, tmp_path):
    ray = pytest.importorskip("ray")
    folder, out = corpus
    _start_local_ray(ray)
    try:
        report = embed_corpus(folder, model_dir, tmp_path / "ray", globs=GLOBS, engine="ray", shard_size=4,
                              batch_size=3, progress=False)  # fmt: skip
    finally:
        ray.shutdown()
    assert report.written == 3 and len(report.failed) == 3
    local, remote = _rows(out), _rows(tmp_path / "ray")
    keys = ("id", "path", "kind", "modality", "size", "mtime_ns", "sha256", "model_fingerprint", "error")
    assert [[r[k] for k in keys] for r in remote] == [[r[k] for k in keys] for r in local]
    for a, b in zip(local, remote):
        assert (a["embedding"] is None) == (b["embedding"] is None)
        if a["embedding"] is not None:
            assert np.allclose(a["embedding"], b["embedding"], atol=1e-5)
