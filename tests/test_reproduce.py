"""`openbind reproduce scaling|fewshot` at toy size: the pipelines run, resume, and report what they claim to."""

from __future__ import annotations

import csv
import json

import pytest

from openbind import cli
from openbind.config import ModelConfig
from openbind.eval.report import write_report
from openbind.reproduce import fewshot, scaling
from openbind.reproduce.fewshot import ScratchRecipe, run_fewshot, scratch_few_shot
from openbind.reproduce.scaling import RECIPES, run_scaling, scaling_table, spearman, tower_config


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaling")
    run_scaling(out, recipe="smoke", processes=2, progress=False)
    return out


def test_scaling_reports_every_bound_modality_against_each_image_tower(scaled):
    report = json.loads((scaled / "report.json").read_text())
    assert [t["name"] for t in report["towers"]] == ["small", "medium", "large"]
    assert len(report["image_top1"]) == 3 and all(0 <= v <= 1 for v in report["image_top1"])
    assert list(report["emergent_top1"]) == ["audio", "depth", "thermal", "imu"]  # video is trained, not emergent
    for modality, values in report["emergent_top1"].items():
        assert len(values) == 3 and all(0 <= v <= 1 for v in values)
        rho = report["rank_correlation"][modality]
        assert rho == spearman(report["image_top1"], values)
    assert report["chance"]["audio"] == pytest.approx(0.1) and report["chance"]["imu"] == pytest.approx(1 / 6)
    assert (scaled / "scaling.png").stat().st_size > 1000
    markdown = (scaled / "report.md").read_text()
    assert "| small, 16x1, 1/pair |" in markdown and "![" in markdown and "Spearman" in markdown


def test_each_size_is_aligned_on_its_own_share_of_pairs_and_its_own_tower(scaled):
    videos = 6 * 3  # one training video per activity, three captioned frames each, for every size
    for tower in RECIPES["smoke"].towers:
        directory = scaled / "towers" / tower.name
        with open(directory / "align_train.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 40 * tower.align_per_combo + videos
        assert all((directory / row["image"]).is_file() for row in rows)
        config = ModelConfig.from_json(directory / "runs" / "align" / "model" / "config.json")
        assert config.encoders["vision"].width == tower.width and config.encoders["text"].depth == tower.text_depth
        bound = ModelConfig.from_json(directory / "runs" / "depth" / "model" / "config.json")
        assert bound.encoders["depth"] == tower_config(RECIPES["smoke"].towers[0], "imagebind_world").encoders["depth"]


def test_a_scaling_rerun_trains_nothing_again(scaled):
    logs = sorted((scaled / "towers").glob("*/runs/*/log.jsonl"))
    before = [log.read_text() for log in logs]
    report = json.loads((scaled / "report.json").read_text())
    run_scaling(scaled, recipe="smoke", processes=1, progress=False)
    assert len(logs) == 15 and [log.read_text() for log in logs] == before
    again = json.loads((scaled / "report.json").read_text())
    assert again["emergent_top1"] == report["emergent_top1"] and again["per_size"] == report["per_size"]


def test_scaling_refuses_bad_options(tmp_path, scaled):
    with pytest.raises(ValueError, match="recipe"):
        run_scaling(tmp_path, recipe="huge")
    with pytest.raises(ValueError, match="processes"):
        run_scaling(tmp_path, recipe="smoke", processes=0)
    bigger = RECIPES["full"]  # asks for 30 images per pair of a world that has 2
    with pytest.raises(ValueError, match="images per"):
        run_scaling(scaled, recipe=bigger, progress=False)


def test_spearman_is_the_rank_correlation():
    assert spearman([0.5, 0.7, 0.9], [0.2, 0.3, 0.8]) == pytest.approx(1.0)
    assert spearman([0.5, 0.7, 0.9], [0.8, 0.3, 0.2]) == pytest.approx(-1.0)
    assert spearman([0.5, 0.7, 0.9], [0.3, 0.2, 0.8]) == pytest.approx(0.5)
    assert spearman([1, 2, 3, 4], [1, 2, 2, 3]) == pytest.approx(0.9486833)  # ties share their mean rank
    assert spearman([0.5, 0.7, 0.9], [0.4, 0.4, 0.4]) is None


def test_the_scaling_table_and_plot_from_given_results(tmp_path):
    results = {
        "towers": [{"name": n, "label": n, "width": w, "depth": 2, "align_per_combo": 10} for n, w in (("a", 8), ("b", 16))],
        "image_top1": [0.5, 0.75],
        "emergent_top1": {"audio": [0.25, 0.5]},
        "chance": {"image": 0.1, "audio": 0.1},
        "rank_correlation": {"audio": 1.0},
        "retrieval_audio_to_depth_R@1": [0.05, 0.1],
    }  # fmt: skip
    lines = scaling_table(results)
    assert "| a | 50.0 | 25.0 | 5.0 |" in lines and "| b | 75.0 | 50.0 | 10.0 |" in lines
    assert lines[-1].endswith("audio +1.00.")
    written = write_report(tmp_path, results, title="t", plotters=[scaling.plot_scaling])
    assert tmp_path / "scaling.png" in written and "(scaling.png)" in (tmp_path / "report.md").read_text()


def test_fewshot_trains_the_bound_towers_then_probes_them(tmp_path):
    report_path = run_fewshot(tmp_path, recipe="smoke", processes=2, progress=False)
    report = json.loads(report_path.with_name("report.json").read_text())
    assert set(report["modalities"]) == {"audio", "depth"}
    for entry in report["modalities"].values():
        for method in ("bound_probe", "from_scratch"):
            shots = entry[method]["shots"]
            assert set(shots) == {"1", "2"}
            assert all(0 <= s["top1"] <= 100 and len(s["per_seed"]) == 2 for s in shots.values())
    assert (tmp_path / "fewshot.png").stat().st_size > 1000
    assert "| audio | 1 |" in report_path.read_text()
    assert (tmp_path / "runs" / "audio" / "model").is_dir() and not (tmp_path / "runs" / "thermal").exists()

    # --from a quickstart-style directory (its model/ and world/): nothing is trained but the baselines
    source = tmp_path / "quickstart"
    source.mkdir()
    (source / "world").symlink_to(tmp_path / "world")
    (source / "model").symlink_to(tmp_path / "runs" / "depth" / "model")
    again = run_fewshot(tmp_path / "again", source=source, recipe="smoke", processes=2, progress=False)
    rerun = json.loads(again.with_name("report.json").read_text())
    assert rerun["modalities"]["depth"]["bound_probe"] == report["modalities"]["depth"]["bound_probe"]
    assert rerun["modalities"]["audio"]["from_scratch"] == report["modalities"]["audio"]["from_scratch"]
    assert not (tmp_path / "again" / "runs").exists()


def test_fewshot_from_needs_a_quickstart_directory(tmp_path):
    with pytest.raises(ValueError, match="source"):
        run_fewshot(tmp_path / "out", source=tmp_path, recipe="smoke", progress=False)
    with pytest.raises(ValueError, match="processes"):
        run_fewshot(tmp_path / "out", recipe="smoke", processes=0, progress=False)
    with pytest.raises(ValueError, match="recipe"):
        run_fewshot(tmp_path / "out", recipe="huge", progress=False)


def test_the_from_scratch_baseline_learns_its_examples(tmp_path):
    """Four sounds, one per class, each a pure tone of its own pitch: trained, the from-scratch encoder gets its
    own examples right (the baseline is trained, not just initialised) and stops once it does."""
    import numpy as np
    import soundfile

    files = []
    for c, hertz in enumerate((200, 600, 1500, 4000)):
        path = tmp_path / f"tone{c}.wav"
        soundfile.write(path, 0.5 * np.sin(2 * np.pi * hertz * np.arange(16000) / 16000), 16000)
        files.append(str(path))
    labels = list(range(4))
    encoder = dict(width=16, depth=1, heads=2, kernel_size=16, stride=16, drop_path=0.0)
    config = ModelConfig.from_dict({"embed_dim": 8, "encoders": {"audio": encoder}})
    untrained = scratch_few_shot(config, "audio", files, labels, files, labels, 4, shots=[1], seeds=[0],
                                 recipe=ScratchRecipe(max_steps=0), progress=False)  # fmt: skip
    trained = scratch_few_shot(config, "audio", files, labels, files, labels, 4, shots=[1], seeds=[0],
                               recipe=ScratchRecipe(max_steps=200, check_every=5, lr=1e-2), progress=False)  # fmt: skip
    assert untrained["shots"]["1"]["steps"] == [0] and untrained["shots"]["1"]["train_top1"] < 100.0
    assert trained["shots"]["1"]["train_top1"] == 100.0 == trained["shots"]["1"]["top1"]
    assert 0 < trained["shots"]["1"]["steps"][0] < 200 and trained["augment"] is False


def test_the_reproduce_commands_are_thin(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr(scaling, "run_scaling", lambda out, **kw: calls.setdefault("scaling", (out, kw)) and out)
    monkeypatch.setattr(fewshot, "run_fewshot", lambda out, **kw: calls.setdefault("fewshot", (out, kw)) and out)
    assert cli.main(["reproduce", "scaling", "--out", str(tmp_path), "--size", "smoke", "--seed", "3"]) == 0
    assert cli.main(["reproduce", "fewshot", "--out", "o", "--from", "qs", "--processes", "1"]) == 0
    assert calls["scaling"] == (str(tmp_path), dict(recipe="smoke", seed=3, processes=2))
    assert calls["fewshot"] == ("o", dict(source="qs", recipe="full", seed=0, processes=1))
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "scaling", "--out", "o", "--size", "huge"])
