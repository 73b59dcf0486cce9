"""Audio items -> normalized log-mel clips [clips, 1, 128, 204], as the ImageBind reference prepares them.

Pipeline per file: decode (openbind.io.audio), resample to 16 kHz, cut clips of 2 s, subtract each clip's
mean over all channels, Kaldi fbank of channel 0 only (the reference reads only the first channel: stereo
is not downmixed, the second channel only shifts the mean), transpose to [mel, frames], zero-pad (in the
log domain) or crop to 204 frames, normalize (x - mean) / std. The fbank runs once for all clips of a file.
Kaldi removes each frame's DC offset, so the clip mean changes the features only through float32 rounding,
which is visible in near-silent mel bins (hence `reference_inplace_mean`).

Cheap tricks keep the numbers and save work: only the resampled samples that some clip uses are computed (and
for integer PCM that libsndfile reads, only the input samples they need are decoded, straight into the
resampler's buffer), and a multichannel file is resampled as two signals, channel 0 and the channel average
(resampling is linear, so the mean over channels of the resampled clip is the mean of the resampled average).
The transform sets no thread count: it runs at whatever torch uses in the calling thread (1 in DataLoader
workers).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import torch

from openbind.errors import OpenBindInputError
from openbind.io.audio import (
    PcmReader,
    Resampler,
    SincJob,
    audio_source,
    decode_audio_source,
    is_array_pair,
    load_audio,
    resample,
    resample_sinc_ranges,
    sinc_resampled_length,
)
from openbind.io.scratch import scratch
from openbind.modalities.audio.fbank import kaldi_fbank_packed
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out

Sampler = Literal["reference", "paper"]

_FRAME_SAMPLES_MS = 25.0  # one Kaldi frame: shorter input gives no frame at all


def reference_clip_times(duration: float, clip_duration: float, clips: int) -> list[tuple[Fraction, Fraction]]:
    """pytorchvideo's ConstantClipsPerVideoSampler as the reference uses it, in its exact rational arithmetic.

    Clip i starts at i * max(duration - clip_duration, 0) / max(clips - 1, 1) and lasts clip_duration (its end
    may pass the end of the audio: the slice then just stops there).
    """
    clip = Fraction(clip_duration)
    step = Fraction(max(duration - clip_duration, 0.0)) / max(clips - 1, 1)
    return [(step * i, step * i + clip) for i in range(clips)]


def clip_sample_ranges(
    num_samples: int, sample_rate: int, clip_duration: float, clips: int, sampler: Sampler = "reference"
) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of the clips of a `num_samples`-long waveform at `sample_rate`.

    "reference": `clips` clips spread evenly (overlapping when the audio is shorter than clips * clip_duration),
    samples [int(start * sr), int(end * sr)) clamped to the audio, exactly as the reference slices them.
    "paper": ceil(duration / clip_duration) consecutive clips that cover the whole input; the last one is aligned
    to the end of the audio (overlapping its neighbour) rather than zero-padded, so every clip holds only real
    audio; `clips` is ignored. Audio shorter than one clip gives clips of all of it: `clips` identical ones
    ("reference"), one ("paper").
    """
    if sampler == "reference":
        # reference_clip_times' rationals, int(t * sample_rate), in Python integers (Fractions cost ~40 us a file)
        step_num, step_den = max(num_samples / sample_rate - clip_duration, 0.0).as_integer_ratio()
        step_den *= max(clips - 1, 1)
        clip_num, clip_den = Fraction(clip_duration).as_integer_ratio()
        ranges = []
        for i in range(clips):
            start = i * step_num * sample_rate // step_den
            stop = (i * step_num * clip_den + clip_num * step_den) * sample_rate // (step_den * clip_den)
            ranges.append((start, min(stop, num_samples)))
        return ranges
    if sampler == "paper":
        clip_len = round(clip_duration * sample_rate)
        count = max(1, math.ceil(num_samples / clip_len))
        starts = [i * clip_len for i in range(count - 1)] + [max(num_samples - clip_len, 0)]
        return [(s, min(s + clip_len, num_samples)) for s in starts]
    raise ValueError(f"sampler must be 'reference' or 'paper', got {sampler!r}")


@dataclass
class AudioTransform:
    """Callable turning one audio item into normalized log-mel clips [clips, 1, num_mel_bins, target_length].

    `resampler`: "sinc" reproduces the reference (torchaudio's default resampler); "soxr" is libsoxr HQ.
    `reference_inplace_mean=True` reproduces a side effect of the reference: it subtracts each clip's mean in
    place on the shared 16 kHz waveform, so when clips overlap (audio shorter than clips * clip_duration) a later
    clip sees samples already shifted by an earlier clip's mean. The default (False) subtracts each clip's own
    mean from a copy; it differs from the reference only on overlapping clips, by up to ~0.2 in normalized
    units, in near-silent mel bins (0.21 on the reference's 5 s chirp; 0.035 on a 3 s FLAC).
    """

    sample_rate: int = 16000
    clip_duration: float = 2.0
    clips_per_file: int = 3
    sampler: Sampler = "reference"
    resampler: Resampler = "sinc"
    num_mel_bins: int = 128
    target_length: int = 204
    mean: float = -4.268
    std: float = 9.138
    reference_inplace_mean: bool = False

    def __post_init__(self) -> None:
        if self.sampler not in ("reference", "paper"):
            raise ValueError(f"sampler must be 'reference' or 'paper', got {self.sampler!r}")
        if self.resampler not in ("sinc", "soxr"):
            raise ValueError(f"resampler must be 'sinc' or 'soxr', got {self.resampler!r}")
        sizes = (self.clips_per_file, self.clip_duration, self.sample_rate, self.num_mel_bins, self.target_length)
        if min(sizes) <= 0 or self.std == 0:
            raise ValueError(
                "clips_per_file, clip_duration, sample_rate, num_mel_bins, target_length must be positive and std "
                "non-zero"
            )

    @property
    def fixed_output_shape(self) -> tuple[int, ...] | None:
        """The output shape whatever the file (None with the paper's sampler, whose clip count varies)."""
        if self.sampler == "paper":
            return None
        return (self.clips_per_file, 1, self.num_mel_bins, self.target_length)

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a float32 tensor of the output's shape to write into (e.g. one row of a batch in shared memory,
        which then reaches a DataLoader's main process without a copy)."""
        features = self._features([self._clips(item, reuse=True)], out)
        # Normalized log-mels are bounded, so a finite sum means every value is finite (cheaper than isfinite).
        if not torch.isfinite(features.sum()):
            raise OpenBindInputError(
                item, "its power spectrum overflows float32 (samples far beyond the [-1, 1] of float audio)"
            )
        return features

    def batch(self, items: Any, on_error: OnError = "raise") -> torch.Tensor | BatchResult:
        """[N, clips, 1, mel, frames] for many items.

        Item by item, so that every work buffer is reused and stays in cache (one fbank call over the clips of
        16 files is slower per file than 16 calls), each written into its row of the batch where the clip
        count is fixed.
        """
        items = _as_items(items)
        if self.fixed_output_shape is not None:
            return map_items(self, items, on_error)
        features: list[torch.Tensor] = []

        def prepare(item: Any) -> torch.Tensor:
            features.append(self(item))
            return torch.tensor(len(features) - 1)

        result = map_items(prepare, items, on_error)
        counts = [f.shape[0] for f in features]
        if len(set(counts)) > 1:
            raise OpenBindInputError(
                f"batch of {len(items)} audio items",
                f"files give different clip counts {counts} with sampler='paper'; transform them one by one",
            )
        stacked = torch.stack(features) if features else torch.empty(0)
        if isinstance(result, BatchResult):
            result.tensor = stacked
            return result
        return stacked

    def clips(self, item: Any) -> list[torch.Tensor]:
        """The mean-subtracted 1-D clips of channel 0 at `sample_rate`, ready for the fbank."""
        return self._clips(item, reuse=False)

    def _clips(self, item: Any, reuse: bool) -> list[torch.Tensor]:
        """`clips`; with `reuse`, in per-thread work buffers that the next call overwrites."""
        if is_array_pair(item):
            waveform, rate = load_audio(item)
        else:
            source = audio_source(item)
            clips = self._clips_from_pcm(source, reuse)
            if clips is not None:
                return clips
            waveform, rate = decode_audio_source(item, source)
        # Row 0: channel 0 (what the fbank reads); last row: the channel average (what the mean is taken of).
        signals = waveform[:1] if waveform.shape[0] == 1 else torch.stack([waveform[0], waveform.mean(0)])
        if rate == self.sample_rate:
            signals = signals.clone()
        elif self.resampler == "soxr":
            signals = resample(signals, rate, self.sample_rate, "soxr")
        else:
            signals = self._resample_used(signals, rate)
        if signals.shape[1] < self._frame_samples:
            warnings.warn(
                f"{_name(item)}: {signals.shape[1]} samples at {self.sample_rate} Hz is shorter than one 25 ms "
                f"fbank frame; padded with silence to {self._frame_samples} samples",
                stacklevel=3,
            )
            signals = torch.nn.functional.pad(signals, (0, self._frame_samples - signals.shape[1]))
        return self._cut(signals)

    def _clips_from_pcm(self, source: str | bytes, reuse: bool) -> list[torch.Tensor] | None:
        """`clips` reading only the input samples the clips need, straight into the resampler's buffer, for
        integer PCM that libsndfile reads (WAV, FLAC, ...); None where that does not apply (the general path then
        gives the same numbers). It does what `clips` does, minus the work on samples no clip reads."""
        if self.reference_inplace_mean:
            return None
        reader = PcmReader.open(source)
        if reader is None:
            return None
        with reader:
            rate, frames = reader.sample_rate, reader.frames
            rows = 1 if reader.channels == 1 else 2  # channel 0 (what the fbank reads), the channel average
            if rate != self.sample_rate and self.resampler == "soxr":  # soxr filters the whole signal
                signals = torch.empty(frames, rows)
                if not reader.read_signals(0, frames, signals[:, 0], signals[:, 1] if rows == 2 else None):
                    return None
                signals = resample(signals.T, rate, self.sample_rate, "soxr")
                return self._cut(signals) if signals.shape[1] >= self._frame_samples else None
            length = frames if rate == self.sample_rate else sinc_resampled_length(frames, rate, self.sample_rate)
            ranges = self._ranges(length)
            if length < self._frame_samples or any(stop <= start for start, stop in ranges):
                return None
            merged = _merge(ranges)
            if rate == self.sample_rate:
                parts = [torch.empty(rows, stop - start) for start, stop in merged]
                for (start, stop), part in zip(merged, parts):
                    if not reader.read_signals(start, stop, part[0], part[1] if rows == 2 else None):
                        return None
                signal = lambda row, index: parts[index][row]  # noqa: E731
            else:
                job = SincJob(rate, self.sample_rate, merged, rows)
                for index in range(len(merged)):
                    lo, hi, first = job.slot(0, index, frames)
                    mean = job.slot(1, index, frames)[2] if rows == 2 else None
                    if not reader.read_signals(lo, hi, first, mean):
                        return None
                job.run()
                signal = job.output
        clips = []
        for number, (start, stop) in enumerate(ranges):
            index = next(i for i, (lo, hi) in enumerate(merged) if lo <= start and stop <= hi)
            offset = merged[index][0]
            mean = signal(rows - 1, index)[start - offset : stop - offset].mean()
            clip = scratch(f"audio_clip{number}", (stop - start,)) if reuse else torch.empty(stop - start)
            clips.append(torch.sub(signal(0, index)[start - offset : stop - offset], mean, out=clip))
        return clips

    @property
    def _frame_samples(self) -> int:
        return int(self.sample_rate * _FRAME_SAMPLES_MS * 0.001)

    def _ranges(self, num_samples: int) -> list[tuple[int, int]]:
        return clip_sample_ranges(num_samples, self.sample_rate, self.clip_duration, self.clips_per_file, self.sampler)

    def _resample_used(self, signals: torch.Tensor, rate: int) -> torch.Tensor:
        """The full-length resampled signals, computed only where a clip will read them (zeros elsewhere)."""
        length = sinc_resampled_length(signals.shape[1], rate, self.sample_rate)
        out = signals.new_zeros(signals.shape[0], length)
        ranges = _merge(self._ranges(length))
        for (start, stop), part in zip(ranges, resample_sinc_ranges(signals, rate, self.sample_rate, ranges)):
            out[:, start:stop] = part
        return out

    def _cut(self, signals: torch.Tensor) -> list[torch.Tensor]:
        clips = []
        for start, stop in self._ranges(signals.shape[1]):
            segment = signals[:, start:stop]
            mean = segment[-1].mean()
            if self.reference_inplace_mean:
                segment -= mean
                clips.append(segment[0].clone())
            else:
                clips.append(segment[0] - mean)
        return clips

    def _features(self, prepared: list[list[torch.Tensor]], out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalized, padded/cropped log-mel [all clips, 1, mel, target_length] from one fbank call, written
        into `out` when given."""
        waveforms = [clip for clips in prepared for clip in clips]
        features, counts = kaldi_fbank_packed(
            waveforms, sample_rate=self.sample_rate, num_mel_bins=self.num_mel_bins, workspace=True
        )
        features = features.T  # [mel, frames of all clips]
        padding = (features.new_zeros(()) - self.mean) / self.std  # the log-domain zeros, normalized
        shape = (len(counts), 1, self.num_mel_bins, self.target_length)
        if out is None:
            out = padding.expand(shape).clone()
        else:
            writable_out(out, shape).copy_(padding.expand(shape))
        # The reference normalizes after padding, (x - mean) / std: the same two roundings per value.
        if len(set(counts)) == 1:  # the usual case: one pass for all clips
            frames = min(counts[0], self.target_length)
            clips = features.view(self.num_mel_bins, len(counts), counts[0])[:, :, :frames].transpose(0, 1)
            torch.sub(clips, self.mean, out=out[:, 0, :, :frames]).div_(self.std)
        else:
            for row, clip in zip(out, features.split(counts, dim=1)):
                frames = min(clip.shape[1], self.target_length)
                torch.sub(clip[:, :frames], self.mean, out=row[0, :, :frames]).div_(self.std)
        return out


def load_audios(
    items: Any, *, transform: AudioTransform | None = None, on_error: OnError = "raise"
) -> torch.Tensor | BatchResult:
    """Audio files/bytes/file objects/(array, sample_rate) pairs -> [N, clips, 1, 128, 204] model input.

    With `on_error="skip"` bad items are reported in the returned BatchResult instead of raising.
    """
    return (transform or AudioTransform()).batch(items, on_error)


def _as_items(items: Any) -> list[Any]:
    if is_array_pair(items) or hasattr(items, "read"):
        return [items]
    return as_item_list(items, (str, bytes, bytearray, memoryview, os.PathLike))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of [start, stop) ranges as sorted disjoint ranges."""
    merged: list[list[int]] = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def _name(item: Any) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return "in-memory audio" if is_array_pair(item) else f"audio {type(item).__name__}"
