"""Thermal: one-channel infrared images (B,1,224,224) through 16x16 patches and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass

from openbind.modalities import Modality, register_modality
from openbind.modalities.single_channel import SingleChannelImageConfig, official_keys


@dataclass
class ThermalConfig(SingleChannelImageConfig):
    width: int = 768
    depth: int = 12
    heads: int = 12
    scale: float | None = 10.0  # 1 / temperature 0.1

    modality = "thermal"


THERMAL = register_modality(
    Modality(
        name="thermal",
        config_cls=ThermalConfig,
        official_keys=official_keys("thermal", stem_name="rgbt_stem"),
        load="openbind.modalities.thermal.transform:load_thermals",
    )
)
