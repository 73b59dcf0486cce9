"""Thermal input: one-channel infrared image -> [1, 224, 224] in [0, 1], on the image transform's geometry.

The reference ships no thermal loader. Plain [0, 1] grayscale without mean/std normalization is the best
reported choice on LLVIP (FACTS.md section 3), so it is the default; see docs/modalities/thermal.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out
from openbind.modalities.depth.transform import (
    IMAGE_SIZE,
    PLANE_ITEM_TYPES,
    load_plane,
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
class ThermalTransform:
    """Thermal image -> [1, 224, 224] float32.

    Steps: decode one channel (colour inputs -> ITU-R 601 luminance, exact for gray stored as RGB such as
    LLVIP's JPEGs); scale to [0, 1] (`scale`, see `scale_to_unit`); resize shorter side to 224 with
    `resample` (bicubic, as the image pipeline) and center crop 224; optional (x - mean) / std.
    8-bit inputs under "dtype" scaling are resized as 8-bit PIL images, so they match a
    convert("L") -> Resize -> CenterCrop -> ToTensor pipeline bit for bit; everything else is resized in
    float32 and clipped to [0, 1] (bicubic overshoot).
    """

    scale: Literal["dtype", "max"] = "dtype"
    resample: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: float | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        if self.scale not in ("dtype", "max"):
            raise OpenBindInputError(self.scale, "scale must be 'dtype' or 'max'")
        if self.resample not in ("bicubic", "bilinear", "nearest"):
            raise OpenBindInputError(self.resample, "resample must be 'bicubic', 'bilinear' or 'nearest'")
        if (self.mean is None) != (self.std is None):
            raise OpenBindInputError((self.mean, self.std), "give both mean and std, or neither")
        if self.std is not None and not (np.isfinite(self.std) and self.std > 0):
            raise OpenBindInputError(self.std, "std must be a positive finite number")
        if self.mean is not None and not np.isfinite(self.mean):
            raise OpenBindInputError(self.mean, "mean must be finite")

    @property
    def fixed_output_shape(self) -> tuple[int, int, int]:
        """The output shape whatever the input: batch calls and DataLoader workers write rows in place."""
        return (1, IMAGE_SIZE, IMAGE_SIZE)

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 [1, 224, 224] tensor to write into (e.g. a row of a batch in shared
        memory, which then reaches a DataLoader's main process without a copy)."""
        plane = load_plane(item, to_gray=True)
        if plane.dtype == np.uint8 and self.scale == "dtype":
            cropped = resize_center_crop(Image.fromarray(plane, "L"), self.resample)
            tensor = torch.from_numpy(np.asarray(cropped, dtype=np.float32) / 255.0).unsqueeze(0)
        else:
            tensor = plane_to_tensor(scale_to_unit(plane, self.scale, item), self.resample).clamp_(0.0, 1.0)
        if self.mean is not None:
            tensor = (tensor - self.mean) / self.std
        return tensor if out is None else writable_out(out, self.fixed_output_shape).copy_(tensor)


def load_thermals(
    items: Any, *, transform: ThermalTransform | None = None, on_error: OnError = "raise"
) -> torch.Tensor | BatchResult:
    """Thermal images (paths, arrays, tensors, PIL images) -> [N, 1, 224, 224] float32."""
    transform = transform or ThermalTransform()
    return map_items(transform, as_item_list(items, PLANE_ITEM_TYPES), on_error)
