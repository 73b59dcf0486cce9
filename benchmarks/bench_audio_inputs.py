"""Audio input pipeline throughput (files/s): WAV files -> [N, 3, 1, 128, 204] model input.

Files: 44.1 kHz 16-bit WAVs of 2.6-10 s, mono and stereo, generated into a temporary directory (the kind of set
behind the reference pipeline's figure: 148 files/s in one process on the project's 2-core machine). Rows: resampler
("sinc" = reference-matching default, "soxr") x how it is driven (per-file calls, `load_audios` on batches of
16, openbind's `ItemDataset` + `collate_items` in a torch DataLoader with 2 worker processes (`--workers`), half
the files in each of 2 independent processes: the machine's ceiling for 2 workers) x the torch intra-op threads
of the calling process (the single-process rows run once per `--threads` value; DataLoader workers run with the
1 thread torch gives each worker, which the script checks, and so do the independent processes). The
"reference-style" row repeats the reference's steps with our code (libsndfile float decoding; the dense
torchaudio-shaped resampling kernel, rebuilt per call, over the whole file and all channels; one fbank call per
clip with its window and mel matrix rebuilt), so the speed-up can be read where the reference is not installed
(torchaudio does not work here) and under the same load. A timed run goes `--passes` times through the files
(every driver does the same items), so that the DataLoader's start and end of an epoch weigh about as in a long
epoch. Each cell is the median of several alternating repeats. `--formats flac ogg mp3 m4a` adds a per-file row
(1 thread, the default resampler) for the same sounds in each of those formats (FLAC, Ogg Vorbis and MP3 written
and read by libsndfile; M4A/AAC written and read by PyAV), where decoding costs more than a WAV's.

    python benchmarks/bench_audio_inputs.py [--quick] [--files N] [--passes P] [--repeats R] [--threads T [T ...]]
                                            [--workers W [W ...]] [--resamplers sinc soxr]
                                            [--formats flac ogg mp3 m4a]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import soundfile
import torch

from openbind.io.audio import dense_sinc_kernel
from openbind.modalities.audio.fbank import mel_filterbank
from openbind.modalities.audio.transform import AudioTransform, clip_sample_ranges, load_audios

from common import process_pair, through_loader, two_processes

BATCH = 16


def make_files(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """Noisy tone mixtures, 2.6-10 s at 44.1 kHz, every other file stereo."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        duration = rng.uniform(2.6, 10.0)
        t = np.arange(int(duration * 44100)) / 44100
        tone = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 6000, size=3)) / 4
        channels = [tone + 0.05 * rng.standard_normal(t.size) for _ in range(1 + i % 2)]
        path = directory / f"clip_{i:03d}.wav"
        soundfile.write(path, np.stack(channels, axis=1).astype(np.float32), 44100, subtype="PCM_16")
        paths.append(path)
    return paths


_SOUNDFILE_FORMATS = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def convert(paths: list[Path], suffix: str) -> list[Path]:
    """The same sounds as `suffix` files beside the WAVs (at libsndfile's / FFmpeg's default quality)."""
    converted = []
    for path in paths:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        target = path.with_suffix(f".{suffix}")
        if suffix == "m4a":
            with av.open(str(target), "w", format="ipod") as container:
                stream = container.add_stream("aac", rate=rate)
                stream.layout = "mono" if data.shape[1] == 1 else "stereo"
                planes = np.ascontiguousarray(data.T)
                frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=stream.layout.name)
                frame.sample_rate, frame.pts = rate, 0
                for packet in [*stream.encode(frame), *stream.encode(None)]:
                    container.mux(packet)
        else:
            container_format, subtype = _SOUNDFILE_FORMATS[suffix]
            soundfile.write(target, data, rate, format=container_format, subtype=subtype)
        converted.append(target)
    return converted


def run_per_file(paths: list[Path], transform: AudioTransform) -> None:
    for path in paths:
        transform(path)


def run_batched(paths: list[Path], transform: AudioTransform) -> None:
    for i in range(0, len(paths), BATCH):
        load_audios(paths[i : i + BATCH], transform=transform)


def _dense_resample(waveform: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """torchaudio's layout: every phase over the whole 2 * width + orig block, conv over the whole file."""
    kernel, width = dense_sinc_kernel(orig_sr, new_sr)
    new, orig = kernel.shape[0], kernel.shape[-1] - 2 * width
    padded = torch.nn.functional.pad(waveform, (width, width + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig).transpose(1, 2)
    return out.reshape(waveform.shape[0], -1)[:, : -(-new * waveform.shape[1] // orig)]


def _reference_style_fbank(clip: torch.Tensor) -> torch.Tensor:
    """One clip as torchaudio's kaldi.fbank computes it: window and mel matrix built on every call, dense."""
    frames = clip.as_strided((1 + (clip.numel() - 400) // 160, 400), (160, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.nn.functional.pad(frames[None], (1, 0), mode="replicate")[0, :, :-1]
    frames = (frames - 0.97 * previous) * torch.hann_window(400, periodic=False)
    power = torch.fft.rfft(torch.nn.functional.pad(frames, (0, 112))).abs().pow(2)
    mel = mel_filterbank(128, 512, 16000, 20.0, 0.0)
    return power.mm(mel).clamp_min(torch.finfo(torch.float32).eps).log()


def run_reference_style(paths: list[Path], transform: AudioTransform) -> None:
    """The reference's steps and cost profile, with our code: libsndfile float decoding, the dense resampling
    kernel rebuilt and applied to the whole file, one fbank call per clip, pad and normalize per clip."""
    for path in paths:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        waveform = torch.from_numpy(data.T.copy())
        waveform = _dense_resample(waveform, rate, 16000)
        clips = []
        for start, stop in clip_sample_ranges(waveform.shape[1], 16000, 2.0, 3):
            clip = waveform[:, start:stop]
            clip -= clip.mean()
            fbank = _reference_style_fbank(clip[0])
            fbank = torch.nn.functional.pad(fbank.T, (0, 204 - fbank.shape[0]))
            clips.append(((fbank - transform.mean) / transform.std)[None])
        torch.stack(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few files, one repeat")
    parser.add_argument("--files", type=int, default=96)
    parser.add_argument("--passes", type=int, default=4, help="times each timed run goes through the files")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads for the single-process rows"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2], help="DataLoader worker counts, a row each (on a machine "
        "with more cores, e.g. 2 4 8 shows how the loader scales)"
    )
    parser.add_argument("--resamplers", nargs="+", default=["sinc", "soxr"], choices=["sinc", "soxr"])
    parser.add_argument(
        "--formats", nargs="+", default=[], choices=["flac", "ogg", "mp3", "m4a"],
        help="add a per-file row (1 thread, sinc) for the same sounds in these formats",
    )  # fmt: skip
    args = parser.parse_args()
    count, repeats, passes = (16, 1, 1) if args.quick else (args.files, args.repeats, args.passes)
    default_threads = torch.get_num_threads()

    def threaded(threads: int, fn):
        def run() -> None:
            torch.set_num_threads(threads)
            fn()

        return run

    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), count)
        paths = files * passes
        pool = process_pair()
        transforms = {name: AudioTransform(resampler=name) for name in args.resamplers}
        cases = {}
        for threads in args.threads:
            cases[("sinc", "reference-style", threads)] = threaded(
                threads, lambda: run_reference_style(paths, AudioTransform())
            )
        for name, transform in transforms.items():
            for threads in args.threads:
                cases[(name, "per file", threads)] = threaded(threads, lambda t=transform: run_per_file(paths, t))
            for threads in args.threads:
                cases[(name, f"`load_audios`, {BATCH} per call", threads)] = threaded(
                    threads, lambda t=transform: run_batched(paths, t)
                )
            for workers in args.workers:
                loader = through_loader("audio", paths, transform, BATCH, workers)
                cases[(name, f"DataLoader {workers} workers", None)] = loader
            cases[(name, "2 independent processes", None)] = two_processes(pool, paths, transform)
        for suffix in args.formats:
            encoded = convert(files, suffix) * passes
            cases[("sinc", f"per file, {suffix.upper()} files", 1)] = threaded(
                1, lambda e=encoded: run_per_file(e, AudioTransform())
            )
        for case in cases.values():  # warm-up: kernel caches, worker start-up
            case()
        times: dict[tuple, list[float]] = {key: [] for key in cases}
        cpu_times: dict[tuple, list[float]] = {key: [] for key in cases}
        for _ in range(repeats):
            for key, case in cases.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                case()
                times[key].append(time.perf_counter() - start)
                cpu_times[key].append(time.process_time() - cpu_start)
        torch.set_num_threads(default_threads)
    pool.close()

    print(
        f"{count} WAV files, 44.1 kHz, 2.6-10 s, half stereo"
        + (f" (and the same sounds as {', '.join(f.upper() for f in args.formats)} files)" if args.formats else "")
        + f", {passes} passes per run; median of {repeats}; "
        f"torch's default threads here: {default_threads}; DataLoader workers and the independent processes: 1"
    )
    rates = {key: len(paths) / statistics.median(values) for key, values in times.items()}
    # Files per CPU-second of this process: what 1 thread gives when nothing else runs (CPU time is not charged
    # while other programs hold the core). Not shown for the DataLoader (its work is in the workers) and
    # inflated by waiting threads for 2 threads.
    cpu_rates = {key: len(paths) / statistics.median(values) for key, values in cpu_times.items()}
    print("| resampler | driver | process threads | files/s | files per CPU-s |")
    print("|---|---|---:|---:|---:|")
    for (resampler, driver, threads), rate in rates.items():
        label = "1 each" if threads is None else str(threads)
        cpu = "" if threads is None else f"{cpu_rates[(resampler, driver, threads)]:.1f}"
        print(f"| {resampler} | {driver} | {label} | {rate:.1f} | {cpu} |")
    for name in transforms:
        for workers in args.workers:
            loader_rate = rates[(name, f"DataLoader {workers} workers", None)]
            ratios = ", ".join(
                f"{loader_rate / rates[(name, 'per file', t)]:.2f}x per file at {t} thread{'s' * (t > 1)}"
                for t in args.threads
            )
            print(f"{name}: DataLoader {workers} workers = {ratios}")
        if 1 in args.threads:
            ceiling = rates[(name, "2 independent processes", None)] / rates[(name, "per file", 1)]
            print(f"{name}: 2 independent processes = {ceiling:.2f}x per file at 1 thread")


if __name__ == "__main__":
    main()
