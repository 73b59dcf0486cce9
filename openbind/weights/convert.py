"""Official `.pth` -> openbind checkpoint directory (safetensors, whole and/or per modality)."""

from __future__ import annotations

from pathlib import Path

import torch

from openbind.factory import get_model_config
from openbind.model.imagebind import ImageBind
from openbind.preprocess import record_inputs
from openbind.weights.checkpoint import read_state_dict, save_checkpoint
from openbind.weights.official import check_state_dict, convert_official_state_dict


def convert_official_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "imagebind_huge",
    whole: bool = True,
    per_modality: bool = False,
) -> list[Path]:
    """Convert and strictly check every key against `preset` before writing anything."""
    config = get_model_config(preset)
    state = read_state_dict(checkpoint)  # weights_only=True, memory-mapped
    converted, problems = convert_official_state_dict(state, config)
    with torch.device("meta"):
        check_state_dict(ImageBind(config), converted, problems)
    return save_checkpoint(converted, record_inputs(config), out_dir, whole=whole, per_modality=per_modality)
