"""Environments as ray-cast 3-D places: one random layout of an environment and its view from any camera pose.

One view yields colour, z-depth and temperature of the same surfaces, so the image, depth and thermal renders
(stills.py) and the head-camera video (motion.py) agree by construction. Floors are infinite planes addressed
in world coordinates; walls and scenery are a cylinder of radius `Place.radius` around the camera, addressed
by azimuth and height.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from openbind.world.concepts import Environment
from openbind.world.scene import F32, colour, frac, pixel_grid

DEPTH_RANGE_M = 10.0  # farther surfaces, the sky and water read as 0 (invalid), like a time-of-flight sensor
FLOOR, SCENERY, SKY, FEATURE, WATER = 0, 1, 2, 3, 4  # surface kinds of a ray hit
CEILING_M = 2.6


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


@dataclass
class View:
    """A rendered view: rgb [3, H, W] in [0, 1] (channel-first, which makes colour broadcasting fast),
    z-depth [H, W] in metres (0 = invalid) and temperature [H, W] in degrees Celsius."""

    rgb: np.ndarray
    depth: np.ndarray
    temp: np.ndarray


def render_place(
    place: Place, size: int, rotation: np.ndarray, eye_xz: tuple[float, float], height: float,
    stairs_heading: float | None = None,
) -> View:
    """Ray-cast the place from a camera `height` m above the floor at world (x, z) = `eye_xz`.

    Floor points use world coordinates (they stream past a moving camera); walls and scenery stand at
    `place.radius` around the camera and are addressed by azimuth and height (far enough to show only
    rotation). `stairs_heading` (a yaw) paints the floor as a flight of stairs climbed in that direction.
    """
    cx, cy = pixel_grid(size)
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
    rgb = rgb * colour(place.tint)
    depth = np.where((kind == SKY) | (kind == WATER) | (depth > DEPTH_RANGE_M), F32(0), depth)
    return View(np.clip(rgb, 0.0, 1.0), depth, temp)


@dataclass
class _Geometry:
    """Every pixel's world ray [H, W] and where it meets the floor plane and the scenery cylinder."""

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


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], w: np.ndarray) -> np.ndarray:
    return colour(a) + (colour(b) - colour(a)) * w


def _paint(rgb: np.ndarray, where: np.ndarray, fill: np.ndarray) -> np.ndarray:
    return np.where(where, fill, rgb)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles to [-pi, pi]."""
    return angle - F32(2 * np.pi) * np.round(angle * F32(1 / (2 * np.pi)))


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
    return colour(env.sky_rgb) * (F32(1.08) - F32(0.25) * up)


def _shade_kitchen(g: _Geometry, p: Place) -> tuple[np.ndarray, ...]:
    env = p.env
    tile = F32(1.0 / (0.4 * p.scale))
    checker = ((np.floor(g.x * tile) + np.floor(g.z * tile)).astype(np.int32) & 1).astype(F32)
    y = g.y_wall
    arc = g.arc(p.radius)
    door = np.abs(frac(arc * F32(1 / p.features[0, 2])) - F32(0.5)) > F32(0.46)
    grout = (np.abs(frac(arc * F32(1 / 0.15)) - F32(0.5)) > F32(0.44))
    grout |= np.abs(frac(y * F32(1 / 0.15)) - F32(0.5)) > F32(0.44)
    tiles, wood = colour(env.wall_rgb[0]), colour(env.wall_rgb[1])
    cabinets = (y < 0.9) | ((y > 1.5) & (y < 2.2))
    oven = (np.abs(_wrap(g.azimuth - F32(p.landmark))) * F32(p.radius) < 0.35) & (y < 0.85) & (y > 0.1)
    ceiling = ~g.on_floor & (y > CEILING_M)
    backsplash = tiles * (F32(1) - F32(0.18) * (grout & (y > 0.95) & (y < 1.5)))
    rgb = _paint(backsplash, cabinets, wood * (F32(1) - F32(0.4) * door))
    rgb = _paint(rgb, (y >= 0.9) & (y < 0.97), colour((0.25, 0.25, 0.27)))
    rgb = _paint(rgb, oven, colour((0.12, 0.12, 0.14)))
    rgb = _paint(rgb, ceiling, colour(env.sky_rgb))
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
    rgb = colour(env.wall_rgb[0]) * (F32(0.75) + F32(0.5) * leaves)
    rgb = _paint(rgb, g.on_floor, _mix(*env.floor_rgb, litter))
    rgb = _paint(rgb, sky, _sky(g, env))
    kind = np.where(g.on_floor, FLOOR, np.where(sky, SKY, SCENERY))
    depth = np.where(g.on_floor, g.t_floor, g.t_wall)
    temp = np.where(g.on_floor, F32(env.floor_temp_c), F32(env.wall_temp_c)) + F32(1.5) * (litter - F32(0.5))
    temp[sky] = env.sky_temp_c
    bark = colour(env.wall_rgb[1])[:, 0]
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
    lane = (np.abs(frac((g.x + F32(p.phase[0])) * F32(1 / 3.5)) - F32(0.5)) < F32(0.08 / 3.5))
    lane &= frac((g.z + F32(p.phase[1])) * F32(1 / 3.0)) < F32(0.5)
    index = np.zeros(g.azimuth.shape, dtype=np.int32)
    for azimuth in p.features[:, 0]:
        index += g.azimuth > F32(azimuth)
    index %= len(p.features)
    heights = p.features[:, 2].astype(F32)[index]
    arc = g.arc(p.radius)
    y = g.y_wall
    storey = frac(y * F32(1 / 3.0))
    window = (np.abs(frac(arc * F32(1 / 1.6)) - F32(0.5)) < F32(0.22)) & (storey > F32(0.35)) & (storey < F32(0.8))
    window &= (y > F32(2.5)) & (y < heights - F32(0.5))
    sky = ~g.on_floor & (y > heights)
    rgb = _paint(_mix(*env.wall_rgb, (index & 1).astype(F32)), window, colour((0.24, 0.30, 0.38)))
    asphalt = _paint(colour(env.floor_rgb[0]) * (F32(0.9) + F32(0.2) * grain), lane, colour(env.floor_rgb[1]))
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
    phase = frac(-(F32(np.sin(heading)) * g.x + F32(np.cos(heading)) * g.z) * F32(1 / 0.28))
    tread = colour(p.env.floor_rgb[0])
    step = np.where(phase < 0.3, F32(0.45), np.where(phase < 0.36, F32(1.3), F32(1.0)))
    kind[floor] = FLOOR
    return _paint(rgb, floor, np.minimum(tread * step, F32(1)))
