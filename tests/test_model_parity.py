"""The model reproduces the reference ImageBind forward (../shared/reference/parity fixture)."""

from __future__ import annotations

import json

import pytest
import torch

import openbind
from openbind.weights.official import official_to_openbind_key


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def official_model(parity_fixture):
    config = openbind.ModelConfig.from_official_kwargs(**json.loads(parity_fixture["config"]))
    with torch.device("meta"):
        model = openbind.ImageBind(config)
    openbind.load_official_state_dict(model, parity_fixture["state_dict"])
    return model.eval()


@pytest.mark.parametrize("modality", ["vision", "text", "audio", "depth", "thermal", "imu"])
def test_reference_forward_parity(official_model, parity_fixture, modality):
    with torch.no_grad():
        out = official_model({modality: parity_fixture["inputs"][modality]})[modality]
    expected = parity_fixture["outputs"][modality]
    assert out.shape == expected.shape
    assert rel_err(out, expected) <= 1e-5


def test_all_modalities_in_one_call_and_video(official_model, parity_fixture):
    with torch.no_grad():
        out = official_model(parity_fixture["inputs"])
        video = official_model({"vision": parity_fixture["video_input"]})["vision"]
    for modality, expected in parity_fixture["outputs"].items():
        assert rel_err(out[modality], expected) <= 1e-5, modality
    assert rel_err(video, parity_fixture["video_output"]) <= 1e-5


def test_every_fixture_key_is_mapped(parity_fixture):
    unmapped = [k for k in parity_fixture["state_dict"] if official_to_openbind_key(k) is None]
    assert unmapped == ["modality_preprocessors.text.mask"]  # derived (causal mask), checked not loaded


def test_embed_is_unit_norm_and_matches_reference_direction(official_model, parity_fixture):
    inputs = parity_fixture["inputs"]
    emb = official_model.embed(**inputs)
    ref = parity_fixture["outputs"]
    for modality, e in emb.items():
        assert torch.allclose(e.norm(dim=-1), torch.ones(e.shape[0]), atol=1e-5), modality
        direction = torch.nn.functional.normalize(ref[modality], dim=-1)
        assert rel_err(e, direction) <= 1e-5, modality
    assert official_model.logit_scale("vision") == 1.0
    assert official_model.logit_scale("audio") == pytest.approx(20.0)
    assert official_model.logit_scale("text") == pytest.approx(float(ref["text"].norm(dim=-1)[0]), rel=1e-5)


def test_image_equals_its_two_frame_clip(official_model, parity_fixture):
    image = parity_fixture["inputs"]["vision"]
    clip = image.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    single = official_model.embed(vision=image)["vision"]
    as_clip = official_model.embed(vision=clip)["vision"]
    assert rel_err(as_clip, single) <= 1e-5


def test_multi_clip_video_embed_is_renormalized_mean(official_model, parity_fixture):
    video = parity_fixture["video_input"]  # 1 x 2 clips x 3 x 2 x 224 x 224
    emb = official_model.embed(vision=video)["vision"]
    per_clip = official_model.embed(vision=video[0])["vision"]
    expected = torch.nn.functional.normalize(per_clip.mean(0, keepdim=True), dim=-1)
    assert rel_err(emb, expected) <= 1e-5


def test_none_and_absent_modalities_are_skipped(official_model, parity_fixture):
    out = official_model({"vision": None, "text": parity_fixture["inputs"]["text"]})
    assert list(out) == ["text"]
    assert list(official_model.embed(audio=None, text=parity_fixture["inputs"]["text"])) == ["text"]


def test_model_from_create_model_is_in_eval_mode():
    model = openbind.create_model("imagebind_tiny", modalities=["imu"])
    assert not model.training
    assert model.modalities == ["imu"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(out_embed_dim=40, vision_embed_dim=48, vision_num_blocks=3, vision_num_heads=3),
        dict(text_embed_dim=40, text_num_blocks=1, text_num_heads=5, audio_embed_dim=36, audio_num_heads=6),
        dict(video_frames=2, kernel_size=(2, 16, 16), audio_kernel_size=16, audio_stride=12),
        dict(depth_embed_dim=24, depth_kernel_size=14, thermal_kernel_size=32, imu_embed_dim=40, imu_num_heads=5),
    ],
)
def test_any_reference_config_builds_with_reference_shapes(kwargs):
    """Shapes follow the reference for other widths, depths, heads, kernels and joint dims."""
    small = dict(
        vision_embed_dim=32, vision_num_blocks=1, vision_num_heads=2, text_embed_dim=32, text_num_blocks=1,
        text_num_heads=2, audio_embed_dim=32, audio_num_blocks=1, audio_num_heads=2, depth_embed_dim=32,
        depth_num_blocks=1, depth_num_heads=2, thermal_embed_dim=32, thermal_num_blocks=1, thermal_num_heads=2,
        imu_embed_dim=32, imu_num_blocks=1, imu_num_heads=2, out_embed_dim=16,
    )
    config = openbind.ModelConfig.from_official_kwargs(**{**small, **kwargs})
    model = openbind.create_model(config)
    inputs = {
        "vision": torch.randn(2, 3, 224, 224),
        "text": openbind.tokenize(["a dog", "a cat"]),
        "audio": torch.randn(2, 3, 1, 128, 204),
        "depth": torch.randn(2, 1, 224, 224),
        "thermal": torch.randn(2, 1, 224, 224),
        "imu": torch.randn(2, 6, 2000),
    }
    out = model.embed(**inputs)
    for modality, e in out.items():
        assert e.shape == (2, config.embed_dim), modality
        assert torch.isfinite(e).all()
    for modality, encoder in model.encoders.items():
        assert encoder.stem.pos_embed.shape[1] == config.encoders[modality].num_tokens()
