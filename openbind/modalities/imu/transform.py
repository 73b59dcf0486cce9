"""IMU input: a recording -> windows of 5 s resampled to 2000 steps, [clips, 6, 2000] float32.

The reference ships no IMU loader; the paper gives accelerometer + gyroscope xyz and 5 s windows of 2000
steps (400 Hz). Window placement, padding and unit checks are documented in docs/modalities/imu.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from openbind.errors import OpenBindInputError
from openbind.io.imu import CHANNELS, ImuRecording, check_sample_rate, read_imu
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out

WINDOW_SECONDS = 5.0
WINDOW_STEPS = 2000
# Plausibility bounds for check_units: at rest |a| is 9.81 m/s^2 (1 in g, ~1000 in mg, ~0 for
# gravity-removed "linear acceleration"); MEMS gyroscopes saturate at about 2000 deg/s = 35 rad/s.
ACCEL_MEDIAN_RANGE = (2.0, 50.0)
GYRO_MAX_ABS = 50.0
IMU_ITEM_TYPES = (str, Path, np.ndarray, torch.Tensor, ImuRecording)
Clips = int | Literal["all"]


def window_starts(duration: float, clips: Clips) -> list[float]:
    """Start times (s) of the windows taken from a recording of `duration` seconds.

    An int n: n windows evenly spaced from 0 to the end-aligned start duration - 5 (all at 0 when the
    recording is shorter than 5 s; n = 1 is the first window). "all": ceil(duration / 5) windows that tile the
    recording from 0 in 5 s steps, the last one end-aligned so it holds real data instead of padding.
    """
    room = max(duration - WINDOW_SECONDS, 0.0)
    if clips == "all":
        count = max(1, math.ceil(duration / WINDOW_SECONDS - 1e-9))
        return [min(i * WINDOW_SECONDS, room) for i in range(count)]
    if clips == 1:
        return [0.0]
    return [i * room / (clips - 1) for i in range(clips)]


def resample_window(
    times: np.ndarray, samples: np.ndarray, start: float, duration: float, pad: Literal["edge", "zero"]
) -> np.ndarray:
    """[6, 2000]: linear interpolation of `samples` [T, 6] (at `times`, seconds) at start + i * 2.5 ms.

    Steps past the end of the recording hold the last sample ("edge") or are 0 ("zero").
    """
    query = start + np.arange(WINDOW_STEPS) * (WINDOW_SECONDS / WINDOW_STEPS)
    window = np.stack([np.interp(query, times, samples[:, c]) for c in range(samples.shape[1])])
    if pad == "zero":
        window[:, query >= duration] = 0.0
    return window


def fill_nan(samples: np.ndarray, times: np.ndarray, item: Any) -> np.ndarray:
    """Replace NaN samples by linear interpolation in time from the valid ones of their channel."""
    filled = samples.copy()
    for channel in range(samples.shape[1]):
        missing = np.isnan(samples[:, channel])
        if missing.all():
            raise OpenBindInputError(item, f"channel {CHANNELS[channel]} is all NaN")
        if missing.any():
            filled[missing, channel] = np.interp(times[missing], times[~missing], samples[~missing, channel])
    return filled


def check_units(samples: np.ndarray, item: Any) -> None:
    """Refuse recordings whose magnitudes cannot be m/s^2 (with gravity) and rad/s."""
    accel = float(np.median(np.linalg.norm(samples[:, :3], axis=1)))
    low, high = ACCEL_MEDIAN_RANGE
    if not low <= accel <= high:
        raise OpenBindInputError(
            item,
            f"median accelerometer magnitude {accel:.3g} is not m/s^2 with gravity (9.81 at rest); "
            "convert g to m/s^2, do not remove gravity, or pass check_units=False",
        )
    gyro = float(np.abs(samples[:, 3:]).max())
    if gyro > GYRO_MAX_ABS:
        raise OpenBindInputError(
            item, f"gyroscope reaches {gyro:.3g}; expected rad/s (deg/s?), or pass check_units=False"
        )


@dataclass
class ImuTransform:
    """IMU recording -> [clips, 6, 2000] float32: channels ax, ay, az (m/s^2), gx, gy, gz (rad/s).

    `sample_rate` (Hz) is the time base for inputs without timestamps. `clips`: window count, or "all"
    (see `window_starts`). `pad`: how windows past the end are filled ("edge" holds the last sample, which
    keeps gravity on the accelerometer; "zero" reads like free fall). `nan`: "error", or "interpolate" gaps
    in time. `mean` / `std`: optional per-channel normalization (6 values each), off by default because the
    released model's statistics are unpublished. `check_units`: refuse implausible magnitudes.
    """

    sample_rate: float | None = None
    clips: Clips = 1
    pad: Literal["edge", "zero"] = "edge"
    nan: Literal["error", "interpolate"] = "error"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    check_units: bool = True

    def __post_init__(self) -> None:
        count_ok = isinstance(self.clips, int) and not isinstance(self.clips, bool) and self.clips >= 1
        if self.clips != "all" and not count_ok:
            raise ValueError(f"clips must be a positive int or 'all', got {self.clips!r}")
        if self.pad not in ("edge", "zero"):
            raise ValueError(f"pad must be 'edge' or 'zero', got {self.pad!r}")
        if self.nan not in ("error", "interpolate"):
            raise ValueError(f"nan must be 'error' or 'interpolate', got {self.nan!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                f"mean and std must be given together (or both None), got mean={self.mean!r}, std={self.std!r}"
            )
        if self.mean is not None:
            mean, std = np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)
            if mean.shape != (6,) or std.shape != (6,) or not (np.isfinite(mean).all() and (std > 0).all()):
                raise ValueError(
                    f"mean and std need 6 finite values each (one per channel), std > 0; got mean={self.mean!r}, "
                    f"std={self.std!r}"
                )
        check_sample_rate(self.sample_rate)

    @property
    def fixed_output_shape(self) -> tuple[int, int, int] | None:
        """The output shape whatever the recording (None with clips="all", whose window count varies)."""
        return None if self.clips == "all" else (self.clips, len(CHANNELS), WINDOW_STEPS)

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 tensor of the output's shape to write into (e.g. a row of a batch in shared
        memory, which then reaches a DataLoader's main process without a copy)."""
        recording = read_imu(item, sample_rate=self.sample_rate)
        samples, times = recording.samples, recording.times
        if np.isinf(samples).any():
            raise OpenBindInputError(item, "infinite sample values")
        if np.isnan(samples).any():
            if self.nan == "error":
                row = int(np.argmax(np.isnan(samples).any(axis=1)))
                raise OpenBindInputError(item, f"NaN at sample {row}; pass nan='interpolate' to fill gaps")
            samples = fill_nan(samples, times, item)
        if self.check_units:
            check_units(samples, item)
        duration = recording.duration
        windows = np.stack(
            [resample_window(times, samples, s, duration, self.pad) for s in window_starts(duration, self.clips)]
        )
        if self.mean is not None:
            mean = np.asarray(self.mean, dtype=np.float64)[:, None]
            windows = (windows - mean) / np.asarray(self.std, dtype=np.float64)[:, None]
        if out is None:
            return torch.from_numpy(windows.astype(np.float32))
        if self.fixed_output_shape is None:
            raise ValueError('out needs a fixed window count: clips="all" varies with the recording')
        target = writable_out(out, self.fixed_output_shape)
        target.numpy()[...] = windows  # float64 -> float32, rounded as astype rounds
        return target


def load_imus(
    items: Any,
    *,
    transform: ImuTransform | None = None,
    on_error: OnError = "raise",
    clips: Clips | None = None,
) -> torch.Tensor | BatchResult:
    """IMU recordings -> [N, 6, 2000] with one window per item, else [N, S, 6, 2000].

    `clips` overrides the transform's. With clips="all" the window count follows each recording's length,
    so a batch is one tensor only when all items give the same count; otherwise call
    ImuTransform(clips="all") per item.
    """
    transform = transform or ImuTransform()
    if clips is not None:
        transform = dataclasses.replace(transform, clips=clips)
    items = as_item_list(items, IMU_ITEM_TYPES)
    counts: list[int] = []

    def one(item: Any) -> torch.Tensor:
        windows = transform(item)
        counts.append(windows.shape[0])
        return windows

    try:
        result = map_items(one, items, on_error)
    except RuntimeError:
        raise OpenBindInputError(
            f"<batch of {len(items)} IMU items>",
            f"recordings give different window counts {counts}; transform them one by one",
        ) from None
    if transform.clips != 1:
        return result
    if isinstance(result, BatchResult):
        if result.tensor.numel():
            result.tensor = result.tensor.squeeze(1)
        return result
    return result.squeeze(1)
