"""The input pipeline depth and thermal share: a plane decoded by `openbind.io.image.read_plane` -> float32
[1, 224, 224] on the image transform's resize/crop geometry, so depth, thermal and image stay pixel-aligned."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.io.image import SINGLE_IMAGE_TYPES
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out
from openbind.modalities.vision.transform import ImageTransform

IMAGE_SIZE = 224
RESIZED_PIXEL_LIMIT = IMAGE_SIZE * IMAGE_SIZE * 64  # an aspect ratio of 64:1


def crop_geometry(height: int, width: int, size: int = IMAGE_SIZE) -> tuple[tuple[int, int], tuple[int, int]]:
    """((resized_h, resized_w), (top, left)) of the reference image transform for an input of this size.

    Shorter side -> `size`, longer side -> int(size * long / short); center crop offsets
    int(round((resized - size) / 2)). Any input of the same size gets the same box, which is what keeps
    depth, thermal and image pixel-aligned.
    """
    if height <= 0 or width <= 0:
        raise OpenBindInputError((height, width), "image size must be positive")
    geometry = ImageTransform(size=size)  # the image transform's own rule, so the boxes cannot drift apart
    resized_w, resized_h = geometry.resized_size(width, height)
    return (resized_h, resized_w), geometry.crop_offsets(resized_w, resized_h)


def resize_center_crop(image: Image.Image, resample: str) -> Image.Image:
    """Resize shorter side to 224 and center crop 224, bit-identical to the reference's resize-then-crop.

    `resample`: "nearest", "bilinear" or "bicubic". Only inputs so elongated that the resized image would
    pass RESIZED_PIXEL_LIMIT resize the crop box alone (PIL's `box`: same geometry, values within float32
    rounding), so they cannot exhaust memory.
    """
    width, height = image.size
    (resized_h, resized_w), (top, left) = crop_geometry(height, width)
    mode = Image.Resampling[resample.upper()]
    if resized_h * resized_w <= RESIZED_PIXEL_LIMIT:
        resized = image.resize((resized_w, resized_h), mode)
        return resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    sx, sy = width / resized_w, height / resized_h
    box = (left * sx, top * sy, (left + IMAGE_SIZE) * sx, (top + IMAGE_SIZE) * sy)
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), mode, box=box)


def plane_to_tensor(plane: np.ndarray, resample: str) -> torch.Tensor:
    """Float plane -> resized and center-cropped [1, 224, 224] float32 tensor."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), "F")
    cropped = np.asarray(resize_center_crop(image, resample), dtype=np.float32)
    return torch.from_numpy(cropped.copy()).unsqueeze(0)


def require_positive(name: str, value: Any) -> None:
    """ValueError naming the option unless `value` is a positive finite number."""
    if not (isinstance(value, Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_mean_std(mean: Any, std: Any) -> None:
    """ValueError unless mean and std are both None, or a finite mean and a positive finite std."""
    if (mean is None) != (std is None):
        raise ValueError(f"mean and std must be given together (or both None), got mean={mean!r}, std={std!r}")
    if std is not None:
        require_positive("std", std)
    if mean is not None and not (isinstance(mean, Real) and math.isfinite(mean)):
        raise ValueError(f"mean must be a finite number, got {mean!r}")


class SingleChannelTransform:
    """Base of DepthTransform and ThermalTransform: one map -> float32 [1, 224, 224], optionally normalized
    by the subclass's `mean` and `std` (both None: no normalization)."""

    mean: float | None
    std: float | None

    @property
    def fixed_output_shape(self) -> tuple[int, int, int]:
        """The output shape whatever the input: batch calls and DataLoader workers write rows in place."""
        return (1, IMAGE_SIZE, IMAGE_SIZE)

    def normalize(self, tensor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(x - mean) / std of a [1, 224, 224] tensor, written into `out` when given (e.g. a row of a batch in
        shared memory, which then reaches a DataLoader's main process without a copy)."""
        if out is None:
            return tensor if self.mean is None else (tensor - self.mean) / self.std
        target = writable_out(out, self.fixed_output_shape)
        if self.mean is None:
            return target.copy_(tensor)
        return torch.sub(tensor, self.mean, out=target).div_(self.std)


def load_maps(
    transform: Callable[[Any], torch.Tensor], items: Any, on_error: OnError
) -> torch.Tensor | BatchResult:
    """One map or a sequence of maps (see `read_plane` for the kinds) -> [N, 1, 224, 224] float32."""
    return map_items(transform, as_item_list(items, SINGLE_IMAGE_TYPES), on_error)
