"""What depth and thermal share: one-channel 224x224 images cut into non-overlapping square patches."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from openbind.config import EncoderConfig
from openbind.model.stem import PatchStem2d
from openbind.modalities import official_head_keys


@dataclass
class SingleChannelImageConfig(EncoderConfig):
    kv_bias: bool = True
    image_size: int = 224
    kernel_size: int = 16  # stride = kernel
    patch_norm: bool = True  # the reference's LayerNorm after the patch conv (see PatchStem2d)

    item_ndims = (3,)

    def num_tokens(self) -> int:
        return 1 + (self.image_size // self.kernel_size) ** 2

    def build_stem(self) -> nn.Module:
        size = (self.image_size, self.image_size)
        return PatchStem2d(1, self.width, size, self.kernel_size, self.kernel_size, norm=self.patch_norm)


def official_keys(modality: str, stem_name: str) -> dict[str, str]:
    """The reference names; only the stem's name differs (depth: `depth_stem`, thermal: `rgbt_stem`)."""
    prefix = f"modality_preprocessors.{modality}"
    return {
        f"{prefix}.cls_token": "stem.cls_token",
        f"{prefix}.{stem_name}.proj.weight": "stem.proj.weight",
        f"{prefix}.{stem_name}.norm_layer.weight": "stem.norm.weight",
        f"{prefix}.{stem_name}.norm_layer.bias": "stem.norm.bias",
        f"{prefix}.pos_embedding_helper.pos_embed": "stem.pos_embed",
        **official_head_keys(modality, norm="0", proj="2", scale=True),
    }
