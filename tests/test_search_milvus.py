"""openbind.search with the milvus backend, through Milvus Lite: build, filters, update, reopen, FAISS agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("av")
pytest.importorskip("soundfile")
pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite", reason="Milvus Lite has no build for this platform")

from openbind import cli  # noqa: E402
from openbind.search import Index, build_index  # noqa: E402
from openbind.search.milvus import MilvusStore  # noqa: E402
from media import write_image  # noqa: E402
from test_search import DIRECTIONS, _checkpoint, _folder, _planted  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def milvus_lite(tmp_path_factory) -> None:
    """Skip the module where the embedded Milvus server cannot start."""
    from pymilvus import MilvusClient

    try:
        MilvusClient(str(tmp_path_factory.mktemp("probe") / "probe.db")).close()
    except Exception as error:  # whatever the platform's failure is
        pytest.skip(f"Milvus Lite cannot start here: {error}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("model"), 0)


def _names(results) -> list[str]:
    return [Path(r.path).name for r in results]


def test_round_trip_filters_update_and_reopen(tmp_path, model_dir, monkeypatch, capsys):
    _planted(monkeypatch, DIRECTIONS)
    folder = _folder(tmp_path / "data")
    out, uri = tmp_path / "index", str(tmp_path / "vectors.db")
    assert cli.main(["index", "build", str(folder), "--model", str(model_dir), "--out", str(out),
                     "--backend", "milvus", "--uri", uri, "--modality-glob", "depth=**/*_depth.png"]) == 0  # fmt: skip
    assert "Milvus AUTOINDEX" in capsys.readouterr().out
    with Index.open(out) as index:
        assert isinstance(index.store, MilvusStore) and len(index) == 10
        assert index.store.stored_count() == 11  # the video has frames and sound
        assert not list((out / "chunks").glob("*.npy"))  # the vectors live in Milvus only
        assert _names(index.search([("text", "a dog", 1.0)], k=1, modalities=["audio"])) == ["bark.wav"]
        assert {r.modality for r in index.search([("text", "a dog", 1.0)], k=10, modalities=["audio"])} == {"audio"}
        assert _names(index.search([("audio", str(folder / "bark.wav"), 1.0)], k=1)) == ["dog.txt"]  # itself excluded
        composed = [("text", "red", 1.0), ("text", "car", 1.0), ("text", "red", -1.0)]
        assert _names(index.search(composed, k=1)) == ["engine.flac"]
        clip = index.items()[[Path(r["path"]).name for r in index.items()].index("clip.mp4")]
        assert index.item_vectors(clip["id"]).keys() == {"video", "audio"}
        assert index.item_vectors(clip["id"])["video"].dtype == np.float16
    # update: a new file, a deleted one, a touched one (same content: its vectors kept, its mtime upserted)
    (folder / "engine.flac").unlink()
    write_image(folder / "photos" / "green.jpg", color=(20, 220, 20))
    (folder / "bark.wav").touch()
    with Index.open(out) as index:
        report = index.update(progress=False)
        assert (report.added, report.removed, report.changed) == (1, 1, 0)
        assert index.store.stored_count() == 11
        assert "engine.flac" not in _names(index.search([("text", "car", 1.0)], k=20))
        bark = str(folder / "bark.wav")
        hit = index.store.client.query(index.store.collection, filter=f"path == {json.dumps(bark)}", output_fields=["mtime_ns"])
        assert hit[0]["mtime_ns"] == (folder / "bark.wav").stat().st_mtime_ns
        assert index.remove([folder / "photos" / "green.jpg"]) == 1 and index.store.stored_count() == 10
    capsys.readouterr()
    assert cli.main(["search", str(out), "a dog", "--modality", "audio", "-k", "5", "--json"]) == 0  # reopened
    results = json.loads(capsys.readouterr().out)["results"]
    assert [Path(r["path"]).name for r in results][0] == "bark.wav" and {r["modality"] for r in results} == {"audio"}


def test_agrees_with_the_faiss_flat_index(tmp_path, model_dir, monkeypatch):
    _planted(monkeypatch, DIRECTIONS)
    folder = _folder(tmp_path / "data")
    for i in range(60):
        (folder / f"note{i:02d}.txt").write_text(f"note {i}")
    faiss_index, _ = build_index(folder, model_dir, tmp_path / "faiss", progress=False)
    milvus_index, _ = build_index(folder, model_dir, tmp_path / "milvus", backend="milvus",
                                  uri=str(tmp_path / "v.db"), collection="agree", progress=False)  # fmt: skip
    assert faiss_index.meta["index"]["type"] == "flat"
    rng = np.random.default_rng(0)
    for query in [*np.eye(64, dtype=np.float32)[:5], *rng.normal(size=(5, 64)).astype(np.float32)]:
        for modalities in (None, ["text"], ["vision"]):
            a = faiss_index.search(query, k=8, modalities=modalities)
            b = milvus_index.search(query, k=8, modalities=modalities)
            assert [(r.path, r.modality) for r in a] == [(r.path, r.modality) for r in b]
            assert np.allclose([r.score for r in a], [r.score for r in b], atol=1e-4)
    faiss_index.close()
    milvus_index.close()


def test_options_and_model_are_checked(tmp_path, model_dir, monkeypatch):
    _planted(monkeypatch, DIRECTIONS)
    folder = _folder(tmp_path / "data")
    with pytest.raises(ValueError, match="needs a uri"):
        build_index(folder, model_dir, tmp_path / "a", backend="milvus")
    with pytest.raises(ValueError, match=r"\.db"):
        build_index(folder, model_dir, tmp_path / "a", backend="milvus", uri=str(tmp_path / "v.sqlite"))
    with pytest.raises(ValueError, match="AUTOINDEX"):
        build_index(folder, model_dir, tmp_path / "a", backend="milvus", uri=str(tmp_path / "v.db"), index_type="hnsw")
    with pytest.raises(ValueError, match="backend must be"):
        build_index(folder, model_dir, tmp_path / "a", backend="qdrant")
    uri = str(tmp_path / "v.db")
    index, _ = build_index(folder, model_dir, tmp_path / "one", backend="milvus", uri=uri, collection="shared",
                           progress=False)  # fmt: skip
    index.close()
    with pytest.raises(ValueError, match="keeps its vectors in"):  # resuming with another store
        build_index(folder, model_dir, tmp_path / "one", progress=False)
    other = _checkpoint(tmp_path / "other", 1)
    with pytest.raises(ValueError, match="not comparable"):
        Index.open(tmp_path / "one", model=other)
    with pytest.raises(ValueError, match="holds vectors of model fingerprint"):  # another model, same collection
        build_index(folder, other, tmp_path / "two", backend="milvus", uri=uri, collection="shared", progress=False)
