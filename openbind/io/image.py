"""Open any image a user may hold (a file, its bytes, a PIL image, an array, a tensor) as a PIL image, or as
one 2-D plane of values (`read_plane`: depth and thermal maps, which may also be .npy files).

Decoding only: resize/crop/normalize live in `openbind.modalities.vision.transform` and
`openbind.modalities.single_channel.transform`. Both readers share the file reading, the pixel limit and the PIL mode
rules. Every bad item raises `OpenBindInputError` naming it, never a PIL or numpy exception; a bad option
raises `ValueError`.
"""

from __future__ import annotations

import io
import os
import warnings
from numbers import Integral
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

# PIL modes of 16-bit integer data: the I;16 variants, and "I" (32-bit integers), the mode some 16-bit files
# open in.
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# PIL modes holding one channel of values; every other mode is colour, palette, bilevel or has alpha.
_SINGLE_CHANNEL_MODES = SIXTEEN_BIT_MODES | {"L", "F"}
# Files `read_plane` decodes with PIL (.npy files are arrays): the suffix decides, so a map in an unknown format
# is refused by name before anything is read.
_PLANE_IMAGE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm", ".ppm"})


def open_image(
    item: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, scale_16bit: bool = False
) -> Image.Image:
    """Decode `item` into a loaded PIL image, in the mode the source has (no colour conversion).

    Arrays are HxW or HxWxC (C = 1, 3, 4) of uint8, uint16 or float in [0, 1]; tensors are CxHxW or HxWxC of
    uint8 or float in [0, 1]. Floats become uint8 by rounding x*255. A one-channel uint16 array stays 16-bit
    ('I;16', like a 16-bit PNG); PIL has no multi-channel 16-bit mode, so those are reduced to 8 bit here:
    clamped at 255 like the reference's `.convert("RGB")`, or scaled by 1/257 with `scale_16bit=True`.
    `max_pixels=None` lifts the decompression-bomb limit (PIL's own limit may still refuse a file).
    A decoded image keeps its values, NaN included (in a float depth map, NaN is a missing measurement).
    """
    check_max_pixels(max_pixels)
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
    return image


def check_max_pixels(max_pixels: int | None) -> None:
    """ValueError unless `max_pixels` (an option of the image readers and transforms) is None or an int > 0."""
    if max_pixels is not None and not (isinstance(max_pixels, Integral) and max_pixels > 0):
        raise ValueError(f"max_pixels must be None (no limit) or a positive int, got {max_pixels!r}")


def read_plane(item: Any, *, to_gray: bool, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One 2-D array (H, W) of values from an image or .npy file, bytes, a binary file, a PIL image, an array
    or a tensor.

    Integer data keeps its dtype (uint8, uint16, int32 ...) so callers can tell 8- from 16-bit; PIL's
    single-channel modes are read as they are (the I;16 variants as native uint16, "I" as int32). Colour
    inputs become luminance when `to_gray` (PIL's ITU-R 601 weights, rounded back to the input dtype), else
    they are refused. Arrays are HxW or HxWxC, tensors HxW or CxHxW. Files holding several frames are refused:
    which one is the map is not known. Values are not checked (NaN, range): that is the caller's rule.
    """
    check_max_pixels(max_pixels)
    if isinstance(item, torch.Tensor):
        tensor = item.detach().cpu()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        return _plane_from_array(tensor.numpy(), item, to_gray, channels_last=False)
    if isinstance(item, np.ndarray):
        return _plane_from_array(item, item, to_gray, channels_last=True)
    if isinstance(item, (str, os.PathLike)):
        suffix = Path(item).suffix.lower()
        if suffix == ".npy":
            return _plane_from_array(_read_npy(item), item, to_gray, channels_last=True)
        if suffix not in _PLANE_IMAGE_SUFFIXES:
            raise OpenBindInputError(item, f"unsupported file type {suffix or '(none)'!r}; give an image or .npy file")
    elif not isinstance(item, SINGLE_IMAGE_TYPES):
        raise OpenBindInputError(
            item, f"unsupported input type {type(item).__name__} (give a path to an image or .npy file, bytes, "
            "a binary file, a PIL image, a numpy array or a torch tensor)"
        )
    image = open_image(item, max_pixels=max_pixels)
    if not isinstance(item, Image.Image) and getattr(image, "n_frames", 1) > 1:
        raise OpenBindInputError(item, f"{image.n_frames} frames in one file; give a single image")
    return _plane_from_pil(image, item, to_gray)


def _existing_file(item: str | os.PathLike) -> Path:
    path = Path(item)
    if not path.exists():
        raise OpenBindInputError(item, "file not found (no such file or directory)")
    if not path.is_file():
        raise OpenBindInputError(item, "not a file")
    return path


def _read_path(item: str | os.PathLike) -> bytes:
    try:
        return _existing_file(item).read_bytes()
    except OSError as error:
        raise OpenBindInputError(item, f"cannot read file ({error})") from error


def _read_npy(item: str | os.PathLike) -> np.ndarray:
    """np.load without pickles, with every failure reported as a bad item."""
    path = _existing_file(item)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise OpenBindInputError(item, f"cannot read .npy (truncated or corrupt?): {error}") from None
    if not isinstance(array, np.ndarray):
        raise OpenBindInputError(item, "expected a single array in the .npy file")
    return array


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
            raise OpenBindInputError(
                item, "not a readable image: not a supported image format, or its data is corrupt"
            ) from error
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
            item, f"image of {width}x{height} pixels exceeds the limit: {width * height} pixels is over the limit "
            f"of {max_pixels} (possible decompression bomb; pass a larger max_pixels to allow it)"
        )


def check_finite(item: Any, array: np.ndarray) -> None:
    """OpenBindInputError naming `item` if `array` holds NaN or infinite values."""
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
        check_finite(item, array)
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


def _plane_from_pil(image: Image.Image, item: Any, to_gray: bool) -> np.ndarray:
    if image.mode in _SINGLE_CHANNEL_MODES:
        array = np.asarray(image)
        return array.astype(array.dtype.newbyteorder("="))  # a writable copy, big-endian I;16B made native
    if not to_gray:
        raise OpenBindInputError(item, f"PIL mode {image.mode}: expected a single-channel 16-bit or float image")
    try:
        return np.array(image.convert("L"))
    except (OSError, ValueError) as error:  # PIL cannot convert some rare modes
        raise OpenBindInputError(item, f"cannot convert {image.mode} image to gray ({error})") from error


def _plane_from_array(array: np.ndarray, item: Any, to_gray: bool, channels_last: bool) -> np.ndarray:
    if array.dtype == bool or array.dtype.kind not in "iuf":
        raise OpenBindInputError(item, f"unsupported dtype {array.dtype}; expected integers or floats")
    if array.ndim == 3 and not channels_last and array.shape[0] in (0, 1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3:
        channels = array.shape[-1]
        if channels == 0:
            raise OpenBindInputError(item, "0 channels")
        if channels == 1:
            array = array[..., 0]
        elif channels in (3, 4) and to_gray:
            array = _luminance(array[..., :3])
        else:
            if channels_last:
                gray, colour = "(H, W) or (H, W, 1)", "(H, W), (H, W, 1) or (H, W, 3)"
            else:
                gray, colour = "(H, W) or (1, H, W)", "(H, W), (1, H, W) or (3, H, W)"
            raise OpenBindInputError(item, f"shape {tuple(array.shape)}: expected {colour if to_gray else gray}")
    if array.ndim != 2:
        raise OpenBindInputError(item, f"shape {tuple(array.shape)}: expected a 2-D (H, W) map")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise OpenBindInputError(item, f"empty map of shape {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, the weights of PIL's convert("L"); integer inputs are rounded back to their dtype."""
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if rgb.dtype.kind in "iu":
        return np.rint(luma).astype(rgb.dtype)
    return luma.astype(rgb.dtype)
