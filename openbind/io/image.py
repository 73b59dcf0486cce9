"""Open any image a user may hold (a file, its bytes, a PIL image, an array, a tensor) as a PIL image.

Decoding only: the model's resize/crop/normalize lives in `openbind.modalities.vision.transform`. Every bad
input raises `OpenBindInputError` naming the item, never a PIL or numpy exception.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np
import torch
from PIL import Image

from openbind.errors import OpenBindInputError

# PIL's own refusal threshold (2 * Image.MAX_IMAGE_PIXELS at its default): beyond it a file is treated as a
# decompression bomb. Ours is applied explicitly, whatever PIL's global setting is.
DEFAULT_MAX_PIXELS = 178_956_970

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray, torch.Tensor]

# What a batch call treats as one image rather than as a sequence of images.
SINGLE_IMAGE_TYPES: tuple[type, ...] = (
    str, os.PathLike, bytes, bytearray, memoryview, io.IOBase, Image.Image, np.ndarray, torch.Tensor,
)

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def open_image(
    item: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, scale_16bit: bool = False
) -> Image.Image:
    """Decode `item` into a loaded PIL image, in the mode the source has (no colour conversion).

    Arrays are HxW or HxWxC (C = 1, 3, 4) of uint8, uint16 or float in [0, 1]; tensors are CxHxW or HxWxC of
    uint8 or float in [0, 1]. Floats become uint8 by rounding x*255. A one-channel uint16 array stays 16-bit
    ('I;16', like a 16-bit PNG); PIL has no multi-channel 16-bit mode, so those are reduced to 8 bit here:
    clamped at 255 like the reference's `.convert("RGB")`, or scaled by 1/257 with `scale_16bit=True`.
    `max_pixels=None` lifts the decompression-bomb limit (PIL's own limit may still refuse a file).
    """
    if isinstance(item, Image.Image):
        image = item
        _check_size(item, image.size, max_pixels)
        _load(item, image)
    elif isinstance(item, np.ndarray):
        image = _from_array(item, item, max_pixels, scale_16bit)
    elif isinstance(item, torch.Tensor):
        image = _from_array(item, _tensor_to_hwc(item), max_pixels, scale_16bit)
    elif isinstance(item, (str, os.PathLike)):
        image = _decode(item, _read_path(item), max_pixels)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        image = _decode(item, bytes(item), max_pixels)
    elif hasattr(item, "read"):
        try:
            data = item.read()
        except (OSError, ValueError) as error:
            raise OpenBindInputError(item, f"cannot read the file object ({error})") from error
        if not isinstance(data, (bytes, bytearray)):
            raise OpenBindInputError(item, "file object must be opened in binary mode ('rb')")
        image = _decode(item, bytes(data), max_pixels)
    else:
        raise OpenBindInputError(
            item, f"unsupported image input type {type(item).__name__} (give a path, bytes, a binary file, "
            "a PIL image, a numpy array or a torch tensor)"
        )
    if image.mode == "F":
        _check_finite(item, np.asarray(image))
    return image


def _read_path(item: str | os.PathLike) -> bytes:
    path = Path(item)
    if not path.exists():
        raise OpenBindInputError(item, "file not found")
    if not path.is_file():
        raise OpenBindInputError(item, "not a file")
    try:
        return path.read_bytes()
    except OSError as error:
        raise OpenBindInputError(item, f"cannot read file ({error})") from error


def _decode(item: Any, data: bytes, max_pixels: int | None) -> Image.Image:
    if not data:
        raise OpenBindInputError(item, "empty file: no image data")
    # PIL warns between its two thresholds and raises beyond the upper one; our own limit below decides.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise OpenBindInputError(
                item, f"possible decompression bomb refused by PIL ({error}); raise PIL.Image.MAX_IMAGE_PIXELS "
                "to allow it"
            ) from error
        except Image.UnidentifiedImageError as error:
            raise OpenBindInputError(item, "not a supported image format (cannot identify the data)") from error
        except Exception as error:  # PIL raises many types (SyntaxError, struct.error, ...) for corrupt headers
            raise OpenBindInputError(item, f"corrupt image header ({type(error).__name__}: {error})") from error
        _check_size(item, image.size, max_pixels)
        _load(item, image)
    return image


def _load(item: Any, image: Image.Image) -> None:
    """Force decoding now, so truncated or corrupt data fails here with a clear reason."""
    try:
        image.load()
    except Exception as error:  # truncated data is OSError; broken streams raise assorted types
        raise OpenBindInputError(
            item, f"truncated or corrupt image data ({type(error).__name__}: {error})"
        ) from error


def _check_size(item: Any, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise OpenBindInputError(item, f"zero-size image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise OpenBindInputError(
            item, f"image has {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            "(possible decompression bomb; pass a larger max_pixels to allow it)"
        )


def _check_finite(item: Any, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        raise OpenBindInputError(item, "image contains NaN or infinite values")


def _tensor_to_hwc(item: torch.Tensor) -> np.ndarray:
    """CxHxW (the torch convention, preferred when ambiguous) or HxWxC -> an HxWxC or HxW numpy array."""
    tensor = item.detach().cpu()
    if tensor.is_floating_point():
        tensor = tensor.float()
    if tensor.ndim == 3 and tensor.shape[0] in (1, 3, 4):
        tensor = tensor.permute(1, 2, 0)
    try:
        return tensor.numpy()
    except TypeError as error:
        raise OpenBindInputError(item, f"unsupported tensor dtype {tensor.dtype}") from error


def _from_array(item: Any, array: np.ndarray, max_pixels: int | None, scale_16bit: bool) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise OpenBindInputError(
            item, f"expected one image of shape HxW or HxWxC (C = 1, 3 or 4; CxHxW for tensors), "
            f"got shape {tuple(array.shape)}"
        )
    _check_size(item, (array.shape[1], array.shape[0]), max_pixels)
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        if array.ndim == 2:
            return Image.fromarray(np.ascontiguousarray(array, dtype="<u2"))  # mode I;16
        array = reduce_16bit(array, scale_16bit)
    elif np.issubdtype(array.dtype, np.floating):
        _check_finite(item, array)
        if array.min() < 0.0 or array.max() > 1.0:
            raise OpenBindInputError(
                item, f"float image values must lie in [0, 1], got [{array.min():g}, {array.max():g}]"
            )
        array = np.round(array * 255.0).astype(np.uint8)
    else:
        raise OpenBindInputError(item, f"unsupported image dtype {array.dtype} (use uint8, uint16 or float)")
    return Image.fromarray(np.ascontiguousarray(array))  # mode L, RGB or RGBA from the shape


def reduce_16bit(array: np.ndarray, scale: bool) -> np.ndarray:
    """16-bit values -> uint8: scaled by 1/257 (65535 -> 255) or clamped at 255 as PIL's `.convert` does."""
    if scale:
        return np.clip(np.round(array.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)
    return np.clip(array, 0, 255).astype(np.uint8)
