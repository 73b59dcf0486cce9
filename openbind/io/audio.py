"""Audio decoding and resampling: any user audio item -> float32 [channels, samples] at the rate the model wants.

soundfile reads what libsndfile knows (WAV, FLAC, OGG, MP3, ...), exactly as the reference's `torchaudio.load`
did; PyAV is the fallback for everything else (M4A/AAC, Opus, the audio track of MP4/MKV/WebM files).

The default resampler reproduces `torchaudio.functional.resample` (Hann-windowed sinc, 6 zero crossings,
rolloff 0.99, rates reduced by their gcd): output sample j * new + p is the dot product of the input block that
starts at j * orig with the kernel of phase p. torchaudio stores every phase over the whole block (2 * width +
orig taps, mostly zeros); we keep only each phase's non-zero taps (a few strided conv1d over chunks of
phases), which gives the same numbers with several times less arithmetic, and lets us compute just the output
samples that will be used (the clips) instead of the whole file.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from openbind.errors import OpenBindInputError

Resampler = Literal["sinc", "soxr"]

_MAX_ARRAY_CHANNELS = 32  # more "channels" than this almost surely means a [samples, channels] array
_INT_SCALES = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


def load_audio(item: Any) -> tuple[torch.Tensor, int]:
    """Decode one audio item to `(waveform float32 [channels, samples], sample_rate)`.

    `item` is a path, bytes, a binary file object, or an in-memory `(array, sample_rate)` pair whose array is
    [samples] or [channels, samples] (numpy or torch; float, or int16/int32/uint8 PCM which is scaled to
    [-1, 1)). Anything unusable raises OpenBindInputError naming the item.
    """
    if is_array_pair(item):
        waveform, sample_rate = _from_array(item)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise OpenBindInputError(item, "no such audio file")
        if path.stat().st_size == 0:
            raise OpenBindInputError(item, "the file is empty")
        waveform, sample_rate = _decode(item, str(path))
    elif isinstance(item, (bytes, bytearray, memoryview)):
        waveform, sample_rate = _decode(item, bytes(item))
    elif hasattr(item, "read"):
        if isinstance(item, io.TextIOBase):
            raise OpenBindInputError(item, "file object must be opened in binary mode ('rb')")
        try:
            data = item.read()
        except (OSError, ValueError) as error:  # closed, unreadable, or text that fails to decode
            raise OpenBindInputError(item, f"cannot read the file object: {error}") from error
        if not isinstance(data, (bytes, bytearray)):
            raise OpenBindInputError(item, "file object must be opened in binary mode ('rb')")
        waveform, sample_rate = _decode(item, bytes(data))
    else:
        raise OpenBindInputError(
            item,
            f"unsupported audio item of type {type(item).__name__}; give a path, bytes, a binary file object "
            "or an (array, sample_rate) pair",
        )
    _check_waveform(item, waveform, sample_rate)
    return waveform, sample_rate


def is_array_pair(item: Any) -> bool:
    """Whether `item` is an in-memory `(array, sample_rate)` pair (a batch treats it as one item)."""
    return isinstance(item, tuple) and len(item) == 2 and hasattr(item[0], "shape")


def _from_array(item: Any) -> tuple[torch.Tensor, int]:
    array, sample_rate = item
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        if array.dtype == torch.bfloat16:
            array = array.float()
        array = array.numpy()
    array = np.asarray(array)
    if array.dtype.kind == "f":
        waveform = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    elif array.dtype in _INT_SCALES:
        waveform = torch.from_numpy(array.astype(np.float32) / _INT_SCALES[array.dtype])
    elif array.dtype == np.uint8:
        waveform = torch.from_numpy((array.astype(np.float32) - 128.0) / 128.0)
    else:
        raise OpenBindInputError(
            item, f"audio array dtype {array.dtype} is not supported; use float, int16, int32 or uint8 PCM"
        )
    if waveform.ndim == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 2:
        raise OpenBindInputError(item, f"audio array must be [samples] or [channels, samples], got {array.shape}")
    if waveform.shape[0] > _MAX_ARRAY_CHANNELS:
        raise OpenBindInputError(
            item, f"audio array of shape {tuple(array.shape)} has {array.shape[0]} channels; "
            "give [channels, samples] (is it transposed?)"
        )
    return waveform, _sample_rate(item, sample_rate)


def _sample_rate(item: Any, sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, Real) or sample_rate != int(sample_rate):
        raise OpenBindInputError(item, f"sample rate must be a positive integer, got {sample_rate!r}")
    if int(sample_rate) <= 0:
        raise OpenBindInputError(item, f"sample rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def _decode(item: Any, source: str | bytes) -> tuple[torch.Tensor, int]:
    """soundfile first (the reference's reader), PyAV for what libsndfile does not know."""
    if isinstance(source, bytes) and not source:
        raise OpenBindInputError(item, "no data (0 bytes)")
    try:
        return _read_soundfile(source)
    except Exception as sf_error:  # libsndfile reports every unreadable input its own way
        try:
            return _read_pyav(source)
        except _NoAudioStream:
            raise OpenBindInputError(item, "the file has no audio stream") from None
        except Exception as av_error:  # PyAV/FFmpeg raise many types for corrupt or unsupported data
            raise OpenBindInputError(
                item,
                f"cannot decode audio (missing, truncated or corrupt data, or an unsupported codec): "
                f"soundfile: {sf_error}; PyAV: {av_error}",
            ) from av_error


def _read_soundfile(source: str | bytes) -> tuple[torch.Tensor, int]:
    import soundfile

    with soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source) as file:
        if file.subtype == "PCM_16":
            # libsndfile's own float conversion is 10x slower than reading int16 and scaling by 2^-15 here,
            # which gives the same floats (exact in float32).
            data = torch.from_numpy(file.read(dtype="int16", always_2d=True)).T
            waveform = torch.empty(data.shape, dtype=torch.float32).copy_(data).mul_(1.0 / 32768)
        else:
            waveform = torch.from_numpy(np.ascontiguousarray(file.read(dtype="float32", always_2d=True).T))
        return waveform, int(file.samplerate)


class _NoAudioStream(Exception):
    pass


def _read_pyav(source: str | bytes) -> tuple[torch.Tensor, int]:
    import av

    with av.open(io.BytesIO(source) if isinstance(source, bytes) else source, mode="r") as container:
        if not container.streams.audio:
            raise _NoAudioStream
        stream = container.streams.audio[0]
        to_planar_float = av.AudioResampler(format="fltp")  # keeps the layout and rate of the input
        parts: list[np.ndarray] = []
        sample_rate = stream.codec_context.sample_rate
        for frame in container.decode(stream):
            sample_rate = frame.sample_rate
            parts.extend(out.to_ndarray() for out in to_planar_float.resample(frame))
        parts.extend(out.to_ndarray() for out in to_planar_float.resample(None))
    if not parts:
        return torch.zeros(1, 0), int(sample_rate)
    return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32, copy=False)), int(sample_rate)


def _check_waveform(item: Any, waveform: torch.Tensor, sample_rate: int) -> None:
    if waveform.shape[0] == 0:
        raise OpenBindInputError(item, "the audio has no channels")
    if waveform.shape[1] == 0:
        raise OpenBindInputError(item, "the audio has no samples")
    if sample_rate <= 0:
        raise OpenBindInputError(item, f"invalid sample rate {sample_rate}")
    # A finite sum proves every sample finite (cheap); only a non-finite sum needs the elementwise check.
    if not torch.isfinite(waveform.sum()) and not torch.isfinite(waveform).all():
        raise OpenBindInputError(item, "the audio contains NaN or infinite samples")


def resample(waveform: torch.Tensor, orig_sr: int, new_sr: int, method: Resampler = "sinc") -> torch.Tensor:
    """Resample float32 [channels, samples] from `orig_sr` to `new_sr`.

    "sinc" matches `torchaudio.functional.resample` with its defaults (what the reference used); "soxr" is
    libsoxr's "HQ" quality: a different filter (same passband, other rolloff), not bit-compatible.
    """
    if orig_sr == new_sr:
        return waveform
    if method == "soxr":
        import soxr

        out = soxr.resample(waveform.T.contiguous().numpy(), orig_sr, new_sr, quality="HQ")
        return torch.from_numpy(np.ascontiguousarray(out.T))
    if method != "sinc":
        raise ValueError(f"resampler must be 'sinc' or 'soxr', got {method!r}")
    length = sinc_resampled_length(waveform.shape[-1], orig_sr, new_sr)
    return resample_sinc_range(waveform, orig_sr, new_sr, 0, length)


def sinc_resampled_length(num_samples: int, orig_sr: int, new_sr: int) -> int:
    """Length of the "sinc" resampler's output: ceil(num_samples * new / orig), as torchaudio."""
    return -(-num_samples * new_sr // orig_sr)


def resample_sinc_range(waveform: torch.Tensor, orig_sr: int, new_sr: int, start: int, stop: int) -> torch.Tensor:
    """Output samples [start, stop) of the "sinc" resampling of [channels, samples] float32 `waveform`."""
    return resample_sinc_ranges(waveform, orig_sr, new_sr, [(start, stop)])[0]


def resample_sinc_ranges(
    waveform: torch.Tensor, orig_sr: int, new_sr: int, ranges: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """Output samples [start, stop) of the "sinc" resampling of [channels, samples] float32 `waveform`, for
    each range: [channels, stop - start] each.

    Ranges must lie within [0, sinc_resampled_length(...)]. Each output sample only depends on nearby input,
    so computing a range gives exactly the values the whole signal would have there. All ranges of all channels go through the same few conv calls (one signal, batch
    1: oneDNN's fast path here): the input pieces they need are laid end to end, each starting on a block
    boundary, since per-call overhead dominated when each range had its own calls.
    """
    if orig_sr == new_sr or not ranges:
        return [waveform[:, start:stop] for start, stop in ranges]
    plan = _sinc_plan(orig_sr, new_sr)
    orig, new = plan.orig, plan.new
    length = waveform.shape[1]
    pieces = []  # (channel, first block, blocks, where the piece starts in `joined`) per channel and range
    size = 0
    for channel in range(waveform.shape[0]):
        for start, stop in ranges:
            first_block = start // new
            blocks = -(-stop // new) - first_block
            pieces.append((channel, first_block, blocks, size))
            size += (blocks - 1) * orig + -(-plan.extent // orig) * orig
    joined = waveform.new_zeros(1, 1, size)
    for channel, first_block, blocks, at in pieces:
        # Block j reads the reference's zero-padded input from j * orig on, i.e. input sample j * orig - width.
        lo = first_block * orig - plan.width
        src_lo, src_hi = max(lo, 0), min(lo + (blocks - 1) * orig + plan.extent, length)
        if src_hi > src_lo:
            joined[0, 0, at + src_lo - lo : at + src_hi - lo] = waveform[channel, src_lo:src_hi]
    _, _, last_blocks, last_at = pieces[-1]
    reach = (last_at // orig + last_blocks - 1) * orig  # where the last needed block starts
    phases = [
        torch.nn.functional.conv1d(joined[..., tap : tap + reach + weight.shape[-1]], weight, stride=orig)
        for tap, weight in plan.chunks
    ]
    out = torch.cat(phases, dim=1)[0].T.reshape(-1)  # block-major: output j * new + p
    results = [[] for _ in ranges]
    for index, (_, first_block, _, at) in enumerate(pieces):
        start, stop = ranges[index % len(ranges)]
        offset = at // orig * new - first_block * new
        results[index % len(ranges)].append(out[offset + start : offset + stop])
    return [torch.stack(rows) for rows in results]


@dataclass(frozen=True)
class _SincPlan:
    """The reference kernel as a few strided convolutions that hold only the non-zero taps.

    A block is `orig` input samples -> `new` output samples (several of the reference's gcd-reduced blocks when
    it has fewer than 16 phases, so that each conv has enough output channels to vectorize). Each chunk is
    (first tap, weight [phases, 1, span]) for up to 48 consecutive phases; each phase's taps sit at their offset
    from the chunk's first tap, zeros elsewhere. Every output still sums its taps in increasing order, as the
    reference's conv does, which keeps the float32 rounding identical (bit-equal on the fixture files).
    """

    orig: int
    new: int
    width: int  # zeros the reference pads on the left
    extent: int  # padded-input samples one block reads, from its start
    chunks: tuple[tuple[int, torch.Tensor], ...]


_MIN_PHASES = 16
_PHASES_PER_CONV = 48  # measured: 32-64 all fine; one conv over every phase reads mostly zero taps


@lru_cache(maxsize=32)
def _sinc_plan(orig_sr: int, new_sr: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> _SincPlan:
    """The reference's Hann-windowed sinc kernel, phase by phase, keeping only the non-zero taps.

    Phase p, tap k (k = 0 .. 2 * width + orig - 1 of the padded block) has t = ((k - width) / orig - p / new) *
    base with base = min(orig, new) * rolloff, clamped to +-lowpass_filter_width; its weight is
    sinc(t) * cos(pi t / (2 * lpw))^2 * base / orig, which is zero once |t| reaches lpw.
    """
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    kernel_len = 2 * width + orig
    half = lowpass_filter_width * orig / base  # half the support, in input samples
    phases = np.arange(new)
    centre = width + orig * phases / new
    first = np.clip(np.floor(centre - half).astype(np.int64), 0, kernel_len - 1)
    last = np.clip(np.ceil(centre + half).astype(np.int64), 0, kernel_len - 1)
    taps = int((last - first).max()) + 1
    k = first[:, None] + np.arange(taps)[None, :]
    kernel = _reference_kernel_values(torch.from_numpy(k), orig, new, width, base, lowpass_filter_width).numpy()
    kernel[k >= kernel_len] = 0.0

    repeat = -(-_MIN_PHASES // new)  # reference blocks per block
    first = np.concatenate([first + r * orig for r in range(repeat)])
    kernel = np.concatenate([kernel] * repeat)
    chunks = []
    for p0 in range(0, len(first), _PHASES_PER_CONV):
        p1 = min(p0 + _PHASES_PER_CONV, len(first))
        offsets = first[p0:p1] - first[p0]
        weight = np.zeros((p1 - p0, 1, int(offsets[-1]) + taps), dtype=np.float32)
        for row, offset in enumerate(offsets):
            weight[row, 0, offset : offset + taps] = kernel[p0 + row]
        chunks.append((int(first[p0]), torch.from_numpy(weight)))
    extent = max(kernel_len + (repeat - 1) * orig, max(tap + w.shape[-1] for tap, w in chunks))
    return _SincPlan(orig * repeat, new * repeat, width, extent, tuple(chunks))


def dense_sinc_kernel(orig_sr: int, new_sr: int) -> tuple[torch.Tensor, int]:
    """The reference's kernel in its own layout, [new, 1, 2 * width + orig] (mostly zeros), and `width`.

    Convolving the input padded with `width` zeros on the left and `width + orig` on the right, with stride
    `orig`, gives the reference resampling; kept for comparisons (tests, benchmarks), the loader uses the
    compact form.
    """
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    base = min(orig, new) * 0.99
    width = math.ceil(6 * orig / base)
    taps = torch.arange(2 * width + orig).expand(new, -1)
    return _reference_kernel_values(taps, orig, new, width, base, 6)[:, None, :], width


def _reference_kernel_values(
    k: torch.Tensor, orig: int, new: int, width: int, base: float, lowpass_filter_width: int
) -> torch.Tensor:
    """Kernel weights of taps `k` [phases, taps] (phase = row index), evaluated in float32 with the same
    operations in the same order as torchaudio, whose float32 rounding shows in near-silent mel bins (up to
    7e-3 after normalization when computed in float64 instead)."""
    idx = (k - width).float() / orig
    t = torch.arange(0, -k.shape[0], -1, dtype=torch.float32)[:, None] / new + idx
    t *= base
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0), t.sin() / t)
    kernel *= window * (base / orig)
    return kernel
