"""The camera and pixel conventions every renderer of the world shares.

World frame: X right, Y up, Z backwards (metres); the camera and the IMU share one body frame with x right,
y up, z towards the wearer, so the camera looks along -z (the Android sensor frame of a phone whose back
camera faces the scene). Azimuths grow to the left. Every camera is square with the same field of view, at
any pixel size. Random numbers come only from the `rng` arguments.

Pixel maps are float32 (F32): on small CPUs float64 transcendental functions cost ten times more. Colour
images are channel-first [3, H, W] in [0, 1], which makes colour broadcasting fast, until `to_uint8`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

FOV_RAD = math.radians(60.0)  # horizontal and vertical field of view of every camera (square images)
VIEW_SPAN = 2.0 * math.tan(FOV_RAD / 2.0)  # image width over distance; ray slope / VIEW_SPAN = image fraction
F32 = np.float32


def focal_px(size: int) -> float:
    """Focal length in pixels of the square cameras."""
    return size / VIEW_SPAN


@functools.lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame ray slopes of the pixel centres: x as a row [1, W], y (up) as a column [H, 1]."""
    c = ((np.arange(size) + 0.5 - size / 2.0) / focal_px(size)).astype(F32)
    return c[None, :], -c[:, None]


def rotation_matrix(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Body-to-world rotations [..., 3, 3] = Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    zero, one = np.zeros_like(cy), np.ones_like(cy)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1), np.stack([zero, sp, cp], -1)], -2)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], -2)
    return ry @ rx @ rz


def frac(x: np.ndarray) -> np.ndarray:
    """Fractional part in [0, 1): the phase of periodic patterns and waveforms."""
    return x - np.floor(x)


def colour(rgb: tuple[int, int, int] | tuple[float, ...] | np.ndarray) -> np.ndarray:
    """A colour as a [3, 1, 1] float32 column for channel-first images: 0-255 ints, or floats used as is."""
    value = np.asarray(rgb)
    scale = F32(1 / 255) if value.dtype.kind in "iu" else F32(1)
    return (value.astype(F32) * scale)[:, None, None]


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Channel-first float [3, H, W] in [0, 1] -> an RGB image array uint8 [H, W, 3]."""
    return np.ascontiguousarray(np.clip(np.rint(rgb * F32(255)), 0, 255).astype(np.uint8).transpose(1, 2, 0))
