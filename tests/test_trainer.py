"""The training loop on a tiny world: align then bind, exact resume after a crash, NaN stop, CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import openbind
from openbind.train import TrainConfig, Trainer, TrainingDiverged
from openbind.weights.checkpoint import read_state_dict
from openbind.world import write_world

SMALL_WORLD = dict(
    train_per_class=3, test_per_class=1, align_per_combo=1, videos_train_per_activity=1,
    videos_test_per_activity=1, arithmetic_per_combo=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("w") / "world", seed=0, **SMALL_WORLD)


@pytest.fixture(scope="module")
def aligned(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "align"
    config = TrainConfig(
        stage="align", train=[str(world.manifests["align_train"])], out=str(out), model="imagebind_tiny",
        epochs=3, batch_size=16, lr=2e-3, warmup_epochs=0.5, progress=False, log_every=1, preload=True,
    )  # fmt: skip
    Trainer(config).fit()
    return out


def _bind_config(world, aligned, out, **overrides):
    values = dict(
        stage="bind", modality="audio", train=[str(world.manifests["audio_train"])], out=str(out),
        init=str(aligned), epochs=4, batch_size=10, lr=2e-3, warmup_epochs=0.5, progress=False, log_every=1,
        save_every=2,
    )  # fmt: skip
    return TrainConfig(**{**values, **overrides})


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_align_lowers_the_loss_and_exports_a_model(aligned):
    records = _log(aligned)
    assert records[-1]["loss"] < records[0]["loss"]
    model = openbind.create_model(str(aligned / "model"))
    assert model.modalities == ["vision", "text", "audio", "depth", "thermal", "imu"]
    assert (aligned / "train_config.json").is_file() and (aligned / "checkpoints" / "latest").is_file()


def test_bind_trains_only_its_tower(world, aligned, tmp_path):
    run = tmp_path / "audio"
    Trainer(_bind_config(world, aligned, run)).fit()
    before = read_state_dict(aligned / "model" / "model.safetensors")
    after = read_state_dict(run / "model" / "model.safetensors")
    changed = {k.split(".")[1] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"audio"}
    assert list((run / "cache").glob("*.npy")), "the frozen image embeddings are cached"
    assert _log(run)[-1]["loss"] < _log(run)[0]["loss"]


@pytest.mark.parametrize(
    "overrides", [{}, {"modality": "depth", "augment": True}], ids=["audio", "depth-augmented"]
)
def test_resume_after_a_crash_reaches_the_same_weights(world, aligned, tmp_path, monkeypatch, overrides):
    if overrides:
        overrides["train"] = [str(world.manifests[f"{overrides['modality']}_train"])]
    straight = tmp_path / "straight"
    Trainer(_bind_config(world, aligned, straight, **overrides)).fit()

    crashed = tmp_path / "crashed"
    trainer = Trainer(_bind_config(world, aligned, crashed, **overrides))
    real_loss = trainer._loss

    def crash_at_step_5(batch, size):
        if trainer.step == 5:
            raise KeyboardInterrupt("simulated kill")  # mid-epoch: last checkpoint at step 4 (epoch 1, batch 1)
        return real_loss(batch, size)

    monkeypatch.setattr(trainer, "_loss", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert not (crashed / "model").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(_bind_config(world, aligned, crashed, **overrides)).fit()
    Trainer(_bind_config(world, aligned, crashed, **overrides)).fit(resume=True)
    a = read_state_dict(straight / "model" / "model.safetensors")
    b = read_state_dict(crashed / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_augment_is_for_depth_and_thermal_binds_only(tmp_path):
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(stage="align", train=["x.csv"], out=str(tmp_path), augment=True)
    with pytest.raises(ValueError, match="not bind 'audio'"):
        TrainConfig(stage="bind", modality="audio", train=["x.csv"], out=str(tmp_path), augment=True)
    for modality in ("depth", "thermal"):
        assert TrainConfig(stage="bind", modality=modality, train=["x.csv"], out=str(tmp_path), augment=True).augment


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(world, aligned, tmp_path, monkeypatch):
    run = tmp_path / "nan"
    trainer = Trainer(_bind_config(world, aligned, run))
    real_loss = trainer._loss

    def nan_at_step_4(batch, size):
        loss, accuracy = real_loss(batch, size)
        return (loss * float("nan"), accuracy) if trainer.step == 4 else (loss, accuracy)

    monkeypatch.setattr(trainer, "_loss", nan_at_step_4)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 4"):
        trainer.fit()
    assert (run / "checkpoints" / "latest").read_text().strip().startswith("step_000004")


def test_cli_train_help_explains_every_option(capsys):
    from openbind import cli

    with pytest.raises(SystemExit):
        cli.main(["train", "bind", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        if field.name != "stage":
            assert "--" + field.name.replace("_", "-") in text
            assert " ".join(field.metadata["help"].replace("%%", "%").split()[:4]) in text
    assert "--resume" in text


def test_cli_eval_zeroshot_on_a_run(world, aligned, tmp_path, capsys):
    from openbind import cli

    out = tmp_path / "zs.json"
    argv = ["eval", "zeroshot", "--model", str(aligned), "--modality", "image", "--data",
            str(world.manifests["eval_image_test"]), "--classes", str(world.out_dir / "classes" / "objects.txt"),
            "--json", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    assert "top-1" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["num_items"] == len(world.objects) and 0.0 <= result["top1"] <= 1.0
