"""Training defaults worked out from the data: epochs, learning rate, the held-out validation split and the best
step it exports, the chance-level warning and summary.json."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from openbind.data.manifest import read_manifest
from openbind.train import TrainConfig, Trainer, defaults
from openbind.train.validation import split_manifest
from openbind.weights.checkpoint import read_state_dict
from media import write_manifests  # noqa: E402

NUM_ROWS = 72
COLOURS = ["red", "green", "blue", "white"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """72 images of a coloured square (4 colours), with a caption and a grayscale 'thermal' twin."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    (root / "scenes").mkdir()
    rows: dict[str, list[dict[str, str]]] = {"align": [], "thermal": []}
    for i in range(NUM_ROWS):
        colour = i % 4
        rgb = (rng.random((40, 40, 3)) * 60).astype(np.uint8)
        y, x = rng.integers(0, 20, 2)
        rgb[y : y + 20, x : x + 20, colour if colour < 3 else slice(None)] = 255
        Image.fromarray(rgb).save(root / "scenes" / f"{i}.png")
        Image.fromarray(rgb.mean(axis=2).astype(np.uint8), mode="L").save(root / "scenes" / f"{i}_t.png")
        rows["align"].append({"image": f"scenes/{i}.png", "text": f"a {COLOURS[colour]} square"})
        rows["thermal"].append({"image": f"scenes/{i}.png", "thermal": f"scenes/{i}_t.png"})
    return write_manifests(root, rows)


def _config(pairs, out, stage="align", **overrides) -> TrainConfig:
    values = dict(
        stage=stage, train=[str(pairs["align" if stage == "align" else "thermal"])], out=str(out),
        model="imagebind_tiny", epochs=3, batch_size=8, lr=2e-3, warmup_epochs=0.5, progress=False, log_every=1,
        save_every=3, preload=True,
    )  # fmt: skip
    if stage == "bind":
        values["modality"] = "thermal"
    return TrainConfig(**{**values, **overrides})


def test_auto_values_follow_the_data_and_the_model():
    assert defaults.auto_epochs(25) == 24.0  # 600 steps of 25
    assert defaults.auto_epochs(1000) == 10.0  # at least 10 passes
    assert defaults.auto_lr(64, 128) == pytest.approx(2e-3)
    assert defaults.auto_lr(256, 128) == pytest.approx(4e-3)
    assert defaults.auto_lr(2048, 768) == pytest.approx(2e-3 * math.sqrt(32) / 6)  # the paper's audio: 1.6e-3
    assert defaults.validation_size(1800, 0.1) == 180
    assert defaults.validation_size(300, 0.1) == 0  # 30 would be too few to compare checkpoints
    assert defaults.validation_size(10**6, 0.1) == 2000
    assert defaults.chance_loss(64) == pytest.approx(2 * math.log(64))


def test_options_are_checked(tmp_path):
    for option, value in (("val_fraction", 0.7), ("epochs", 0), ("lr", -1.0)):
        with pytest.raises(ValueError, match=option):
            TrainConfig(stage="align", train=["x.csv"], out=str(tmp_path), **{option: value})


def test_the_split_is_seeded_disjoint_and_keeps_unpaired_rows(pairs):
    manifest = read_manifest(pairs["align"])
    manifest.rows[0]["text"] = None  # a row without a caption is never a validation pair
    train, val = split_manifest(manifest, "image", "text", 20, seed=3)
    again, val_again = split_manifest(manifest, "image", "text", 20, seed=3)
    _, other = split_manifest(manifest, "image", "text", 20, seed=4)
    images = lambda m: [row["image"] for row in m.rows]  # noqa: E731
    assert images(val) == images(val_again) and images(train) == images(again)
    assert images(val) != images(other)
    assert len(val) == 20 and len(train) == NUM_ROWS - 20
    assert not set(images(val)) & set(images(train)) and manifest.rows[0]["image"] in images(train)
    with pytest.raises(ValueError, match="cannot hold out"):
        split_manifest(manifest, "image", "text", NUM_ROWS, seed=0)


def test_a_held_out_split_exports_the_best_step(pairs, tmp_path):
    run = tmp_path / "align"
    trainer = Trainer(_config(pairs, run, val_fraction=0.5))
    assert [len(d) for d in trainer.val_datasets] == [36]
    model_dir = trainer.fit()
    val = [json.loads(line) for line in (run / "val.jsonl").read_text().splitlines()]
    assert [r["step"] for r in val] == [3, 4, 6, 8, 9, 12]  # every --save-every 3 steps and every epoch (4 steps)
    best = min(val, key=lambda r: r["val_loss"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["step"] == best["step"] and summary["exported_step"] == best["step"]
    assert (summary["train_pairs"], summary["val_pairs"], summary["steps"]) == (36, 36, 12)
    assert (run / "curves.png").is_file()  # training and validation curves
    exported = read_state_dict(model_dir / "model.safetensors")
    kept = read_state_dict(run / "best" / "model.safetensors")
    for key, value in kept.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0)
    again = Trainer(_config(pairs, run, val_fraction=0.5))
    rows = lambda t: [t._base(d).manifest.rows for d in t.val_datasets]  # noqa: E731
    assert rows(again) == rows(trainer)  # a resumed run holds out the same pairs


def test_bind_validates_against_cached_anchors(pairs, tmp_path):
    aligned = tmp_path / "align"
    Trainer(_config(pairs, aligned, epochs=1, val_fraction=0.0)).fit()
    run = tmp_path / "thermal"
    Trainer(_config(pairs, run, stage="bind", init=str(aligned), val_fraction=0.5)).fit()
    assert len(list((run / "cache").glob("val_anchors_0_*.npy"))) == 1
    assert len((run / "val.jsonl").read_text().splitlines()) == 6
    assert not (aligned / "val.jsonl").exists() and json.loads((aligned / "summary.json").read_text())["best"] is None


def test_left_out_epochs_and_lr_come_from_the_data(pairs, tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "MIN_STEPS", 30)
    trainer = Trainer(_config(pairs, tmp_path / "auto", epochs=None, lr=None, val_fraction=0.0))
    assert trainer.steps_per_epoch == NUM_ROWS // 8
    assert trainer.epochs == 10.0 and trainer.total_steps == 90  # 10 epochs give more than 30 steps
    width = trainer.model.encoders["vision"].config.width  # 96, wider than the tiny text tower
    assert trainer.lr == pytest.approx(2e-3 * math.sqrt(8 / 64) * 128 / width)
    assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(trainer.lr)
    monkeypatch.setattr(defaults, "MIN_STEPS", 200)
    assert Trainer(_config(pairs, tmp_path / "longer", epochs=None, val_fraction=0.0)).total_steps == 207  # 23 x 9


def test_a_loss_at_chance_level_warns_and_says_so_in_the_summary(pairs, tmp_path, caplog):
    run = tmp_path / "stuck"
    with caplog.at_level(logging.WARNING, logger="openbind"):
        Trainer(_config(pairs, run, lr=1e-9, val_fraction=0.0)).fit()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["left_chance"] is False and summary["chance_loss"] == pytest.approx(2 * math.log(8))
    assert summary["final_loss"] > 0.9 * summary["chance_loss"]
    warnings = [r.getMessage() for r in caplog.records if "still at chance level" in r.getMessage()]
    assert len(warnings) == 1 and "--epochs" in warnings[0] and "2 ln 8" in warnings[0]


def test_a_loss_below_chance_level_does_not_warn(pairs, tmp_path, caplog):
    trainer = Trainer(_config(pairs, tmp_path / "fine", val_fraction=0.0))
    trainer.recent_losses.extend([0.5 * defaults.chance_loss(8)] * 5)
    with caplog.at_level(logging.WARNING, logger="openbind"):
        assert trainer._check_chance(final=True)
    trainer.recent_losses.extend([defaults.chance_loss(8)] * 20)
    with caplog.at_level(logging.WARNING, logger="openbind"):
        assert not trainer._check_chance(final=True)
    assert sum("still at chance level" in r.getMessage() for r in caplog.records) == 1


def test_cli_validates_on_a_given_manifest(pairs, tmp_path, capsys):
    from openbind import cli

    lines = pairs["align"].read_text().splitlines()
    val = pairs["align"].parent / "val.csv"
    val.write_text("\n".join(lines[:17]) + "\n")  # the header and 16 pairs
    run = tmp_path / "cli"
    argv = ["train", "align", "--train", str(pairs["align"]), "--val", str(val), "--model", "imagebind_tiny", "--out",
            str(run), "--epochs", "2", "--batch-size", "8", "--preload", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["train_pairs"], summary["val_pairs"], summary["steps"]) == (NUM_ROWS, 16, 18)
    assert summary["lr"] == pytest.approx(2e-3 * math.sqrt(8 / 64) * 128 / 96)
    assert f"exported step {summary['best']['step']} (best validation loss" in out


def test_a_validation_manifest_needs_two_pairs(pairs, tmp_path):
    lines = pairs["align"].read_text().splitlines()
    one = pairs["align"].parent / "one.csv"
    one.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match="fewer than 2 pairs"):
        Trainer(_config(pairs, tmp_path / "run", val=[str(one)]))
