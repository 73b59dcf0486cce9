"""Image and video input pipeline throughput (files/s) -> model input.

Images: 640x480 JPEGs generated into a temporary directory -> (3, 224, 224). Videos: 4 s 320x240 25 fps H.264 MP4s
generated with PyAV -> (15, 3, 2, 224, 224). Rows: how the pipeline is driven (per-file calls in one process at 1
and at torch's default intra-op threads; openbind's `ItemDataset` + `collate_items` in a torch DataLoader with 2
worker processes (`--workers`), which torch runs at 1 thread each, each batch dropped as the next comes; half the
files in each of 2 independent 1-thread processes, which nothing crosses between: what the machine itself allows 2
workers). Each timed run goes `--passes` times through the files, so a DataLoader epoch's start and end weigh about
as in a long job. The "reference-style" rows do what the reference does, the way it does it, so the speed-up can be
read on a machine where the reference is not installed: images through PIL then torchvision-style ToTensor +
Normalize (copy, permute, float, subtract, divide); videos by decoding and converting to float every frame of each
of the 5 clips (decord's `get_batch` on the clip's frame range), then subsampling. Each cell is the median of
several alternating repeats.

    python benchmarks/bench_vision_inputs.py [--quick] [--repeats R] [--passes P] [--inputs images videos]
                                             [--workers 2 4 8] [--no-reference]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from common import add_input_options, measure, parallel_cases, per_file, print_rates, process_pair, two_processes
from openbind.io.video import open_video
from openbind.modalities.vision.transform import CLIP_MEAN, CLIP_STD
from openbind.modalities.vision.transform import ImageTransform
from openbind.modalities.vision.video import VideoTransform


def make_images(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """Smooth gradients with blobs and noise: JPEG-typical content, 640x480, quality 90."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    paths = []
    for i in range(count):
        image = np.stack([x / 640 * 255, y / 480 * 255, (x + y) / 1120 * 255], axis=-1)
        for _ in range(6):
            cy, cx, r = rng.uniform(0, 480), rng.uniform(0, 640), rng.uniform(20, 120)
            image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, size=3)
        image += rng.normal(0, 8, image.shape)
        path = directory / f"image_{i:03d}.jpg"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def make_video(path: Path, seconds: float = 4.0, fps: int = 25, width: int = 320, height: int = 240) -> Path:
    """Moving shapes over a gradient, H.264 (libx264 defaults)."""
    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=-1).astype(np.uint8)
            cx, cy = (i * 5) % width, height // 2 + int(60 * math.sin(i / 8))
            image[max(cy - 25, 0) : cy + 25, max(cx - 25, 0) : cx + 25] = (255, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


_MEAN = torch.tensor(CLIP_MEAN).view(3, 1, 1)
_STD = torch.tensor(CLIP_STD).view(3, 1, 1)


def reference_style_image(path: Path) -> torch.Tensor:
    with open(path, "rb") as file:
        image = Image.open(file).convert("RGB")
    crop = ImageTransform()
    image = image.resize(crop.resized_size(*image.size), Image.BICUBIC)
    top, left = crop.crop_offsets(*image.size)
    image = image.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.array(image, copy=True)).view(224, 224, 3).permute(2, 0, 1).contiguous()
    return x.float().div(255).sub_(_MEAN).div_(_STD)


def reference_style_video(path: Path) -> torch.Tensor:
    """pytorchvideo's steps: each clip's frames as float, subsample, /255, F.interpolate the (3, T, H, W) clip,
    normalize, three crops."""
    transform = VideoTransform()
    crops = []
    with open_video(path) as video:
        info = video.info
        short = min(info.height, info.width)
        size = (info.height * 224 // short, info.width * 224 // short)
        for start, end in transform.clip_times(info.duration):
            first = math.ceil(info.fps * float(start))
            stop = min(math.ceil(info.fps * float(end)), info.num_frames)
            frames = torch.from_numpy(video.frames(range(first, stop))).float()  # every frame of the clip
            kept = torch.linspace(0, stop - first - 1, 2).long()
            clip = frames[kept].permute(3, 0, 1, 2) / 255
            clip = torch.nn.functional.interpolate(clip, size=size, mode="bilinear", align_corners=False)
            clip = (clip - _MEAN[..., None]) / _STD[..., None]
            crops.extend(clip[..., y : y + 224, x : x + 224] for y, x in transform.crop_offsets(*size))
    return torch.stack(crops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(parser)
    parser.add_argument("--inputs", nargs="+", default=["images", "videos"], choices=["images", "videos"])
    parser.add_argument(
        "--no-reference", action="store_true", help="leave out the reference-style rows (for scaling runs)"
    )
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    passes = args.passes or (1 if args.quick else 4)
    image_count, video_count = (8, 3) if args.quick else (48, 12)
    threads = torch.get_num_threads()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        images = make_images(directory, image_count)
        video = make_video(directory / "shapes_4s_320x240_25fps.mp4")
        videos = [video] * video_count * passes
        images *= passes
        image_transform, video_transform = ImageTransform(), VideoTransform()
        assert torch.equal(image_transform(images[0]), reference_style_image(images[0]))
        assert torch.equal(video_transform(video), reference_style_video(video))

        rates = {}
        pool = process_pair()
        two_processes(pool, images[:2], image_transform)()  # warm up: start the workers, import in them
        two_processes(pool, [video, video], video_transform)()
        inputs = {
            "images": ("images 640x480 JPEG", "vision", images, image_transform, reference_style_image, 8),
            "videos": ("videos 4 s 320x240 25 fps", "video", videos, video_transform, reference_style_video, 2),
        }
        for kind, modality, files, transform, reference, batch in (inputs[name] for name in args.inputs):
            cases = {}
            if not args.no_reference:
                cases[f"reference-style, 1 process, {threads} threads"] = (per_file(files, reference), len(files))
            cases["openbind, 1 process, 1 thread"] = (per_file(files, transform, 1), len(files))
            cases[f"openbind, 1 process, {threads} threads"] = (per_file(files, transform), len(files))
            cases.update(parallel_cases(pool, modality, files, transform, batch, args.workers))
            rates[kind] = measure(cases, repeats)
        pool.close()
    print_rates(rates, "files", repeats, passes)


if __name__ == "__main__":
    main()
