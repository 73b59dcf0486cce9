"""Images -> model input (N,3,224,224), exactly as the reference preprocesses them.

Reference pipeline: PIL open, `.convert("RGB")`, resize the shorter side to 224 with PIL bicubic (longer side
= int(224*long/short)), center crop 224 (offsets int(round((size-224)/2))), /255, CLIP normalize. The
output is bit-identical to it: the only float step (uint8 -> normalized float) takes one of 256 values per
channel, so it is a lookup table computed with the reference's own float32 operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral

import numpy as np
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.io.image import (
    DEFAULT_MAX_PIXELS,
    SINGLE_IMAGE_TYPES,
    SIXTEEN_BIT_MODES,
    ImageInput,
    check_finite,
    check_max_pixels,
    open_image,
    reduce_16bit,
)
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


@dataclass(frozen=True)
class ImageTransform:
    """One image -> float32 (3, size, size). The defaults reproduce the reference exactly.

    `background`: composite transparent images onto this RGB colour (the reference drops alpha, so a
    transparent pixel shows whatever colour it stores). `scale_16bit`: map 16-bit images to 8 bit by 1/257
    (the reference clamps them at 255, which turns most of a 16-bit image white).
    """

    size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    background: tuple[int, int, int] | None = None
    scale_16bit: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not (isinstance(self.size, Integral) and self.size > 0):
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if not _three_finite(values):
                raise ValueError(f"{name} must be 3 finite numbers (one per RGB channel), got {values!r}")
        if not all(self.std):
            raise ValueError(f"std must be non-zero, got {self.std!r}")
        if self.background is not None and not _is_rgb(self.background):
            raise ValueError(f"background must be None or 3 ints in 0..255 (an RGB colour), got {self.background!r}")
        check_max_pixels(self.max_pixels)

    @property
    def fixed_output_shape(self) -> tuple[int, int, int]:
        """The output shape whatever the image (lets DataLoader workers fill a batch in place)."""
        return (3, self.size, self.size)

    def __call__(self, item: ImageInput, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 tensor of the output's shape to write into (e.g. one row of a batch in
        shared memory, which then reaches a DataLoader's main process without a copy)."""
        image = open_image(item, max_pixels=self.max_pixels, scale_16bit=self.scale_16bit)
        if image.mode == "F":  # NaN has no 8-bit RGB value
            check_finite(item, np.asarray(image))
        try:
            rgb = self.to_rgb(image)
        except (OSError, ValueError) as error:  # PIL cannot convert some rare modes
            raise OpenBindInputError(item, f"cannot convert {image.mode} image to RGB ({error})") from error
        return self.from_rgb(rgb, out)

    def to_rgb(self, image: Image.Image) -> Image.Image:
        """The 8-bit RGB image the model sees, before resizing."""
        if self.background is not None and _has_alpha(image):
            rgba = image.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, tuple(self.background))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
            return rgb
        if self.scale_16bit and image.mode in SIXTEEN_BIT_MODES:
            image = Image.fromarray(reduce_16bit(np.asarray(image), scale=True))
        return image if image.mode == "RGB" else image.convert("RGB")

    def from_rgb(self, image: Image.Image, out: torch.Tensor | None = None) -> torch.Tensor:
        """Resize (shorter side), center crop and normalize an RGB PIL image."""
        return self.normalize(self.resize_crop(image), out)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after scaling the shorter side to `size` (torchvision's rule for an int size)."""
        if width <= height:
            return self.size, int(self.size * height / width)
        return int(self.size * width / height), self.size

    def crop_offsets(self, width: int, height: int) -> tuple[int, int]:
        """(top, left) of the center crop (Python's round: halves go to even, as in torchvision)."""
        return int(round((height - self.size) / 2.0)), int(round((width - self.size) / 2.0))

    def resize_crop(self, image: Image.Image) -> np.ndarray:
        """uint8 (size, size, 3): PIL bicubic resize of the shorter side, then the center crop."""
        new_size = self.resized_size(*image.size)
        if new_size != image.size:
            image = image.resize(new_size, Image.BICUBIC)
        top, left = self.crop_offsets(*new_size)
        return np.asarray(image)[top : top + self.size, left : left + self.size]

    def normalize(self, crop: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (H, W, 3) -> float32 (3, H, W), CLIP-normalized (into `out` when given)."""
        lut = _normalize_lut(tuple(self.mean), tuple(self.std))
        shape = (3, *crop.shape[:2])
        out = torch.empty(shape) if out is None else writable_out(out, shape)
        planes = out.numpy()
        for channel in range(3):  # gathered straight into channel-first layout: no other copy
            np.take(lut[channel], crop[:, :, channel], out=planes[channel], mode="clip")
        return out


@lru_cache(maxsize=8)
def _normalize_lut(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: the reference's float32 ops (x/255 - mean) / std applied to every uint8 value."""
    values = torch.arange(256, dtype=torch.float32).div(255).expand(3, 256)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1)
    return values.sub(mean_t).div(std_t).numpy()


def _three_finite(values: object) -> bool:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return array.shape == (3,) and bool(np.isfinite(array).all())


def _is_rgb(values: object) -> bool:
    try:
        channels = tuple(values)
    except TypeError:
        return False
    return len(channels) == 3 and all(isinstance(v, Integral) and 0 <= v <= 255 for v in channels)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def load_images(
    items: ImageInput | list[ImageInput],
    *,
    transform: ImageTransform | None = None,
    on_error: OnError = "raise",
) -> torch.Tensor | BatchResult:
    """Images (paths, bytes, files, PIL images, arrays, tensors) -> float32 (N, 3, 224, 224).

    One item or a sequence; a single array or tensor is one image. With `on_error="skip"` a `BatchResult`
    keeps the good images and lists the bad ones.
    """
    transform = transform or ImageTransform()
    return map_items(transform, as_item_list(items, SINGLE_IMAGE_TYPES), on_error)
