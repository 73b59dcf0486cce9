"""Audio: log-mel spectrograms (B,1,128,204) of 2 s clips through overlapping Conv2d patches and a ViT trunk.

The transform is imported on first use, so building a model needs no decoding library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from openbind.modalities.batch import OnError
from openbind.modalities.registry import InputKind, ItemTransform, Modality, official_head_keys, register_modality
from openbind.model.config import EncoderConfig
from openbind.model.stem import PatchStem2d

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac")
CLIPS_PER_FILE = 3  # the reference's default: three 2 s clips spread over the recording


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

    def stem_macs(self) -> float:
        return (self.num_tokens() - 1) * self.width * self.kernel_size**2

    def example_input(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """One file: its clips, each a (1, mel bins, frames) spectrogram."""
        return torch.randn(batch, CLIPS_PER_FILE, 1, self.num_mel_bins, self.target_length, device=device)


def from_official(k: dict[str, Any]) -> AudioConfig:
    return AudioConfig(
        width=k["audio_embed_dim"], depth=k["audio_num_blocks"], heads=k["audio_num_heads"],
        drop_path=k["audio_drop_path"], num_mel_bins=k["audio_num_mel_bins"], target_length=k["audio_target_len"],
        kernel_size=k["audio_kernel_size"], stride=k["audio_stride"],
    )  # fmt: skip


def audio_transform(**options: Any) -> ItemTransform:
    from openbind.modalities.audio.transform import AudioTransform

    return AudioTransform(**options)


def audio_train_transform(**options: Any) -> ItemTransform:
    """One 2 s clip from the start: the span a video clip of the same file covers."""
    from openbind.modalities.batch import FirstClip

    return FirstClip(audio_transform(**{**options, "clips_per_file": 1, "sampler": "reference"}))


def load_audios(items: Any, *, on_error: OnError = "raise", **options: Any) -> Any:
    from openbind.modalities.audio import transform

    return transform.load_audios(items, transform=transform.AudioTransform(**options), on_error=on_error)


AUDIO = register_modality(
    Modality(
        name="audio",
        config_cls=AudioConfig,
        inputs=(
            InputKind(
                "audio", audio_transform, load_audios, audio_train_transform, suffixes=AUDIO_SUFFIXES,
                evaluation={"sampler": "paper"}, found_in=("video",),
            ),
        ),  # fmt: skip
        official_keys={
            "modality_preprocessors.audio.cls_token": "stem.cls_token",
            "modality_preprocessors.audio.rgbt_stem.proj.weight": "stem.proj.weight",
            "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": "stem.norm.weight",
            "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": "stem.norm.bias",
            "modality_preprocessors.audio.pos_embedding_helper.pos_embed": "stem.pos_embed",
            **official_head_keys("audio", norm="0", proj="2", scale=True),
        },
        official_defaults=dict(
            audio_kernel_size=16, audio_stride=10, audio_embed_dim=768, audio_num_blocks=12, audio_num_heads=12,
            audio_num_mel_bins=128, audio_target_len=204, audio_drop_path=0.1,
        ),  # fmt: skip
        from_official=from_official,
    )
)
