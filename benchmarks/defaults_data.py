"""Small paired datasets a new user might bring: patterned images, captions, spoken class words.

    python benchmarks/defaults_data.py OUT_DIR [--classes 10] [--per-class 180] [--test-per-class 20]
        [--captions plain|descriptive|terse] [--seed 0]

`--style textures`: each class is a texture (stripes, checks, dots, rings, waves, grid, zigzag or blobs) in its
own band of hues; every image draws its own scale, angle, phase, hue, brightness, background and noise, so
neither one colour nor one pixel pattern identifies a class. `patterns`: the same textures in any hue (the
texture alone tells the class). `shapes`: one filled shape (triangle, square, star, cross, ...) per image in
any colour, size, angle and place (the outline alone tells the class). Images are 64-96 px PNGs. Every sound is espeak-ng speaking the class name
with a random voice, speed and pitch, shifted in time and mixed with noise (espeak-ng must be installed).

Written into OUT_DIR (paths relative to it, the openbind manifest format):

    align.csv        image,text,label    every training image with one caption (templates of --captions)
    audio.csv        image,audio,label   the same training images, each with a spoken word of its class
    test_image.csv   image,label         held-out images (never in a training manifest)
    test_audio.csv   audio,label         held-out spoken words (other renderings)
    classes.txt      one class name per line, in label order
    templates.txt    the caption templates (the zero-shot prompts)

The output is a deterministic function of the options (espeak-ng's own output included).
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import io
import math
import subprocess
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw

NAMES = (
    "apple", "river", "tiger", "candle", "forest", "planet", "violin", "rocket", "garden", "ocean", "castle",
    "pepper", "button", "ladder", "mirror", "pillow",
)  # fmt: skip
PATTERNS = ("stripes", "checks", "dots", "rings", "waves", "grid", "zigzag", "blobs")
SHAPES = {  # vertices on the unit circle (angle in turns, radius), drawn rotated, scaled and moved
    "triangle": [(k / 3, 1.0) for k in range(3)],
    "square": [(k / 4 + 1 / 8, 1.0) for k in range(4)],
    "pentagon": [(k / 5, 1.0) for k in range(5)],
    "hexagon": [(k / 6, 1.0) for k in range(6)],
    "star": [(k / 10, 1.0 if k % 2 == 0 else 0.4) for k in range(10)],
    "cross": [(k / 12 + d, r) for k in range(0, 12, 3) for d, r in ((-0.03, 1.0), (0.03, 1.0), (0.125, 0.3))],
    "diamond": [(0, 1.0), (0.25, 0.5), (0.5, 1.0), (0.75, 0.5)],
    "arrow": [(0, 1.0), (0.3, 0.7), (0.42, 0.9), (0.58, 0.9), (0.7, 0.7)],
    "bar": [(0.05, 1.0), (0.45, 1.0), (0.55, 1.0), (0.95, 1.0)],
    "kite": [(0, 1.0), (0.3, 0.6), (0.5, 0.5), (0.7, 0.6)],
}
STYLES = ("textures", "patterns", "shapes")
CAPTIONS = {
    "plain": ("a photo of a {}.", "a picture of the {}.", "an image showing a {}.", "this is a {}."),
    "descriptive": (
        "a close-up photo of a {} pattern on a flat surface.", "someone took a picture of the {} texture.",
        "the {} design, printed on paper.", "a small blurry image of a {} in bright light.",
    ),
    "terse": ("{}", "{}.", "a {}", "the {}"),
}  # fmt: skip
VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
SAMPLE_RATE = 16000


def _pattern(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] map of one texture at a random scale, angle and phase."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    freq = rng.uniform(3, 6)
    phase_u, phase_v = rng.uniform(0, 1, 2)
    su, sv = (u * freq + phase_u) % 1.0, (v * freq + phase_v) % 1.0
    if kind == "stripes":
        return (su < 0.5).astype(float)
    if kind == "checks":
        return ((su < 0.5) ^ (sv < 0.5)).astype(float)
    if kind == "dots":
        return (np.hypot(su - 0.5, sv - 0.5) < rng.uniform(0.2, 0.32)).astype(float)
    if kind == "rings":
        cy, cx = rng.uniform(0.2, 0.8, 2)
        return ((np.hypot(x - cx, y - cy) * freq * 1.5 + phase_u) % 1.0 < 0.5).astype(float)
    if kind == "waves":
        return (((u + 0.08 * np.sin(2 * math.pi * v * freq * 0.7)) * freq + phase_u) % 1.0 < 0.5).astype(float)
    if kind == "grid":
        width = rng.uniform(0.12, 0.22)
        return ((su < width) | (sv < width)).astype(float)
    if kind == "zigzag":
        return (((u + 0.5 * np.abs(sv - 0.5) / freq) * freq * 1.5 + phase_u) % 1.0 < 0.5).astype(float)
    blobs = np.zeros((size, size))
    for _ in range(rng.integers(4, 9)):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.06, 0.16)
        blobs = np.maximum(blobs, (np.hypot(x - cx, (y - cy) * rng.uniform(0.6, 1.4)) < r).astype(float))
    return blobs


def render_image(label: int, num_classes: int, rng: np.random.Generator, banded: bool = True) -> Image.Image:
    """One image of class `label`: its texture, in a hue of its band (any hue unless `banded`), on a random
    darker or lighter ground."""
    size = int(rng.integers(64, 97))
    mask = _pattern(PATTERNS[label % len(PATTERNS)], size, rng)
    band = 1.0 / num_classes
    hue = (label * band + rng.uniform(-0.3, 0.3) * band) % 1.0 if banded else rng.uniform(0, 1)
    ink = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0)))
    ground = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.35), rng.choice([0.1, 0.9]) + rng.uniform(-0.1, 0.1)))
    image = mask[..., None] * ink + (1 - mask[..., None]) * ground
    light = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0), size)[:, None, None]
    image = image * light + rng.normal(0, rng.uniform(0.02, 0.08), image.shape)
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))


def render_shape(label: int, rng: np.random.Generator) -> Image.Image:
    """One image of class `label`: its shape in a random colour, size, angle and place on a noisy ground."""
    size = int(rng.integers(64, 97))
    ground = rng.uniform(0, 1, 3)
    ink = (ground + rng.uniform(0.35, 0.65, 3)) % 1.0
    image = Image.new("RGB", (size, size), tuple(int(c * 255) for c in ground))
    radius, turn = size * rng.uniform(0.25, 0.42), rng.uniform(0, 1)
    cy, cx = rng.uniform(radius, size - radius, 2)
    vertices = SHAPES[list(SHAPES)[label % len(SHAPES)]]
    points = [(cx + r * radius * math.cos(2 * math.pi * (a + turn)), cy + r * radius * math.sin(2 * math.pi * (a + turn)))
              for a, r in vertices]  # fmt: skip
    ImageDraw.Draw(image).polygon(points, fill=tuple(int(c * 255) for c in ink))
    pixels = np.asarray(image, dtype=np.float64) / 255 + rng.normal(0, rng.uniform(0.02, 0.08), (size, size, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def render_word(word: str, rng: np.random.Generator) -> np.ndarray:
    """espeak-ng speaking `word` (random voice, speed, pitch) at 16 kHz, 1.5 s with a random onset and noise."""
    voice = VOICES[rng.integers(len(VOICES))]
    command = ["espeak-ng", "-v", voice, "-s", str(rng.integers(120, 200)), "-p", str(rng.integers(20, 80)),
               "--stdout", word]  # fmt: skip
    wav = subprocess.run(command, check=True, capture_output=True).stdout
    speech, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    positions = np.arange(0, len(speech), rate / SAMPLE_RATE)
    speech = np.interp(positions, np.arange(len(speech)), speech).astype(np.float32)
    out = np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)
    speech = speech[: len(out)]
    onset = int(rng.integers(0, len(out) - len(speech) + 1))
    out[onset : onset + len(speech)] = speech * rng.uniform(0.4, 1.0)
    return out + rng.normal(0, rng.uniform(0.002, 0.02), len(out)).astype(np.float32)


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_dataset(out: str | Path, *, classes: int = 10, per_class: int = 180, test_per_class: int = 20,
                 captions: str = "plain", style: str = "textures", seed: int = 0) -> Path:  # fmt: skip
    """Write the dataset (see the module docstring) into `out`; returns `out`."""
    if not 2 <= classes <= len(NAMES):
        raise ValueError(f"classes must be 2..{len(NAMES)}, got {classes}")
    if per_class < 1 or test_per_class < 1:
        raise ValueError("per_class and test_per_class must be positive")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    most = {"textures": len(NAMES), "patterns": len(PATTERNS), "shapes": len(SHAPES)}[style]
    if classes > most:
        raise ValueError(f"the {style} style has {most} classes at most, got {classes}")
    if captions not in CAPTIONS:
        raise ValueError(f"captions must be one of {sorted(CAPTIONS)}, got {captions!r}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "sounds").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = CAPTIONS[captions]
    rows: dict[str, list[dict[str, str]]] = {"align": [], "audio": [], "test_image": [], "test_audio": []}
    for i in range(classes * (per_class + test_per_class)):
        label, k = i % classes, i // classes
        name, split = NAMES[label], "train" if k < per_class else "test"
        image, sound = f"images/{split}_{i:05d}.png", f"sounds/{split}_{i:05d}.wav"
        if style == "shapes":
            picture = render_shape(label, rng)
        else:
            picture = render_image(label, classes, rng, banded=style == "textures")
        picture.save(out / image)
        soundfile.write(out / sound, render_word(name, rng), SAMPLE_RATE)
        if split == "train":
            caption = templates[rng.integers(len(templates))].format(name)
            rows["align"].append({"image": image, "text": caption, "label": name})
            rows["audio"].append({"image": image, "audio": sound, "label": name})
        else:
            rows["test_image"].append({"image": image, "label": name})
            rows["test_audio"].append({"audio": sound, "label": name})
    for split, table in rows.items():
        _write(out / f"{split}.csv", table)
    (out / "classes.txt").write_text("\n".join(NAMES[:classes]) + "\n")
    (out / "templates.txt").write_text("\n".join(templates) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--classes", type=int, default=10, help=f"number of classes, 2..{len(NAMES)} (default 10)")
    parser.add_argument("--per-class", type=int, default=180, help="training images per class (default 180)")
    parser.add_argument("--test-per-class", type=int, default=20, help="held-out images and sounds per class")
    parser.add_argument("--captions", default="plain", choices=sorted(CAPTIONS), help="caption style (4 templates)")
    parser.add_argument("--style", default="textures", choices=STYLES,
                        help="textures (a texture per class in its own band of hues), patterns (a texture per "
                        "class in any colour; 8 classes at most) or shapes (a shape per class in any colour; 10 at "
                        "most)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_dataset(args.out, classes=args.classes, per_class=args.per_class, test_per_class=args.test_per_class,
                 captions=args.captions, style=args.style, seed=args.seed)  # fmt: skip


if __name__ == "__main__":
    main()
