"""Official checkpoint mapping, conversion to safetensors, subset loading and refusal of bad files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import openbind
from openbind.errors import CheckpointError
from openbind.weights import checkpoint as checkpoint_module
from openbind.weights.checkpoint import read_state_dict
from openbind.weights.convert import convert_official_checkpoint
from openbind.factory import PRESETS
from openbind.weights.official import convert_official_state_dict, to_official_state_dict

from conftest import require_shared

DTYPES = {"float32": torch.float32}


def test_huge_checkpoint_keys_map_with_equal_shapes():
    """All 1311 keys of the real imagebind_huge checkpoint, on the meta device (no 4.8 GB allocation)."""
    rows = require_shared("parity", "imagebind_huge_state_dict.tsv").read_text().splitlines()[1:]
    official = {}
    for row in rows:
        key, shape, dtype = row.split("\t")
        dims = tuple(int(d) for d in shape.split("x")) if shape else ()
        official[key] = torch.empty(dims, dtype=DTYPES[dtype], device="meta")
    assert len(official) == 1311
    config = openbind.ModelConfig.from_official_kwargs(**PRESETS["imagebind_huge"]["official"])
    with torch.device("meta"):
        model = openbind.ImageBind(config)
    converted, problems = convert_official_state_dict(official, config)
    assert problems == []
    ours = model.state_dict()
    assert set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)
    back = to_official_state_dict(ours, config)
    assert set(back) == set(official)
    assert all(back[k].shape == official[k].shape for k in official)
    counts = {m: sum(p.numel() for p in e.parameters()) for m, e in model.encoders.items()}
    assert counts == {
        "vision": 632_829_440, "text": 354_032_641, "audio": 86_235_648,
        "depth": 21_871_872, "thermal": 86_211_072, "imu": 19_600_384,
    }  # fmt: skip


def _official_checkpoint(parity_fixture, tmp_path):
    path = tmp_path / "imagebind_tiny_official.pth"
    torch.save(parity_fixture["state_dict"], path)
    return path


def _preset_dir(parity_fixture, tmp_path, **kwargs):
    """Register the fixture's config as a checkpoint directory, converted from the official .pth."""
    out = tmp_path / "converted"
    config = openbind.ModelConfig.from_official_kwargs(**json.loads(parity_fixture["config"]))
    state, problems = convert_official_state_dict(parity_fixture["state_dict"], config)
    assert problems == []
    checkpoint_module.save_checkpoint(state, config, out, **kwargs)
    return out


def test_pth_to_safetensors_gives_same_outputs(parity_fixture, tmp_path):
    pth = _official_checkpoint(parity_fixture, tmp_path)
    config = openbind.ModelConfig.from_official_kwargs(**json.loads(parity_fixture["config"]))
    from_pth = openbind.create_model(config, pretrained=pth)
    directory = _preset_dir(parity_fixture, tmp_path, per_modality=True)
    from_dir = openbind.create_model(str(directory))
    with torch.no_grad():
        a = from_pth(parity_fixture["inputs"])
        b = from_dir(parity_fixture["inputs"])
    for modality, expected in parity_fixture["outputs"].items():
        assert torch.equal(a[modality], b[modality]), modality
        assert float((a[modality] - expected).norm() / expected.norm()) <= 1e-5


def test_convert_command_writes_whole_and_per_modality_files(parity_fixture, tmp_path, monkeypatch):
    from openbind import cli, factory

    pth = _official_checkpoint(parity_fixture, tmp_path)
    kwargs = json.loads(parity_fixture["config"])
    monkeypatch.setitem(factory.PRESETS, "fixture_tiny", {"official": kwargs})
    assert cli.main(["convert", str(pth), "--out", str(tmp_path / "out"), "--preset", "fixture_tiny", "--per-modality"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(
        ["config.json", "model.safetensors"] + [f"{m}.safetensors" for m in parity_fixture["outputs"]]
    )
    whole = read_state_dict(tmp_path / "out" / "model.safetensors")
    audio = read_state_dict(tmp_path / "out" / "audio.safetensors")
    assert set(audio) == {k for k in whole if k.startswith("encoders.audio.")}


def test_convert_refuses_checkpoint_of_another_size(parity_fixture, tmp_path):
    pth = _official_checkpoint(parity_fixture, tmp_path)
    with pytest.raises(CheckpointError, match="wrong shape") as info:
        convert_official_checkpoint(pth, tmp_path / "out", preset="imagebind_small")
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert "missing key" in str(info.value) or "wrong shape" in str(info.value)


def test_subset_reads_only_its_modalities(parity_fixture, tmp_path, monkeypatch):
    directory = _preset_dir(parity_fixture, tmp_path, whole=False, per_modality=True)
    for modality in ("vision", "depth", "thermal", "imu"):
        (directory / f"{modality}.safetensors").unlink()  # proves they are never opened
    model = openbind.create_model(str(directory), modalities=["text", "audio"])
    assert model.modalities == ["text", "audio"]
    with torch.no_grad():
        out = model({"text": parity_fixture["inputs"]["text"], "audio": parity_fixture["inputs"]["audio"]})
    for modality in ("text", "audio"):
        expected = parity_fixture["outputs"][modality]
        assert float((out[modality] - expected).norm() / expected.norm()) <= 1e-5


def test_subset_of_whole_file_reads_only_kept_tensors(parity_fixture, tmp_path, monkeypatch):
    directory = _preset_dir(parity_fixture, tmp_path)
    read = []
    original = checkpoint_module._read_safetensors

    def spy(path, keep):
        tensors = original(path, keep)
        read.extend(tensors)
        return tensors

    monkeypatch.setattr(checkpoint_module, "_read_safetensors", spy)
    model = openbind.create_model(str(directory), modalities=["imu"])
    assert read and all(k.startswith("encoders.imu.") for k in read)
    assert sum(v.numel() for v in model.state_dict().values()) == sum(
        v.numel() for k, v in parity_fixture["state_dict"].items() if k.split(".")[1] == "imu"
    )


def test_strict_load_lists_every_problem(parity_fixture):
    config = openbind.ModelConfig.from_official_kwargs(**json.loads(parity_fixture["config"]))
    state = dict(parity_fixture["state_dict"])
    del state["modality_heads.audio.2.weight"]
    del state["modality_trunks.vision.blocks.1.mlp.fc2.bias"]
    state["modality_trunks.imu.blocks.0.norm_1.weight"] = torch.zeros(3)
    state["modality_trunks.text.blocks.0.something_new"] = torch.zeros(1)
    state["modality_preprocessors.text.mask"] = torch.zeros(77, 77)
    with torch.device("meta"):
        model = openbind.ImageBind(config)
    with pytest.raises(CheckpointError) as info:
        openbind.load_official_state_dict(model, state)
    message = str(info.value)
    for fragment in (
        "missing key encoders.audio.head.proj.weight",
        "missing key encoders.vision.trunk.blocks.1.mlp.fc2.bias",
        "wrong shape for encoders.imu.trunk.blocks.0.norm1.weight",
        "unexpected key modality_trunks.text.blocks.0.something_new",
        "modality_preprocessors.text.mask: does not match",
    ):
        assert fragment in message
    assert "5 problem(s)" in message


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_or_corrupt_checkpoint_gives_clear_error(parity_fixture, tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    state = {"encoders.imu.stem.cls_token": torch.randn(1, 1, 64), "x.y.z": torch.randn(1000)}
    if suffix == ".pth":
        torch.save(state, good)
    else:
        checkpoint_module.save_state_dict(state, good)
    data = good.read_bytes()
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(truncated)
    rng = np.random.default_rng(0)
    for i in range(60):  # random bytes make the unpickler fail in many ways; all must be CheckpointError
        garbage = tmp_path / f"garbage{i}{suffix}"
        garbage.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / f"absent{suffix}")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": _RunsCode()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(evil)
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_save_is_atomic_when_writer_fails(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    checkpoint_module.save_state_dict({"a": torch.ones(2)}, target)
    before = target.read_bytes()

    def broken(tensors, filename):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", broken)
    with pytest.raises(OSError):
        checkpoint_module.save_state_dict({"a": torch.zeros(2)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
