"""Thermal input: one-channel infrared image -> [1, 224, 224] in [0, 1], on the image transform's geometry.

The reference ships no thermal loader. Plain [0, 1] grayscale without mean/std normalization is the best
reported choice on LLVIP (docs/imagebind.md section 3), so it is the default; see docs/modalities/thermal.md.
Decoding is `openbind.io.image.read_plane`; the resize/crop geometry shared with depth is
`openbind.modalities.single_channel.transform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.io.image import DEFAULT_MAX_PIXELS, check_max_pixels, read_plane
from openbind.modalities.batch import BatchResult, OnError
from openbind.modalities.single_channel.transform import (
    SingleChannelTransform,
    check_mean_std,
    load_maps,
    plane_to_tensor,
    resize_center_crop,
)

_UINT16_MAX = 65535.0


def scale_to_unit(plane: np.ndarray, scale: Literal["dtype", "max"], item: Any) -> np.ndarray:
    """Map raw thermal values to [0, 1] (float64).

    "dtype": uint8 / 255, other integers (16-bit data, also when PIL hands it over as int32) / 65535,
    floats are taken as already in [0, 1]. "max": divide by the image's maximum (an all-zero image stays 0).
    """
    if plane.dtype.kind == "f" and not np.isfinite(plane).all():
        raise OpenBindInputError(item, "NaN or infinite values")
    values = plane.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if low < 0:
        raise OpenBindInputError(item, f"negative values (min {low:g}); thermal intensities must be >= 0")
    if scale == "max":
        return values / high if high > 0 else values
    if plane.dtype == np.uint8:
        return values / 255.0
    if plane.dtype.kind in "iu":
        if high > _UINT16_MAX:
            raise OpenBindInputError(item, f"values up to {high:g} exceed 16 bits; use scale='max'")
        return values / _UINT16_MAX
    if high > 1.0:
        raise OpenBindInputError(item, f"float values up to {high:g} are not in [0, 1]; use scale='max'")
    return values


@dataclass
class ThermalTransform(SingleChannelTransform):
    """Thermal image -> [1, 224, 224] float32.

    Steps: decode one channel (colour inputs -> ITU-R 601 luminance, exact for gray stored as RGB such as
    LLVIP's JPEGs); scale to [0, 1] (`scale`, see `scale_to_unit`); resize shorter side to 224 with
    `resample` (bicubic, as the image pipeline) and center crop 224; optional (x - mean) / std.
    8-bit inputs under "dtype" scaling are resized as 8-bit PIL images, so they match a
    convert("L") -> Resize -> CenterCrop -> ToTensor pipeline bit for bit; everything else is resized in
    float32 and clipped to [0, 1] (bicubic overshoot). `max_pixels`: the decompression-bomb limit of image
    files (None: no limit).
    """

    scale: Literal["dtype", "max"] = "dtype"
    resample: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: float | None = None
    std: float | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.scale not in ("dtype", "max"):
            raise ValueError(f"scale must be 'dtype' or 'max', got {self.scale!r}")
        if self.resample not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"resample must be 'bicubic', 'bilinear' or 'nearest', got {self.resample!r}")
        check_mean_std(self.mean, self.std)
        check_max_pixels(self.max_pixels)

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 [1, 224, 224] tensor to write into (e.g. a row of a batch in shared
        memory, which then reaches a DataLoader's main process without a copy)."""
        plane = read_plane(item, to_gray=True, max_pixels=self.max_pixels)
        if plane.dtype == np.uint8 and self.scale == "dtype":
            cropped = resize_center_crop(Image.fromarray(plane, "L"), self.resample)
            tensor = torch.from_numpy(np.asarray(cropped, dtype=np.float32) / 255.0).unsqueeze(0)
        else:
            tensor = plane_to_tensor(scale_to_unit(plane, self.scale, item), self.resample).clamp_(0.0, 1.0)
        return self.normalize(tensor, out)


def load_thermals(
    items: Any, *, transform: ThermalTransform | None = None, on_error: OnError = "raise"
) -> torch.Tensor | BatchResult:
    """Thermal images (image or .npy files, bytes, arrays, tensors, PIL images) -> [N, 1, 224, 224] float32."""
    return load_maps(transform or ThermalTransform(), items, on_error)
