"""Tiny media files for the tests. Each writer makes the missing parent folders and returns the path; the
format follows the suffix where the library allows it (PIL, soundfile)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def _parent_made(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_text(path: Path, content: str) -> Path:
    _parent_made(path).write_text(content, encoding="utf-8")
    return path


def write_image(path: Path, *, size=(40, 30), seed: int = 0, gray: bool = False, color=None) -> Path:
    """Random 8-bit pixels from `seed` (one channel if `gray`), or every pixel the RGB `color`; JPEG, PNG..."""
    if color is not None:
        image = Image.new("RGB", size, color)
    else:
        shape = (size[1], size[0]) if gray else (size[1], size[0], 3)
        image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
    image.save(_parent_made(path))
    return path


def write_depth(path: Path, millimetres: int = 2000, *, size=(40, 30)) -> Path:
    """A 16-bit PNG depth map, every pixel `millimetres`."""
    Image.fromarray(np.full((size[1], size[0]), millimetres, dtype=np.uint16)).save(_parent_made(path))
    return path


def write_audio(path: Path, *, seconds: float = 1.0, rate: int = 16000, freq: float = 440.0) -> Path:
    """A mono sine tone; WAV, FLAC... after the suffix."""
    import soundfile

    soundfile.write(_parent_made(path), _tone(seconds, rate, freq), rate)
    return path


def write_mp4(path: Path, *, frames: int = 8, fps: int = 8, size=(40, 30), sound: bool = False) -> Path:
    """An MPEG-4 video whose frame i is a flat gray, brighter each frame; with `sound`, an AAC mono tone as long
    as the video (frames / fps seconds)."""
    import av

    with av.open(str(_parent_made(path)), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        if sound:
            audio = out.add_stream("aac", rate=16000)
            audio.layout = "mono"
            tone = av.AudioFrame.from_ndarray(_tone(frames / fps, 16000)[None], format="fltp", layout="mono")
            tone.sample_rate, tone.pts = 16000, 0
            for packet in [*audio.encode(tone), *audio.encode(None)]:
                out.mux(packet)
        for i in range(frames):
            image = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 255 * i // frames, np.uint8), "rgb24")
            image.pts = i
            for packet in video.encode(image):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return path


def write_imu_csv(path: Path, *, seconds: float = 3.0, rate: float = 100.0) -> Path:
    """Six IMU channels after a time column (seconds), with a header: gravity on az, slow sines and ramps."""
    t = np.arange(int(seconds * rate)) / rate
    rows = np.column_stack([t, 0.1 * np.sin(t), 0.2 * np.cos(t), 9.81 + 0 * t, 0.01 * t, 0 * t, -0.01 * t])
    lines = ["t,ax,ay,az,gx,gy,gz", *(",".join(f"{v:.6f}" for v in row) for row in rows)]
    _parent_made(path).write_text("\n".join(lines) + "\n")
    return path


def write_manifests(root: Path, rows: dict[str, list[dict]]) -> dict[str, Path]:
    """One CSV manifest per name (`root/<name>.csv`, columns from its first row); name -> path."""
    for name, table in rows.items():
        with open(_parent_made(root / f"{name}.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return {name: root / f"{name}.csv" for name in rows}
