"""Kaldi-compatible log-mel filterbank (`compute-fbank-feats`, as torchaudio.compliance.kaldi.fbank computes it),
batched: the frames of every waveform go through one pass (one FFT call, one banded mel product).

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

import torch

_EPS = torch.finfo(torch.float32).eps
_BLOCK_FRAMES = 768
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
) -> tuple[torch.Tensor, list[int]]:
    """The frames of all waveforms, one after the other, [total frames, num_mel_bins], and each one's count.

    `high_freq <= 0` means an offset from the Nyquist frequency, as in Kaldi (0 -> sample_rate / 2).
    """
    frame_length = int(sample_rate * frame_length_ms * 0.001)
    frame_shift = int(sample_rate * frame_shift_ms * 0.001)
    n_fft = 1 << max(frame_length - 1, 0).bit_length()
    counts = [_num_frames(w.shape[-1], frame_length, frame_shift) for w in waveforms]
    views = [w.contiguous().as_strided((n, frame_length), (frame_shift, 1)) for w, n in zip(waveforms, counts)]
    frames = torch.cat(views) if views else torch.empty(0, frame_length)
    window = _hann(frame_length)
    bands = _mel_bands(num_mel_bins, n_fft, sample_rate, low_freq, high_freq)
    features = frames.new_empty(frames.shape[0], num_mel_bins)
    if not features.shape[0]:  # nothing long enough for one frame (the FFT refuses empty input)
        return features, counts
    # Row blocks keep every intermediate in cache: one pass over 10k frames was 2x slower per frame than 600.
    # The element-wise steps are the reference's operations in its order: their float32 rounding shows in
    # near-silent mel bins.
    for block, out in zip(frames.split(_BLOCK_FRAMES), features.split(_BLOCK_FRAMES)):
        block = block - block.mean(dim=1, keepdim=True)
        scaled = preemphasis * block
        emphasized = torch.empty_like(block)
        torch.sub(block[:, 1:], scaled[:, :-1], out=emphasized[:, 1:])
        torch.sub(block[:, :1], scaled[:, :1], out=emphasized[:, :1])
        padded = block.new_zeros(block.shape[0], n_fft)
        torch.mul(emphasized, window, out=padded[:, :frame_length])
        spectrum = torch.fft.rfft(padded)
        power = (spectrum * spectrum.conj()).real  # |X|^2; 8x faster than abs().pow(2) or a sum over re, im
        out.copy_(torch.cat([torch.mm(power[:, lo:hi], weight) for lo, hi, weight in bands], dim=1))
    features.clamp_(min=_EPS).log_()
    return features, counts


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
) -> tuple[tuple[int, int, torch.Tensor], ...]:
    """The mel matrix cut into groups of 16 consecutive mel bins, each with only the FFT bins it reads:
    (first FFT bin, end FFT bin, weight [end - first, bins in group]). A mel triangle spans a few FFT bins, so
    this is ~4x less arithmetic than the dense product; it only reorders float32 sums of positive terms
    (relative differences ~1e-7, invisible after the log)."""
    matrix = mel_filterbank(num_bins, n_fft, sample_rate, low_freq, high_freq)
    bands = []
    for first_bin in range(0, num_bins, _MEL_BINS_PER_BAND):
        block = matrix[:, first_bin : first_bin + _MEL_BINS_PER_BAND]
        used = block.ne(0).any(dim=1).nonzero()[:, 0]
        lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
        bands.append((lo, hi, block[lo:hi].contiguous()))
    return tuple(bands)


def _mel(freq: float) -> float:
    return 1127.0 * math.log(1.0 + freq / 700.0)
