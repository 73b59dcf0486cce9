"""Depth input: decode a depth map, convert it to disparity and crop it exactly like the paired image.

ImageBind feeds depth as one channel of disparity (baseline * focal / depth, following Omnivore). The
reference ships no depth loader and no constants; the defaults here and their sources are listed in
docs/modalities/depth.md. This module also holds the single-channel decoding and the resize/crop geometry
that the thermal transform shares, so both stay pixel-aligned with the image transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from openbind.errors import OpenBindInputError
from openbind.io.image import DEFAULT_MAX_PIXELS
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out
from openbind.modalities.vision.transform import CLIP_MEAN, CLIP_STD
from openbind.modalities.vision.transform import ImageTransform

IMAGE_SIZE = 224
# Kinect v1 stereo baseline in metres (the "kv1"/"kv2" entries of Omnivore's SUN RGB-D disparity script,
# facebookresearch/omnivore issue #12) and the NYU Depth v2 toolbox RGB focal length fx_rgb in pixels.
KINECT_BASELINE_M = 0.075
KINECT_FOCAL_PX = 518.857901
# Omnivore's SUN RGB-D recipe: DepthNorm(max_depth=75, clamp_max_before_scale=True) on the disparity.
OMNIVORE_MAX_DISPARITY = 75.0
MAX_PIXELS = DEFAULT_MAX_PIXELS  # PIL's own refusal threshold, applied whatever PIL's global setting
RESIZED_PIXEL_LIMIT = IMAGE_SIZE * IMAGE_SIZE * 64  # an aspect ratio of 64:1

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
_IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm", ".ppm"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
PLANE_ITEM_TYPES = (str, Path, np.ndarray, torch.Tensor, Image.Image)
Encoding = Literal["auto", "mm", "sunrgbd", "metres"]


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

    Only inputs so elongated that the resized image would pass RESIZED_PIXEL_LIMIT resize the crop box
    alone (PIL's `box`: same geometry, values within float32 rounding), so they cannot exhaust memory.
    """
    width, height = image.size
    (resized_h, resized_w), (top, left) = crop_geometry(height, width)
    mode = _RESAMPLE[resample]
    if resized_h * resized_w <= RESIZED_PIXEL_LIMIT:
        resized = image.resize((resized_w, resized_h), mode)
        return resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    sx, sy = width / resized_w, height / resized_h
    box = (left * sx, top * sy, (left + IMAGE_SIZE) * sx, (top + IMAGE_SIZE) * sy)
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), mode, box=box)


def open_image_file(path: str | Path, item: Any = None) -> Image.Image:
    """Open and fully decode an image file with PIL, refusing decompression bombs and multi-page files."""
    item = path if item is None else item
    path = Path(path)
    if not path.is_file():
        raise OpenBindInputError(item, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise OpenBindInputError(item, "empty file")
    try:
        with Image.open(path) as image:
            check_pixel_limit(image, item)
            if getattr(image, "n_frames", 1) > 1:
                raise OpenBindInputError(item, f"{image.n_frames} frames in one file; give a single image")
            image.load()
            return image
    except OpenBindInputError:
        raise
    except UnidentifiedImageError:
        raise OpenBindInputError(item, "not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError as error:
        raise OpenBindInputError(item, f"image too large: {error}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise OpenBindInputError(item, f"cannot decode image (truncated or corrupt?): {error}") from None


def check_pixel_limit(image: Image.Image, item: Any) -> None:
    """Decompression-bomb guard, checked on the header before any pixel is decoded."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise OpenBindInputError(item, f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS}")
    if width == 0 or height == 0:
        raise OpenBindInputError(item, f"empty image ({width}x{height})")


def load_plane(item: Any, *, to_gray: bool) -> np.ndarray:
    """One 2-D array (H, W) from a file (image or .npy), PIL image, numpy array or tensor.

    Integer data keeps its dtype (uint8, uint16, int32 ...) so callers can tell 8- from 16-bit; 16-bit PIL
    modes (I;16, I;16B ...) become native uint16. Colour inputs become luminance when `to_gray` (PIL's
    ITU-R 601 weights, rounded back to the input dtype), else they are refused.
    """
    if isinstance(item, (str, Path)):
        path = Path(item)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            return _plane_from_array(load_npy(path, item), item, to_gray, channels_last=True)
        if suffix not in _IMAGE_SUFFIXES:
            raise OpenBindInputError(item, f"unsupported file type {suffix or '(none)'!r}")
        return _plane_from_pil(open_image_file(path, item), item, to_gray)
    if isinstance(item, Image.Image):
        check_pixel_limit(item, item)
        try:
            item.load()
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise OpenBindInputError(item, f"cannot decode image (truncated or corrupt?): {error}") from None
        return _plane_from_pil(item, item, to_gray)
    if isinstance(item, torch.Tensor):
        tensor = item.detach().cpu()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        return _plane_from_array(tensor.numpy(), item, to_gray, channels_last=False)
    if isinstance(item, np.ndarray):
        return _plane_from_array(item, item, to_gray, channels_last=True)
    raise OpenBindInputError(item, f"unsupported input type {type(item).__name__}")


def load_npy(path: Path, item: Any) -> np.ndarray:
    """np.load without pickles, with every failure reported as bad input."""
    if not path.is_file():
        raise OpenBindInputError(item, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise OpenBindInputError(item, "empty file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise OpenBindInputError(item, f"cannot read .npy (truncated or corrupt?): {error}") from None
    if not isinstance(array, np.ndarray):
        raise OpenBindInputError(item, "expected a single array in the .npy file")
    return array


def _plane_from_pil(image: Image.Image, item: Any, to_gray: bool) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("L", "I", "F"):
        return np.asarray(image).copy()
    if not to_gray:
        raise OpenBindInputError(item, f"PIL mode {image.mode}: expected a single-channel 16-bit or float image")
    return np.asarray(image.convert("L")).copy()


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


def plane_to_tensor(plane: np.ndarray, resample: str) -> torch.Tensor:
    """Float plane -> resized and center-cropped [1, 224, 224] float32 tensor."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), "F")
    cropped = np.asarray(resize_center_crop(image, resample), dtype=np.float32)
    return torch.from_numpy(cropped.copy()).unsqueeze(0)


def depth_to_metres(plane: np.ndarray, encoding: Encoding, item: Any) -> np.ndarray:
    """Decode the stored depth to float64 metres; invalid pixels are left as they are (handled later)."""
    is_int = plane.dtype.kind in "iu"
    if is_int and plane.dtype.itemsize == 1:
        raise OpenBindInputError(
            item, "8-bit data holds no metric depth (a visualisation?); give 16-bit millimetres or float metres"
        )
    if encoding == "auto":
        encoding = "mm" if is_int else "metres"
    if encoding == "sunrgbd":
        if not is_int or plane.min() < 0 or plane.max() > 0xFFFF:
            raise OpenBindInputError(item, "SUN RGB-D encoding needs 16-bit unsigned integer data")
        raw = plane.astype(np.uint32)
        millimetres = ((raw >> 3) | (raw << 13)) & 0xFFFF
        return millimetres.astype(np.float64) / 1000.0
    depth = plane.astype(np.float64)
    return depth / 1000.0 if encoding == "mm" else depth


@dataclass
class DepthTransform:
    """Depth map -> disparity tensor [1, 224, 224], on the image transform's resize/crop geometry.

    Steps: decode to metres (`encoding`: "auto" = integers are millimetres, floats are metres; "sunrgbd" =
    16-bit PNG with the 3-bit circular shift); invalid depth (0, negative, NaN, inf) -> disparity 0;
    optional clip at `max_depth_m`; disparity = baseline_m * focal_px / depth; clamp to
    [0, max_disparity] and divide by it (Omnivore's DepthNorm; None skips it); resize shorter side to 224
    (`resample`, default nearest so invalid zeros never blend into valid pixels) and center crop 224;
    finally (x - mean) / std.
    """

    encoding: Encoding = "auto"
    baseline_m: float = KINECT_BASELINE_M
    focal_px: float = KINECT_FOCAL_PX
    max_depth_m: float | None = None
    max_disparity: float | None = OMNIVORE_MAX_DISPARITY
    mean: float = 0.0
    std: float = 1.0
    resample: Literal["nearest", "bilinear"] = "nearest"

    def __post_init__(self) -> None:
        if self.encoding not in ("auto", "mm", "sunrgbd", "metres"):
            raise OpenBindInputError(self.encoding, "encoding must be 'auto', 'mm', 'sunrgbd' or 'metres'")
        if self.resample not in ("nearest", "bilinear"):
            raise OpenBindInputError(self.resample, "resample must be 'nearest' or 'bilinear'")
        for name in ("baseline_m", "focal_px", "std"):
            _require_positive(name, getattr(self, name))
        for name in ("max_depth_m", "max_disparity"):
            if getattr(self, name) is not None:
                _require_positive(name, getattr(self, name))
        if not np.isfinite(self.mean):
            raise OpenBindInputError(self.mean, "mean must be finite")

    def disparity(self, item: Any) -> np.ndarray:
        """Full-resolution disparity (float64, before scaling, resizing and normalization)."""
        depth = depth_to_metres(load_plane(item, to_gray=False), self.encoding, item)
        valid = np.isfinite(depth) & (depth > 0)
        if self.max_depth_m is not None:
            depth = np.minimum(depth, self.max_depth_m)
        disparity = np.zeros_like(depth)
        np.divide(self.baseline_m * self.focal_px, depth, out=disparity, where=valid)
        return disparity

    @property
    def fixed_output_shape(self) -> tuple[int, int, int]:
        """The output shape whatever the input: batch calls and DataLoader workers write rows in place."""
        return (1, IMAGE_SIZE, IMAGE_SIZE)

    def finish(self, disparity: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """Scale, resize, crop and normalize a full-resolution disparity map (into `out` when given)."""
        if self.max_disparity is not None:
            disparity = np.minimum(disparity, self.max_disparity) / self.max_disparity
        tensor = plane_to_tensor(disparity, self.resample)
        if out is None:
            return (tensor - self.mean) / self.std
        return torch.sub(tensor, self.mean, out=writable_out(out, self.fixed_output_shape)).div_(self.std)

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 [1, 224, 224] tensor to write into (e.g. a row of a batch in shared
        memory, which then reaches a DataLoader's main process without a copy)."""
        return self.finish(self.disparity(item), out)


def load_depths(
    items: Any, *, transform: DepthTransform | None = None, on_error: OnError = "raise"
) -> torch.Tensor | BatchResult:
    """Depth maps (paths, arrays, tensors, PIL images) -> [N, 1, 224, 224] float32."""
    transform = transform or DepthTransform()
    return map_items(transform, as_item_list(items, PLANE_ITEM_TYPES), on_error)


def transform_rgbd(
    image: str | Path | Image.Image, depth: Any, *, transform: DepthTransform | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image [3, 224, 224], disparity [1, 224, 224]) cut from the same crop box.

    The image half follows the reference image recipe (RGB, bicubic, CLIP mean/std). The depth map must have
    the image's size, or the same aspect so both resize to the same grid (e.g. depth at half resolution);
    otherwise the pixels are not registered and no crop can align them.
    """
    transform = transform or DepthTransform()
    rgb = open_image_file(image) if isinstance(image, (str, Path)) else image
    if not isinstance(rgb, Image.Image):
        raise OpenBindInputError(image, f"unsupported image type {type(image).__name__}; give a path or PIL image")
    check_pixel_limit(rgb, image)
    disparity = transform.disparity(depth)
    image_w, image_h = rgb.size
    depth_h, depth_w = disparity.shape
    if crop_geometry(image_h, image_w)[0] != crop_geometry(depth_h, depth_w)[0]:
        raise OpenBindInputError(
            depth,
            f"image {image_w}x{image_h} and depth {depth_w}x{depth_h} differ in aspect ratio; "
            "register the depth to the image first",
        )
    pixels = np.asarray(resize_center_crop(rgb.convert("RGB"), "bicubic"), dtype=np.float32) / 255.0
    image_tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (image_tensor - mean) / std, transform.finish(disparity)


def _require_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise OpenBindInputError(value, f"{name} must be a positive finite number")
