"""IMU: accelerometer + gyroscope (B,6,2000) cut into 250 chunks of 8 steps, a linear stem and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from openbind.config import EncoderConfig
from openbind.model.stem import STEM_NORM_EPS, ClsPosStem
from openbind.modalities import Modality, official_head_keys, register_modality


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


IMU = register_modality(
    Modality(
        name="imu",
        config_cls=ImuConfig,
        official_keys={
            "modality_preprocessors.imu.cls_token": "stem.cls_token",
            "modality_preprocessors.imu.imu_stem.proj.weight": "stem.proj.weight",
            "modality_preprocessors.imu.imu_stem.norm_layer.weight": "stem.norm.weight",
            "modality_preprocessors.imu.imu_stem.norm_layer.bias": "stem.norm.bias",
            "modality_preprocessors.imu.pos_embed": "stem.pos_embed",
            **official_head_keys("imu", norm="0", proj="3", scale=True),
        },
        load="openbind.modalities.imu.transform:load_imus",
    )
)
