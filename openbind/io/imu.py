"""Reading IMU recordings (.npy, .csv, arrays, tensors) into samples and a time base; no resampling here.

Channel order and units everywhere in openbind: ax, ay, az in m/s^2 (raw accelerometer, gravity included),
then gx, gy, gz in rad/s. Time is in seconds.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.errors import OpenBindInputError

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
MIN_SAMPLES = 2
MIN_SAMPLE_RATE = 10.0  # Hz; slower streams are almost always timestamps in the wrong unit

_SENSOR_PREFIXES = {
    "a": ("a", "acc", "accl", "accel", "acceleration", "accelerometer"),
    "g": ("g", "gyr", "gyro", "gyroscope", "angularvelocity"),
}
_TIME_NAMES = {"t", "time", "times", "timestamp", "timestamps", "seconds", "sec"}
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class ImuRecording:
    """Samples [T, 6] in CHANNELS order, and either strictly increasing timestamps [T] in seconds or a
    uniform sample_rate in Hz (timestamps win when both are given). `read_imu` returns validated ones and
    accepts hand-made ones (for arrays with their own timestamps), which it validates."""

    samples: np.ndarray
    timestamps: np.ndarray | None = None
    sample_rate: float | None = None

    @property
    def times(self) -> np.ndarray:
        """Sample times in seconds, starting at 0."""
        if self.timestamps is not None:
            return self.timestamps - self.timestamps[0]
        return np.arange(len(self.samples)) / self.sample_rate

    @property
    def duration(self) -> float:
        """Seconds covered, the last sample's interval included (T / rate for uniform data)."""
        times = self.times
        step = float(np.median(np.diff(times))) if self.timestamps is not None else 1.0 / self.sample_rate
        return float(times[-1]) + step


def read_imu(item: Any, *, sample_rate: float | None = None) -> ImuRecording:
    """Decode an IMU item: a .npy / .csv path, a (T, 6) or (6, T) array or tensor, or an ImuRecording.

    `sample_rate` (Hz) is the time base for inputs without timestamps; it is ignored when they have them, and
    an ImuRecording's own sample_rate wins over it. A bad `sample_rate` raises ValueError, a bad item
    OpenBindInputError. Values (NaN, units) are checked later by the transform; here only structure and time
    base.
    """
    check_sample_rate(sample_rate)
    if isinstance(item, ImuRecording):
        samples, timestamps = item.samples, item.timestamps
        if item.sample_rate is not None and timestamps is None:
            if not _plausible_rate(item.sample_rate):
                raise OpenBindInputError(
                    item, f"sample_rate {item.sample_rate!r} Hz; need a number >= {MIN_SAMPLE_RATE:g}"
                )
            sample_rate = item.sample_rate
    elif isinstance(item, (str, Path)):
        samples, timestamps = _read_file(Path(item), item)
    elif isinstance(item, torch.Tensor):
        tensor = item.detach().cpu()
        samples, timestamps = (tensor.double() if tensor.is_floating_point() else tensor).numpy(), None
    elif isinstance(item, np.ndarray):
        samples, timestamps = item, None
    else:
        raise OpenBindInputError(item, f"unsupported input type {type(item).__name__}")
    samples = _time_major(np.asarray(samples), item)
    if len(samples) < MIN_SAMPLES:
        raise OpenBindInputError(item, f"{len(samples)} sample(s); need at least {MIN_SAMPLES}")
    if timestamps is not None:
        return ImuRecording(samples, _check_timestamps(np.asarray(timestamps), len(samples), item), None)
    if sample_rate is None:
        raise OpenBindInputError(item, "no timestamps: give sample_rate (Hz), e.g. 400 for data at model rate")
    return ImuRecording(samples, None, float(sample_rate))


def check_sample_rate(sample_rate: float | None) -> None:
    """ValueError unless `sample_rate` (an option: the time base of items without timestamps) is None or a
    finite number >= MIN_SAMPLE_RATE Hz."""
    if sample_rate is not None and not _plausible_rate(sample_rate):
        raise ValueError(
            f"sample_rate must be None or a number of Hz >= {MIN_SAMPLE_RATE:g}, got {sample_rate!r}"
        )


def _plausible_rate(rate: Any) -> bool:
    return isinstance(rate, Real) and math.isfinite(rate) and rate >= MIN_SAMPLE_RATE


def _time_major(array: np.ndarray, item: Any) -> np.ndarray:
    """(T, 6) float64 from a (T, 6) or (6, T) array; every other layout, and (6, 6), is refused."""
    if array.dtype == bool or array.dtype.kind not in "iuf":
        raise OpenBindInputError(item, f"unsupported dtype {array.dtype}; expected integers or floats")
    if array.ndim != 2:
        raise OpenBindInputError(item, f"shape {tuple(array.shape)}: expected (T, 6) or (6, T)")
    rows, cols = array.shape
    if rows == 6 and cols == 6:
        raise OpenBindInputError(item, "shape (6, 6) is ambiguous between (T, 6) and (6, T)")
    if cols == 6:
        return array.astype(np.float64)
    if rows == 6:
        return array.T.astype(np.float64)
    if 0 in array.shape:
        raise OpenBindInputError(item, f"shape {tuple(array.shape)}: no channels or no samples")
    raise OpenBindInputError(item, f"shape {tuple(array.shape)}: expected 6 channels {CHANNELS}")


def _check_timestamps(timestamps: np.ndarray, count: int, item: Any) -> np.ndarray:
    if timestamps.shape != (count,) or timestamps.dtype.kind not in "iuf":
        raise OpenBindInputError(item, f"timestamps of shape {timestamps.shape}; need {count} numbers")
    timestamps = timestamps.astype(np.float64)
    if not np.isfinite(timestamps).all():
        raise OpenBindInputError(item, "NaN or infinite timestamps")
    steps = np.diff(timestamps)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 1
        raise OpenBindInputError(item, f"timestamps not strictly increasing at sample {row}")
    rate = 1.0 / float(np.median(steps))
    if rate < MIN_SAMPLE_RATE:
        raise OpenBindInputError(
            item, f"timestamps give {rate:.3g} Hz; they must be in seconds (name the column t_ms for milliseconds)"
        )
    return timestamps


def _read_file(path: Path, item: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise OpenBindInputError(item, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise OpenBindInputError(item, "empty file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False), None
        except (OSError, ValueError, EOFError) as error:
            raise OpenBindInputError(item, f"cannot read .npy (truncated or corrupt?): {error}") from None
    if suffix in (".csv", ".tsv", ".txt"):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise OpenBindInputError(item, f"cannot read as UTF-8 text: {error}") from None
        return parse_imu_csv(text, item)
    raise OpenBindInputError(item, f"unsupported file type {suffix or '(none)'!r}; use .npy or .csv")


def parse_imu_csv(text: str, item: Any = "<csv>") -> tuple[np.ndarray, np.ndarray | None]:
    """(samples [T, 6] in CHANNELS order, timestamps [T] in seconds or None) from CSV text.

    With a header, columns are found by name in any order (ax / acc_x / accel_x ..., gx / gyro_x ...,
    and at most one time column t / time / timestamp, seconds unless suffixed _ms, _us or _ns; units in
    brackets are ignored; other columns are skipped). Without a header there must be exactly the 6 channels.
    Delimiter: comma, semicolon or tab; lines starting with # are comments; empty cells read as NaN.
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise OpenBindInputError(item, "no data rows")
    delimiter = max((",", ";", "\t"), key=lines[0].count)
    first = next(csv.reader(lines[:1], delimiter=delimiter))
    header = None if _is_numeric_row(first) else first
    body = lines[1:] if header is not None else lines
    if not body:
        raise OpenBindInputError(item, "header but no data rows")
    channel_columns, time_column, time_scale = _column_layout(header, len(first), item)
    columns = channel_columns + ([time_column] if time_column is not None else [])
    table = _read_columns(body, delimiter, len(first), columns, item)
    timestamps = table[:, len(CHANNELS)] * time_scale if time_column is not None else None
    return table[:, : len(CHANNELS)], timestamps


def _read_columns(lines: list[str], delimiter: str, width: int, columns: list[int], item: Any) -> np.ndarray:
    """float64 [rows, len(columns)] of the data lines; columns not asked for are not read.

    numpy's C parser reads a plain numeric table (3x faster than cell by cell); whatever it refuses (empty cells,
    quotes, rows of another width, text) is read cell by cell, which reads empty cells as NaN and names what is
    wrong. Both parse numbers as Python's float() does, to the same bits.
    """
    if all(line.count(delimiter) == width - 1 for line in lines):
        try:
            return np.loadtxt(lines, delimiter=delimiter, usecols=columns, dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            pass
    rows = list(csv.reader(lines, delimiter=delimiter))  # fewer than lines where a quoted cell spans lines
    table = np.empty((len(rows), len(columns)), dtype=np.float64)
    for index, row in enumerate(rows):
        if len(row) != width:
            raise OpenBindInputError(item, f"data row {index + 1} has {len(row)} columns, expected {width}")
        table[index] = [_parse_cell(row[column], index + 1, item) for column in columns]
    return table


def _column_layout(header: list[str] | None, width: int, item: Any) -> tuple[list[int], int | None, float]:
    if header is None:
        if width != len(CHANNELS):
            raise OpenBindInputError(
                item, f"{width} columns without a header; name them (ax,ay,az,gx,gy,gz and optionally t)"
            )
        return list(range(len(CHANNELS))), None, 1.0
    found: dict[str, int] = {}
    time_columns: list[tuple[int, float]] = []
    for column, name in enumerate(header):
        key = re.sub(r"[\(\[\{].*?[\)\]\}]", "", name).lower()
        key = re.sub(r"[^a-z0-9]", "", key)
        unit = next((u for u in sorted(_TIME_UNITS, key=len, reverse=True) if key.endswith(u)), None)
        if key in _TIME_NAMES or (unit and key[: -len(unit)] in _TIME_NAMES):
            scale = _TIME_UNITS[unit] if unit and key not in _TIME_NAMES else 1.0
            time_columns.append((column, scale))
            continue
        channel = _channel_name(key)
        if channel is None:
            continue
        if channel in found:
            raise OpenBindInputError(item, f"columns {header[found[channel]]!r} and {name!r} both name {channel}")
        found[channel] = column
    missing = [c for c in CHANNELS if c not in found]
    if missing:
        raise OpenBindInputError(item, f"header {header} lacks channel(s) {missing}")
    if len(time_columns) > 1:
        raise OpenBindInputError(item, f"{len(time_columns)} time columns in header {header}; keep one")
    time_column, time_scale = time_columns[0] if time_columns else (None, 1.0)
    return [found[c] for c in CHANNELS], time_column, time_scale


def _channel_name(key: str) -> str | None:
    """'accx' / 'accelerometerx' / 'ax' -> 'ax', 'gyroz' -> 'gz', anything else -> None."""
    if not key or key[-1] not in "xyz":
        return None
    prefix = key[:-1]
    for sensor, names in _SENSOR_PREFIXES.items():
        if prefix in names:
            return sensor + key[-1]
    return None


def _is_numeric_row(row: list[str]) -> bool:
    try:
        for cell in row:
            float(cell)
    except ValueError:
        return False
    return True


def _parse_cell(cell: str, row: int, item: Any) -> float:
    cell = cell.strip()
    if not cell:
        return float("nan")
    try:
        return float(cell)
    except ValueError:
        raise OpenBindInputError(item, f"data row {row}: {cell!r} is not a number") from None
