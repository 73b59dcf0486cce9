"""Depth input: decode a depth map, convert it to disparity and crop it exactly like the paired image.

ImageBind feeds depth as one channel of disparity (baseline * focal / depth, following Omnivore). The
reference ships no depth loader and no constants; the defaults here and their sources are listed in
docs/modalities/depth.md. Decoding is `openbind.io.image.read_plane`; the resize/crop geometry shared with
thermal is `openbind.modalities.single_channel.transform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch

from openbind.errors import OpenBindInputError
from openbind.io.image import DEFAULT_MAX_PIXELS, ImageInput, check_max_pixels, open_image, read_plane
from openbind.modalities.batch import BatchResult, OnError
from openbind.modalities.single_channel.transform import (
    SingleChannelTransform,
    check_mean_std,
    crop_geometry,
    load_maps,
    plane_to_tensor,
    require_positive,
    resize_center_crop,
)
from openbind.modalities.vision.transform import CLIP_MEAN, CLIP_STD

# Kinect v1 stereo baseline in metres (the "kv1"/"kv2" entries of Omnivore's SUN RGB-D disparity script,
# facebookresearch/omnivore issue #12) and the NYU Depth v2 toolbox RGB focal length fx_rgb in pixels.
KINECT_BASELINE_M = 0.075
KINECT_FOCAL_PX = 518.857901
# Omnivore's SUN RGB-D recipe: DepthNorm(max_depth=75, clamp_max_before_scale=True) on the disparity.
OMNIVORE_MAX_DISPARITY = 75.0
Encoding = Literal["auto", "mm", "sunrgbd", "metres"]


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
class DepthTransform(SingleChannelTransform):
    """Depth map -> disparity tensor [1, 224, 224], on the image transform's resize/crop geometry.

    Steps: decode to metres (`encoding`: "auto" = integers are millimetres, floats are metres; "sunrgbd" =
    16-bit PNG with the 3-bit circular shift); invalid depth (0, negative, NaN, inf) -> disparity 0;
    optional clip at `max_depth_m`; disparity = baseline_m * focal_px / depth; clamp to
    [0, max_disparity] and divide by it (Omnivore's DepthNorm; None skips it); resize shorter side to 224
    (`resample`, default nearest so invalid zeros never blend into valid pixels) and center crop 224;
    finally (x - mean) / std. `max_pixels`: the decompression-bomb limit of image files (None: no limit).
    """

    encoding: Encoding = "auto"
    baseline_m: float = KINECT_BASELINE_M
    focal_px: float = KINECT_FOCAL_PX
    max_depth_m: float | None = None
    max_disparity: float | None = OMNIVORE_MAX_DISPARITY
    mean: float = 0.0
    std: float = 1.0
    resample: Literal["nearest", "bilinear"] = "nearest"
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.encoding not in get_args(Encoding):
            raise ValueError(f"encoding must be one of {get_args(Encoding)}, got {self.encoding!r}")
        if self.resample not in ("nearest", "bilinear"):
            raise ValueError(f"resample must be 'nearest' or 'bilinear', got {self.resample!r}")
        require_positive("baseline_m", self.baseline_m)
        require_positive("focal_px", self.focal_px)
        for name in ("max_depth_m", "max_disparity"):
            if getattr(self, name) is not None:
                require_positive(name, getattr(self, name))
        check_mean_std(self.mean, self.std)
        check_max_pixels(self.max_pixels)

    def disparity(self, item: Any) -> np.ndarray:
        """Full-resolution disparity (float64, before scaling, resizing and normalization)."""
        plane = read_plane(item, to_gray=False, max_pixels=self.max_pixels)
        depth = depth_to_metres(plane, self.encoding, item)
        valid = np.isfinite(depth) & (depth > 0)
        if self.max_depth_m is not None:
            depth = np.minimum(depth, self.max_depth_m)
        disparity = np.zeros_like(depth)
        np.divide(self.baseline_m * self.focal_px, depth, out=disparity, where=valid)
        return disparity

    def finish(self, disparity: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """Scale, resize, crop and normalize a full-resolution disparity map (into `out` when given)."""
        if self.max_disparity is not None:
            disparity = np.minimum(disparity, self.max_disparity) / self.max_disparity
        return self.normalize(plane_to_tensor(disparity, self.resample), out)

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 [1, 224, 224] tensor to write into (e.g. a row of a batch in shared
        memory, which then reaches a DataLoader's main process without a copy)."""
        return self.finish(self.disparity(item), out)


def load_depths(
    items: Any, *, transform: DepthTransform | None = None, on_error: OnError = "raise"
) -> torch.Tensor | BatchResult:
    """Depth maps (image or .npy files, bytes, arrays, tensors, PIL images) -> [N, 1, 224, 224] float32."""
    return load_maps(transform or DepthTransform(), items, on_error)


def transform_rgbd(
    image: ImageInput, depth: Any, *, transform: DepthTransform | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image [3, 224, 224], disparity [1, 224, 224]) cut from the same crop box.

    The image half follows the reference image recipe (RGB, bicubic, CLIP mean/std). The depth map must have
    the image's size, or the same aspect so both resize to the same grid (e.g. depth at half resolution);
    otherwise the pixels are not registered and no crop can align them.
    """
    transform = transform or DepthTransform()
    rgb = open_image(image, max_pixels=transform.max_pixels)
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
