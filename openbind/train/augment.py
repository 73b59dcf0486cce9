"""Random crop-and-flip of the bound modality's 2-D maps (modalities registered as `augmentable`: depth,
thermal), on the training device.

The paper found strong augmentation helps depth (docs/imagebind.md section 4). It matters most when a tower learns
from few maps: on the world's 400 depth maps a supervised probe of the world tower went from 0.32 to 0.67
top-1 on unseen instances with it after 800 steps, and the bound depth tower's emergent zero-shot from 0.21 to
0.27-0.29 at 480 steps (docs/quickstart.md). Only the bound modality's input is augmented; the
anchor keeps its (cached) embedding, which a flip or a slightly tighter crop does not change in meaning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_SCALE = 0.7  # the crop's side as a fraction of the map's side: 70-100%
FLIP_PROBABILITY = 0.5


def crop_flip(maps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per map: a random crop of 70-100% of each side anywhere inside the map, resized back to the full size
    (bilinear), mirrored left-right with probability 1/2. maps: [B, C, H, W]. Random numbers come from
    `generator` (on the CPU), so a resumed run draws the same crops as an uninterrupted one."""
    if maps.dim() != 4:
        raise ValueError(f"crop-and-flip augments 2D maps [B, C, H, W], got shape {tuple(maps.shape)}")
    n, _, height, width = maps.shape
    scale = torch.empty(n).uniform_(MIN_SCALE, 1.0, generator=generator).tolist()
    place = torch.rand(n, 2, generator=generator).tolist()
    mirror = (torch.rand(n, generator=generator) < FLIP_PROBABILITY).tolist()
    # One small interpolate per map: a fraction of the cost of grid_sample over the batch on a CPU.
    out = torch.empty_like(maps)
    for i, (s, (u, v), flip) in enumerate(zip(scale, place, mirror)):
        h, w = max(1, round(height * s)), max(1, round(width * s))
        top, left = round((height - h) * u), round((width - w) * v)
        crop = maps[i : i + 1, :, top : top + h, left : left + w]
        crop = crop.flip(-1) if flip else crop
        out[i : i + 1] = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
    return out
