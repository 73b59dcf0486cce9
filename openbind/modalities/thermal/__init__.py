"""Thermal: one-channel infrared images (B,1,224,224) through 16x16 patches and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from openbind.modalities.batch import OnError
from openbind.modalities.registry import InputKind, ItemTransform, Modality, register_modality
from openbind.modalities.single_channel import SingleChannelImageConfig, config_from_official, official_keys


@dataclass
class ThermalConfig(SingleChannelImageConfig):
    width: int = 768
    depth: int = 12
    heads: int = 12
    scale: float | None = 10.0  # 1 / temperature 0.1

    modality = "thermal"


def thermal_transform(**options: Any) -> ItemTransform:
    from openbind.modalities.thermal.transform import ThermalTransform

    return ThermalTransform(**options)


def load_thermals(items: Any, *, on_error: OnError = "raise", **options: Any) -> Any:
    from openbind.modalities.thermal import transform

    return transform.load_thermals(items, transform=transform.ThermalTransform(**options), on_error=on_error)


THERMAL = register_modality(
    Modality(
        name="thermal",
        config_cls=ThermalConfig,
        inputs=(InputKind("thermal", thermal_transform, load_thermals),),  # PNGs and arrays: no suffix of their own
        official_keys=official_keys("thermal", stem_name="rgbt_stem"),
        official_defaults=dict(
            thermal_embed_dim=768, thermal_kernel_size=16, thermal_num_blocks=12, thermal_num_heads=12,
            thermal_drop_path=0.0,
        ),
        from_official=partial(config_from_official, ThermalConfig, "thermal"),
        augmentable=True,
    )
)
