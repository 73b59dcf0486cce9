"""Depth: one-channel disparity maps (B,1,224,224) through 16x16 patches and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from openbind.modalities.batch import OnError
from openbind.modalities.registry import InputKind, ItemTransform, Modality, register_modality
from openbind.modalities.single_channel import SingleChannelImageConfig, config_from_official, official_keys


@dataclass
class DepthConfig(SingleChannelImageConfig):
    width: int = 384
    depth: int = 12
    heads: int = 8
    scale: float | None = 5.0  # 1 / temperature 0.2

    modality = "depth"


def depth_transform(**options: Any) -> ItemTransform:
    from openbind.modalities.depth.transform import DepthTransform

    return DepthTransform(**options)


def load_depths(items: Any, *, on_error: OnError = "raise", **options: Any) -> Any:
    from openbind.modalities.depth import transform

    return transform.load_depths(items, transform=transform.DepthTransform(**options), on_error=on_error)


DEPTH = register_modality(
    Modality(
        name="depth",
        config_cls=DepthConfig,
        inputs=(InputKind("depth", depth_transform, load_depths),),  # PNGs and arrays: no suffix of their own
        official_keys=official_keys("depth", stem_name="depth_stem"),
        official_defaults=dict(
            depth_embed_dim=384, depth_kernel_size=16, depth_num_blocks=12, depth_num_heads=8, depth_drop_path=0.0
        ),
        from_official=partial(config_from_official, DepthConfig, "depth"),
        augmentable=True,
    )
)
