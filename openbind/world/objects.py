"""Objects of the still scenes: one random instance of an object class and its shaded, anti-aliased layer.

The layer carries an alpha mask and a relief profile besides colour, so the still renderer (stills.py) can
composite the same object into the image, the depth map (nearer where the profile bulges) and the thermal
map (its contrast to the place strongest at its core), and the sound renderer can read its size and distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from openbind.world.concepts import ObjectClass
from openbind.world.scene import F32, VIEW_SPAN, pixel_grid


@dataclass(frozen=True)
class Thing:
    """One random instance of an object class placed in front of the camera of a still scene."""

    obj: ObjectClass
    centre: tuple[float, float]  # image fractions (x right, y down)
    size: float  # longest side as a fraction of the image width
    angle: float  # in-plane rotation, rad
    aspect: float
    distance_m: float
    rgb: np.ndarray  # jittered colour in [0, 1]
    knobs: np.ndarray  # 4 numbers in [0, 1] that vary the silhouette's proportions
    temperature_c: float

    @property
    def size_m(self) -> float:
        """Longest side in metres, from its image fraction at its distance."""
        return self.size * VIEW_SPAN * self.distance_m


def sample_thing(obj: ObjectClass, rng: np.random.Generator) -> Thing:
    """A random instance of `obj`: position, size, rotation, proportions, colour jitter, distance, warmth."""
    size = float(rng.uniform(0.34, 0.6))
    margin = size / 2.0 * 0.85
    h, s, v = np.asarray(Image.new("RGB", (1, 1), obj.rgb).convert("HSV"), dtype=np.float64)[0, 0]
    hsv = (int(h + rng.uniform(-5, 5)) % 256, int(np.clip(s + rng.uniform(-20, 10), 0, 255)),
           int(np.clip(v + rng.uniform(-25, 15), 0, 255)))
    jittered = Image.new("HSV", (1, 1), hsv).convert("RGB")
    return Thing(
        obj=obj,
        centre=(float(rng.uniform(margin, 1 - margin)), float(rng.uniform(margin, 1 - margin))),
        size=size,
        angle=float(rng.uniform(-0.3, 0.3)),
        aspect=float(rng.uniform(0.85, 1.15)),
        distance_m=float(rng.uniform(0.8, 1.8)),
        rgb=np.asarray(jittered.getpixel((0, 0)), dtype=np.float64) / 255.0,
        knobs=rng.uniform(0.0, 1.0, 4),
        temperature_c=obj.temperature_c + float(rng.uniform(-1.5, 1.5)),
    )


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _bar(a: tuple[float, float], b: tuple[float, float], width: float) -> np.ndarray:
    (ax, ay), (bx, by) = a, b
    nx, ny = by - ay, ax - bx
    scale = width / 2.0 / max(math.hypot(nx, ny), 1e-9)
    nx, ny = nx * scale, ny * scale
    return np.array([[ax + nx, ay + ny], [bx + nx, by + ny], [bx - nx, by - ny], [ax - nx, ay - ny]])


Shape = tuple[list[tuple[bool, np.ndarray]], list[tuple[float, np.ndarray]]]


def silhouette(shape: str, k: np.ndarray) -> Shape:
    """(parts, details) in unit coordinates (y up, within [-1, 1]). Parts are (add, polygon) drawn in order
    (False cuts a hole); details are (brightness factor, polygon) painted on top, inside the silhouette."""
    if shape == "kettle":
        ry = 0.5 + 0.12 * k[0]
        body = _ellipse(0, -0.25, 0.68, ry)
        body = body[body[:, 1] > -0.25 - ry * 0.85]
        spout = np.array([[0.45, -0.35], [0.98, 0.25 + 0.1 * k[1]], [0.9, 0.32 + 0.1 * k[1]], [0.4, -0.05]])
        parts = [(True, _ellipse(0, 0.3, 0.5, 0.45)), (False, _ellipse(0, 0.3, 0.38, 0.33)), (True, body),
                 (True, spout), (True, _ellipse(0, 0.27, 0.14, 0.08))]
        return parts, [(0.7, _rect(-0.6, -0.7, 0.6, -0.62))]
    if shape == "bell":
        flare = 0.85 + 0.12 * k[0]
        ys = np.linspace(0.7, -0.6, 14)
        half = 0.32 + (flare - 0.32) * ((0.7 - ys) / 1.3) ** 2.2
        outline = np.concatenate([np.stack([half, ys], 1), np.stack([-half[::-1], ys[::-1]], 1)])
        parts = [(True, _ellipse(0, 0.75, 0.12, 0.14)), (False, _ellipse(0, 0.78, 0.06, 0.07)),
                 (True, _ellipse(0, 0.62, 0.34, 0.2)), (True, outline), (True, _ellipse(0, -0.72, 0.14, 0.14))]
        return parts, [(0.75, _rect(-flare * 0.95, -0.6, flare * 0.95, -0.5)), (0.8, _rect(-0.5, 0.2, 0.5, 0.26))]
    if shape == "clock":
        inner = 0.55 + 0.1 * k[0]
        hand = 0.3 + 0.6 * k[1] * np.pi
        short = _bar((0, 0), (0.45 * np.cos(hand), 0.45 * np.sin(hand)), 0.1)
        parts = [(True, _ellipse(0, 0, 0.95, 0.95, 56)), (False, _ellipse(0, 0, inner, inner, 56)),
                 (True, _bar((0, 0), (0.05, 0.6), 0.12)), (True, short), (True, _ellipse(0, 0, 0.1, 0.1))]
        return parts, [(0.15, _bar((0, 0), (0.05, 0.6), 0.12)), (0.15, _ellipse(0, 0, 0.1, 0.1))]
    if shape == "drum":
        h = 0.5 + 0.15 * k[0]
        top = _ellipse(0, h, 0.8, 0.24)
        parts = [(True, _rect(-0.8, -h, 0.8, h)), (True, top), (True, _ellipse(0, -h, 0.8, 0.24))]
        zig = [(0.65, _bar((-0.8 + 0.2 * i, h - 0.1), (-0.7 + 0.2 * i, -h + 0.1), 0.05)) for i in range(8)]
        return parts, [(1.45, _ellipse(0, h, 0.74, 0.19)), *zig]
    if shape == "slats":
        h = 0.36 + 0.1 * k[0]
        parts = [(True, _rect(-1.0, -h, 1.0, h))]
        slats = [(0.55, _rect(-0.9, -h + 0.08 + 0.09 * i, 0.9, -h + 0.12 + 0.09 * i)) for i in range(4)]
        return parts, [*slats, (0.4, _rect(0.6, h - 0.2, 0.85, h - 0.1))]
    if shape == "cat":
        ear = 0.85 + 0.12 * k[0]
        parts = [(True, _ellipse(0, -0.2, 0.72, 0.62)), (True, np.array([[-0.7, 0.05], [-0.55, ear], [-0.1, 0.35]])),
                 (True, np.array([[0.7, 0.05], [0.55, ear], [0.1, 0.35]]))]
        eyes = [(0.1, _ellipse(s * 0.28, -0.05, 0.1, 0.14)) for s in (-1, 1)]
        return parts, [*eyes, (0.45, np.array([[-0.1, -0.3], [0.1, -0.3], [0.0, -0.42]]))]
    if shape == "star":
        inner = 0.38 + 0.14 * k[0]
        a = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return [(True, np.stack([r * np.cos(a), r * np.sin(a)], 1))], [(1.35, _ellipse(0, 0, 0.22, 0.22))]
    if shape == "frog":
        w = 0.88 + 0.1 * k[0]
        parts = [(True, _ellipse(0, -0.3, w, 0.5)), (True, _ellipse(-0.42, 0.22, 0.26, 0.26)),
                 (True, _ellipse(0.42, 0.22, 0.26, 0.26))]
        pupils = [(0.1, _ellipse(s * 0.42, 0.25, 0.11, 0.11)) for s in (-1, 1)]
        return parts, [*pupils, (0.5, _rect(-0.5, -0.3, 0.5, -0.24))]
    if shape == "guitar":
        lower = 0.46 + 0.08 * k[0]
        parts = [(True, _ellipse(0, -0.5, lower, lower)), (True, _ellipse(0, 0.05, 0.34, 0.32)),
                 (True, _rect(-0.08, 0.2, 0.08, 0.9)), (True, _rect(-0.14, 0.86, 0.14, 1.0))]
        return parts, [(0.15, _ellipse(0, -0.25, 0.13, 0.13)), (0.55, _rect(-0.18, -0.72, 0.18, -0.66)),
                       (1.5, _rect(-0.015, -0.7, 0.015, 0.9))]
    if shape == "phone":
        w = 0.5 + 0.08 * k[0]
        parts = [(True, _rect(-w, -0.85, w, 0.85)), (True, _rect(-w + 0.12, -0.97, w - 0.12, 0.97))]
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append((True, _ellipse(sx * (w - 0.12), sy * 0.85, 0.12, 0.12, 16)))
        return parts, [(5.0, _rect(-w + 0.07, -0.7, w - 0.07, 0.78)), (4.0, _ellipse(0, -0.83, 0.06, 0.06, 16))]
    raise ValueError(f"unknown shape {shape!r}")


@dataclass
class ThingLayer:
    """The rasterised object: alpha [H, W] in [0, 1], colour [3, H, W], relief profile [H, W] in [0, 1]."""

    alpha: np.ndarray
    rgb: np.ndarray
    profile: np.ndarray


def rasterise(thing: Thing, size: int, light: np.ndarray) -> ThingLayer:
    """Draw the silhouette at 2x and average down (anti-aliasing); shade it with the scene's light direction."""
    scale = 2
    parts, details = silhouette(thing.obj.shape, thing.knobs)
    cos, sin = math.cos(thing.angle), math.sin(thing.angle)
    half = thing.size * size * scale / 2.0
    cx, cy = thing.centre[0] * size * scale, thing.centre[1] * size * scale

    def to_pixels(points: np.ndarray) -> list[tuple[float, float]]:
        x, y = points[:, 0] * thing.aspect, points[:, 1]
        xr, yr = x * cos - y * sin, x * sin + y * cos
        return list(zip((cx + xr * half).tolist(), (cy - yr * half).tolist()))

    base = tuple(int(round(v * 255)) for v in thing.rgb)
    layer = Image.new("RGBA", (size * scale, size * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for add, polygon in parts:
        draw.polygon(to_pixels(polygon), fill=base + (255,) if add else (0, 0, 0, 0))
    for factor, polygon in details:
        colour = tuple(int(min(255, v * factor + (40 if factor > 1 else 0))) for v in base)
        draw.polygon(to_pixels(polygon), fill=colour + (255,))
    layer = layer.resize((size, size), Image.Resampling.BOX)
    mask = layer.getchannel("A")
    radius = max(1.0, thing.size * size / 6.0)
    blurred = np.asarray(mask.filter(ImageFilter.GaussianBlur(radius)), dtype=F32)
    pixels = np.asarray(layer, dtype=F32) * F32(1 / 255)
    alpha = pixels[..., 3]
    profile = blurred * alpha
    profile *= F32(1) / max(float(profile.max()), 1e-6)
    cols, rows = pixel_grid(size)
    span = F32(VIEW_SPAN)
    slope = ((cols / span + F32(0.5 - thing.centre[0])) * F32(light[0])
             + (-rows / span + F32(0.5 - thing.centre[1])) * F32(light[1])) * F32(1 / thing.size)
    shade = F32(0.8) + F32(0.3) * profile + F32(0.25) * slope
    colour = np.ascontiguousarray(pixels[..., :3].transpose(2, 0, 1))
    return ThingLayer(alpha, np.clip(colour * shade, 0.0, 1.0), profile)
