"""Pieces shared by the modality stems: a learned CLS token + learned positions, and a 2-D patch embedding."""

from __future__ import annotations

import torch
from torch import nn

STEM_NORM_EPS = 1e-5  # the patch-stem LayerNorms of audio/depth/thermal/imu use PyTorch's default eps


class ClsPosStem(nn.Module):
    """Base of the stems that prepend one learned CLS token and then add learned positions."""

    def __init__(self, width: int, num_patches: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.empty(1, 1, width))
        self.pos_embed = nn.Parameter(torch.empty(1, num_patches + 1, width))

    def add_cls_and_positions(self, tokens: torch.Tensor, pos_embed: torch.Tensor | None = None) -> torch.Tensor:
        cls = self.cls_token.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        pos = self.pos_embed if pos_embed is None else pos_embed
        return torch.cat([cls, tokens], dim=1) + pos.to(tokens.dtype)


class PatchStem2d(ClsPosStem):
    """Conv2d patches (no bias) -> LayerNorm -> CLS + positions: the audio, depth and thermal stems.

    norm=False drops the per-patch LayerNorm, which otherwise maps every uniform patch to the same token
    whatever its level (a bias-free conv scales with the input; the norm removes the scale), so the absolute
    temperature or disparity of a flat surface survives only at its edges. The reference keeps the norm.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        input_size: tuple[int, int],
        kernel_size: int,
        stride: int,
        norm: bool = True,
    ):
        grid = tuple((n - kernel_size) // stride + 1 for n in input_size)
        super().__init__(width, grid[0] * grid[1])
        self.input_shape = (in_channels, *input_size)
        self.proj = nn.Conv2d(in_channels, width, kernel_size=kernel_size, stride=stride, bias=False)
        self.norm = nn.LayerNorm(width, eps=STEM_NORM_EPS) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected input of shape (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return self.add_cls_and_positions(self.norm(tokens))
