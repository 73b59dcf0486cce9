"""Depth: one-channel disparity maps (B,1,224,224) through 16x16 patches and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass

from openbind.modalities import Modality, register_modality
from openbind.modalities.single_channel import SingleChannelImageConfig, official_keys


@dataclass
class DepthConfig(SingleChannelImageConfig):
    width: int = 384
    depth: int = 12
    heads: int = 8
    scale: float | None = 5.0  # 1 / temperature 0.2

    modality = "depth"


DEPTH = register_modality(
    Modality(
        name="depth",
        config_cls=DepthConfig,
        official_keys=official_keys("depth", stem_name="depth_stem"),
        load="openbind.modalities.depth.transform:load_depths",
    )
)
