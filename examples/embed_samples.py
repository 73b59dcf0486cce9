"""Embed sample files of all six modalities with a small model, end to end through the real loaders.

    python examples/embed_samples.py --out quickstart_out

It writes one small file per input kind (PNG image, WAV sound, MP4 video, 16-bit depth PNG, thermal PNG, IMU
CSV) plus two captions, embeds them with `imagebind_tiny` (random weights, seeded: official weights need a
4.8 GB download), and prints what that shows: every file becomes a unit-length vector in one shared space,
and an image equals its own 2-frame clip. With random weights, cross-modal similarities carry no meaning; the
alignment comes from training (`openbind quickstart`, the built-in world) or from the official weights
(`create_model("imagebind_huge", pretrained="imagebind_huge")`).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import av
import numpy as np
import soundfile
import torch
from PIL import Image

import openbind


def write_samples(out: Path) -> dict[str, list]:
    out.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:240, 0:320]
    disc = (xx - 160) ** 2 + (yy - 120) ** 2 < 80**2
    image = np.zeros((240, 320, 3), np.uint8)
    image[...] = (40, 90, 160)
    image[disc] = (220, 40, 30)
    Image.fromarray(image).save(out / "red_ball.png")

    t = np.arange(3 * 16000) / 16000
    soundfile.write(out / "tone.wav", 0.3 * np.sin(2 * math.pi * 440 * t), 16000)

    depth_mm = np.where(disc, 1500, 4000).astype(np.uint16)
    Image.fromarray(depth_mm).save(out / "depth_mm.png")
    Image.fromarray(np.where(disc, 200, 60).astype(np.uint8)).save(out / "thermal.png")

    with open(out / "imu.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t", "ax", "ay", "az", "gx", "gy", "gz"])
        for i in range(5 * 200):
            s = i / 200
            writer.writerow([f"{s:.4f}", 0.0, 0.0, 9.81 + 0.5 * math.sin(2 * math.pi * 2 * s), 0.0, 0.0, 0.1])

    with av.open(str(out / "moving_ball.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(30):
            frame = np.zeros((120, 160, 3), np.uint8)
            frame[...] = (40, 90, 160)
            frame[(xx[:120, :160] - 40 - 3 * i) ** 2 + (yy[:120, :160] - 60) ** 2 < 30**2] = (220, 40, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

    return {
        "vision": [str(out / "red_ball.png")],
        "audio": [str(out / "tone.wav")],
        "depth": [str(out / "depth_mm.png")],
        "thermal": [str(out / "thermal.png")],
        "imu": [str(out / "imu.csv")],
        "text": ["a red ball", "a pure tone"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="quickstart_out", help="directory for the sample files")
    parser.add_argument("--model", default="imagebind_tiny", help="preset or checkpoint directory")
    args = parser.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    samples = write_samples(out)
    model = openbind.create_model(args.model)
    emb = model.embed(**samples)
    video = openbind.preprocess.video([str(out / "moving_ball.mp4")])
    emb["video"] = model.embed(vision=video)["vision"]

    print(f"model {args.model}: joint dim {model.config.embed_dim}; sample files in {out}/\n")
    print(f"{'input':<10} {'items':>5}  {'embedding':<10} {'norm':>6}")
    for name, vectors in emb.items():
        print(f"{name:<10} {vectors.shape[0]:>5}  {str(tuple(vectors.shape)):<10} {float(vectors.norm(dim=-1).mean()):6.3f}")
    print(f"(the video went through the vision tower as {video.shape[1]} clips x crops of 2 frames, averaged)")

    image = openbind.preprocess.vision(samples["vision"])
    as_clip = model.embed(vision=image.unsqueeze(2).repeat(1, 1, 2, 1, 1))["vision"]
    agreement = float((as_clip * emb["vision"]).sum())
    names = list(emb)
    table = torch.cat([emb[n][:1] for n in names])
    sims = table @ table.T
    print("\ncosine similarity between the first item of each input (random weights: expect values near 0)")
    print(" " * 9 + "".join(f"{n:>9}" for n in names))
    for i, n in enumerate(names):
        print(f"{n:<9}" + "".join(f"{float(sims[i, j]):9.3f}" for j in range(len(names))))
    print(f"\nimage vs its own 2-frame clip: cosine {agreement:.6f} (the vision tower treats both alike)")
    print("What this shows: every kind of file goes through its loader into one shared space of unit vectors.")
    print("What it does not: alignment. That needs training (the built-in world) or the official weights.")


if __name__ == "__main__":
    main()
