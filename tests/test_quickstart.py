"""The quickstart pipeline end to end on a tiny world: binds in two processes, towers merged, report complete."""

from __future__ import annotations

import json

import pytest
import torch

import openbind
from openbind.reproduce.quickstart import STAGES, Stage, run_quickstart
from openbind.weights.checkpoint import read_state_dict

TINY_WORLD = dict(
    train_per_class=2, test_per_class=1, align_per_combo=1, videos_train_per_activity=1,
    videos_test_per_activity=1, arithmetic_per_combo=1,
)  # fmt: skip
ONE_EPOCH = [Stage(s.name, s.modality, s.anchor, epochs=1, lr=s.lr, batch_size=4, augment=s.augment) for s in STAGES]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    run_quickstart(out, world_kwargs=TINY_WORLD, stages=ONE_EPOCH, processes=2, progress=False)
    return out


def test_report_has_every_number_the_issue_asks_for(quickstart):
    report = json.loads((quickstart / "report.json").read_text())
    for modality in ("image", "audio", "depth", "thermal", "imu"):
        assert 0 <= report["zero_shot"][modality] <= 1 and 0 < report["chance"][modality] < 1
    assert set(report["arithmetic"]) >= {"hit_rate", "image_only_hit_rate"}
    assert report["retrieval"]
    seconds = report["seconds"]
    assert {"world", "align", "audio", "depth", "thermal", "imu", "evaluate", "total"} <= set(seconds)
    assert seconds["binds (in parallel)"] >= max(seconds[m] for m in ("audio", "depth", "thermal", "imu"))
    assert (quickstart / "report.md").is_file()


def test_the_merged_model_holds_each_bind_runs_tower(quickstart):
    merged = read_state_dict(quickstart / "model" / "model.safetensors")
    aligned = read_state_dict(quickstart / "runs" / "align" / "model" / "model.safetensors")
    for modality in ("audio", "depth", "thermal", "imu"):
        bound = read_state_dict(quickstart / "runs" / modality / "model" / "model.safetensors")
        for key, value in merged.items():
            tower = key.split(".")[1]
            if tower == modality:
                assert torch.equal(value, bound[key]), key
            elif tower in ("vision", "text"):
                assert torch.equal(value, aligned[key]), key
    assert openbind.create_model(str(quickstart / "model")).modalities == [
        "vision", "text", "audio", "depth", "thermal", "imu"
    ]


def test_a_second_run_into_the_same_directory_resumes_instead_of_retraining(quickstart):
    logs = sorted((quickstart / "runs").glob("*/log.jsonl"))
    before = [log.read_text() for log in logs]
    run_quickstart(quickstart, world_kwargs=TINY_WORLD, stages=ONE_EPOCH, processes=1, progress=False)
    assert len(logs) == 5 and [log.read_text() for log in logs] == before


def test_stages_must_start_with_align(tmp_path):
    with pytest.raises(ValueError, match="align"):
        run_quickstart(tmp_path, stages=ONE_EPOCH[1:], progress=False)


def test_maps_are_trained_and_evaluated_with_the_presets_standardization(quickstart):
    """The world preset standardizes depth and thermal maps; the trained model records it and the quickstart's
    evaluation embeds with it (the default [0, 1] maps would give other embeddings)."""
    from openbind.eval.embedding import embed_items
    from openbind.factory import PRESETS
    from openbind.modalities import get_input
    from openbind.reproduce.quickstart import embed_files, manifest_files
    from openbind.world import WorldInfo

    model = openbind.create_model(str(quickstart / "model"))
    world = WorldInfo.load(quickstart / "world")
    for kind, standard in PRESETS["imagebind_world"]["inputs"].items():
        options = model.config.input_options(kind)
        assert (options["mean"], options["std"]) == (standard["mean"], standard["std"])
        files, _ = manifest_files(world.manifests[f"eval_{kind}_test"], kind)
        files = files[:3]
        raw, standardized = (
            embed_items(model, kind, files, transform=get_input(kind).training_transform(**o), progress=False).tensor
            for o in ({}, options)
        )
        evaluated = embed_files(model, kind, files, progress=False)
        assert torch.allclose(evaluated, standardized) and not torch.allclose(evaluated, raw, atol=1e-3)
