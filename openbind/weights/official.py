"""The reference ImageBind format: constructor kwargs -> config, checkpoint keys <-> openbind keys, strict load.

Official keys look like `modality_trunks.audio.blocks.3.attn.in_proj_weight`; ours like
`encoders.audio.trunk.blocks.3.attn.qkv.weight`. Trunk blocks are mapped by rule, everything else by the
per-modality tables in `openbind.modalities.<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from openbind.config import ModelConfig
from openbind.errors import CheckpointError
from openbind.modalities import all_modalities, get_modality
from openbind.modalities.audio import AudioConfig
from openbind.modalities.depth import DepthConfig
from openbind.modalities.imu import ImuConfig
from openbind.modalities.text import TextConfig
from openbind.modalities.thermal import ThermalConfig
from openbind.modalities.vision import VisionConfig

# Defaults of the reference constructor `ImageBindModel(...)`; `imagebind_huge` overrides the sizes it lists.
OFFICIAL_DEFAULT_KWARGS: dict[str, Any] = dict(
    video_frames=2, kernel_size=(2, 14, 14), audio_kernel_size=16, audio_stride=10, out_embed_dim=768,
    vision_embed_dim=1024, vision_num_blocks=24, vision_num_heads=16,
    audio_embed_dim=768, audio_num_blocks=12, audio_num_heads=12, audio_num_mel_bins=128, audio_target_len=204,
    audio_drop_path=0.1,
    text_embed_dim=768, text_num_blocks=12, text_num_heads=12,
    depth_embed_dim=384, depth_kernel_size=16, depth_num_blocks=12, depth_num_heads=8, depth_drop_path=0.0,
    thermal_embed_dim=768, thermal_kernel_size=16, thermal_num_blocks=12, thermal_num_heads=12,
    thermal_drop_path=0.0,
    imu_embed_dim=512, imu_kernel_size=8, imu_num_blocks=6, imu_num_heads=8, imu_drop_path=0.7,
)  # fmt: skip
IMAGEBIND_HUGE_KWARGS: dict[str, Any] = dict(
    out_embed_dim=1024, vision_embed_dim=1280, vision_num_blocks=32, vision_num_heads=16,
    text_embed_dim=1024, text_num_blocks=24, text_num_heads=16, audio_drop_path=0.1, imu_drop_path=0.7,
)  # fmt: skip

_BLOCK_KEY = re.compile(r"^modality_trunks\.(\w+)\.blocks\.(\d+)\.(.+)$")
_BLOCK_PARTS = {
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj.weight": "attn.proj.weight",
    "attn.out_proj.bias": "attn.proj.bias",
    "attn.bias_k": "attn.bias_k",
    "attn.bias_v": "attn.bias_v",
    "norm_1.weight": "norm1.weight",
    "norm_1.bias": "norm1.bias",
    "norm_2.weight": "norm2.weight",
    "norm_2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_BLOCK_PARTS_INVERSE = {v: k for k, v in _BLOCK_PARTS.items()}
_OUR_BLOCK_KEY = re.compile(r"^encoders\.(\w+)\.trunk\.blocks\.(\d+)\.(.+)$")


def config_from_official_kwargs(**kwargs: Any) -> ModelConfig:
    """The ModelConfig equal to the reference `ImageBindModel(**kwargs)`."""
    unknown = set(kwargs) - set(OFFICIAL_DEFAULT_KWARGS)
    if unknown:
        raise ValueError(f"unknown ImageBindModel kwargs: {sorted(unknown)}")
    k = {**OFFICIAL_DEFAULT_KWARGS, **kwargs}
    encoders = {
        "vision": VisionConfig(
            width=k["vision_embed_dim"], depth=k["vision_num_blocks"], heads=k["vision_num_heads"],
            frames=k["video_frames"], patch_size=tuple(k["kernel_size"]),
        ),
        "text": TextConfig(width=k["text_embed_dim"], depth=k["text_num_blocks"], heads=k["text_num_heads"]),
        "audio": AudioConfig(
            width=k["audio_embed_dim"], depth=k["audio_num_blocks"], heads=k["audio_num_heads"],
            drop_path=k["audio_drop_path"], num_mel_bins=k["audio_num_mel_bins"],
            target_length=k["audio_target_len"], kernel_size=k["audio_kernel_size"], stride=k["audio_stride"],
        ),
        "depth": DepthConfig(
            width=k["depth_embed_dim"], depth=k["depth_num_blocks"], heads=k["depth_num_heads"],
            drop_path=k["depth_drop_path"], kernel_size=k["depth_kernel_size"],
        ),
        "thermal": ThermalConfig(
            width=k["thermal_embed_dim"], depth=k["thermal_num_blocks"], heads=k["thermal_num_heads"],
            drop_path=k["thermal_drop_path"], kernel_size=k["thermal_kernel_size"],
        ),
        # imu_kernel_size is accepted and ignored by the reference too: its projection is always 48 -> width.
        "imu": ImuConfig(
            width=k["imu_embed_dim"], depth=k["imu_num_blocks"], heads=k["imu_num_heads"],
            drop_path=k["imu_drop_path"],
        ),
    }  # fmt: skip
    return ModelConfig(embed_dim=k["out_embed_dim"], encoders=encoders)


def official_to_openbind_key(key: str) -> tuple[str, str] | None:
    """(modality, openbind key) for an official key, or None when the key is not an official one."""
    match = _BLOCK_KEY.match(key)
    if match:
        modality, index, part = match.groups()
        if part in _BLOCK_PARTS:
            return modality, f"encoders.{modality}.trunk.blocks.{index}.{_BLOCK_PARTS[part]}"
        return None
    for name in all_modalities():
        local = get_modality(name).official_keys.get(key)
        if local is not None:
            return name, f"encoders.{name}.{local}"
    return None


def openbind_to_official_key(key: str) -> str:
    match = _OUR_BLOCK_KEY.match(key)
    if match:
        modality, index, part = match.groups()
        return f"modality_trunks.{modality}.blocks.{index}.{_BLOCK_PARTS_INVERSE[part]}"
    _, modality, local = key.split(".", 2)
    for official, ours in get_modality(modality).official_keys.items():
        if ours == local:
            return official
    raise KeyError(f"{key} has no official name")


def _modality_of_official_key(key: str) -> str | None:
    parts = key.split(".")
    return parts[1] if len(parts) > 2 and parts[0].startswith("modality_") else None


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: ModelConfig,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename an official state dict to openbind keys for the modalities of `config`.

    Keys of modalities the config does not hold are skipped (loading a subset); derived buffers (the text
    causal mask) are checked, not loaded. Returns (converted, problems) where problems are human-readable
    descriptions of unexpected keys and wrong derived buffers.
    """
    converted: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, value in state_dict.items():
        modality = _modality_of_official_key(key)
        if modality is not None and modality not in config.encoders:
            continue
        if modality in config.encoders:
            derive = get_modality(modality).derived_official_keys.get(key)
            if derive is not None:
                expected = derive(config.encoders[modality])
                wrong_values = not value.is_meta and not torch.equal(value.float(), expected)
                if tuple(value.shape) != tuple(expected.shape) or wrong_values:
                    problems.append(f"{key}: does not match the buffer this model computes (shape {tuple(value.shape)})")
                continue
        mapped = official_to_openbind_key(key)
        if mapped is None:
            problems.append(f"unexpected key {key}")
            continue
        converted[mapped[1]] = value
    return converted, problems


def to_official_state_dict(model_state: Mapping[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """The inverse mapping (openbind state dict -> reference names, derived buffers included)."""
    out = {openbind_to_official_key(k): v for k, v in model_state.items()}
    for modality, encoder_config in config.encoders.items():
        for key, derive in get_modality(modality).derived_official_keys.items():
            out[key] = derive(encoder_config)
    return out


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], problems: list[str] = ()) -> None:
    """Raise one CheckpointError listing every missing, unexpected and mis-shaped key (if any)."""
    expected = model.state_dict()
    problems = list(problems)
    missing = [k for k in expected if k not in state_dict]
    problems += [f"missing key {k} (shape {tuple(expected[k].shape)})" for k in missing]
    problems += [f"unexpected key {k}" for k in state_dict if k not in expected]
    problems += [
        f"wrong shape for {k}: checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if problems:
        head = f"checkpoint does not fit the model ({len(problems)} problem(s)):\n  "
        raise CheckpointError(head + "\n  ".join(problems))


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], problems: list[str] = ()) -> None:
    """Strictly load an openbind-keyed state dict; a model built on the meta device takes the tensors as-is."""
    check_state_dict(model, state_dict, problems)
    on_meta = any(p.is_meta for p in model.parameters())
    target_dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    state_dict = {k: v.to(target_dtypes[k]) if v.dtype != target_dtypes[k] else v for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=on_meta)


def load_official_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a reference-format state dict into `model` (an `openbind.ImageBind`), strictly.

    Only the model's modalities are read from `state_dict`, so a text+audio model loads from the full
    checkpoint. Any missing, unexpected or mis-shaped key raises one CheckpointError that lists them all.
    """
    converted, problems = convert_official_state_dict(state_dict, model.config)
    load_state_dict_strict(model, converted, problems)


def is_official_state_dict(keys) -> bool:
    return any(k.startswith(("modality_preprocessors.", "modality_trunks.", "modality_heads.")) for k in keys)
