"""Does the input side of `openbind eval` keep the model busy? Files/s of the data side alone for three
benchmarks, at 1, 2 and 4 DataLoader workers, beside the model's items/s on this machine.

The files are made to the datasets' formats and sizes: ESC-50 (5 s, 44.1 kHz mono WAV -> three 2 s clips covering
the recording, the paper's sampler), SUN-D (640x480 16-bit PNG depth with SUN RGB-D's bit rotation -> disparity
with the scene's focal length, 8 m cap), Kinetics-400 (10 s 340x256 H.264 MP4 -> five 2-frame clips x three crops).
The data side is openbind's `ItemDataset` + `collate_items` in a DataLoader (what `openbind eval` runs with
`--num-workers`); "1 process" is the transform called per file at 1 torch thread. The model column is the
benchmark's tower of `--model` (random weights) at batch `--model-batch` on this CPU, in files/s; how many
workers an H100 needs follows from the H100 rates in docs/benchmarks.md.

    python benchmarks/bench_eval_inputs.py [--quick] [--repeats R] [--workers 1 2 4] [--model imagebind_huge]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from PIL import Image

import openbind
from bench_other_inputs import make_depths
from bench_vision_inputs import make_video
from common import measure, median, per_file, print_table, through_loader
from openbind.modalities import get_input
from openbind.modalities.depth.transform import DepthTransform


def make_esc_clips(directory: Path, count: int, rng: np.random.Generator) -> list[str]:
    """5 s of 44.1 kHz mono: tones and noise bursts, as ESC-50's recordings are."""
    t = np.arange(5 * 44100) / 44100
    paths = []
    for i in range(count):
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.normal(size=t.shape)
        path = directory / f"1-{100000 + i}-A-{i % 50}.wav"
        soundfile.write(path, wave.astype(np.float32), 44100, subtype="PCM_16")
        paths.append(str(path))
    return paths


def make_sun_depths(directory: Path, count: int, rng: np.random.Generator) -> list[str]:
    """Kinect-style millimetres stored the SUN RGB-D way (rotated 3 bits to the left)."""
    paths = []
    for path in make_depths(directory, count, rng):
        mm = np.asarray(Image.open(path)).astype(np.uint32)
        Image.fromarray((((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)).save(path)
        paths.append(str(path))
    return paths


def model_rate(model: openbind.ImageBind, kind: str, example: torch.Tensor, repeats: int) -> float:
    """Files/s of the benchmark's tower on `example` (one batch of model input)."""
    modality = openbind.modalities.modality_of(kind).name
    with torch.inference_mode():
        model.encode(modality, example)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.encode(modality, example)
            times.append(time.perf_counter() - start)
    return len(example) / median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few files and repeats, a tiny model: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="alternated repeats per case (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="DataLoader worker counts")
    parser.add_argument("--model", default=None, help="model preset for the model column (default imagebind_huge)")
    parser.add_argument("--model-batch", type=int, default=4)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    count = 8 if args.quick else 48
    preset = args.model or ("imagebind_tiny" if args.quick else "imagebind_huge")
    model = openbind.create_model(preset)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = {
            "esc50 (audio, 5 s WAV)": ("audio", make_esc_clips(root, count, rng),
                                       get_input("audio").transform(**get_input("audio").evaluation)),
            "sun-d (depth, 640x480 PNG)": ("depth", make_sun_depths(root, count, rng),
                                           DepthTransform(encoding="sunrgbd", max_depth_m=8.0, focal_px=529.5)),
            "k400 (video, 10 s 340x256 MP4)": ("video", [str(make_video(root / f"v{i}.mp4", 10.0, 25, 340, 256))
                                                         for i in range(max(2, count // 8))], get_input("video").transform()),
        }  # fmt: skip
        for name, (kind, items, transform) in cases.items():
            timed = {"1 process, 1 thread": (per_file(items, transform, threads=1), len(items))}
            for workers in args.workers:
                timed[f"DataLoader {workers} workers"] = (through_loader(kind, items, transform, 4, workers), len(items))
            rates = measure(timed, repeats)
            example = torch.stack([transform(items[0])] * args.model_batch)
            tower = model_rate(model, kind, example, repeats)
            for case, rate in rates.items():
                rows.append([name, case, f"{rate:,.1f}", f"{tower:,.2f}"])
    print(f"{repeats} repeats, median files/s; model: the {preset} tower, batch {args.model_batch}, 2 threads")
    print_table(["benchmark", "data side", "files/s", "model files/s (this CPU)"], rows)


if __name__ == "__main__":
    main()
