"""Audio: log-mel spectrograms (B,1,128,204) of 2 s clips through overlapping Conv2d patches and a ViT trunk."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from openbind.config import EncoderConfig
from openbind.model.stem import PatchStem2d
from openbind.modalities import Modality, official_head_keys, register_modality


@dataclass
class AudioConfig(EncoderConfig):
    width: int = 768
    depth: int = 12
    heads: int = 12
    drop_path: float = 0.1
    kv_bias: bool = True
    scale: float | None = 20.0  # 1 / temperature 0.05
    num_mel_bins: int = 128
    target_length: int = 204  # frames
    kernel_size: int = 16
    stride: int = 10

    modality = "audio"
    item_ndims = (3,)

    def grid(self) -> tuple[int, int]:
        return tuple((n - self.kernel_size) // self.stride + 1 for n in (self.num_mel_bins, self.target_length))

    def num_tokens(self) -> int:
        h, w = self.grid()
        return 1 + h * w

    def build_stem(self) -> nn.Module:
        return PatchStem2d(1, self.width, (self.num_mel_bins, self.target_length), self.kernel_size, self.stride)


AUDIO = register_modality(
    Modality(
        name="audio",
        config_cls=AudioConfig,
        official_keys={
            "modality_preprocessors.audio.cls_token": "stem.cls_token",
            "modality_preprocessors.audio.rgbt_stem.proj.weight": "stem.proj.weight",
            "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": "stem.norm.weight",
            "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": "stem.norm.bias",
            "modality_preprocessors.audio.pos_embedding_helper.pos_embed": "stem.pos_embed",
            **official_head_keys("audio", norm="0", proj="2", scale=True),
        },
        load="openbind.modalities.audio.transform:load_audios",
    )
)
