"""IMU: accelerometer + gyroscope (B,6,2000) cut into 250 chunks of 8 steps, a linear stem and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from openbind.modalities.batch import OnError
from openbind.modalities.registry import InputKind, ItemTransform, Modality, official_head_keys, register_modality
from openbind.model.config import EncoderConfig
from openbind.model.stem import STEM_NORM_EPS, ClsPosStem


@dataclass
class ImuConfig(EncoderConfig):
    width: int = 512
    depth: int = 6
    heads: int = 8
    drop_path: float = 0.7
    kv_bias: bool = True
    head_dropout: float = 0.5
    scale: float | None = 5.0  # 1 / temperature 0.2
    channels: int = 6  # accelerometer xyz, gyroscope xyz
    length: int = 2000  # time steps of one 5 s window
    chunk: int = 8  # time steps per token

    modality = "imu"
    item_ndims = (2,)

    def num_tokens(self) -> int:
        return 1 + self.length // self.chunk

    def build_stem(self) -> nn.Module:
        return ImuStem(self)

    def stem_macs(self) -> float:
        return (self.num_tokens() - 1) * self.width * self.channels * self.chunk

    def example_input(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        return torch.randn(batch, self.channels, self.length, device=device)


class ImuStem(ClsPosStem):
    """Each token holds one chunk of all channels, flattened channel-major (feature = channel * chunk + step)."""

    def __init__(self, config: ImuConfig):
        super().__init__(config.width, config.length // config.chunk)
        self.input_shape = (config.channels, config.length)
        self.chunk = config.chunk
        self.proj = nn.Linear(config.channels * config.chunk, config.width, bias=False)
        self.norm = nn.LayerNorm(config.width, eps=STEM_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"imu expects (B, {self.input_shape[0]}, {self.input_shape[1]}), got {tuple(x.shape)}")
        b, c, t = x.shape
        chunks = x.reshape(b, c, t // self.chunk, self.chunk).transpose(1, 2).reshape(b, t // self.chunk, -1)
        return self.add_cls_and_positions(self.norm(self.proj(chunks)))


def from_official(k: dict[str, Any]) -> ImuConfig:
    # imu_kernel_size is accepted and ignored by the reference too: its projection is always 48 -> width.
    return ImuConfig(
        width=k["imu_embed_dim"], depth=k["imu_num_blocks"], heads=k["imu_num_heads"], drop_path=k["imu_drop_path"]
    )


def imu_transform(**options: Any) -> ItemTransform:
    """One window per recording gives [6, 2000] (clip axis dropped); more give [clips, 6, 2000]."""
    from openbind.modalities.batch import FirstClip
    from openbind.modalities.imu.transform import ImuTransform

    transform = ImuTransform(**options)
    return FirstClip(transform) if transform.clips == 1 else transform


def load_imus(items: Any, *, on_error: OnError = "raise", **options: Any) -> Any:
    from openbind.modalities.imu import transform

    return transform.load_imus(items, transform=transform.ImuTransform(**options), on_error=on_error)


IMU = register_modality(
    Modality(
        name="imu",
        config_cls=ImuConfig,
        inputs=(InputKind("imu", imu_transform, load_imus),),  # CSV and .npy files: no suffix of their own
        official_keys={
            "modality_preprocessors.imu.cls_token": "stem.cls_token",
            "modality_preprocessors.imu.imu_stem.proj.weight": "stem.proj.weight",
            "modality_preprocessors.imu.imu_stem.norm_layer.weight": "stem.norm.weight",
            "modality_preprocessors.imu.imu_stem.norm_layer.bias": "stem.norm.bias",
            "modality_preprocessors.imu.pos_embed": "stem.pos_embed",
            **official_head_keys("imu", norm="0", proj="3", scale=True),
        },
        official_defaults=dict(imu_embed_dim=512, imu_kernel_size=8, imu_num_blocks=6, imu_num_heads=8, imu_drop_path=0.7),
        from_official=from_official,
    )
)
