"""Audio decoding and resampling: any user audio item -> float32 [channels, samples] at the rate the model wants.

soundfile reads what libsndfile knows (WAV, FLAC, OGG, MP3, ...), exactly as the reference's `torchaudio.load`
does; PyAV is the fallback for everything else (M4A/AAC, Opus, the audio track of MP4/MKV/WebM files).

The default resampler reproduces `torchaudio.functional.resample` (Hann-windowed sinc, 6 zero crossings,
rolloff 0.99, rates reduced by their gcd): output sample j * new + p is the dot product of the input block that
starts at j * orig with the kernel of phase p. torchaudio stores every phase over the whole block (2 * width +
orig taps, mostly zeros); we keep only each phase's non-zero taps (one batched matmul over groups of 16
phases, reading strided views of the input), which gives the same numbers with several times less arithmetic,
and lets us compute just the output samples that will be used (the clips) instead of the whole file.
`PcmReader` reads just those input ranges of integer-PCM files, into per-thread work tensors
(`openbind.io.scratch`).
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
from openbind.io.scratch import scratch

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
        _check_waveform(item, waveform, sample_rate)
        return waveform, sample_rate
    return decode_audio_source(item, audio_source(item))


def audio_source(item: Any) -> str | bytes:
    """What to decode for a path, bytes or binary file object item: the path as a string, or the bytes (a file
    object is read to its end). Raises OpenBindInputError for anything else, a missing or empty file, or a file
    object that cannot be read or is in text mode."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise OpenBindInputError(item, "no such audio file")
        if path.stat().st_size == 0:
            raise OpenBindInputError(item, "the file is empty")
        return str(path)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if hasattr(item, "read"):
        if isinstance(item, io.TextIOBase):
            raise OpenBindInputError(item, "file object must be opened in binary mode ('rb')")
        try:
            data = item.read()
        except (OSError, ValueError) as error:  # closed, unreadable, or text that fails to decode
            raise OpenBindInputError(item, f"cannot read the file object: {error}") from error
        if not isinstance(data, (bytes, bytearray)):
            raise OpenBindInputError(item, "file object must be opened in binary mode ('rb')")
        return bytes(data)
    raise OpenBindInputError(
        item,
        f"unsupported audio item of type {type(item).__name__}; give a path, bytes, a binary file object "
        "or an (array, sample_rate) pair",
    )


def decode_audio_source(item: Any, source: str | bytes) -> tuple[torch.Tensor, int]:
    """`load_audio` of what `audio_source(item)` returned (errors name `item`)."""
    waveform, sample_rate = _decode(item, source)
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


_PCM_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"})


class PcmReader:
    """Integer-PCM audio that libsndfile reads (WAV, FLAC, AIFF, ...), open for reading sample ranges, so that a
    caller needing part of a file (the audio transform's clips) decodes and converts only that part. Samples are
    the ones `load_audio` gives. `PcmReader.open` returns None for anything else (float or compressed lossy
    data, no frames, not seekable, unreadable): those go through `load_audio`, which also reports the errors.
    Integer PCM is always finite, so nothing needs the NaN check.
    """

    def __init__(self, file: Any):
        self._file = file
        self.frames, self.sample_rate, self.channels = int(file.frames), int(file.samplerate), int(file.channels)
        self._int16 = file.subtype == "PCM_16"

    @classmethod
    def open(cls, source: str | bytes) -> PcmReader | None:
        import soundfile

        try:
            file = soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        except Exception:  # libsndfile reports every unreadable input its own way; load_audio explains
            return None
        if (
            file.subtype not in _PCM_SUBTYPES
            or file.frames <= 0
            or file.channels <= 0
            or file.samplerate <= 0
            or not file.seekable()
        ):
            file.close()
            return None
        return cls(file)

    def __enter__(self) -> PcmReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def read_signals(self, start: int, stop: int, first: torch.Tensor, mean: torch.Tensor | None) -> bool:
        """Write samples [start, stop) of channel 0 into `first` and, unless None, the mean over all channels
        into `mean` (float32 views of stop - start samples). False when the file holds fewer samples than its
        header says (truncated): read it whole with `load_audio` then."""
        count = stop - start
        if count <= 0:
            return True
        self._file.seek(start)
        if self._int16:  # scaling int16 here is 10x faster than libsndfile's float conversion, same floats
            data = scratch("pcm", (count, self.channels), torch.int16)
            if self._file.read(out=data.numpy()).shape[0] != count:
                return False
            if mean is None:
                torch.mul(data[:, 0], 1.0 / 32768, out=first)
                return True
            if self.channels == 2:  # (a + b) / 2^16 is exact: the mean of the two float samples, bit for bit
                pairs = scratch("pcm_float", data.shape).copy_(data)  # de-interleaving floats is faster
                torch.mul(pairs[:, 0], 1.0 / 32768, out=first)
                torch.add(pairs[:, 0], pairs[:, 1], out=mean).mul_(1.0 / 65536)
                return True
            torch.mul(data[:, 0], 1.0 / 32768, out=first)
            waveform = torch.empty(data.shape[::-1]).copy_(data.T).mul_(1.0 / 32768)
        else:
            data = scratch("pcm", (count, self.channels))
            if self._file.read(out=data.numpy()).shape[0] != count:
                return False
            waveform = data.T.contiguous()
            first.copy_(waveform[0])
        if mean is not None:
            torch.mean(waveform, dim=0, out=mean)
        return True


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

    "sinc" matches `torchaudio.functional.resample` with its defaults (what the reference uses); "soxr" is
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
    so computing a range gives exactly the values the whole signal would have there.
    """
    if orig_sr == new_sr or not ranges:
        return [waveform[:, start:stop] for start, stop in ranges]
    rows, length = waveform.shape
    job = SincJob(orig_sr, new_sr, ranges, rows)
    for row in range(rows):
        for index in range(len(ranges)):
            lo, hi, dest = job.slot(row, index, length)
            dest.copy_(waveform[row, lo:hi])
    job.run()
    return [torch.stack([job.output(row, index) for row in range(rows)]) for index in range(len(ranges))]


class SincJob:
    """Output ranges [start, stop) of `rows` signals through the "sinc" resampler, all in one batched matmul.

    Every (row, range) gets a piece of one input buffer, starting on a block boundary (separate calls per range
    would be dominated by per-call overhead). `slot` says which input samples go where and zeroes the rest
    of the piece (the reference's padding); call it for every row and range and fill each view, then `run`;
    `output` returns a range's samples of one row.
    """

    def __init__(self, orig_sr: int, new_sr: int, ranges: list[tuple[int, int]], rows: int):
        self.plan = plan = _sinc_plan(orig_sr, new_sr)
        self.ranges = list(ranges)
        reserve = -(-plan.extent // plan.orig) - 1  # blocks after its last one that a piece keeps free
        self._pieces: list[tuple[int, int, int]] = []  # (first block, blocks, where it starts in the buffer)
        size = 0
        for _ in range(rows):
            for start, stop in self.ranges:
                first_block = start // plan.new
                blocks = -(-stop // plan.new) - first_block
                self._pieces.append((first_block, blocks, size))
                size += (blocks + reserve) * plan.orig
        self._blocks = max((size - plan.extent) // plan.orig + 1, _MIN_BLOCKS)
        self._reserve = reserve
        # A reused work buffer: `slot` zeroes what the input does not cover (most of it is input).
        self.buffer = scratch("sinc_input", ((self._blocks + reserve) * plan.orig,))
        self.buffer[size:].zero_()
        self._out: torch.Tensor | None = None

    def slot(self, row: int, index: int, length: int) -> tuple[int, int, torch.Tensor]:
        """`(lo, hi, view)`: input samples [lo, hi) of signal `row` (`length` samples long) that range `index`
        reads, and the buffer view to copy them into."""
        first_block, blocks, at = self._pieces[row * len(self.ranges) + index]
        plan = self.plan
        # Block j reads the reference's zero-padded input from j * orig on, i.e. input sample j * orig - width.
        lo = first_block * plan.orig - plan.width
        src_lo, src_hi = max(lo, 0), min(lo + (blocks - 1) * plan.orig + plan.extent, length)
        src_hi = max(src_hi, src_lo)
        self.buffer[at : at + src_lo - lo].zero_()
        self.buffer[at + src_hi - lo : at + (blocks + self._reserve) * plan.orig].zero_()
        return src_lo, src_hi, self.buffer[at + src_lo - lo : at + src_hi - lo]

    def run(self) -> None:
        plan = self.plan
        groups, span = plan.weight.shape[:2]
        view = self.buffer.as_strided((groups, self._blocks, span), (plan.stride, plan.orig, 1), plan.first)
        out = torch.bmm(view, plan.weight, out=scratch("sinc_bmm", (groups, self._blocks, _GROUP)))
        flat = scratch("sinc_output", (self._blocks, groups, _GROUP))  # block-major: phase g * 16 + i of a block
        flat.copy_(out.transpose(0, 1))
        flat = flat.view(self._blocks, -1)
        self._out = (flat if flat.shape[1] == plan.new else flat[:, : plan.new]).reshape(-1)  # block-major

    def output(self, row: int, index: int) -> torch.Tensor:
        """Samples [start, stop) of range `index` of signal `row`, after `run`: a view of a work buffer, valid
        until the next SincJob of this thread runs."""
        first_block, _, at = self._pieces[row * len(self.ranges) + index]
        start, stop = self.ranges[index]
        offset = (at // self.plan.orig - first_block) * self.plan.new
        return self._out[offset + start : offset + stop]


@dataclass(frozen=True)
class _SincPlan:
    """The reference kernel as one batched matmul that holds only (about) the non-zero taps.

    A block is `orig` input samples -> `new` output samples (several of the reference's gcd-reduced blocks when
    it has fewer than 16 phases). Phases go in groups of 16: group g reads `span` samples from `first + g *
    stride` on (from the block's start in the padded input) and holds each phase's taps at their offset there,
    zeros elsewhere: weight [groups, span, 16]. Every output still sums its taps in increasing order with one
    fused multiply-add each, as the reference's conv does, which keeps the float32 rounding identical (bit-equal
    to the reference's dense kernel; checked by the tests, since it rests on how MKL's sgemm accumulates).
    """

    orig: int
    new: int
    width: int  # zeros the reference pads on the left
    extent: int  # padded-input samples one block reads, from its start
    first: int
    stride: int
    weight: torch.Tensor


_MIN_PHASES = 16
_GROUP = 16  # phases per matmul column block: 16 is bit-equal and fastest; MKL rounds differently with 8
_MIN_BLOCKS = 16  # MKL's sgemm takes another path (other rounding) for matrices of fewer than 12 rows


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
    groups = -(-len(first) // _GROUP)
    pad = groups * _GROUP - len(first)  # phases computed and dropped, to fill the last group
    first = np.concatenate([first, np.full(pad, first[-1])])
    kernel = np.concatenate([kernel, np.zeros((pad, taps), np.float32)])
    starts = first[::_GROUP] - first[0]
    stride = int(min(starts[g] // g for g in range(1, groups))) if groups > 1 else 0
    offsets = first - first[0] - np.repeat(np.arange(groups) * stride, _GROUP)
    span = int(offsets.max()) + taps
    weight = np.zeros((groups, span, _GROUP), dtype=np.float32)
    for phase, offset in enumerate(offsets):
        weight[phase // _GROUP, offset : offset + taps, phase % _GROUP] = kernel[phase]
    extent = max(kernel_len + (repeat - 1) * orig, int(first[0]) + (groups - 1) * stride + span)
    return _SincPlan(orig * repeat, new * repeat, width, extent, int(first[0]), stride, torch.from_numpy(weight))


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
