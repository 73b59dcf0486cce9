"""Vision: images (B,3,H,W) and 2-frame clips (B,3,T,H,W) through a Conv3d patch stem and a ViT trunk.

It reads two input kinds: `image` (one picture) and `video` (clips of frames). The transforms are imported on
first use, so building a model needs no decoding library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from openbind.modalities.batch import OnError
from openbind.modalities.registry import InputKind, ItemTransform, Modality, official_head_keys, register_modality
from openbind.model.config import EncoderConfig
from openbind.model.stem import ClsPosStem


@dataclass
class VisionConfig(EncoderConfig):
    width: int = 1280
    depth: int = 32
    heads: int = 16
    image_size: int = 224
    frames: int = 2  # an image is repeated to this many frames
    patch_size: tuple[int, int, int] = (2, 14, 14)  # (time, height, width); stride = kernel

    modality = "vision"
    item_ndims = (3, 4)
    pre_trunk_norm = True

    def grid(self) -> tuple[int, int, int]:
        t, h, w = self.patch_size
        return self.frames // t, self.image_size // h, self.image_size // w

    def num_tokens(self) -> int:
        return 1 + math.prod(self.grid())

    def build_stem(self) -> nn.Module:
        return VisionStem(self)

    def stem_macs(self) -> float:
        t, p, q = self.patch_size
        return (self.num_tokens() - 1) * self.width * 3 * p * q * (t if self.frames != t else 1)  # images: time folded

    def example_input(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        return torch.randn(batch, 3, self.image_size, self.image_size, device=device)

    def export_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images become clips of `frames` identical frames: what the stem computes for an image anyway."""
        return x.unsqueeze(2).expand(-1, -1, self.frames, -1, -1) if x.ndim == 4 else x


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class VisionStem(ClsPosStem):
    """Conv3d tubelets (no bias) -> CLS + positions. Positions are interpolated for other image sizes."""

    def __init__(self, config: VisionConfig):
        self.grid = config.grid()
        super().__init__(config.width, math.prod(self.grid))
        self.frames = config.frames
        self.proj = nn.Conv3d(3, config.width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and x.shape[1] == 3 and self.frames == self.proj.kernel_size[0]:
            # An image repeated over the time kernel equals a 2-D conv with the kernel summed over time:
            # same result, half the multiply-adds.
            weight = self.proj.weight.sum(dim=2)
            patches = F.conv2d(x, weight.to(x.dtype), stride=self.proj.stride[1:])
        elif x.ndim == 4 and x.shape[1] == 3:
            patches = self.proj(x.unsqueeze(2).expand(-1, -1, self.frames, -1, -1))
        elif x.ndim == 5 and x.shape[1] == 3:
            patches = self.proj(x)
        else:
            raise ValueError(f"vision expects (B,3,H,W) images or (B,3,T,H,W) clips, got {tuple(x.shape)}")
        grid = patches.shape[2:] if patches.ndim == 5 else (1, *patches.shape[2:])
        return self.add_cls_and_positions(patches.flatten(2).transpose(1, 2), self._positions(tuple(grid)))

    def _positions(self, grid: tuple[int, ...]) -> torch.Tensor:
        if grid == self.grid:
            return self.pos_embed
        if grid[0] != self.grid[0]:
            raise ValueError(f"vision positions exist for {self.grid[0]} temporal patch(es), got {grid[0]}")
        # Bicubic interpolation over the spatial patch grid: the only tower whose resolution can change.
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        t, h, w = self.grid
        patch_pos = patch_pos.reshape(1, t, h, w, -1).permute(0, 4, 1, 2, 3).flatten(1, 2)
        patch_pos = F.interpolate(patch_pos.float(), size=grid[1:], mode="bicubic", align_corners=False)
        patch_pos = patch_pos.reshape(1, -1, t, *grid[1:]).permute(0, 2, 3, 4, 1).reshape(1, -1, cls_pos.shape[-1])
        return torch.cat([cls_pos, patch_pos.to(cls_pos.dtype)], dim=1)


def from_official(k: dict[str, Any]) -> VisionConfig:
    return VisionConfig(
        width=k["vision_embed_dim"], depth=k["vision_num_blocks"], heads=k["vision_num_heads"],
        frames=k["video_frames"], patch_size=tuple(k["kernel_size"]),
    )  # fmt: skip


def image_transform(**options: Any) -> ItemTransform:
    from openbind.modalities.vision.transform import ImageTransform

    return ImageTransform(**options)


def load_images(items: Any, *, on_error: OnError = "raise", **options: Any) -> Any:
    from openbind.modalities.vision import transform

    return transform.load_images(items, transform=transform.ImageTransform(**options), on_error=on_error)


def video_transform(**options: Any) -> ItemTransform:
    from openbind.modalities.vision.video import VideoTransform

    return VideoTransform(**options)


def video_train_transform(**options: Any) -> ItemTransform:
    """One 2 s clip from the start, center crop: the frames that a training pair's other file covers."""
    from openbind.modalities.batch import FirstClip

    return FirstClip(video_transform(**{**options, "clips_per_video": 1, "crops": 1}))


def load_videos(items: Any, *, on_error: OnError = "raise", **options: Any) -> Any:
    from openbind.modalities.vision import video

    return video.load_videos(items, transform=video.VideoTransform(**options), on_error=on_error)


VISION = register_modality(
    Modality(
        name="vision",
        config_cls=VisionConfig,
        inputs=(
            InputKind("image", image_transform, load_images, suffixes=IMAGE_SUFFIXES),
            InputKind("video", video_transform, load_videos, video_train_transform, suffixes=VIDEO_SUFFIXES),
        ),
        official_keys={
            "modality_preprocessors.vision.cls_token": "stem.cls_token",
            "modality_preprocessors.vision.rgbt_stem.proj.1.weight": "stem.proj.weight",
            "modality_preprocessors.vision.pos_embedding_helper.pos_embed": "stem.pos_embed",
            "modality_trunks.vision.pre_transformer_layer.0.weight": "trunk.pre_norm.weight",
            "modality_trunks.vision.pre_transformer_layer.0.bias": "trunk.pre_norm.bias",
            **official_head_keys("vision", norm="0", proj="2", scale=False),
        },
        official_defaults=dict(
            video_frames=2, kernel_size=(2, 14, 14), vision_embed_dim=1024, vision_num_blocks=24, vision_num_heads=16
        ),
        from_official=from_official,
    )
)
