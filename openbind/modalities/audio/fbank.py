"""Kaldi-compatible log-mel filterbank (`compute-fbank-feats`, as torchaudio.compliance.kaldi.fbank computes it),
batched: the frames of every waveform go through one pass (FFT calls and banded mel products over blocks of
600 frames, in reused work buffers).

Per frame, in Kaldi's order: remove the DC offset, pre-emphasize (x[i] -= c * x[i-1], with x[-1] = x[0]),
multiply by the window, zero-pad to a power of two, power spectrum, mel filterbank (triangles on the HTK mel
scale 1127 ln(1 + f / 700)), log with a floor at float32 eps. Frames are `snip_edges=True`: only frames that fit
entirely, 1 + (n - frame_length) // frame_shift of them. No dither, no energy term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from openbind.io.scratch import scratch

_EPS = torch.finfo(torch.float32).eps
_BLOCK_FRAMES = 600
_MEL_BINS_PER_BAND = 16


def kaldi_fbank(waveforms: Sequence[torch.Tensor], **options: Any) -> list[torch.Tensor]:
    """Log-mel features [frames, num_mel_bins] of each 1-D float32 waveform (frames may be 0 for short input).

    Options as `kaldi_fbank_packed`.
    """
    features, counts = kaldi_fbank_packed(waveforms, **options)
    return list(features.split(counts))


def kaldi_fbank_packed(
    waveforms: Sequence[torch.Tensor],
    *,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis: float = 0.97,
    workspace: bool = False,
) -> tuple[torch.Tensor, list[int]]:
    """The frames of all waveforms, one after the other, [total frames, num_mel_bins], and each one's count.

    `high_freq <= 0` means an offset from the Nyquist frequency, as in Kaldi (0 -> sample_rate / 2). The result
    is the transpose of a contiguous [num_mel_bins, total frames] tensor (the layout the model input wants).
    `workspace=True` returns it in a per-thread work buffer that the next call overwrites (for a caller that
    consumes it at once).
    """
    frame_length = int(sample_rate * frame_length_ms * 0.001)
    frame_shift = int(sample_rate * frame_shift_ms * 0.001)
    n_fft = 1 << max(frame_length - 1, 0).bit_length()
    counts = [_num_frames(w.shape[-1], frame_length, frame_shift) for w in waveforms]
    total = sum(counts)
    # Filled transposed: each band's rows are contiguous there.
    features = scratch("fbank_features", (num_mel_bins, total)) if workspace else torch.empty(num_mel_bins, total)
    if not total:  # nothing long enough for one frame (the FFT refuses empty input)
        return features.T, counts
    # Each frame minus its mean, straight from strided views into one buffer (the reference takes the mean of
    # the same strided frames: the same sums).
    frames = scratch("fbank_frames", (total, frame_length))
    row = 0
    for waveform, count in zip(waveforms, counts):
        if count:
            view = waveform.contiguous().as_strided((count, frame_length), (frame_shift, 1))
            torch.sub(view, view.mean(dim=1, keepdim=True), out=frames[row : row + count])
            row += count
    window = _hann(frame_length)
    bands = _mel_bands(num_mel_bins, n_fft, sample_rate, low_freq, high_freq)
    # Row blocks keep every intermediate in cache. The time-domain steps are the reference's operations in its
    # order, with the same roundings: they set what near-silent mel bins hold. After the FFT only relative
    # rounding (~1e-7) differs, invisible after the log.
    block_rows = min(_BLOCK_FRAMES, total)
    padded = scratch("fbank_padded", (block_rows, n_fft))
    padded[:, frame_length:].zero_()  # stays zero across blocks
    spectrum = scratch("fbank_spectrum", (block_rows, n_fft // 2 + 1), torch.complex64)
    squares = scratch("fbank_squares", (block_rows, n_fft // 2 + 1, 2))
    power = scratch("fbank_power", (block_rows, n_fft // 2 + 1))
    for lo in range(0, total, _BLOCK_FRAMES):
        block = frames[lo : lo + _BLOCK_FRAMES]
        rows = block.shape[0]
        emphasized = padded[:rows, :frame_length]
        torch.mul(block[:, :-1], preemphasis, out=emphasized[:, 1:])  # x[i] - c * x[i-1], with x[-1] = x[0]
        torch.mul(block[:, :1], preemphasis, out=emphasized[:, :1])
        torch.sub(block, emphasized, out=emphasized)
        emphasized.mul_(window)
        torch.fft.rfft(padded[:rows], out=spectrum[:rows])
        real = torch.view_as_real(spectrum[:rows])
        torch.mul(real, real, out=squares[:rows])
        torch.add(squares[:rows, :, 0], squares[:rows, :, 1], out=power[:rows])  # |X|^2
        for mel_lo, mel_hi, fft_lo, fft_hi, weight in bands:
            torch.mm(weight, power[:rows, fft_lo:fft_hi].T, out=features[mel_lo:mel_hi, lo : lo + rows])
    array = features.numpy()  # numpy's float32 log is ~2x faster than torch's here (both within an ulp)
    np.log(np.maximum(array, _EPS, out=array), out=array)
    return features.T, counts


def _num_frames(num_samples: int, frame_length: int, frame_shift: int) -> int:
    return 0 if num_samples < frame_length else 1 + (num_samples - frame_length) // frame_shift


@lru_cache(maxsize=8)
def _hann(length: int) -> torch.Tensor:
    """Kaldi's "hanning" window: 0.5 - 0.5 cos(2 pi i / (N - 1)), i.e. the symmetric Hann window."""
    return torch.hann_window(length, periodic=False)


def mel_filterbank(num_bins: int, n_fft: int, sample_rate: int, low_freq: float, high_freq: float) -> torch.Tensor:
    """Kaldi's mel filterbank, [n_fft // 2 + 1, num_bins] float32: triangles equally spaced on the mel scale
    between low_freq and high_freq (<= 0: offset from Nyquist). They cover FFT bins 0 .. n_fft / 2 - 1; the
    Nyquist bin gets weight 0.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist}, got {low_freq}, {high_freq}")
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + delta * torch.arange(num_bins, dtype=torch.float64)[:, None]
    centre, right = left + delta, left + 2 * delta
    freqs = torch.arange(n_fft // 2, dtype=torch.float64) * (sample_rate / n_fft)
    mel = 1127.0 * torch.log1p(freqs / 700.0)[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    weights = torch.minimum(up, down).clamp_min(0.0)
    weights = torch.cat([weights, weights.new_zeros(num_bins, 1)], dim=1)
    return weights.T.contiguous().float()


@lru_cache(maxsize=8)
def _mel_bands(
    num_bins: int, n_fft: int, sample_rate: int, low_freq: float, high_freq: float
) -> tuple[tuple[int, int, int, int, torch.Tensor], ...]:
    """The mel matrix cut into groups of 16 consecutive mel bins, each with only the FFT bins it reads:
    (first mel bin, end mel bin, first FFT bin, end FFT bin, weight [mel bins, FFT bins]). A mel triangle spans
    a few FFT bins, so this is ~4x less arithmetic than the dense product; it only reorders float32 sums of
    positive terms (relative differences ~1e-7, invisible after the log)."""
    matrix = mel_filterbank(num_bins, n_fft, sample_rate, low_freq, high_freq)
    bands = []
    for first_bin in range(0, num_bins, _MEL_BINS_PER_BAND):
        block = matrix[:, first_bin : first_bin + _MEL_BINS_PER_BAND]
        used = block.ne(0).any(dim=1).nonzero()[:, 0]
        lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
        bands.append((first_bin, first_bin + block.shape[1], lo, hi, block[lo:hi].T.contiguous()))
    return tuple(bands)


def _mel(freq: float) -> float:
    return 1127.0 * math.log(1.0 + freq / 700.0)
