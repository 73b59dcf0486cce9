"""The benchmark runner: metrics against brute force and scikit-learn, the embedding cache, skipped files,
few-shot probes, results on disk and the CLI, on toy benchmarks over tiny images and a tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import average_precision_score

import openbind
from openbind.eval.benchmarks import Benchmark, Runner, TestSet, evaluate_table2, register_benchmark
from openbind.eval.benchmarks.base import _BENCHMARKS
from openbind.eval.benchmarks.run import write_result
from openbind.eval.fewshot import ProbeRecipe
from openbind.eval.multilabel import average_precision, label_matrix, mean_average_precision
from openbind.eval.zeroshot import build_classifier
from openbind.weights.checkpoint import save_checkpoint

CLASSES = ["red", "green", "blue"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
TEMPLATES = ("a photo of {}.", "{}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = openbind.create_model("imagebind_tiny", modalities=["vision", "text"])
    directory = tmp_path_factory.mktemp("model") / "tiny"
    save_checkpoint(model.state_dict(), model.config, directory)
    return directory


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 small images, 4 per colour class, with noise so that no two are alike."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for c, name in enumerate(CLASSES):
        for i in range(4):
            pixels = np.clip(np.array(COLOURS[name]) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            path = root / f"{name}_{i}.png"
            Image.fromarray(pixels).save(path)
            paths.append(str(path))
            labels.append(c)
    (root / "broken.png").write_bytes(b"not a png")
    return root, paths, labels


@pytest.fixture
def toy_benchmarks(images):
    root, paths, labels = images

    def read_colours(folder, classes=None):
        return TestSet(
            kind="image", items=paths + [str(root / "broken.png")], labels=labels + [0],
            classes=[[c] for c in CLASSES], class_names=list(CLASSES), groups=[i % 2 + 1 for i in range(13)],
            skipped=["row 14: no file missing.png"], choices={"rule": "toy"},
        )  # fmt: skip

    def read_tags(folder, classes=None):
        tags = [[label, (label + 1) % 3] if i % 2 else [label] for i, label in enumerate(labels)]
        return TestSet(kind="image", items=paths, labels=tags, classes=[[c] for c in CLASSES], class_names=list(CLASSES))

    def read_captions(folder, classes=None):
        queries = [f"a {CLASSES[label]} square number {i}" for i, label in enumerate(labels)]
        return TestSet(kind="image", items=paths, queries=queries, query_targets=list(range(len(paths))))

    made = [
        Benchmark("toy-colours", "Toy colours", "classification", read_colours, "colours/", {"top1": 50.0},
                  chance=33.3, probe=ProbeRecipe(epochs=5)),
        Benchmark("toy-tags", "Toy tags", "multilabel", read_tags, "tags/", {"mAP": 40.0}, metric="mAP"),
        Benchmark("toy-captions", "Toy captions", "retrieval", read_captions, "captions/", {"R@1": 10.0},
                  metric="R@1"),
    ]  # fmt: skip
    for benchmark in made:
        register_benchmark(benchmark)
    yield made
    for benchmark in made:
        _BENCHMARKS.pop(benchmark.name)


def _runner(model_dir, tmp_path, **options):
    return Runner(str(model_dir), cache_root=tmp_path / "cache", templates=TEMPLATES, progress=False, **options)


def _reference_embeddings(model_dir, paths):
    model = openbind.create_model(str(model_dir))
    return model, model.embed(image=paths)["image"]


def test_classification_matches_a_by_hand_zero_shot_and_reports_skips(model_dir, images, toy_benchmarks, tmp_path):
    _, paths, labels = images
    result = _runner(model_dir, tmp_path).run("toy-colours", tmp_path)
    model, embeddings = _reference_embeddings(model_dir, paths)
    scores = build_classifier(model, {c: [c] for c in CLASSES}, TEMPLATES).scores(embeddings)
    hits = (scores.argmax(dim=1) == torch.tensor(labels)).float()
    groups = torch.tensor([i % 2 + 1 for i in range(12)])
    per_group = [100 * hits[groups == g].mean().item() for g in (1, 2)]
    assert result["per_group"] == pytest.approx({"1": per_group[0], "2": per_group[1]}, abs=1e-4)
    assert result["metrics"]["top1"] == pytest.approx(sum(per_group) / 2, abs=1e-4)
    assert result["metrics"]["top1_pooled"] == pytest.approx(100 * hits.mean().item(), abs=1e-4)
    assert result["counts"] == {"items": 14, "evaluated": 12, "skipped": 2, "embedded_now": 12, "read_from_cache": 0,
                                "classes": 3, "queries": 0}  # fmt: skip
    assert result["skipped"][0] == "row 14: no file missing.png" and "broken.png" in result["skipped"][1]
    assert result["choices"] == {"rule": "toy", "templates": 2}
    assert result["chance"] == pytest.approx(100 / 3) and result["paper_chance"] == 33.3
    assert len(result["confusion"]) == 3 and sum(map(sum, result["confusion"])) == 12


def test_a_second_run_reads_every_embedding_from_the_cache(model_dir, toy_benchmarks, tmp_path):
    first = _runner(model_dir, tmp_path).run("toy-colours", tmp_path)
    second = _runner(model_dir, tmp_path).run("toy-colours", tmp_path)
    assert second["counts"]["embedded_now"] == 0 and second["counts"]["read_from_cache"] == 12
    assert second["metrics"] == first["metrics"]
    uncached = Runner(str(model_dir), cache_root=None, templates=TEMPLATES, progress=False).run("toy-colours", tmp_path)
    assert uncached["counts"]["read_from_cache"] == 0 and uncached["metrics"] == pytest.approx(first["metrics"])
    for precision in ("int8", "bf16"):  # other numbers: not shared
        again = _runner(model_dir, tmp_path, precision=precision).run("toy-colours", tmp_path)
        assert again["counts"]["embedded_now"] == 12 and again["counts"]["read_from_cache"] == 0


def test_mean_average_precision_matches_scikit_learn(model_dir, images, toy_benchmarks, tmp_path):
    result = _runner(model_dir, tmp_path).run("toy-tags", tmp_path)
    _, paths, labels = images
    model, embeddings = _reference_embeddings(model_dir, paths)
    scores = build_classifier(model, {c: [c] for c in CLASSES}, TEMPLATES).scores(embeddings).numpy()
    truth = label_matrix([[label, (label + 1) % 3] if i % 2 else [label] for i, label in enumerate(labels)], 3).numpy()
    expected = np.mean([average_precision_score(truth[:, c], scores[:, c]) for c in range(3)])
    assert result["metrics"]["mAP"] == pytest.approx(100 * expected, abs=1e-3)
    rng = np.random.default_rng(1)
    random_scores, random_truth = rng.normal(size=(40, 6)), rng.random((40, 6)) < 0.3
    random_truth[:, 5] = False  # a class without positives is left out of the mean
    m_ap, per_class = mean_average_precision(torch.tensor(random_scores), torch.tensor(random_truth))
    sklearn_ap = [average_precision_score(random_truth[:, c], random_scores[:, c]) for c in range(5)]
    assert per_class[:5].tolist() == pytest.approx(sklearn_ap) and torch.isnan(per_class[5])
    assert m_ap == pytest.approx(np.mean(sklearn_ap))
    assert average_precision(torch.tensor([[0.9], [0.1]]), torch.tensor([[False], [True]])).item() == 0.5


def test_recall_matches_brute_force_ranking(model_dir, images, toy_benchmarks, tmp_path):
    result = _runner(model_dir, tmp_path).run("toy-captions", tmp_path)
    _, paths, labels = images
    model, embeddings = _reference_embeddings(model_dir, paths)
    texts = model.embed(text=[f"a {CLASSES[label]} square number {i}" for i, label in enumerate(labels)])["text"]
    similarity = F.normalize(texts, dim=-1) @ F.normalize(embeddings, dim=-1).T
    ranks = [1 + int((row > row[q]).sum()) for q, row in enumerate(similarity)]
    for k in (1, 5, 10):
        assert result["metrics"][f"R@{k}"] == pytest.approx(100 * np.mean([r <= k for r in ranks]), abs=1e-4)
    assert result["recall_curve"][0] == [1, pytest.approx(result["metrics"]["R@1"])]


def test_few_shot_probes_train_on_the_other_groups(model_dir, toy_benchmarks, tmp_path):
    result = _runner(model_dir, tmp_path).run("toy-colours", tmp_path, shots=[1, 2])
    few = result["few_shot"]
    assert few["split"].startswith("group 1 is the test set") and set(few["shots"]) == {"1", "2"}
    assert all(0 <= v["top1"] <= 100 and len(v["per_seed"]) == 5 for v in few["shots"].values())
    with pytest.raises(ValueError, match="no few-shot protocol"):
        _runner(model_dir, tmp_path).run("toy-tags", tmp_path, shots=[1])


def test_results_table2_and_cli_write_files(model_dir, toy_benchmarks, tmp_path, capsys):
    results = evaluate_table2(
        {"toy-colours": str(tmp_path), "toy-captions": str(tmp_path)}, str(model_dir), out=tmp_path / "out",
        cache_root=tmp_path / "cache", templates=TEMPLATES, progress=False,
    )  # fmt: skip
    table = (tmp_path / "out" / "table2.md").read_text()
    assert "| Toy colours | top1 | 50.0 |" in table and "| Toy captions | R@1 | 10.0 |" in table
    saved = json.loads((tmp_path / "out" / "toy-colours.json").read_text())
    assert saved["metrics"]["top1"] == pytest.approx(results[0]["metrics"]["top1"])
    assert (tmp_path / "out" / "toy-colours_confusion.png").is_file()
    assert (tmp_path / "out" / "toy-captions_recall.png").is_file()
    written = write_result(results[1], tmp_path / "again")
    assert [p.name for p in written[:2]] == ["toy-captions.json", "toy-captions.md"]

    from openbind import cli

    argv = ["eval", "toy-colours", "--root", str(tmp_path), "--model", str(model_dir), "--out", str(tmp_path / "cli"),
            "--cache-dir", str(tmp_path / "cache"), "--few-shot", "1"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "12 of 14 items (2 skipped)" in printed and "few-shot k=1" in printed
    assert cli.main(["eval", "list"]) == 0
    assert "toy-colours: Toy colours, classification, paper top1 50.0 (few-shot probes" in capsys.readouterr().out


def test_a_model_is_fed_with_the_transform_options_it_records(model_dir, images, toy_benchmarks, tmp_path):
    """A model recording 64-pixel images is embedded and evaluated on 64-pixel images."""
    from openbind.modalities.vision.transform import ImageTransform

    model = openbind.create_model(str(model_dir))
    model.config.inputs["image"] = {"size": 64}
    small = tmp_path / "small"
    save_checkpoint(model.state_dict(), model.config, small)
    _, paths, _ = images
    reloaded = openbind.create_model(str(small))
    expected = reloaded.encode("vision", torch.stack([ImageTransform(size=64)(p) for p in paths[:2]]))
    assert torch.allclose(reloaded.embed(image=paths[:2])["image"], expected, atol=1e-6)
    result = _runner(small, tmp_path).run("toy-colours", tmp_path)
    assert result["transform"]["size"] == 64


def test_table2_command_on_tiny_published_layouts(tmp_path, capsys):
    """`openbind eval table2` over tiny ESC-50 and Clotho folders as published: counts, skipped files, the table."""
    import soundfile

    from openbind import cli

    torch.manual_seed(0)
    model = openbind.create_model("imagebind_tiny", modalities=["text", "audio"])
    save_checkpoint(model.state_dict(), model.config, tmp_path / "model")
    esc = tmp_path / "ESC-50-master"
    (esc / "audio").mkdir(parents=True)
    (esc / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    rng = np.random.default_rng(0)
    for i in range(6):
        name = f"{i % 2 + 1}-{100 + i}-A-{i % 3}.wav"
        soundfile.write(esc / "audio" / name, rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
        rows.append(f"{name},{i % 2 + 1},{i % 3},{['dog', 'chirping_birds', 'rain'][i % 3]},False,{100 + i},A")
    rows.append("2-999-A-0.wav,2,0,dog,False,999,A")  # listed but not shipped: skipped
    (esc / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    clotho = tmp_path / "clotho"
    (clotho / "evaluation").mkdir(parents=True)
    captions = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    for i in range(3):
        soundfile.write(clotho / "evaluation" / f"Santa Motor {i}.wav", rng.normal(0, 0.1, 8000), 16000)
        captions.append(f"Santa Motor {i}.wav," + ",".join(f"a motor hums {i} {k}" for k in range(5)))
    (clotho / "clotho_captions_evaluation.csv").write_text("\n".join(captions) + "\n")
    roots = tmp_path / "roots.toml"
    roots.write_text(f'esc50 = "{esc}"\nclotho = "{clotho}"\n')
    argv = ["eval", "table2", "--roots", str(roots), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "t2"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "| ESC-50 environmental sounds (5 folds) | top1 | 66.9 |" in table and "| 6 | 1 |" in table
    assert "| Clotho evaluation text-to-audio retrieval | R@1 | 6.0 |" in table and "| 3 | 0 |" in table
    esc_result = json.loads((tmp_path / "t2" / "esc50.json").read_text())
    assert esc_result["counts"]["classes"] == 3 and set(esc_result["per_group"]) == {"1", "2"}
    assert esc_result["chance"] == pytest.approx(100 / 3) and "2-999-A-0.wav" in esc_result["skipped"][0]
    assert json.loads((tmp_path / "t2" / "clotho.json").read_text())["counts"]["queries"] == 15
