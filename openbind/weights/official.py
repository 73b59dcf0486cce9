"""The reference ImageBind checkpoint format: its keys <-> openbind keys, and strict loading.

Official keys look like `modality_trunks.audio.blocks.3.attn.in_proj_weight`; ours like
`encoders.audio.trunk.blocks.3.attn.qkv.weight`. Trunk blocks are mapped by rule, everything else by the
per-modality tables in `openbind.modalities.<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from openbind.config import ModelConfig
from openbind.errors import CheckpointError
from openbind.modalities import all_modalities, get_modality

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
