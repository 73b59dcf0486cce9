"""Per-modality synthesis: one random scene rendered as image, depth, thermal and sound; one random walk
rendered as ego-motion video frames and IMU samples.

All views come from one ray caster over one simple 3-D world, so the modalities agree by construction: the
depth map is the geometry that produced the image, the thermal map paints the same surfaces with
temperatures, and the video frames are rendered from the same head trajectory the IMU differentiates.

World frame: X right, Y up, Z backwards (metres); the camera and the IMU share one body frame with x right,
y up, z towards the wearer, so the camera looks along -z (the Android sensor frame of a phone whose back
camera faces the scene). Azimuths grow to the left. Random numbers come only from the `rng` arguments.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from openbind.world.concepts import Activity, Environment, ObjectClass

FOV_RAD = math.radians(60.0)  # horizontal and vertical field of view of every camera (square images)
DEPTH_RANGE_M = 10.0  # farther surfaces, the sky and water read as 0 (invalid), like a time-of-flight sensor
DEPTH_BASELINE_M = 0.075  # emitter-camera offset: casts the invalid "shadow" band beside near objects
THERMAL_OFFSET_C = 20.0  # 8-bit thermal value = (temperature_c + 20) * 2.2, so -20 C -> 0 and 96 C -> 255
THERMAL_GAIN = 2.2
SAMPLE_RATE = 16_000
AUDIO_SECONDS = 3.0
GRAVITY = 9.81
MOTION_RATE = 1000.0  # Hz; the trajectory is simulated this finely, then sampled for IMU and frames

FLOOR, SCENERY, SKY, FEATURE, WATER = 0, 1, 2, 3, 4
CEILING_M = 2.6


def focal_px(size: int) -> float:
    """Focal length in pixels of the square cameras."""
    return size / 2.0 / math.tan(FOV_RAD / 2.0)


def thermal_to_uint8(temp_c: np.ndarray) -> np.ndarray:
    """The fixed radiometric scale of the 8-bit thermal PNGs."""
    return np.clip(np.rint((temp_c + THERMAL_OFFSET_C) * THERMAL_GAIN), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- places


@dataclass(frozen=True)
class Place:
    """One random instance of an environment: scenery distance, colour tint, pattern scale and landmarks.

    `features` rows are (azimuth rad, angular half-width rad, size m): tree trunks (size = distance), street
    buildings (size = height), kitchen cabinets (size = door width); unused columns are ignored.
    """

    env: Environment
    radius: float
    tint: np.ndarray
    scale: float
    phase: np.ndarray
    features: np.ndarray
    landmark: float  # azimuth of the oven (kitchen); unused elsewhere
    seed: float  # pattern seed for value noise


def sample_place(env: Environment, rng: np.random.Generator) -> Place:
    """A random layout of `env` (the nuisance variation of the place; its identity stays recognisable)."""
    radius = float(rng.uniform(*env.scenery_m))
    count = {"kitchen": 6, "forest": 9, "street": 8, "beach": 1}[env.name]
    azimuths = np.sort(rng.uniform(-np.pi, np.pi, count))
    widths = rng.uniform(0.025, 0.06, count) if env.name == "forest" else rng.uniform(0.2, 0.45, count)
    low, high = {"kitchen": (0.45, 0.7), "forest": (2.2, radius - 0.5), "street": (6.0, 16.0)}.get(env.name, (0, 1))
    sizes = rng.uniform(low, high, count)
    return Place(
        env=env,
        radius=radius,
        tint=rng.uniform(0.92, 1.08, 3),
        scale=float(rng.uniform(0.8, 1.25)),
        phase=rng.uniform(0.0, 10.0, 2),
        features=np.stack([azimuths, widths, sizes], axis=1),
        landmark=float(rng.uniform(-np.pi, np.pi)),
        seed=float(rng.uniform(0.0, 100.0)),
    )


# -------------------------------------------------------------------------------------------- ray casting
# Pixel maps are float32: on small CPUs float64 transcendental functions cost ten times more.

F32 = np.float32


@dataclass
class View:
    """A rendered view: rgb [3, H, W] in [0, 1] (channel-first, which makes colour broadcasting fast),
    z-depth [H, W] in metres (0 = invalid) and temperature [H, W] in degrees Celsius."""

    rgb: np.ndarray
    depth: np.ndarray
    temp: np.ndarray


def rotation_matrix(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Body-to-world rotations [..., 3, 3] = Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    zero, one = np.zeros_like(cy), np.ones_like(cy)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1), np.stack([zero, sp, cp], -1)], -2)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], -2)
    return ry @ rx @ rz


@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame ray slopes of the pixel centres: x as a row [1, W], y (up) as a column [H, 1]."""
    c = ((np.arange(size) + 0.5 - size / 2.0) / focal_px(size)).astype(F32)
    return c[None, :], -c[:, None]


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles to [-pi, pi]."""
    return angle - F32(2 * np.pi) * np.round(angle * F32(1 / (2 * np.pi)))


def render_place(
    place: Place, size: int, rotation: np.ndarray, eye_xz: tuple[float, float], height: float,
    stairs_heading: float | None = None,
) -> View:
    """Ray-cast the place from a camera `height` m above the floor at world (x, z) = `eye_xz`.

    Floor points use world coordinates (they stream past a moving camera); walls and scenery stand at
    `place.radius` around the camera and are addressed by azimuth and height (far enough to show only
    rotation). `stairs_heading` (a yaw) paints the floor as a flight of stairs climbed in that direction.
    """
    cx, cy = _pixel_grid(size)
    r = rotation.astype(F32)
    dx, dy, dz = (r[i, 0] * cx + r[i, 1] * cy - r[i, 2] for i in range(3))  # world ray; camera z-depth = t
    horizontal = np.maximum(np.sqrt(dx * dx + dz * dz), F32(1e-6))
    down = -dy > F32(1e-5)
    t_floor = np.where(down, F32(height) / np.maximum(-dy, F32(1e-5)), F32(np.inf))
    t_wall = F32(place.radius) / horizontal
    reach = np.minimum(t_floor, F32(1e4))
    g = _Geometry(
        dx=dx, dy=dy, dz=dz, horizontal=horizontal, azimuth=np.arctan2(-dx, -dz), height=F32(height),
        t_wall=t_wall, y_wall=F32(height) + t_wall * dy, t_floor=t_floor, down=down,
        x=F32(eye_xz[0]) + reach * dx, z=F32(eye_xz[1]) + reach * dz, on_floor=t_floor < t_wall,
    )
    rgb, temp, depth, kind = _SHADERS[place.env.name](g, place)
    if stairs_heading is not None:
        rgb = _paint_stairs(g, place, stairs_heading, rgb, kind)
    rgb = rgb * _rgb(place.tint)
    depth = np.where((kind == SKY) | (kind == WATER) | (depth > DEPTH_RANGE_M), F32(0), depth)
    return View(np.clip(rgb, 0.0, 1.0), depth, temp)


@dataclass
class _Geometry:
    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    horizontal: np.ndarray
    azimuth: np.ndarray
    height: np.float32
    t_wall: np.ndarray
    y_wall: np.ndarray
    t_floor: np.ndarray
    down: np.ndarray
    x: np.ndarray
    z: np.ndarray
    on_floor: np.ndarray

    def arc(self, radius: float) -> np.ndarray:
        """Arc length along the scenery (m), for patterns that keep their size."""
        return self.azimuth * F32(radius)


def _rgb(colour: tuple[int, int, int] | tuple[float, ...] | np.ndarray) -> np.ndarray:
    """A colour as a [3, 1, 1] float32 column for channel-first images: 0-255 ints, or floats used as is."""
    value = np.asarray(colour)
    scale = F32(1 / 255) if value.dtype.kind in "iu" else F32(1)
    return (value.astype(F32) * scale)[:, None, None]


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], w: np.ndarray) -> np.ndarray:
    return _rgb(a) + (_rgb(b) - _rgb(a)) * w


def _paint(rgb: np.ndarray, where: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.where(where, colour, rgb)


def _hash(ix: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice hash -> [0, 1) (wrapping uint32 arithmetic is intended)."""
    h = ix.astype(np.int64).astype(np.uint32) * np.uint32(374761393)
    h += iz.astype(np.int64).astype(np.uint32) * np.uint32(668265263) + np.uint32(seed)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    return (h >> np.uint32(8)).astype(F32) * F32(1.0 / (1 << 24))


def value_noise(x: np.ndarray, z: np.ndarray, seed: float) -> np.ndarray:
    """Smooth noise in [0, 1] with one feature per unit, so textures are stable in world coordinates."""
    ix, iz = np.floor(x), np.floor(z)
    fx, fz = x - ix, z - iz
    ux, uz = fx * fx * (3 - 2 * fx), fz * fz * (3 - 2 * fz)
    s = int(seed * 1000)
    a, b = _hash(ix, iz, s), _hash(ix + 1, iz, s)
    c, e = _hash(ix, iz + 1, s), _hash(ix + 1, iz + 1, s)
    return (a + (b - a) * ux) * (1 - uz) + (c + (e - c) * ux) * uz


def _sky(g: _Geometry, env: Environment) -> np.ndarray:
    """Sky colour, paler towards the horizon."""
    up = np.clip(g.dy / np.sqrt(g.dx * g.dx + g.dy * g.dy + g.dz * g.dz), 0.0, 1.0)
    return _rgb(env.sky_rgb) * (F32(1.08) - F32(0.25) * up)


def _shade_kitchen(g: _Geometry, p: Place) -> tuple[np.ndarray, ...]:
    env = p.env
    tile = F32(1.0 / (0.4 * p.scale))
    checker = ((np.floor(g.x * tile) + np.floor(g.z * tile)).astype(np.int32) & 1).astype(F32)
    y = g.y_wall
    arc = g.arc(p.radius)
    door = np.abs(_frac(arc * F32(1 / p.features[0, 2])) - F32(0.5)) > F32(0.46)
    grout = (np.abs(_frac(arc * F32(1 / 0.15)) - F32(0.5)) > F32(0.44))
    grout |= np.abs(_frac(y * F32(1 / 0.15)) - F32(0.5)) > F32(0.44)
    tiles, wood = _rgb(env.wall_rgb[0]), _rgb(env.wall_rgb[1])
    cabinets = (y < 0.9) | ((y > 1.5) & (y < 2.2))
    oven = (np.abs(_wrap(g.azimuth - F32(p.landmark))) * F32(p.radius) < 0.35) & (y < 0.85) & (y > 0.1)
    ceiling = ~g.on_floor & (y > CEILING_M)
    backsplash = tiles * (F32(1) - F32(0.18) * (grout & (y > 0.95) & (y < 1.5)))
    rgb = _paint(backsplash, cabinets, wood * (F32(1) - F32(0.4) * door))
    rgb = _paint(rgb, (y >= 0.9) & (y < 0.97), _rgb((0.25, 0.25, 0.27)))
    rgb = _paint(rgb, oven, _rgb((0.12, 0.12, 0.14)))
    rgb = _paint(rgb, ceiling, _rgb(env.sky_rgb))
    rgb = _paint(rgb, g.on_floor, _mix(*env.floor_rgb, checker))
    kind = np.where(g.on_floor, FLOOR, np.where(oven, FEATURE, SCENERY))
    t_ceiling = (F32(CEILING_M) - g.height) / np.maximum(g.dy, F32(1e-5))
    depth = np.where(g.on_floor, g.t_floor, np.where(ceiling, t_ceiling, g.t_wall))
    temp = np.where(g.on_floor, F32(env.floor_temp_c), np.where(ceiling, F32(env.sky_temp_c), F32(env.wall_temp_c)))
    temp[oven] = env.feature_temp_c
    return rgb, temp, depth, kind


def _shade_forest(g: _Geometry, p: Place) -> tuple[np.ndarray, ...]:
    env = p.env
    k = F32(2.0 / p.scale)
    litter = value_noise(g.x * k, g.z * k, p.seed)
    arc = g.arc(p.radius)
    leaves = value_noise(arc * F32(0.75) * k, g.y_wall * F32(0.75) * k, p.seed + 1.0)
    treeline = F32(6.0) + F32(1.5) * value_noise(arc * F32(0.5), np.zeros_like(arc), p.seed + 2.0)
    sky = ~g.on_floor & (g.y_wall > treeline)
    rgb = _rgb(env.wall_rgb[0]) * (F32(0.75) + F32(0.5) * leaves)
    rgb = _paint(rgb, g.on_floor, _mix(*env.floor_rgb, litter))
    rgb = _paint(rgb, sky, _sky(g, env))
    kind = np.where(g.on_floor, FLOOR, np.where(sky, SKY, SCENERY))
    depth = np.where(g.on_floor, g.t_floor, g.t_wall)
    temp = np.where(g.on_floor, F32(env.floor_temp_c), F32(env.wall_temp_c)) + F32(1.5) * (litter - F32(0.5))
    temp[sky] = env.sky_temp_c
    bark = _rgb(env.wall_rgb[1])[:, 0]
    for azimuth, half_width, distance in sorted(p.features.tolist(), key=lambda f: -f[2]):
        angle = _wrap(g.azimuth - F32(azimuth))
        rows, cols = np.nonzero(np.abs(angle) < half_width)
        t_trunk = F32(distance) / g.horizontal[rows, cols]
        hit = (t_trunk < g.t_floor[rows, cols]) & (g.height + t_trunk * g.dy[rows, cols] < treeline[rows, cols])
        rows, cols, t_trunk = rows[hit], cols[hit], t_trunk[hit]
        shade = F32(1.0) + F32(0.3) * angle[rows, cols] / F32(half_width)
        rgb[:, rows, cols] = bark * shade
        kind[rows, cols], depth[rows, cols], temp[rows, cols] = FEATURE, t_trunk, env.feature_temp_c
    return rgb, temp, depth, kind


def _shade_street(g: _Geometry, p: Place) -> tuple[np.ndarray, ...]:
    env = p.env
    grain = value_noise(g.x * F32(6.0), g.z * F32(6.0), p.seed)
    lane = (np.abs(_frac((g.x + F32(p.phase[0])) * F32(1 / 3.5)) - F32(0.5)) < F32(0.08 / 3.5))
    lane &= _frac((g.z + F32(p.phase[1])) * F32(1 / 3.0)) < F32(0.5)
    index = np.zeros(g.azimuth.shape, dtype=np.int32)
    for azimuth in p.features[:, 0]:
        index += g.azimuth > F32(azimuth)
    index %= len(p.features)
    heights = p.features[:, 2].astype(F32)[index]
    arc = g.arc(p.radius)
    y = g.y_wall
    storey = _frac(y * F32(1 / 3.0))
    window = (np.abs(_frac(arc * F32(1 / 1.6)) - F32(0.5)) < F32(0.22)) & (storey > F32(0.35)) & (storey < F32(0.8))
    window &= (y > F32(2.5)) & (y < heights - F32(0.5))
    sky = ~g.on_floor & (y > heights)
    rgb = _paint(_mix(*env.wall_rgb, (index & 1).astype(F32)), window, _rgb((0.24, 0.30, 0.38)))
    asphalt = _paint(_rgb(env.floor_rgb[0]) * (F32(0.9) + F32(0.2) * grain), lane, _rgb(env.floor_rgb[1]))
    rgb = _paint(_paint(rgb, g.on_floor, asphalt), sky, _sky(g, env))
    kind = np.where(g.on_floor, FLOOR, np.where(sky, SKY, np.where(window, FEATURE, SCENERY)))
    depth = np.where(g.on_floor, g.t_floor, g.t_wall)
    temp = np.where(g.on_floor, F32(env.floor_temp_c), F32(env.wall_temp_c)) + F32(2.0) * (grain - F32(0.5))
    temp[window & ~g.on_floor] = env.feature_temp_c
    temp[sky] = env.sky_temp_c
    return rgb, temp, depth, kind


def _shade_beach(g: _Geometry, p: Place) -> tuple[np.ndarray, ...]:
    env = p.env
    x, z = g.x, g.z
    wobble = F32(2.0) * value_noise(x, z, p.seed)
    ripple = F32(0.5) + F32(0.5) * np.sin((x * F32(0.6) + z) * F32(9.0 / p.scale) + wobble)
    shore = F32(p.radius) * (F32(1.0) + F32(0.12) * np.sin(F32(2.0) * g.azimuth + F32(p.phase[0])))
    distance = np.minimum(g.t_floor, F32(1e4)) * g.horizontal
    sea = g.down & (distance > shore)
    wet = g.down & ~sea & (distance > shore - F32(0.8))
    sky = ~g.down
    waves = F32(0.5) + F32(0.5) * np.sin(np.minimum(distance, F32(200)) * F32(4.0 / p.scale) + F32(p.phase[1]))
    water = _mix(*env.wall_rgb, waves * (F32(1.0) - np.clip(distance * F32(1 / 40.0), 0, 1)))
    sand = _mix(*env.floor_rgb, ripple) * (F32(1) - F32(0.22) * wet)
    rgb = _paint(_paint(sand, sea, water), sky, _sky(g, env))
    kind = np.where(sea, WATER, np.where(sky, SKY, FLOOR))
    ground = F32(env.floor_temp_c) - F32(2.0) * ripple
    temp = np.where(sea, F32(env.wall_temp_c), np.where(sky, F32(env.sky_temp_c), ground))
    temp[wet] = env.feature_temp_c
    return rgb, temp, np.where(g.down, g.t_floor, F32(np.inf)), kind


_SHADERS: dict[str, Callable[[_Geometry, Place], tuple[np.ndarray, ...]]] = {
    "kitchen": _shade_kitchen, "forest": _shade_forest, "street": _shade_street, "beach": _shade_beach,
}


def _paint_stairs(g: _Geometry, p: Place, heading: float, rgb: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Treads in the floor colour, darker risers and a bright nosing, 0.28 m apart along `heading`."""
    floor = (kind == FLOOR) | (kind == WATER)
    phase = _frac(-(F32(np.sin(heading)) * g.x + F32(np.cos(heading)) * g.z) * F32(1 / 0.28))
    tread = _rgb(p.env.floor_rgb[0])
    step = np.where(phase < 0.3, F32(0.45), np.where(phase < 0.36, F32(1.3), F32(1.0)))
    kind[floor] = FLOOR
    return _paint(rgb, floor, np.minimum(tread * step, F32(1)))


# ------------------------------------------------------------------------------------------------ objects


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
        return self.size * 2.0 * math.tan(FOV_RAD / 2.0) * self.distance_m


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
    cols, rows = _pixel_grid(size)
    half_fov = F32(math.tan(FOV_RAD / 2))
    slope = ((cols / (2 * half_fov) + F32(0.5 - thing.centre[0])) * F32(light[0])
             + (-rows / (2 * half_fov) + F32(0.5 - thing.centre[1])) * F32(light[1])) * F32(1 / thing.size)
    shade = F32(0.8) + F32(0.3) * profile + F32(0.25) * slope
    colour = np.ascontiguousarray(pixels[..., :3].transpose(2, 0, 1))
    return ThingLayer(alpha, np.clip(colour * shade, 0.0, 1.0), profile)


# ------------------------------------------------------------------------------------------- still scenes


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
    cols, rows = _pixel_grid(size)
    half_fov = F32(2 * math.tan(FOV_RAD / 2))
    gradient = cols / half_fov * F32(shot.light[0] * 1.2) - rows / half_fov * F32(shot.light[1] * 1.2)
    light = F32(shot.gain) * (F32(1) + gradient)
    grain = rng.standard_normal((size, size), dtype=F32) * F32(shot.noise)
    rgb = rgb * (light * _rgb(shot.white)) + grain
    return Still(to_uint8(rgb), _depth_sensor(depth, rng), _thermal_sensor(temp, size, rng), mask)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Channel-first float [3, H, W] in [0, 1] -> an RGB image array uint8 [H, W, 3]."""
    return np.ascontiguousarray(np.clip(np.rint(rgb * F32(255)), 0, 255).astype(np.uint8).transpose(1, 2, 0))


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


# -------------------------------------------------------------------------------------------------- sound


def _sin(phase: np.ndarray) -> np.ndarray:
    """sin of float64 phases (radians), computed in float32 after exact wrapping to one period."""
    cycles = phase * (1 / (2 * np.pi))
    return np.sin((cycles - np.floor(cycles)).astype(F32) * F32(2 * np.pi))


def _fft_size(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _noise(rng: np.random.Generator, n: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """White noise shaped in frequency by `gain(f_hz)`, unit RMS, float32."""
    size = _fft_size(n)
    spectrum = np.fft.rfft(rng.standard_normal(size, dtype=F32)) * gain(np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE))
    x = np.fft.irfft(spectrum, size)[:n].astype(F32)
    return x / F32(max(float(np.sqrt(np.mean(x**2))), 1e-12))


def _events(duration: float, period: float, rng: np.random.Generator, jitter: float = 0.05) -> np.ndarray:
    """Roughly periodic onset times (s), starting before 0 so a sound can be under way when the clip starts."""
    start = rng.uniform(0.0, period)
    times = np.arange(start - period, duration, period)
    return times + rng.normal(0.0, jitter * period, times.shape)


def _decaying(
    t: np.ndarray, onsets: np.ndarray, partial: Callable[[np.ndarray], np.ndarray], length: float
) -> np.ndarray:
    """Sum of `partial(time since onset)` over `length` s after each onset."""
    out = np.zeros(t.shape, dtype=F32)
    for onset in onsets:
        lo, hi = np.searchsorted(t, [onset, onset + length])
        if hi > lo:
            out[lo:hi] += partial(t[lo:hi] - onset)
    return out


def _whistle(t, rng, pitch, tempo):
    f0 = rng.uniform(2700, 3200) * pitch
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.012 * np.sin(2 * np.pi * 5.5 * t))) / SAMPLE_RATE
    tone = _sin(phase) + F32(0.3) * _sin(2 * phase)
    hiss = _noise(rng, len(t), lambda f: (f > 3500) * 1.0)
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * 0.4 * tempo * t + rng.uniform(0, 6.3))
    return swell.astype(F32) * (tone + F32(0.25) * hiss)


def _bell(t, rng, pitch, tempo):
    f0 = rng.uniform(480, 620) * pitch
    ratios, amps, decays = (1.0, 2.0, 2.76, 5.4), (1.0, 0.6, 0.45, 0.25), (2.5, 3.5, 5.0, 8.0)

    def strike(u):
        partials = zip(ratios, amps, decays)
        return sum(a * np.exp(-d * u).astype(F32) * _sin(2 * np.pi * f0 * r * u) for r, a, d in partials)

    return _decaying(t, _events(t[-1], rng.uniform(0.85, 1.1) / tempo, rng, 0.02), strike, 1.5)


def _click(u: np.ndarray, freq: float) -> np.ndarray:
    return np.exp(-700 * u) * _sin(2 * np.pi * freq * u)


def _ticks(t, rng, pitch, tempo):
    period = 0.5 / tempo
    ticks = _events(t[-1], 2 * period, rng, 0.005)
    tick = _decaying(t, ticks, partial(_click, freq=3300.0 * pitch), 0.02)
    tock = _decaying(t, ticks + period, partial(_click, freq=2300.0 * pitch), 0.02)
    return tick + F32(0.8) * tock


def _thumps(t, rng, pitch, tempo):
    f0 = rng.uniform(55, 75) * pitch
    bar = rng.uniform(0.9, 1.1) / tempo
    onsets = np.concatenate([_events(t[-1], bar, rng, 0.01) + off * bar for off in (0.0, 0.25, 0.5)])

    def hit(u):
        f = f0 * (1 + 1.2 * np.exp(-u * 25))
        return np.exp(-7 * u) * _sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)

    return _decaying(t, np.sort(onsets), hit, 0.5)


def _hum(t, rng, pitch, tempo):
    f0 = 100.0 * pitch
    buzz = sum(_sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / F32(k) for k in range(1, 12))
    air = _noise(rng, len(t), lambda f: ((f > 150) & (f < 2500)) * 1.0)
    wobble = (1 + 0.15 * np.sin(2 * np.pi * 0.5 * tempo * t)).astype(F32)
    return F32(0.6) * buzz * wobble + F32(0.8) * air


def _meow(t, rng, pitch, tempo):
    f0 = rng.uniform(480, 560) * pitch
    length = 0.75

    def call(u):
        contour = f0 * (1 + 0.7 * np.sin(np.pi * u / length) ** 2 - 0.15 * u / length)
        phase = 2 * np.pi * np.cumsum(contour) / SAMPLE_RATE
        voice = sum(_sin(k * phase) / F32(k) for k in range(1, 7))
        return np.sin(np.pi * u / length).astype(F32) * voice

    return _decaying(t, _events(t[-1], rng.uniform(1.2, 1.6) / tempo, rng, 0.05), call, length)


def _siren(t, rng, pitch, tempo):
    centre = rng.uniform(1400, 1600) * pitch
    saw = _frac(t * 1.2 * tempo + rng.uniform(0, 1))
    f = centre * (1 + 0.27 * (2 * np.abs(2 * saw - 1) - 1))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    return _sin(phase) + F32(0.33) * _sin(3 * phase)


def _croak(t, rng, pitch, tempo):
    f0 = rng.uniform(200, 240) * pitch
    period = rng.uniform(0.7, 0.9) / tempo

    def ribbit(u):
        saw = 2 * _frac(f0 * u) - 1
        pulses = (_sin(2 * np.pi * 32 * u) > 0) & ((u < 0.12) | ((u > 0.18) & (u < 0.3)))
        return saw * pulses

    return _decaying(t, _events(t[-1], period, rng, 0.03), ribbit, 0.3)


def _string(u: np.ndarray, f0: float) -> np.ndarray:
    """A plucked string: harmonics k of f0 that decay faster the higher they are."""
    return sum(np.exp(-(2.5 + 1.5 * k) * u).astype(F32) * _sin(2 * np.pi * f0 * k * u) / F32(k) for k in range(1, 9))


def _pluck(t, rng, pitch, tempo):
    chord = np.array([196.0, 247.0, 294.0, 392.0]) * pitch
    onsets = _events(t[-1], rng.uniform(0.5, 0.7) / tempo, rng, 0.03)
    roots = chord[(np.arange(len(onsets)) + int(rng.integers(4))) % 4]
    out = np.zeros(t.shape, dtype=F32)
    for onset, f0 in zip(onsets, roots):
        out += _decaying(t, np.array([onset]), partial(_string, f0=f0), 1.2)
    return out


def _ring(t, rng, pitch, tempo):
    cycle = rng.uniform(2.6, 3.2) / tempo
    local = (t + rng.uniform(0, cycle)) % cycle
    on = (local < 0.4) | ((local > 0.6) & (local < 1.0))
    trill = np.where(np.sin(2 * np.pi * 16 * t) > 0, 650.0, 820.0) * pitch
    return on * _sin(2 * np.pi * np.cumsum(trill) / SAMPLE_RATE)


SOUNDS: dict[str, Callable[..., np.ndarray]] = {
    "whistle": _whistle, "bell": _bell, "ticks": _ticks, "thumps": _thumps, "hum": _hum, "meow": _meow,
    "siren": _siren, "croak": _croak, "pluck": _pluck, "ring": _ring,
}


def _chirp(u: np.ndarray) -> np.ndarray:
    """A bird call: a 90 ms upward sweep from 3.5 kHz."""
    return _sin(2 * np.pi * (3500 * u + 0.5 * 18000 * u**2)) * np.sin(np.pi * u / 0.09).astype(F32)


def _ambience(env: Environment, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(t)
    if env.ambience == "pink":
        return _noise(rng, n, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)))
    if env.ambience == "wind":
        gust = (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * t + rng.uniform(0, 6.3))).astype(F32)
        wind = gust * _noise(rng, n, lambda f: 1.0 / np.maximum(f, 30.0) * (f < 1200))
        birds = _decaying(t, rng.uniform(0, t[-1], int(rng.integers(3, 7))), _chirp, 0.09)
        return wind + F32(0.6) * birds
    if env.ambience == "rumble":
        swell = (0.7 + 0.3 * np.exp(-((t - rng.uniform(0, t[-1])) ** 2) / 0.8)).astype(F32)
        return swell * _noise(rng, n, lambda f: 1.0 / (1.0 + (f / 120.0) ** 2))
    if env.ambience == "surf":
        swell = (0.35 + 0.65 * np.sin(np.pi * rng.uniform(0.25, 0.4) * t + rng.uniform(0, 6.3)) ** 2).astype(F32)
        return swell * _noise(rng, n, lambda f: ((f > 250) & (f < 6000)) * 1.0)
    raise ValueError(f"unknown ambience {env.ambience!r}")


def _room(signal: np.ndarray, env: Environment, rng: np.random.Generator) -> np.ndarray:
    """Reverberation (exponentially decaying noise tail with the environment's RT60) and slap-back echo."""
    if env.reverb_rt60_s <= 0 and env.echo_s <= 0:
        return signal
    ir = np.zeros(int(SAMPLE_RATE * max(env.reverb_rt60_s, env.echo_s + 0.01)) + 1, dtype=F32)
    ir[0] = 1.0
    if env.reverb_rt60_s > 0:
        u = np.arange(int(SAMPLE_RATE * env.reverb_rt60_s)) / SAMPLE_RATE
        tail = rng.standard_normal(len(u), dtype=F32) * np.exp(-6.9 * u / env.reverb_rt60_s).astype(F32)
        ir[1 : len(u)] += F32(0.08) * tail[1:]
    if env.echo_s > 0:
        ir[int(SAMPLE_RATE * env.echo_s)] += 0.45
    size = _fft_size(len(signal) + len(ir))
    wet = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(ir, size), size)
    return wet[: len(signal)].astype(F32)


def render_sound(place: Place, thing: Thing | None, rng: np.random.Generator) -> np.ndarray:
    """int16 mono samples at 16 kHz: the object's signature (pitch falls with its size, level with its
    distance) through the environment's room response, over the environment's ambience."""
    t = np.arange(int(SAMPLE_RATE * AUDIO_SECONDS)) / SAMPLE_RATE
    env = place.env
    ambience = _ambience(env, t, rng)
    level = env.ambience_level * rng.uniform(0.7, 1.3) / max(float(np.sqrt(np.mean(ambience**2))), 1e-12)
    mix = ambience * F32(level)
    if thing is not None:
        pitch = float(np.clip((0.7 / thing.size_m) ** 0.5, 0.8, 1.25) * rng.uniform(0.97, 1.03))
        source = SOUNDS[thing.obj.sound](t, rng, pitch, rng.uniform(0.88, 1.12)).astype(F32)
        source = _room(source / F32(max(float(np.sqrt(np.mean(source**2))), 1e-12)), env, rng)
        mix = mix + source * F32(0.5 * (1.3 / thing.distance_m) * rng.uniform(0.8, 1.2))
    peak = float(np.max(np.abs(mix)))
    mix = mix * F32(rng.uniform(0.25, 0.9) / max(peak, 1e-12))
    return np.rint(mix * F32(32767)).astype(np.int16)


# ------------------------------------------------------------------------------------ ego-motion and IMU


@dataclass(frozen=True)
class Motion:
    """A head trajectory at MOTION_RATE: positions [N, 3] (y = height above the floor underfoot), rotations
    [N, 3, 3], and what an IMU on the head measures: specific force [N, 3] (m/s^2, gravity included) and
    angular velocity [N, 3] (rad/s), both in the body frame; `heading` is the initial yaw."""

    position: np.ndarray
    rotation: np.ndarray
    accel: np.ndarray
    gyro: np.ndarray
    heading: float


def simulate_motion(activity: Activity, rng: np.random.Generator, seconds: float) -> Motion:
    """A gait model: steps at `step_hz` bob the head and rock it at the stride frequency; speed, heading,
    climb, bank and gaze come from the activity, every amplitude and rate jittered per recording. The IMU
    readings are the analytic trajectory differentiated, so they agree with the rendered frames exactly."""
    pad = 0.2
    t = np.arange(-pad, seconds + pad, 1.0 / MOTION_RATE)
    step = activity.step_hz * rng.uniform(0.92, 1.08)
    amp = rng.uniform(0.8, 1.2)
    phase = rng.uniform(0, 2 * np.pi, 4)
    speed = activity.speed_m_s * rng.uniform(0.9, 1.1)
    heading = float(rng.uniform(-np.pi, np.pi))
    drift = np.zeros_like(t)  # slow head wandering, present in every activity
    for _ in range(3):
        drift += rng.uniform(0.004, 0.012) * np.sin(2 * np.pi * rng.uniform(0.05, 0.4) * t + rng.uniform(0, 6.3))
    bob = activity.bob_m * amp
    if step > 0:  # vertical bob and head nod at the step rate, sideways sway at the stride rate (half of it)
        gait = np.cos(2 * np.pi * step * t + phase[0])
        if activity.name == "running":  # sharper impacts
            gait = gait + 0.35 * np.cos(4 * np.pi * step * t + 2 * phase[0])
        nod, stride = np.sin(2 * np.pi * step * t + phase[2]), np.sin(np.pi * step * t + phase[1])
    else:  # breathing only: 2 mm at 0.25 Hz
        bob, gait = 0.002, np.cos(2 * np.pi * 0.25 * t + phase[0])
        nod, stride = np.zeros_like(t), np.zeros_like(t)
    yaw = heading + activity.yaw_rate * rng.uniform(0.8, 1.2) * t + 0.5 * bob * stride + drift
    pitch = activity.pitch + bob * nod + 0.7 * drift
    roll = activity.roll * rng.uniform(0.8, 1.2) + bob * stride + 0.5 * drift
    surge = speed * (1 + 0.1 * np.sin(2 * np.pi * step * t + phase[3]))
    forward = np.stack([-np.sin(yaw), -np.cos(yaw)], axis=1)
    right = np.stack([np.cos(yaw), -np.sin(yaw)], axis=1)
    planar = np.cumsum(surge[:, None] * forward, axis=0) / MOTION_RATE + 0.35 * bob * stride[:, None] * right
    floor = activity.climb_m_per_step * step * (t + pad)
    height = activity.eye_height_m * rng.uniform(0.95, 1.05) + bob * gait
    position = np.stack([planar[:, 0], floor + height, planar[:, 1]], axis=1)
    rotation = rotation_matrix(yaw, pitch, roll)
    dt = 1.0 / MOTION_RATE
    accel_world = np.gradient(np.gradient(position, dt, axis=0), dt, axis=0) + np.array([0.0, GRAVITY, 0.0])
    accel = np.einsum("nji,nj->ni", rotation, accel_world)
    spin = np.einsum("nji,njk->nik", rotation, np.gradient(rotation, dt, axis=0))
    gyro = np.stack([spin[:, 2, 1], spin[:, 0, 2], spin[:, 1, 0]], axis=1)
    first = int(round(pad * MOTION_RATE))
    keep = slice(first, first + int(round(seconds * MOTION_RATE)))
    position = position[keep].copy()
    position[:, 1] -= floor[keep]
    return Motion(position, rotation[keep], accel[keep], gyro[keep], heading)


def imu_samples(motion: Motion, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(times [T] s, samples [T, 6] = ax ay az m/s^2, gx gy gz rad/s) at `rate` Hz, with MEMS-like white
    noise and a constant bias per axis."""
    every = int(round(MOTION_RATE / rate))
    accel, gyro = motion.accel[::every], motion.gyro[::every]
    accel = accel + rng.normal(0, 0.04, accel.shape) + rng.uniform(-0.08, 0.08, 3)
    gyro = gyro + rng.normal(0, 0.004, gyro.shape) + rng.uniform(-0.01, 0.01, 3)
    return np.arange(len(accel)) / rate, np.concatenate([accel, gyro], axis=1)


def render_frames(
    place: Place, motion: Motion, times: np.ndarray, size: int, activity: Activity
) -> list[np.ndarray]:
    """uint8 [size, size, 3] frames at `times` (s into the motion) seen by the head camera.

    Each frame is smeared along its image motion during a one-frame exposure (turning gives horizontal
    streaks, gait bobbing vertical ones), so single frames already show how the wearer moves; climbing
    shows stairs underfoot and sitting shows the wearer's knees.
    """
    exposure = float(np.median(np.diff(times))) if len(times) > 1 else 0.08
    f = focal_px(size)
    stairs = motion.heading if activity.climb_m_per_step > 0 else None
    rise = np.gradient(motion.position[:, 1]) * MOTION_RATE
    frames = []
    for time in times:
        i = min(int(round(time * MOTION_RATE)), len(motion.position) - 1)
        x, h, z = motion.position[i]
        rgb = render_place(place, size, motion.rotation[i], (x, z), h, stairs_heading=stairs).rgb
        if activity.seated:
            rgb = _knees(rgb, size)
        w = motion.gyro[i]  # yaw rate moves the picture sideways, pitch rate and rising (seen ~3 m away) down
        flow = np.array([w[1] * f, w[0] * f + rise[i] * f / 3.0]) * exposure
        frames.append(to_uint8(_smear(rgb, flow)))
    return frames


def _smear(rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Average of copies shifted along `flow` (pixels; x right, y down), edges clamped."""
    length = float(np.hypot(*flow))
    taps = min(int(math.ceil(length)) + 1, 16)
    if taps < 2:
        return rgb
    reach = int(math.ceil(length)) + 1
    padded = np.pad(rgb, ((0, 0), (reach, reach), (reach, reach)), mode="edge")
    size = rgb.shape[1]
    out = np.zeros_like(rgb)
    for s in np.linspace(-0.5, 0.5, taps):
        dx, dy = int(round(s * flow[0])), int(round(s * flow[1]))
        out += padded[:, reach - dy : reach - dy + size, reach - dx : reach - dx + size]
    return out * F32(1 / taps)


def _knees(rgb: np.ndarray, size: int) -> np.ndarray:
    """The seated wearer's knees in dark trousers at the bottom of the view."""
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    for cx in (0.28, 0.72):
        draw.ellipse([(cx - 0.2) * size, 0.8 * size, (cx + 0.2) * size, 1.3 * size], fill=255)
    a = np.asarray(layer.filter(ImageFilter.GaussianBlur(1.0)), dtype=F32) * F32(1 / 255)
    return rgb + (_rgb((0.27, 0.24, 0.22)) - rgb) * a
