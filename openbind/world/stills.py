"""Still scenes as the image, depth and thermal cameras capture them: one camera pose and lighting, one
object composited in front of a place, and each sensor's own resolution, noise and encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from openbind.world.objects import Thing, rasterise
from openbind.world.places import DEPTH_RANGE_M, Place, render_place
from openbind.world.scene import F32, VIEW_SPAN, colour, focal_px, pixel_grid, rotation_matrix, to_uint8

DEPTH_BASELINE_M = 0.075  # emitter-camera offset: casts the invalid "shadow" band beside near objects
THERMAL_OFFSET_C = 20.0  # 8-bit thermal value = (temperature_c + 20) * 2.2, so -20 C -> 0 and 96 C -> 255
THERMAL_GAIN = 2.2


@dataclass(frozen=True)
class Shot:
    """Camera and nuisance parameters of a still: pose, lighting, white balance and sensor noise."""

    yaw: float
    pitch: float
    roll: float
    height: float
    gain: float
    light: np.ndarray  # light-gradient direction in the image (x, y), also shades the object
    white: np.ndarray  # per-channel white-balance gain
    noise: float


def sample_shot(rng: np.random.Generator) -> Shot:
    """Random camera pose and imaging nuisances of a still."""
    return Shot(
        yaw=float(rng.uniform(-np.pi, np.pi)),
        pitch=float(rng.uniform(-0.1, 0.03)),
        roll=float(rng.uniform(-0.05, 0.05)),
        height=float(rng.uniform(1.3, 1.65)),
        gain=float(rng.uniform(0.75, 1.2)),
        light=rng.uniform(-0.25, 0.25, 2),
        white=rng.uniform(0.94, 1.06, 3),
        noise=float(rng.uniform(0.005, 0.03)),
    )


@dataclass
class Still:
    """A rendered still: image uint8 [H, W, 3], depth uint16 mm [H, W] (0 invalid), thermal uint8 [H, W],
    and the object mask [H, W] bool (True where the object is, as the depth sensor sees it)."""

    image: np.ndarray
    depth_mm: np.ndarray
    thermal: np.ndarray
    mask: np.ndarray


def render_still(place: Place, shot: Shot, thing: Thing | None, size: int, rng: np.random.Generator) -> Still:
    """Image, depth and thermal of one scene: the object (if any) composited in front of the place."""
    rotation = rotation_matrix(np.array(shot.yaw), np.array(shot.pitch), np.array(shot.roll))
    view = render_place(place, size, rotation, (0.0, 0.0), shot.height)
    rgb, depth, temp = view.rgb, view.depth, view.temp
    mask = np.zeros((size, size), dtype=bool)
    if thing is not None:
        layer = rasterise(thing, size, shot.light)
        a = layer.alpha
        rgb = rgb + (layer.rgb - rgb) * a
        mask = a > 0.5
        ambient = float(np.median(temp))
        core = F32(thing.temperature_c) + F32(0.08 * (thing.temperature_c - ambient)) * layer.profile
        temp = temp + (core - temp) * a
        near = F32(thing.distance_m) - F32(thing.obj.relief_m) * layer.profile
        valid = depth[depth > 0]
        background = float(np.median(valid)) if valid.size else DEPTH_RANGE_M
        shift = int(round(DEPTH_BASELINE_M * focal_px(size) * (1 / thing.distance_m - 1 / background)))
        shadow = np.zeros_like(mask)
        if shift > 0:
            shadow[:, :-shift] = mask[:, shift:]
        depth = np.where(mask, near, np.where(shadow, F32(0), depth))
    cols, rows = pixel_grid(size)
    span = F32(VIEW_SPAN)
    gradient = cols / span * F32(shot.light[0] * 1.2) - rows / span * F32(shot.light[1] * 1.2)
    light = F32(shot.gain) * (F32(1) + gradient)
    grain = rng.standard_normal((size, size), dtype=F32) * F32(shot.noise)
    rgb = rgb * (light * colour(shot.white)) + grain
    return Still(to_uint8(rgb), _depth_sensor(depth, rng), _thermal_sensor(temp, size, rng), mask)


def _depth_sensor(depth_m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Metres -> uint16 millimetres with axial noise growing with the square of distance (as structured-light
    and time-of-flight sensors do) and 0.5 % random dropouts; invalid stays 0."""
    valid = (depth_m > 0) & (rng.random(depth_m.shape, dtype=F32) > F32(0.005))
    sigma = F32(0.0012) + F32(0.0019) * (depth_m - F32(0.4)) ** 2
    noisy = depth_m + rng.standard_normal(depth_m.shape, dtype=F32) * sigma
    mm = np.where(valid, np.clip(np.rint(noisy * F32(1000)), 1, 65535), 0)
    return mm.astype(np.uint16)


def _thermal_sensor(temp_c: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Microbolometer look: half-resolution optics (blur), 0.1 C noise, fixed radiometric 8-bit scale."""
    plane = Image.fromarray(temp_c.astype(F32))
    small = plane.resize((size // 2, size // 2), Image.Resampling.BOX)
    blurred = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR), dtype=F32)
    return thermal_to_uint8(blurred + rng.standard_normal(blurred.shape, dtype=F32) * F32(0.1))


def thermal_to_uint8(temp_c: np.ndarray) -> np.ndarray:
    """The fixed radiometric scale of the 8-bit thermal PNGs."""
    return np.clip(np.rint((temp_c + THERMAL_OFFSET_C) * THERMAL_GAIN), 0, 255).astype(np.uint8)
