"""Ego-motion: a wearer's head trajectory for an activity, the IMU readings it produces and the head-camera
video frames seen along it.

The IMU readings are the simulated trajectory differentiated and the frames are ray-cast from its poses
(places.py), so gyroscope and picture agree on every turn and step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from openbind.world.concepts import Activity
from openbind.world.places import Place, render_place
from openbind.world.scene import F32, colour, focal_px, rotation_matrix, to_uint8

GRAVITY = 9.81
MOTION_RATE = 1000.0  # Hz; the trajectory is simulated this finely, then sampled for IMU and frames


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
    return rgb + (colour((0.27, 0.24, 0.22)) - rgb) * a
