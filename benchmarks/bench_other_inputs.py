"""Depth, thermal, IMU and text input pipeline throughput (items/s) -> model input.

Items generated into a temporary directory: depth maps as 16-bit PNGs in millimetres, 640x480 (Kinect-style:
0.5-4.5 m surfaces, a tenth of the pixels invalid 0) -> (1, 224, 224) disparity; thermal images as 8-bit and
as 16-bit single-channel PNGs, 640x512 (FLIR ADAS size) -> (1, 224, 224); IMU recordings of 10 s at 200 Hz as
.npy (no timestamps: `sample_rate=200`; 8 times as many per run, as each takes ~0.4 ms: a DataLoader epoch should
not be mostly its start and end) and as CSV with a time column -> one 5 s window (6, 2000); captions of
10-20 words (the tokenizer benchmark's generator) -> 77 token ids. Rows, as in the image/video and audio
scripts: per-item calls in one process at 1 thread; openbind's `ItemDataset` + `collate_items` in a DataLoader
with 2 worker processes (`--workers`), each batch dropped as the next comes; half the items in each of 2
independent 1-thread processes (what the machine itself gives 2 workers). Text also has `openbind.preprocess.
text` on lists of 256 strings. Each timed run goes `--passes` times through the items (so caches, such as the
tokenizer's, are warm after the first); each cell is the median of alternating repeats. The issue sets no
speed target for depth, thermal and IMU (the reference has no loader for them); text's is 10x 2,700 strings/s.

    python benchmarks/bench_other_inputs.py [--quick] [--repeats R] [--passes P] [--workers 2 4 8]
                                            [--inputs depth thermal-8bit thermal-16bit imu-npy imu-csv text]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import openbind.preprocess
from bench_tokenizer import make_corpora, whole_words
from common import add_input_options, measure, parallel_cases, per_file, print_rates, process_pair, two_processes
from openbind.modalities.depth.transform import DepthTransform
from openbind.modalities.imu.transform import ImuTransform
from openbind.modalities.thermal.transform import ThermalTransform
from openbind.modalities.batch import FirstClip
from openbind.modalities.text.transform import TextTokens
from openbind.modalities.text.tokenizer import Tokenizer

TEXT_BATCH = 256


def make_depths(directory: Path, count: int, rng: np.random.Generator) -> list[Path]:
    """Tilted planes and boxes at 0.5-4.5 m with sensor noise, 10% of the pixels 0 (no return)."""
    y, x = np.mgrid[0:480, 0:640].astype(np.float64)
    paths = []
    for i in range(count):
        depth = 1500 + 2000 * (y / 480) * rng.uniform(0.5, 1.0) + 300 * (x / 640)
        for _ in range(4):
            top, left = rng.integers(0, 400), rng.integers(0, 560)
            depth[top : top + rng.integers(40, 200), left : left + rng.integers(40, 200)] = rng.uniform(500, 4500)
        depth += rng.normal(0, 5, depth.shape)
        depth[rng.random(depth.shape) < 0.1] = 0
        path = directory / f"depth_{i:03d}.png"
        Image.fromarray(np.clip(depth, 0, 65535).astype(np.uint16)).save(path)
        paths.append(path)
    return paths


def make_thermals(directory: Path, count: int, bits: int, rng: np.random.Generator) -> list[Path]:
    """Warm blobs on a cooler gradient with noise, single channel, 8- or 16-bit."""
    y, x = np.mgrid[0:512, 0:640].astype(np.float64)
    top = 255 if bits == 8 else 65535
    paths = []
    for i in range(count):
        image = 0.3 + 0.2 * y / 512
        for _ in range(5):
            cy, cx, r = rng.uniform(0, 512), rng.uniform(0, 640), rng.uniform(15, 80)
            image += 0.4 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
        image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1) * top
        path = directory / f"thermal{bits}_{i:03d}.png"
        Image.fromarray(image.astype(np.uint8 if bits == 8 else np.uint16)).save(path)
        paths.append(path)
    return paths


def make_imus(directory: Path, count: int, rng: np.random.Generator) -> tuple[list[Path], list[Path]]:
    """10 s at 200 Hz of walking-like motion: gravity on z plus oscillations (m/s^2), gyroscope in rad/s."""
    t = np.arange(2000) / 200
    npys, csvs = [], []
    for i in range(count):
        step = rng.uniform(1.5, 2.2)  # steps per second
        accel = [np.sin(2 * np.pi * step * t + p) * a for p, a in zip(rng.uniform(0, 6, 3), (1.5, 1.0, 2.5))]
        accel[2] = accel[2] + 9.81
        gyro = [0.5 * np.sin(2 * np.pi * step / 2 * t + p) for p in rng.uniform(0, 6, 3)]
        samples = np.stack(accel + gyro, axis=1) + rng.normal(0, 0.02, (t.size, 6))
        npy = directory / f"imu_{i:03d}.npy"
        np.save(npy, samples.astype(np.float32))
        csv = directory / f"imu_{i:03d}.csv"
        rows = np.column_stack([t, samples])
        np.savetxt(csv, rows, delimiter=",", fmt="%.6f", header="t,ax,ay,az,gx,gy,gz", comments="")
        npys.append(npy)
        csvs.append(csv)
    return npys, csvs


def text_batches(strings: list[str]) -> Callable[[], object]:
    """`openbind.preprocess.text` on lists of TEXT_BATCH strings, in this process."""

    def run() -> None:
        for start in range(0, len(strings), TEXT_BATCH):
            openbind.preprocess.text(strings[start : start + TEXT_BATCH])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(parser)
    choices = ["depth", "thermal-8bit", "thermal-16bit", "imu-npy", "imu-csv", "text"]
    parser.add_argument("--inputs", nargs="+", default=choices, choices=choices)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    passes = args.passes or (1 if args.quick else 4)
    count, strings = (32, 512) if args.quick else (48, 4096)
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        imu_npy, imu_csv = make_imus(directory, count, rng)
        captions = make_corpora(whole_words(Tokenizer()), strings)["captions"]
        random.Random(0).shuffle(captions)
        inputs: dict[str, tuple[str, str, Any, Callable[[], list], int]] = {
            "depth": ("depth 640x480 16-bit PNG (mm)", "depth", DepthTransform(), lambda: make_depths(
                directory, count, rng), 16),
            "thermal-8bit": ("thermal 640x512 8-bit PNG", "thermal", ThermalTransform(), lambda: make_thermals(
                directory, count, 8, rng), 16),
            "thermal-16bit": ("thermal 640x512 16-bit PNG", "thermal", ThermalTransform(), lambda: make_thermals(
                directory, count, 16, rng), 16),
            "imu-npy": ("IMU 10 s 200 Hz .npy", "imu", FirstClip(ImuTransform(sample_rate=200)), lambda: imu_npy * 8,
                        16),
            "imu-csv": ("IMU 10 s 200 Hz CSV with time", "imu", FirstClip(ImuTransform()), lambda: imu_csv, 16),
            "text": ("captions, 10-20 words", "text", TextTokens(), lambda: captions, TEXT_BATCH),
        }  # fmt: skip
        rates = {}
        pool = process_pair()
        for name in args.inputs:
            kind, modality, transform, make, batch = inputs[name]
            items = make() * passes
            two_processes(pool, items[:2], transform)()  # warm up: imports in the pool's processes
            cases = {"openbind, 1 process, 1 thread": (per_file(items, transform, 1), len(items))}
            if name == "text":
                cases[f"`openbind.preprocess.text`, {TEXT_BATCH} per call"] = (text_batches(items), len(items))
            cases.update(parallel_cases(pool, modality, items, transform, batch, args.workers))
            rates[kind] = measure(cases, repeats)
        pool.close()
    print_rates(rates, "items", repeats, passes)


if __name__ == "__main__":
    main()
