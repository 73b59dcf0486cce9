"""Write a small paired dataset that openbind never generated: animal coat patterns and the calls that go with them.

    python examples/bind_your_own/make_dataset.py OUT_DIR [--seed 0] [--align 600] [--bind 320] [--test 25]

Eight classes (`CLASSES`): close-ups of an animal's coat (zebra and tiger stripes, leopard rosettes, giraffe
patches, dalmatian spots, cow blotches, snake scales, peacock eyes), each drawn at a random scale, angle and
offset, with jittered colours, uneven lighting and sometimes sensor noise. Colour alone does not give the class
(zebra, dalmatian and cow are all black and white; tiger and leopard both orange and black), and a quarter of
the images are grayscale. The images are of any size (90..800 px, portrait or landscape, up to 1:3), saved as
JPEG or PNG, RGB, grayscale ("L") or RGBA. Every sound has a per-class signature (a steady tone, metallic
strikes, a buzz, sparkles, a two-tone call, a low rumble, rising sweeps, clicks) with random pitch, rate, level
and background noise, at 8, 16, 22.05, 44.1 or 48 kHz, mono or stereo, 0.5..12 s long, saved as WAV, FLAC or
OGG/Vorbis. All signal energy is below 3.8 kHz so an 8 kHz file still carries it. Images and sounds are paired
by class only (a sound is never rendered from its image).

Manifests (the openbind format: modality columns with paths relative to the manifest, `text` the caption
itself, a `label` column):

    align.csv        image,text,label    (image, caption) pairs for `openbind train align`
    bind_audio.csv   image,audio,label   (image, sound) pairs of other images, for `openbind train bind`
    test_audio.csv   audio,label         held-out sounds (never seen in training), for `openbind eval zeroshot`
    test_image.csv   image,label         held-out images (the directly trained reference)
    classes.txt      one class name per line

Only numpy, Pillow and soundfile are used; the output is a deterministic function of --seed.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

CLASSES = ("zebra", "tiger", "leopard", "giraffe", "dalmatian", "cow", "snake", "peacock")

# Each animal makes one kind of (synthetic) call; an image and a call are drawn independently, paired by class.
SOUNDS = dict(zip(CLASSES, ("clicks", "rumble", "buzz", "tone", "strikes", "two-tone", "sparkles", "sweeps")))

CAPTION_TEMPLATES = (
    "a photo of a {animal}.",
    "the skin of a {animal}.",
    "a close-up of {animal} fur.",
    "{animal} print.",
    "a {animal} pattern.",
    "the coat of a {animal}.",
    "a close-up photo of a {animal}.",
    "{animal}.",
    "a picture of a {animal}.",
    "a {animal} texture.",
)

# Base colours per role; every image scales and perturbs them.
BLACK, WHITE = (25, 25, 28), (238, 236, 228)
PALETTE = {
    "tiger": ((226, 122, 32), BLACK, (245, 235, 215)),  # fur, stripes, pale belly tint
    "leopard": ((214, 168, 88), BLACK, (168, 110, 45)),  # fur, rosette rim, rosette centre
    "giraffe": ((150, 84, 36), (236, 222, 186)),  # patch, network
    "snake": ((104, 122, 52), (58, 44, 28), (150, 160, 80)),  # body, zigzag, scale rims
    "peacock": ((22, 92, 108), (28, 34, 120), (40, 170, 165), (192, 150, 62)),  # ground, eye, ring, rim
}

SAMPLE_RATES = (8000, 16000, 22050, 44100, 48000)
AUDIO_FORMATS = (("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"))
MAX_HZ = 3800.0  # below the Nyquist frequency of the lowest sample rate


# --- Images --------------------------------------------------------------------------------------------------


def _smooth_step(distance: np.ndarray, width: float = 0.75) -> np.ndarray:
    """1 inside (distance < 0), 0 outside, with a one-pixel antialiased edge."""
    return np.clip(0.5 - distance / (2 * width), 0.0, 1.0)


def _band(coordinate: np.ndarray, period: float, duty: float) -> np.ndarray:
    """Antialiased bands: 1 where frac(coordinate / period) < duty."""
    phase = np.mod(coordinate, period)
    inside = np.minimum(phase, period * duty - phase)  # distance into the band (negative outside)
    outside = np.where(phase > period * duty, np.minimum(phase - period * duty, period - phase), 0.0)
    return _smooth_step(np.where(inside >= 0, -inside, outside))


def _lattice(u: np.ndarray, v: np.ndarray, spacing: float, rng: np.random.Generator, jitter: float = 0.4):
    """Distances to the nearest and second-nearest point of a jittered lattice, and a random value in [0, 1)
    attached to the nearest point (its size, its presence)."""
    i, j = np.floor(u / spacing).astype(np.int64), np.floor(v / spacing).astype(np.int64)
    i0, j0 = i.min() - 1, j.min() - 1
    shape = (i.max() - i0 + 2, j.max() - j0 + 2)
    offsets = rng.uniform(0.5 - jitter, 0.5 + jitter, size=(2, *shape)).astype(np.float32)
    values = rng.random(shape).astype(np.float32)
    d1 = np.full(u.shape, np.inf, dtype=u.dtype)
    d2 = np.full(u.shape, np.inf, dtype=u.dtype)
    value = np.zeros(u.shape, dtype=u.dtype)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ci, cj = i + di - i0, j + dj - j0
            d = np.hypot(u - (i + di + offsets[0, ci, cj]) * spacing, v - (j + dj + offsets[1, ci, cj]) * spacing)
            closer = d < d1
            np.copyto(d2, np.where(closer, d1, np.minimum(d2, d)))
            np.copyto(value, values[ci, cj], where=closer)
            np.copyto(d1, d, where=closer)
    return d1, d2, value


def _blobs(width: int, height: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in about [-1, 1] with features of about `scale` pixels."""
    gw, gh = max(2, int(width / scale) + 2), max(2, int(height / scale) + 2)
    grid = rng.normal(size=(gh, gw)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC))
    return field / (np.abs(field).max() + 1e-6)


def _mix(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    return image * (1 - mask[..., None]) + np.asarray(colour, float) * mask[..., None]


def render_coat(animal: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A float RGB [height, width, 3] close-up of one animal's coat at a random scale, angle and offset."""
    side = min(width, height)  # the model sees the center square at 224 px: features of ~20..60 px there
    period = side * rng.uniform(0.1, 0.25)
    angle = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x -= width / 2 + rng.uniform(-0.1, 0.1) * side
    y -= height / 2 + rng.uniform(-0.1, 0.1) * side
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    canvas = lambda colour: np.broadcast_to(np.asarray(colour, float), (height, width, 3)).copy()  # noqa: E731

    def warp(amplitude: float, wavelength: float) -> np.ndarray:
        return amplitude * np.sin(2 * math.pi * u / wavelength + rng.uniform(0, 2 * math.pi))

    if animal == "zebra":  # wide black and white stripes that bend
        coordinate = v + warp(period * rng.uniform(0.2, 0.5), period * rng.uniform(3, 6))
        return _mix(canvas(WHITE), _band(coordinate, period, rng.uniform(0.42, 0.55)), BLACK)
    if animal == "tiger":  # thin dark stripes on orange, paler toward one side
        fur, stripe, pale = PALETTE["tiger"]
        image = _mix(canvas(fur), np.clip(0.5 + 0.5 * np.tanh(u / side * 4), 0, 1) * rng.uniform(0, 0.5), pale)
        coordinate = v + warp(period * rng.uniform(0.15, 0.35), period * rng.uniform(2, 4))
        return _mix(image, _band(coordinate, period, rng.uniform(0.16, 0.26)), stripe)
    if animal == "leopard":  # rosettes: dark broken rims around darker centres
        fur, rim, centre = PALETTE["leopard"]
        d1, _, size = _lattice(u, v, period, rng, jitter=0.3)
        radius = period * (0.28 + 0.12 * size)
        image = _mix(canvas(fur), _smooth_step(d1 - radius * 0.62), centre)
        return _mix(image, _smooth_step(np.abs(d1 - radius * 0.8) - radius * 0.2), rim)
    if animal == "giraffe":  # brown polygons in a pale network
        patch, network = PALETTE["giraffe"]
        d1, d2, shade = _lattice(u, v, period * 1.2, rng, jitter=0.35)
        image = canvas(patch) * (0.85 + 0.3 * shade)[..., None]
        return _mix(image, _smooth_step((d2 - d1) - period * rng.uniform(0.08, 0.14)), network)
    if animal == "dalmatian":  # small round black spots, some missing, on white
        d1, _, size = _lattice(u, v, period * 0.8, rng, jitter=0.4)
        spots = _smooth_step(d1 - period * (0.12 + 0.14 * size)) * (size > 0.15)
        return _mix(canvas(WHITE), spots, BLACK)
    if animal == "cow":  # large irregular black blotches on white
        field = _blobs(width, height, period * 1.2, rng)
        edge = field - np.quantile(field, rng.uniform(0.5, 0.65))  # 35..50 % black
        return _mix(canvas(WHITE), _smooth_step(-edge / (np.abs(edge).mean() + 1e-6) * 6), BLACK)
    if animal == "snake":  # a small scale lattice with a dark zigzag band
        body, zigzag, scales = PALETTE["snake"]
        scale = period * 0.35
        a, b = (u + v) / math.sqrt(2), (u - v) / math.sqrt(2)
        rims = np.maximum(_band(a, scale, 0.14), _band(b, scale, 0.14))
        image = _mix(canvas(body), rims, scales)
        triangle = 2 * np.abs(np.mod(u / (period * 1.6), 1.0) - 0.5)
        return _mix(image, _band(v + period * 1.1 * triangle, period * 2.2, 0.32), zigzag)
    if animal == "peacock":  # eye spots: dark centre, turquoise ring, bronze rim, on blue-green
        ground, eye, ring, rim = PALETTE["peacock"]
        d1, _, size = _lattice(u, v, period * 1.3, rng, jitter=0.15)
        radius = period * (0.45 + 0.1 * size)
        image = _mix(canvas(ground), _smooth_step(d1 - radius), rim)
        image = _mix(image, _smooth_step(d1 - radius * 0.72), ring)
        return _mix(image, _smooth_step(d1 - radius * 0.4), eye)
    raise ValueError(animal)


def render_image(animal: str, rng: np.random.Generator) -> Image.Image:
    """One coat close-up at a random size and aspect, with jittered colours, lighting and noise."""
    width, height = (int(v) for v in rng.integers(90, 801, size=2))
    if max(width, height) / min(width, height) > 3:  # keep the center crop meaningful
        height = int(np.clip(height, width / 3, width * 3))
    work = min(1.0, 320 / min(width, height))  # draw big images smaller, then resize: the model sees 224 px
    small = (max(1, round(width * work)), max(1, round(height * work)))
    image = render_coat(animal, *small, rng)
    if work < 1:
        resized = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").resize((width, height), Image.BICUBIC)
        image = np.asarray(resized, dtype=np.float64)
    image = image * rng.uniform(0.9, 1.08, 3) * rng.uniform(0.8, 1.1) + rng.normal(0, 8, 3)  # white balance, exposure
    direction = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:height, 0:width]
    ramp = (x * math.cos(direction) + y * math.sin(direction)) / max(width, height)
    image *= 1 + rng.uniform(0, 0.4) * (ramp - ramp.mean())[..., None]  # uneven lighting
    if rng.random() < 1 / 3:  # sensor-like noise (a third of the images: noisy PNGs are large)
        image += rng.normal(0, rng.uniform(3, 12), image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def save_image(image: Image.Image, stem: Path, rng: np.random.Generator) -> Path:
    """Save as JPEG or PNG, in RGB, grayscale or RGBA (never RGBA as JPEG)."""
    mode = rng.choice(["RGB", "RGB", "L", "RGBA"])
    fmt = rng.choice(["jpg", "png"]) if mode != "RGBA" else "png"
    if mode == "L":
        image = image.convert("L")
    elif mode == "RGBA":
        ramp = np.linspace(rng.uniform(180, 255), 255, image.width)  # a mostly opaque horizontal alpha ramp
        alpha = Image.fromarray(np.broadcast_to(ramp, (image.height, image.width)).astype(np.uint8), "L")
        image = image.convert("RGBA")
        image.putalpha(alpha)
    path = stem.with_suffix("." + fmt)
    if fmt == "jpg":
        image.save(path, quality=int(rng.integers(60, 96)))
    else:
        image.save(path)
    return path


def caption(animal: str, rng: np.random.Generator) -> str:
    return CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(animal=animal)


# --- Sounds --------------------------------------------------------------------------------------------------


def _lowpass(x: np.ndarray, sample_rate: int, cutoff: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / sample_rate)
    spectrum[freqs > cutoff] = 0
    return np.fft.irfft(spectrum, len(x))


def _bandnoise(n: int, sample_rate: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    out = np.fft.irfft(spectrum, n)
    return out / (np.abs(out).max() + 1e-9)


def _events(t: np.ndarray, period: float, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    """Onset times covering t, every `period` seconds (with relative jitter)."""
    onsets, time = [], rng.uniform(0, period)
    while time < t[-1] + period:
        onsets.append(time)
        time += period * (1 + rng.uniform(-jitter, jitter))
    return np.array(onsets)


def synth(sound: str, duration: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One mono instance of the kind of `sound`, float in about [-1, 1]."""
    n = max(1, int(duration * sample_rate))
    t = np.arange(n) / sample_rate
    pitch = rng.uniform(0.9, 1.1)
    if sound == "tone":  # a steady pure tone with slow vibrato
        f0 = 330 * pitch
        phase = 2 * math.pi * f0 * t + 3 * np.sin(2 * math.pi * rng.uniform(3, 6) * t)
        x = np.sin(phase)
    elif sound == "strikes":  # bright metallic strikes
        x = np.zeros(n)
        for onset in _events(t, rng.uniform(0.22, 0.32), rng, 0.1):
            mask = t >= onset
            tau = t[mask] - onset
            env = np.exp(-tau / rng.uniform(0.06, 0.1))
            x[mask] += env * (np.sin(2 * math.pi * 2800 * pitch * tau) + 0.5 * np.sin(2 * math.pi * 1750 * pitch * tau))
    elif sound == "buzz":  # a low square-wave buzz
        f0 = 120 * pitch
        x = np.sign(np.sin(2 * math.pi * f0 * t)) * 0.6
        x = _lowpass(x, sample_rate, MAX_HZ)
    elif sound == "sparkles":  # random high sparkles
        x = np.zeros(n)
        for onset in np.sort(rng.uniform(0, duration, size=max(1, int(duration * rng.uniform(18, 28))))):
            mask = (t >= onset) & (t < onset + 0.05)
            tau = t[mask] - onset
            x[mask] += np.exp(-tau / 0.012) * np.sin(2 * math.pi * rng.uniform(1500, 3600) * tau)
    elif sound == "two-tone":  # a two-tone alternation
        half = rng.uniform(0.11, 0.15)
        high = (np.floor(t / half) % 2).astype(bool)
        freq = np.where(high, 900 * pitch, 600 * pitch)
        x = np.sin(2 * math.pi * np.cumsum(freq) / sample_rate)
    elif sound == "rumble":  # a low rumble that swells
        x = _bandnoise(n, sample_rate, 60, 420, rng) * (0.6 + 0.4 * np.sin(2 * math.pi * rng.uniform(0.3, 0.8) * t))
    elif sound == "sweeps":  # rising sweeps
        period = rng.uniform(0.35, 0.45)
        u = (t + rng.uniform(0, period)) % period / period
        freq = 250 * pitch * (8.0**u)  # 250 Hz -> 2 kHz
        x = np.sin(2 * math.pi * np.cumsum(freq) / sample_rate) * np.minimum(1, 4 * (1 - u))
    elif sound == "clicks":  # a fast click train
        x = np.zeros(n)
        click = _bandnoise(max(8, int(0.004 * sample_rate)), sample_rate, 500, MAX_HZ, rng)
        for onset in _events(t, 1 / rng.uniform(11, 16), rng, 0.05):
            start = int(onset * sample_rate)
            stop = min(n, start + len(click))
            if start < n:
                x[start:stop] += click[: stop - start]
    else:
        raise ValueError(sound)
    x = x / (np.abs(x).max() + 1e-9)
    background = _bandnoise(n, sample_rate, 50, MAX_HZ, rng) if rng.random() < 0.5 else rng.normal(size=n) * 0.3
    if sample_rate > 8000:
        background = _lowpass(background, sample_rate, MAX_HZ)
    x = x + rng.uniform(0.02, 0.25) * background
    return x / (np.abs(x).max() + 1e-9) * rng.uniform(0.25, 0.9)


def save_sound(animal: str, stem: Path, rng: np.random.Generator) -> Path:
    sample_rate = int(rng.choice(SAMPLE_RATES))
    duration = float(np.exp(rng.uniform(math.log(0.5), math.log(12.0))))
    mono = synth(SOUNDS[animal], duration, sample_rate, rng)
    if rng.random() < 0.4:  # stereo: the same sound panned, with a little independent noise
        pan = rng.uniform(0.6, 1.0)
        data = np.stack([mono, pan * mono + 0.01 * rng.normal(size=len(mono))], axis=1)
    else:
        data = mono
    extension, subtype = AUDIO_FORMATS[int(rng.integers(len(AUDIO_FORMATS)))]
    path = stem.with_suffix("." + extension)
    soundfile.write(path, np.clip(data, -1, 1).astype(np.float32), sample_rate, subtype=subtype)
    return path


# --- The dataset ---------------------------------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_dataset(out: Path, seed: int = 0, align: int = 600, bind: int = 320, test: int = 25) -> dict[str, int]:
    """Write everything under `out`; returns the number of rows per manifest."""
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "sounds"):
        (out / sub).mkdir(exist_ok=True)
    rel = lambda path: path.relative_to(out).as_posix()  # noqa: E731

    def split(name: str, count: int, index: int):
        """Class-balanced labels and an independent generator per split (so sizes don't shift other splits)."""
        rng = np.random.default_rng([seed, index])
        labels = [CLASSES[i % len(CLASSES)] for i in range(count)]
        rng.shuffle(labels)
        return rng, labels

    rng, labels = split("align", align, 1)
    rows = []
    for i, animal in enumerate(labels):
        path = save_image(render_image(animal, rng), out / "images" / f"align_{i:05d}", rng)
        rows.append([rel(path), caption(animal, rng), animal])
    _write_csv(out / "align.csv", ["image", "text", "label"], rows)
    counts = {"align.csv": len(rows)}

    rng, labels = split("bind", bind, 2)
    rows = []
    for i, animal in enumerate(labels):
        image_path = save_image(render_image(animal, rng), out / "images" / f"bind_{i:05d}", rng)
        sound_path = save_sound(animal, out / "sounds" / f"bind_{i:05d}", rng)
        rows.append([rel(image_path), rel(sound_path), animal])
    _write_csv(out / "bind_audio.csv", ["image", "audio", "label"], rows)
    counts["bind_audio.csv"] = len(rows)

    rng, labels = split("test", test * len(CLASSES), 3)
    audio_rows, image_rows = [], []
    for i, animal in enumerate(labels):
        audio_rows.append([rel(save_sound(animal, out / "sounds" / f"test_{i:05d}", rng)), animal])
        image_rows.append([rel(save_image(render_image(animal, rng), out / "images" / f"test_{i:05d}", rng)), animal])
    _write_csv(out / "test_audio.csv", ["audio", "label"], audio_rows)
    _write_csv(out / "test_image.csv", ["image", "label"], image_rows)
    counts["test_audio.csv"] = len(audio_rows)
    counts["test_image.csv"] = len(image_rows)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--align", type=int, default=600, help="(image, caption) pairs")
    parser.add_argument("--bind", type=int, default=320, help="(image, sound) pairs")
    parser.add_argument("--test", type=int, default=25, help="held-out sounds and images per class")
    args = parser.parse_args()
    counts = make_dataset(args.out, args.seed, args.align, args.bind, args.test)
    print(f"wrote {args.out}: " + ", ".join(f"{name} {n} rows" for name, n in counts.items()))


if __name__ == "__main__":
    main()
