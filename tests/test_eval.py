"""openbind.eval: metrics on constructed embeddings with known answers, reports, and batched embedding."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import openbind
from openbind.errors import OpenBindInputError
from openbind.eval import (
    ZeroShotClassifier,
    ZeroShotResult,
    accuracy,
    arithmetic_hit_rate,
    build_classifier,
    compose,
    embed_items,
    evaluate_zero_shot,
    recall_at_k,
    recall_both_directions,
    retrieval_ranks,
    summarize_zero_shot,
    write_report,
    zero_shot_scores,
)

TEMPLATES = ("a photo of a {}.", "a sketch of the {}.")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return openbind.create_model("imagebind_tiny")


def basis(dim: int) -> torch.Tensor:
    return torch.eye(dim)


# --- zero-shot ---------------------------------------------------------------------------------------------


def test_accuracy_orthogonal_classes_with_noise():
    torch.manual_seed(0)
    classes = basis(16)[:4]
    true = torch.arange(4).repeat_interleave(3)  # 12 items, 3 per class
    items = classes[true] + 0.05 * torch.randn(12, 16)
    labels = true.clone()
    labels[[1, 7]] = torch.tensor([2, 0])  # two items labelled wrongly: they cannot be top-1 hits
    scores = zero_shot_scores(items, classes)
    assert scores.shape == (12, 4)
    assert torch.equal(scores.argmax(dim=1), true)
    acc = accuracy(scores, labels, topk=(1, 5))
    assert acc["top1"] == pytest.approx(10 / 12)
    assert acc["top5"] == 1.0  # k is capped at the 4 classes


def test_accuracy_topk_on_hand_built_scores():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8], [0.4, 0.6, 0.5]])
    labels = [1, 0, 0]  # ranks of the true class: 2, 3, 3
    assert accuracy(scores, labels, topk=(1, 2, 3)) == {"top1": 0.0, "top2": pytest.approx(1 / 3), "top3": 1.0}


def test_zero_shot_result_confusion_and_per_class():
    scores = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])
    result = ZeroShotResult.from_scores(scores, [0, 0, 1, 1], ["a", "b", "c"])
    assert result.top1 == 0.75
    assert result.chance == pytest.approx(1 / 3)
    assert result.confusion.tolist() == [[2, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert result.per_class[:2] == [1.0, 0.5] and math.isnan(result.per_class[2])
    assert result.mean_per_class == 0.75
    assert result.to_dict()["confusion"] == [[2, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_synonym_class_scores_max_over_its_names():
    rows = basis(3)
    classifier = ZeroShotClassifier(rows, torch.tensor([0, 1, 1]), ["dog", "other"])
    items = torch.tensor([[1.0, 0.2, 0.0], [0.1, 0.3, 1.0], [0.3, 1.0, 0.6]])
    scores = classifier.scores(items)
    unit = F.normalize(items, dim=1)
    assert torch.allclose(scores[:, 0], unit[:, 0])
    assert torch.allclose(scores[:, 1], torch.maximum(unit[:, 1], unit[:, 2]))
    assert scores.argmax(dim=1).tolist() == [0, 1, 1]


def test_build_classifier_clip_recipe_and_synonyms(tiny_model):
    names = ["dog", "cat", "kitten"]
    plain = build_classifier(tiny_model, names, TEMPLATES)
    prompts = [t.format(n) for n in names for t in TEMPLATES]
    embedded = tiny_model.embed(text=prompts)["text"].view(3, 2, -1)
    assert torch.allclose(plain.weights, F.normalize(embedded.mean(dim=1), dim=-1), atol=1e-5)
    assert plain.row_class.tolist() == [0, 1, 2]

    grouped = build_classifier(tiny_model, {"dog": "dog", "feline": ["cat", "kitten"]}, TEMPLATES)
    assert grouped.classnames == ["dog", "feline"]
    assert grouped.row_class.tolist() == [0, 1, 1]
    assert torch.allclose(grouped.weights, plain.weights, atol=1e-5)
    items = torch.randn(5, plain.weights.shape[1])
    flat = zero_shot_scores(items, plain)
    assert torch.allclose(grouped.scores(items), torch.stack([flat[:, 0], flat[:, 1:].amax(dim=1)], dim=1))

    with pytest.raises(OpenBindInputError, match="template"):
        build_classifier(tiny_model, names, ["no placeholder"])


def test_evaluate_zero_shot_matches_manual_scoring(tiny_model):
    torch.manual_seed(1)
    depth = torch.randn(6, 1, 224, 224)
    labels = ["near", "far", "near", "far", "far", "near"]
    result = evaluate_zero_shot(
        tiny_model, "depth", depth, labels, ["near", "far"], templates=TEMPLATES, batch_size=4, progress=False
    )
    classifier = build_classifier(tiny_model, ["near", "far"], TEMPLATES)
    scores = classifier.scores(tiny_model.embed(depth=depth)["depth"])
    expected = (scores.argmax(dim=1) == torch.tensor([0, 1, 0, 1, 1, 0])).float().mean().item()
    assert result.top1 == pytest.approx(expected)
    assert result.num_items == 6 and result.confusion.sum() == 6 and result.chance == 0.5
    with pytest.raises(OpenBindInputError, match="not class names"):
        evaluate_zero_shot(tiny_model, "depth", depth, ["near"] * 5 + ["nowhere"], ["near", "far"], progress=False)


# --- retrieval ---------------------------------------------------------------------------------------------


def test_recall_at_k_hand_built():
    e = basis(4)
    gallery_ids = ["a", "b", "c", "d"]
    queries = torch.stack([e[0] + 0.5 * e[1], e[0] + 0.5 * e[1] + 0.2 * e[2], e[1] + 0.1 * e[3]])
    query_ids = ["a", "c", "d"]  # their targets rank 1, 3 and 2
    assert retrieval_ranks(queries, e, query_ids, gallery_ids).tolist() == [1, 3, 2]
    metrics = recall_at_k(queries, e, query_ids, gallery_ids, ks=(1, 2, 5))
    assert metrics["R@1"] == pytest.approx(1 / 3)
    assert metrics["R@2"] == pytest.approx(2 / 3)
    assert metrics["R@5"] == 1.0
    assert metrics["median_rank"] == 2.0 and metrics["mean_rank"] == 2.0 and metrics["num_queries"] == 3


def test_recall_many_to_many_ids_and_pessimistic_ties():
    e = basis(3)
    # Two captions per clip; the second clip appears twice in the gallery (any copy is a hit).
    captions = torch.stack([e[0], e[1] + 0.9 * e[2], e[2], 0.5 * e[0] + e[2]])
    caption_ids = [0, 0, 1, 1]
    clips = torch.stack([e[0], e[1], e[2], e[2] + 0.1 * e[0]])
    clip_ids = [0, 2, 1, 1]
    ranks = retrieval_ranks(captions, clips, caption_ids, clip_ids)
    # caption 1 is nearest to clip 2 (id 2), then the clips of id 1: its own clip 0 comes fourth.
    assert ranks.tolist() == [1, 4, 1, 1]
    both = recall_both_directions(clips[[0, 2, 3]], captions, [0, 1, 1], caption_ids, names=("clip", "text"), ks=(1,))
    assert set(both) == {"clip->text", "text->clip"}
    assert both["clip->text"]["R@1"] == 1.0
    assert both["text->clip"]["R@1"] == 0.75  # caption 1 still ranks its clip below both clips of id 1
    with pytest.raises(OpenBindInputError, match="no gallery item"):
        recall_at_k(clips, captions, clip_ids, caption_ids)  # clip id 2 has no caption
    # A collapsed model (all embeddings equal) must score at the bottom, not the top.
    same = torch.ones(4, 3)
    assert retrieval_ranks(same, same, [0, 1, 2, 3], [0, 1, 2, 3]).tolist() == [4, 4, 4, 4]


# --- arithmetic --------------------------------------------------------------------------------------------


def test_compose_formula():
    a, b = torch.tensor([[3.0, 4.0, 0.0]]), torch.tensor([[0.0, 0.0, 2.0]])
    expected = F.normalize(torch.tensor([[0.3, 0.4, 0.5]]), dim=1)
    assert torch.allclose(compose(a, b), expected)
    assert torch.allclose(compose(a, b, weight=1.0), torch.tensor([[0.6, 0.8, 0.0]]))


def test_arithmetic_composed_query_retrieves_target_image_only_does_not():
    obj = {"A": basis(4)[0], "B": basis(4)[1]}
    env = {"X": basis(4)[2], "Y": basis(4)[3]}
    gallery_labels = [("A", "X"), ("A", "Y"), ("B", "X"), ("B", "Y"), (None, "Y")]
    gallery = torch.stack([obj[o] + env[e] if o else env[e] for o, e in gallery_labels])
    images = torch.stack([obj["A"] + env["X"], obj["B"] + env["Y"]])  # both are in the gallery
    audios = torch.stack([env["Y"], env["X"]])
    targets = [("A", "Y"), ("B", "X")]
    # Composed (A,X)+Y is proportional to o_A + e_X + sqrt(2) e_Y: cosine 0.854 with (A,Y), 0.707 with the
    # rest; the image alone finds itself, the audio alone the pure environment or a tie of both objects.
    out = arithmetic_hit_rate(images, audios, gallery, gallery_labels, targets, k=1)
    assert out["hit_rate"] == 1.0
    assert out["image_only_hit_rate"] == 0.0
    assert out["audio_only_hit_rate"] <= 0.5
    assert out["k"] == 1 and out["num_queries"] == 2
    assert arithmetic_hit_rate(images, audios, gallery, gallery_labels, targets, k=5)["image_only_hit_rate"] == 1.0
    with pytest.raises(OpenBindInputError, match="not in the gallery"):
        arithmetic_hit_rate(images, audios, gallery, gallery_labels, [("A", "Y"), ("C", "X")])


# --- reports -----------------------------------------------------------------------------------------------


def quickstart_results() -> dict:
    zero_shot = {
        "image": ZeroShotResult.from_scores(torch.eye(3)[[0, 1, 2, 0]], [0, 1, 2, 1], ["cat", "dog", "car"]),
    }
    summary = summarize_zero_shot(zero_shot)
    return {
        "zero_shot": {**summary["zero_shot"], "audio": 0.5, "depth": torch.tensor(0.25), "thermal": 0.0, "imu": 1.0},
        "chance": {**summary["chance"], "audio": 0.1, "depth": 0.1, "thermal": 0.5, "imu": np.float32(0.25)},
        "zero_shot_top5": summary["zero_shot_top5"],
        "confusion": summary["confusion"],
        "retrieval": {"text->audio": {"R@1": 0.125, "R@5": 0.5, "R@10": 0.75, "median_rank": 5.5}},
        "arithmetic": {"hit_rate": 0.6, "image_only_hit_rate": 0.2},
        "seconds": {"embed": 1.5, "train": 10.0, "total": 11.5},
        "curves": {"image-text": [(0, 2.0), (10, 1.5), (20, 1.0)]},
    }


def test_write_report_json_markdown_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    paths = write_report(tmp_path, quickstart_results(), title="Quickstart", schema="quickstart")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["zero_shot"] == {"image": 0.75, "audio": 0.5, "depth": 0.25, "thermal": 0.0, "imu": 1.0}
    assert data["chance"]["imu"] == 0.25 and data["curves"]["image-text"][1] == [10, 1.5]
    assert data["confusion"]["image"]["matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Quickstart\n")
    assert "| image | 75.0% | 100.0% | 33.3% |" in md
    assert "| audio | 50.0% | – | 10.0% |" in md
    assert "| text->audio | 12.5% | 50.0% | 75.0% | 5.5 |" in md
    assert "| hit_rate | 60.0% |" in md and "| image_only_hit_rate | 20.0% |" in md
    assert "| embed | 1.5 |" in md and "| **total** | 11.5 |" in md
    pngs = {p.name for p in paths if p.suffix == ".png"}
    assert pngs == {"zero_shot_top1.png", "confusion_image.png", "loss_curves.png"}
    for name in pngs:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md


def test_write_report_without_matplotlib(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    paths = write_report(tmp_path, quickstart_results(), title="No plots")
    assert [p.name for p in paths] == ["report.json", "report.md"]
    assert not list(tmp_path.glob("*.png"))
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["arithmetic"]["hit_rate"] == 0.6


def test_quickstart_schema_rejects_missing_and_mistyped_keys(tmp_path):
    results = quickstart_results()
    del results["arithmetic"]
    results["zero_shot"]["imu"] = 1.5
    results["seconds"].pop("total")
    with pytest.raises(OpenBindInputError) as error:
        write_report(tmp_path, results, title="Bad", schema="quickstart")
    message = str(error.value)
    assert "missing 'arithmetic'" in message and "zero_shot['imu']" in message and "seconds['total']" in message
    assert not (tmp_path / "report.json").exists()
    with pytest.raises(ValueError, match="unknown report schema"):
        write_report(tmp_path, quickstart_results(), title="x", schema="nope")


# --- batched embedding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_embed_items_keeps_good_items_and_reports_corrupt(tiny_model, tmp_path, num_workers):
    """With workers, images go through `openbind.data.items.ItemDataset` (rows written into reused shared
    memory); without, through the batch loader: the same embeddings, indices and failures either way."""
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(good)
    other = tmp_path / "other.png"
    Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8)).save(other)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    items = [str(good), str(corrupt), str(other)]
    result = embed_items(tiny_model, "vision", items, batch_size=2, progress=False, num_workers=num_workers)
    assert result.kept == [0, 2]
    assert [f.index for f in result.failed] == [1]
    assert "corrupt.png" in str(result.failed[0].error)
    expected = tiny_model.embed(vision=[str(good), str(other)])["vision"]
    assert result.tensor.shape == (2, tiny_model.config.embed_dim)
    assert torch.allclose(result.tensor, expected, atol=1e-5)
    with pytest.raises(OpenBindInputError, match=r"corrupt\.png.*item 1\)"):
        embed_items(
            tiny_model, "vision", items, batch_size=2, progress=False, on_error="raise", num_workers=num_workers
        )


def test_embed_items_with_workers_matches_one_process_for_depth(tiny_model, tmp_path):
    rng = np.random.default_rng(3)
    items = []
    for i in range(5):
        items.append(tmp_path / f"depth{i}.png")
        Image.fromarray(rng.integers(300, 5000, (30 + i, 40)).astype(np.uint16)).save(items[-1])
    items.insert(2, tmp_path / "missing.png")
    alone = embed_items(tiny_model, "depth", items, batch_size=2, progress=False)
    workers = embed_items(tiny_model, "depth", items, batch_size=2, progress=False, num_workers=2)
    assert alone.kept == workers.kept == [0, 1, 3, 4, 5]
    assert [f.index for f in workers.failed] == [2] and "no such file" in str(workers.failed[0].error)
    torch.testing.assert_close(workers.tensor, alone.tensor, rtol=0, atol=1e-6)
