"""What depth and thermal share: one-channel 224x224 images cut into non-overlapping square patches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from openbind.modalities.registry import official_head_keys
from openbind.model.config import EncoderConfig
from openbind.model.stem import PatchStem2d


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

    def stem_macs(self) -> float:
        return (self.num_tokens() - 1) * self.width * self.kernel_size**2

    def example_input(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        return torch.randn(batch, 1, self.image_size, self.image_size, device=device)


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


def config_from_official(config_cls: type[SingleChannelImageConfig], modality: str, k: dict[str, Any]):
    """The tower's config from the reference constructor's `<modality>_*` arguments."""
    return config_cls(
        width=k[f"{modality}_embed_dim"], depth=k[f"{modality}_num_blocks"], heads=k[f"{modality}_num_heads"],
        drop_path=k[f"{modality}_drop_path"], kernel_size=k[f"{modality}_kernel_size"],
    )  # fmt: skip
