"""Audio decoding and transform: parity with the ImageBind reference, formats, bad input, batches."""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pytest
import soundfile
import torch

from openbind.errors import OpenBindInputError
from openbind.io.audio import (
    dense_sinc_kernel,
    load_audio,
    resample,
    resample_sinc_range,
    resample_sinc_ranges,
    sinc_resampled_length,
)
from openbind.modalities.audio.fbank import kaldi_fbank, mel_filterbank
from openbind.modalities.audio.transform import (
    AudioTransform,
    clip_sample_ranges,
    load_audios,
    reference_clip_times,
)
from openbind.modalities.batch import BatchResult

PARITY = 1e-3  # max |ours - reference| in normalized units
# The clean default subtracts each clip's own mean; the reference's in-place subtraction leaks earlier clips'
# means into overlapping later clips. That changes only near-silent mel bins: worst case 0.21 (5 s chirp).
CLEAN_OVERLAP_TOLERANCE = 0.25
AUDIO_SHAPE = (3, 1, 128, 204)


def _tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """[channels, samples] float32: a tone plus a little noise (different per channel)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    rows = [0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) + 0.01 * rng.standard_normal(t.size) for c in range(channels)]
    return np.stack(rows).astype(np.float32)


def _overlaps_earlier(ranges: list[tuple[int, int]], i: int) -> bool:
    start, stop = ranges[i]
    return any(a < stop and start < b for a, b in ranges[:i])


# ---------------------------------------------------------------- parity with the reference fixture


def test_inplace_option_matches_reference_everywhere(preprocess_fixture, preprocess_inputs):
    transform = AudioTransform(reference_inplace_mean=True)
    for name, expected in preprocess_fixture["audio"].items():
        out = transform(preprocess_inputs / name)
        assert out.shape == expected.shape == AUDIO_SHAPE
        assert (out - expected).abs().max().item() <= PARITY, name


def test_clean_default_matches_reference_where_clips_do_not_overlap(preprocess_fixture, preprocess_inputs):
    transform = AudioTransform()
    checked_exact = 0
    for name, expected in preprocess_fixture["audio"].items():
        debug = preprocess_fixture["audio_debug"][name]
        ranges = [tuple(r) for r in debug["clip_sample_ranges"]]
        error = (transform(preprocess_inputs / name) - expected).abs().amax(dim=(1, 2, 3))
        for i, clip_error in enumerate(error.tolist()):
            if _overlaps_earlier(ranges, i):
                # The reference's own measure of this effect, plus our parity budget.
                assert clip_error <= debug["max_abs_diff_vs_no_inplace_variant"] + PARITY, (name, i)
                assert clip_error <= CLEAN_OVERLAP_TOLERANCE, (name, i)
            else:
                assert clip_error <= PARITY, (name, i)
                checked_exact += 1
    assert checked_exact >= 9  # every file's first clip and the 10 s file's three


def test_clean_and_inplace_differ_only_on_overlapping_clips(preprocess_inputs):
    path = preprocess_inputs / "synth_chirp_5s_8k_mono.wav"
    clean, inplace = AudioTransform()(path), AudioTransform(reference_inplace_mean=True)(path)
    assert torch.equal(clean[0], inplace[0])
    assert (clean[1] - inplace[1]).abs().max() > 0.1


@pytest.mark.parametrize("inplace", [False, True])
def test_batch_equals_per_file(preprocess_fixture, preprocess_inputs, inplace):
    names = list(preprocess_fixture["audio"])
    transform = AudioTransform(reference_inplace_mean=inplace)
    batch = load_audios([preprocess_inputs / n for n in names], transform=transform)
    assert batch.shape == (len(names), *AUDIO_SHAPE)
    for row, name in zip(batch, names):
        assert torch.equal(row, transform(preprocess_inputs / name))
    if not inplace:
        return
    expected = torch.stack([preprocess_fixture["audio"][n] for n in names])
    assert (batch - expected).abs().max() <= PARITY


def test_fbank_matches_reference_prenorm(preprocess_fixture):
    """kaldi_fbank alone, on the reference's own 16 kHz clips (first clip: nothing mutated it yet)."""
    for name, debug in preprocess_fixture["audio_debug"].items():
        start, stop = debug["clip_sample_ranges"][0]
        clip = debug["waveform_16k_before_clip_mutation"][:, start:stop]
        clip = clip - clip.mean()
        (features,) = kaldi_fbank([clip[0]])
        frames = debug["fbank_n_frames_before_pad"][0]
        assert features.shape == (frames, 128)
        expected = debug["fbank_prenorm_first_clip"]
        assert (features.T - expected[:, :frames]).abs().max() <= PARITY, name
        assert torch.all(expected[:, frames:] == 0)


def test_fbank_prenorm_all_clips_with_inplace_option(preprocess_fixture, preprocess_inputs):
    transform = AudioTransform(reference_inplace_mean=True)
    for name, debug in preprocess_fixture["audio_debug"].items():
        prenorm = transform(preprocess_inputs / name) * transform.std + transform.mean
        assert (prenorm - debug["fbank_prenorm_all_clips"]).abs().max() <= PARITY * transform.std, name


def test_fbank_equals_a_direct_dense_computation():
    """The banded mel product and the fused padding only reorder float32 work: same features to ~1e-5."""
    clip = torch.from_numpy(_tone(1.0, 16000, seed=3)[0])
    frames = clip.as_strided((98, 400), (160, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - 0.97 * previous) * torch.hann_window(400, periodic=False)
    power = torch.fft.rfft(frames, n=512).abs().pow(2)
    expected = power.mm(mel_filterbank(128, 512, 16000, 20.0, 0.0)).clamp_min(torch.finfo(torch.float32).eps).log()
    (features,) = kaldi_fbank([clip])
    assert (features - expected).abs().max() < 1e-4


def test_fbank_frame_counts():
    features = kaldi_fbank([torch.zeros(32000), torch.zeros(16000), torch.zeros(400), torch.zeros(399)])
    assert [f.shape[0] for f in features] == [198, 98, 1, 0]
    assert [f.shape for f in kaldi_fbank([torch.zeros(10)])] == [(0, 128)]
    assert kaldi_fbank([]) == []
    strided = torch.arange(64000.0).sin()[::2]  # not contiguous
    assert torch.equal(kaldi_fbank([strided])[0], kaldi_fbank([strided.contiguous()])[0])


def test_decoding_equals_reference_reader(preprocess_fixture, preprocess_inputs):
    for name, debug in preprocess_fixture["audio_debug"].items():
        waveform, rate = load_audio(preprocess_inputs / name)
        assert tuple(waveform.shape) == tuple(debug["loaded_shape(channels,samples)"])
        assert rate == debug["loaded_sr"] and waveform.dtype == torch.float32
        assert torch.equal(waveform[:, :8], debug["loaded_first_8_samples"])


def test_resampler_matches_reference_waveforms(preprocess_fixture, preprocess_inputs):
    rates = set()
    for name, debug in preprocess_fixture["audio_debug"].items():
        waveform, rate = load_audio(preprocess_inputs / name)
        expected = debug["waveform_16k_before_clip_mutation"]
        out = resample(waveform, rate, 16000)
        assert out.shape == expected.shape
        assert sinc_resampled_length(waveform.shape[1], rate, 16000) == debug["resampled_waveform_len"]
        assert (out - expected).abs().max() <= 1e-5, name
        rates.add(rate)
    assert {8000, 44100, 48000} <= rates


@pytest.mark.parametrize("rate", [8000, 22050, 32000, 44100, 48000, 96000])
def test_compact_resampler_equals_the_dense_reference_kernel(rate):
    """Bit for bit, short inputs included: near-silent mel bins hold the resampler's float32 rounding, so a
    resampler that only rounds differently (float64 sums, say) misses the reference by up to 1.5e-3 there."""
    for seconds in (0.5, 0.01, 0.0002, 2.3):
        waveform = torch.from_numpy(_tone(seconds, rate, channels=2))
        kernel, width = dense_sinc_kernel(rate, 16000)
        orig = kernel.shape[-1] - 2 * width
        padded = torch.nn.functional.pad(waveform, (width, width + orig))
        dense = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig).transpose(1, 2).reshape(2, -1)
        out = resample(waveform, rate, 16000)
        assert torch.equal(out, dense[:, : out.shape[1]]), seconds


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 44099])
def test_resampled_range_equals_slice_of_full(rate):
    waveform = torch.from_numpy(_tone(0.7, rate, channels=2))
    full = resample(waveform, rate, 16000)
    assert full.shape[1] == math.ceil(waveform.shape[1] * 16000 / rate)
    ranges = [(0, 100), (1234, 5678), (5000, 5001), (full.shape[1] - 50, full.shape[1])]
    for (start, stop), part in zip(ranges, resample_sinc_ranges(waveform, rate, 16000, ranges)):
        assert torch.allclose(part, full[:, start:stop], atol=1e-6)
        assert torch.allclose(resample_sinc_range(waveform, rate, 16000, start, stop), part, atol=1e-6)


def test_resampler_keeps_a_tone_and_removes_aliases():
    rate = 44100
    t = torch.arange(rate) / rate
    out = resample(torch.sin(2 * torch.pi * 1000 * t)[None], rate, 16000)[0, 1000:-1000]
    expected = torch.sin(2 * torch.pi * 1000 * (torch.arange(16000) / 16000))[1000:-1000]
    assert (out - expected).abs().max() < 2e-3
    alias = resample(torch.sin(2 * torch.pi * 12000 * t)[None], rate, 16000)[0, 1000:-1000]
    assert alias.abs().max() < 1e-2  # 12 kHz is above the new Nyquist: filtered out, not folded to 4 kHz


def test_reference_sampler_time_points(preprocess_fixture):
    for name, debug in preprocess_fixture["audio_debug"].items():
        n = debug["resampled_waveform_len"]
        times = reference_clip_times(n / 16000, 2.0, 3)
        exact = [(Fraction(a), Fraction(b)) for a, b in debug["clip_timepoints_exact"]]
        assert times == exact, name
        assert clip_sample_ranges(n, 16000, 2.0, 3) == [
            (a, min(b, n)) for a, b in debug["clip_sample_ranges"]
        ], name


def test_reference_sample_ranges_are_the_exact_rational_ones():
    rng = np.random.default_rng(0)
    lengths = [1, 399, 32000, 32001, 96000, 160000] + rng.integers(1, 500_000, 200).tolist()
    for n in lengths:
        for rate, clip, clips in [(16000, 2.0, 3), (16000, 2, 5), (16000, 1.7, 1), (22050, 0.3, 4)]:
            times = reference_clip_times(n / rate, clip, clips)
            expected = [(int(a * rate), min(int(b * rate), n)) for a, b in times]
            assert clip_sample_ranges(n, rate, clip, clips) == expected, (n, rate, clip, clips)


def test_reference_sampler_clip_count_is_configurable():
    assert clip_sample_ranges(16000 * 10, 16000, 2.0, 5) == [(i * 32000, i * 32000 + 32000) for i in range(5)]
    assert clip_sample_ranges(16000 * 10, 16000, 2.0, 1) == [(0, 32000)]
    out = AudioTransform(clips_per_file=5)((_tone(4.0, 16000), 16000))
    assert out.shape == (5, 1, 128, 204)
    # A clip of a non-integer number of samples: clips of one file may differ by a sample.
    lengths = {b - a for a, b in clip_sample_ranges(50000, 16000, 1 / 3, 4)}
    assert lengths == {5333, 5334}
    out = AudioTransform(clip_duration=1 / 3, clips_per_file=4)((_tone(50000 / 16000, 16000), 16000))
    assert out.shape == (4, 1, 128, 204) and torch.isfinite(out).all()


def test_paper_sampler_covers_the_whole_input():
    assert clip_sample_ranges(80000, 16000, 2.0, 3, "paper") == [(0, 32000), (32000, 64000), (48000, 80000)]
    assert clip_sample_ranges(64000, 16000, 2.0, 3, "paper") == [(0, 32000), (32000, 64000)]
    assert clip_sample_ranges(16000, 16000, 2.0, 3, "paper") == [(0, 16000)]
    assert AudioTransform(sampler="paper")((_tone(5.0, 16000), 16000)).shape == (3, 1, 128, 204)
    assert AudioTransform(sampler="paper")((_tone(1.0, 16000), 16000)).shape == (1, 1, 128, 204)


def test_paper_sampler_batch_with_different_clip_counts_raises():
    items = [(_tone(1.0, 16000), 16000), (_tone(5.0, 16000), 16000)]
    with pytest.raises(OpenBindInputError, match="different clip counts"):
        load_audios(items, transform=AudioTransform(sampler="paper"))


# ---------------------------------------------------------------- formats


def _write(path, data: np.ndarray, rate: int, **kwargs) -> None:
    soundfile.write(path, data.T, rate, **kwargs)


@pytest.mark.parametrize(
    ("suffix", "subtype", "atol"),
    [(".wav", "PCM_16", 1 / 32768), (".wav", "PCM_24", 1 / 2**23), (".flac", "PCM_16", 1 / 32768)],
)
def test_lossless_formats_decode_to_the_samples(tmp_path, suffix, subtype, atol):
    data = _tone(0.5, 22050, channels=2)
    path = tmp_path / f"x{suffix}"
    _write(path, data, 22050, subtype=subtype)
    waveform, rate = load_audio(path)
    assert rate == 22050 and waveform.shape == data.shape
    assert np.abs(waveform.numpy() - data).max() <= atol
    reference_reader, _ = soundfile.read(path, dtype="float32", always_2d=True)  # what the reference used
    assert np.array_equal(waveform.numpy(), reference_reader.T)


def test_ogg_vorbis(tmp_path):
    data = _tone(1.0, 22050)
    _write(tmp_path / "x.ogg", data, 22050, format="OGG", subtype="VORBIS")
    waveform, rate = load_audio(tmp_path / "x.ogg")
    assert rate == 22050 and waveform.shape == data.shape
    assert np.corrcoef(waveform[0].numpy(), data[0])[0, 1] > 0.99


def _write_aac(path, data: np.ndarray, rate: int, container: str, video: bool = False) -> None:
    import av

    with av.open(str(path), "w", format=container) as out:
        if video:
            vstream = out.add_stream("mpeg4", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream("aac", rate=rate)
        astream.layout = "mono" if data.shape[0] == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=astream.layout.name)
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*astream.encode(frame), *astream.encode(None)]:
            out.mux(packet)
        if video:
            for i in range(10):
                image = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
                image.pts = i
                for packet in vstream.encode(image):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)


@pytest.mark.parametrize(("name", "container", "video"), [("x.m4a", "ipod", False), ("x.mp4", "mp4", True)])
def test_aac_via_pyav(tmp_path, name, container, video):
    data = _tone(1.0, 22050, channels=2)
    _write_aac(tmp_path / name, data, 22050, container, video)
    waveform, rate = load_audio(tmp_path / name)
    assert rate == 22050 and waveform.shape[0] == 2
    assert abs(waveform.shape[1] - data.shape[1]) <= 2048  # AAC priming/padding
    assert 0.25 < waveform.abs().max() < 0.4
    out = AudioTransform()(tmp_path / name)
    assert out.shape == AUDIO_SHAPE and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "suffix", "seconds"),
    [
        (44100, 2, "PCM_16", ".wav", 7.3),
        (44100, 1, "PCM_16", ".wav", 3.1),
        (44100, 2, "PCM_16", ".wav", 1.5),
        (16000, 2, "PCM_16", ".wav", 8.0),
        (48000, 3, "PCM_24", ".wav", 6.5),
        (22050, 2, "PCM_U8", ".wav", 9.0),
        (32000, 2, "PCM_16", ".flac", 12.0),
    ],
)
def test_partial_pcm_reading_equals_decoding_the_whole_file(tmp_path, rate, channels, subtype, suffix, seconds):
    """Integer PCM is read only where the clips need it, straight into the resampler: the same clips as
    decoding the whole file (the array path), bit for bit, for both samplers and both resamplers."""
    path = tmp_path / f"x{suffix}"
    _write(path, _tone(seconds, rate, channels=channels), rate, subtype=subtype)
    waveform, sample_rate = load_audio(path)
    for options in ({}, {"sampler": "paper"}, {"resampler": "soxr"}):
        transform = AudioTransform(**options)
        fast, whole = transform.clips(path), transform.clips((waveform.numpy(), sample_rate))
        assert len(fast) == len(whole) and all(torch.equal(a, b) for a, b in zip(fast, whole)), options
        assert torch.equal(transform(path), transform((waveform.numpy(), sample_rate)))


def test_truncated_pcm_file_reads_what_is_there(tmp_path):
    path = tmp_path / "x.wav"
    _write(path, _tone(5.0, 44100, channels=2), 44100, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-40000])  # the header still says 5 s
    waveform, rate = load_audio(path)
    assert torch.equal(AudioTransform()(path), AudioTransform()((waveform.numpy(), rate)))


def test_results_do_not_share_work_buffers(tmp_path):
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    _write(first, _tone(4.0, 44100, freq=300), 44100, subtype="PCM_16")
    _write(second, _tone(6.0, 44100, freq=900, channels=2), 44100, subtype="PCM_16")
    transform = AudioTransform()
    out, clips = transform(first), transform.clips(first)
    kept = out.clone(), [c.clone() for c in clips]
    transform(second), transform.clips(second), load_audios([second, second])
    assert torch.equal(out, kept[0]) and all(torch.equal(a, b) for a, b in zip(clips, kept[1]))


def test_path_bytes_file_object_and_array_agree(tmp_path):
    data = _tone(2.5, 44100)
    path = tmp_path / "x.wav"
    _write(path, data, 44100, subtype="FLOAT")
    transform = AudioTransform()
    expected = transform(path)
    assert torch.equal(transform(str(path)), expected)
    assert torch.equal(transform(path.read_bytes()), expected)
    with open(path, "rb") as f:
        assert torch.equal(transform(f), expected)
    assert torch.equal(transform(io.BytesIO(path.read_bytes())), expected)
    assert torch.equal(transform((data, 44100)), expected)
    assert torch.equal(transform((torch.from_numpy(data), 44100)), expected)
    assert torch.equal(transform((data[0], 44100)), expected)  # 1-D = mono


def test_integer_pcm_arrays_are_scaled():
    pcm = (np.sin(np.arange(16000) / 10) * 20000).astype(np.int16)
    waveform, _ = load_audio((pcm, 16000))
    assert torch.allclose(waveform[0], torch.from_numpy(pcm / 32768.0).float())
    waveform, _ = load_audio(((pcm.astype(np.int32) << 16), 16000))
    assert torch.allclose(waveform[0], torch.from_numpy(pcm / 32768.0).float())


def test_stereo_uses_channel_zero_not_a_downmix():
    left, right = _tone(6.0, 16000, freq=300, seed=1)[0], _tone(6.0, 16000, freq=2500, seed=2)[0]
    transform = AudioTransform()
    stereo = transform((np.stack([left, right]), 16000))
    assert (stereo - transform((left, 16000))).abs().max() <= PARITY
    assert (stereo - transform((right, 16000))).abs().max() > 1.0
    assert (stereo - transform(((left + right) / 2, 16000))).abs().max() > 1.0


def test_stereo_mean_is_taken_over_both_channels():
    """The fbank hides a constant shift (it removes each frame's DC), so look at the clip before it."""
    left = _tone(2.0, 16000)[0] + 0.5
    (clip,) = AudioTransform(clips_per_file=1).clips((np.stack([left, left + 1.0]), 16000))
    assert abs(clip.mean().item() - (-0.5)) < 1e-4  # left minus the mean of both channels


# ---------------------------------------------------------------- short, silent, bad input


@pytest.mark.parametrize(("samples", "rate"), [(100, 16000), (150, 8000), (1, 44100)])
def test_shorter_than_one_frame_warns_and_pads(samples, rate):
    with pytest.warns(UserWarning, match="shorter than one 25 ms"):
        out = AudioTransform()((_tone(1.0, rate)[:, :samples], rate))
    assert out.shape == AUDIO_SHAPE and torch.isfinite(out).all()
    assert torch.allclose(out[..., 1:], torch.tensor(4.268 / 9.138))  # one frame, then log-domain padding


def test_silence_is_finite():
    out = AudioTransform()((np.zeros((2, 16000 * 3), np.float32), 16000))
    assert torch.isfinite(out).all()
    floor = (math.log(torch.finfo(torch.float32).eps) + 4.268) / 9.138
    assert torch.allclose(out[..., :198], torch.tensor(floor), atol=1e-5)
    assert torch.allclose(out[..., 198:], torch.tensor(4.268 / 9.138))


def test_amplitude_that_overflows_the_filterbank_is_refused_not_returned_as_inf(tmp_path):
    loud = _tone(1.0, 16000) * 32768  # int16-scale floats: still finite (the log-mel only shifts)
    assert torch.isfinite(AudioTransform()((loud, 16000))).all()
    huge = np.array([7.2105396e20], np.float32)  # found by the fuzz test: power spectrum > float32 max
    with pytest.raises(OpenBindInputError, match=r"array\(\[7.21.*overflows float32"):
        AudioTransform()((huge, 1))
    path = tmp_path / "huge_float.wav"
    _write(path, _tone(1.0, 16000) * 1e20, 16000, subtype="FLOAT")
    with pytest.raises(OpenBindInputError, match="huge_float.wav.*overflows float32"):
        AudioTransform()(path)


def test_one_second_clips_are_identical_and_padded(preprocess_inputs):
    out = AudioTransform()(preprocess_inputs / "synth_sine_1s_16k_mono.wav")
    assert torch.allclose(out[0], out[1], atol=1e-4) and torch.allclose(out[0], out[2], atol=1e-4)
    assert torch.allclose(out[..., 98:], torch.tensor(4.268 / 9.138))


def _bad_items(tmp_path):
    wav = tmp_path / "good.wav"
    _write(wav, _tone(1.0, 16000), 16000, subtype="PCM_16")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "truncated.wav").write_bytes(wav.read_bytes()[:30])
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + np.random.default_rng(0).bytes(4000))
    (tmp_path / "notes.txt").write_text("not audio at all\n" * 20)
    no_audio = tmp_path / "silent_video.mp4"
    _write_video_only(no_audio)
    nan = _tone(1.0, 16000)
    nan[0, 100] = np.nan
    inf = _tone(1.0, 16000)
    inf[0, 5] = np.inf
    text_file = open(wav, "r")  # noqa: SIM115 - closed by the caller
    return {
        "missing": (tmp_path / "missing.wav", "no such"),
        "empty file": (tmp_path / "empty.wav", "empty"),
        "empty bytes": (b"", "0 bytes"),
        "truncated": (tmp_path / "truncated.wav", "cannot decode"),
        "corrupt": (tmp_path / "corrupt.wav", "cannot decode"),
        "corrupt bytes": (b"\x00\x01garbage" * 100, "cannot decode"),
        "not audio": (tmp_path / "notes.txt", "cannot decode"),
        "no audio stream": (no_audio, "no audio stream"),
        "text-mode file": (text_file, "binary mode"),
        "zero channels": ((np.zeros((0, 100), np.float32), 16000), "no channels"),
        "zero samples": ((np.zeros(0, np.float32), 16000), "no samples"),
        "nan": ((nan, 16000), "NaN"),
        "inf": ((inf, 16000), "infinite"),
        "3-d array": ((np.zeros((1, 2, 100), np.float32), 16000), "must be"),
        "transposed": ((np.zeros((16000, 2), np.float32), 16000), "transposed"),
        "complex": ((np.zeros(100, np.complex64), 16000), "dtype"),
        "bool": ((np.zeros(100, bool), 16000), "dtype"),
        "zero rate": ((np.zeros(100, np.float32), 0), "sample rate"),
        "fractional rate": ((np.zeros(100, np.float32), 44100.5), "sample rate"),
        "string rate": ((np.zeros(100, np.float32), "16k"), "sample rate"),
        "bare array": (np.zeros(100, np.float32), "unsupported"),
        "int": (5, "unsupported"),
    }


def _write_video_only(path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            image.pts = i
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_each_bad_input_raises_openbind_input_error(tmp_path):
    cases = _bad_items(tmp_path)
    try:
        for label, (item, reason) in cases.items():
            with pytest.raises(OpenBindInputError, match=reason) as raised:
                AudioTransform()(item)
            assert raised.type is OpenBindInputError, label
    finally:
        cases["text-mode file"][0].close()


def test_bad_options_raise():
    with pytest.raises(ValueError):
        AudioTransform(sampler="random")
    with pytest.raises(ValueError):
        AudioTransform(resampler="linear")
    with pytest.raises(ValueError):
        load_audios([(_tone(1.0, 16000), 16000)], on_error="ignore")


def test_batch_skip_keeps_good_items_and_reports_bad_ones(tmp_path):
    good = tmp_path / "good.wav"
    _write(good, _tone(3.0, 44100), 44100, subtype="PCM_16")
    items = [good, tmp_path / "missing.wav", (_tone(1.0, 16000), 16000), b"junk" * 50]
    result = load_audios(items, on_error="skip")
    assert isinstance(result, BatchResult)
    assert result.tensor.shape == (2, *AUDIO_SHAPE)
    assert result.kept == [0, 2]
    assert [f.index for f in result.failed] == [1, 3]
    assert all(isinstance(f.error, OpenBindInputError) for f in result.failed)
    assert torch.allclose(result.tensor[0], AudioTransform()(good), atol=1e-6)
    with pytest.raises(OpenBindInputError, match="batch item 1"):
        load_audios(items)


def test_batch_skip_with_only_bad_items(tmp_path):
    result = load_audios([tmp_path / "a.wav", tmp_path / "b.wav"], on_error="skip")
    assert result.tensor.numel() == 0 and result.kept == [] and len(result.failed) == 2


def test_single_items_are_batches_of_one(tmp_path):
    path = tmp_path / "x.wav"
    _write(path, _tone(2.0, 16000), 16000, subtype="PCM_16")
    assert load_audios(path).shape == (1, *AUDIO_SHAPE)
    assert load_audios(str(path)).shape == (1, *AUDIO_SHAPE)
    assert load_audios((_tone(2.0, 16000), 16000)).shape == (1, *AUDIO_SHAPE)


def test_soxr_resampler_is_close_to_the_reference_one(preprocess_inputs):
    path = preprocess_inputs / "synth_mix_10s_44k1_stereo.wav"
    sinc, soxr = AudioTransform()(path), AudioTransform(resampler="soxr")(path)
    assert soxr.shape == AUDIO_SHAPE
    assert (sinc - soxr).abs().mean() < 0.02  # differs mainly near 8 kHz, where the filters' rolloffs differ


def test_input_waveform_is_not_modified():
    data = torch.from_numpy(_tone(3.0, 16000))
    before = data.clone()
    AudioTransform(reference_inplace_mean=True)((data, 16000))
    assert torch.equal(data, before)


def test_dataloader_workers_hand_over_batches_in_shared_memory_that_match_the_transform(tmp_path):
    from torch.utils.data import DataLoader

    from openbind.data.items import ItemDataset, collate_items

    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate((0.5, 3.0, 7.5)):
        paths.append(tmp_path / f"s{i}.wav")
        soundfile.write(paths[-1], rng.normal(0, 0.1, int(44100 * seconds)).astype(np.float32), 44100)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    try:
        expected = [AudioTransform()(p) for p in paths]
    finally:
        torch.set_num_threads(threads)
    dataset = ItemDataset("audio", [paths[0], tmp_path / "missing.wav", paths[1], paths[2]], AudioTransform())
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_items))
    assert [b.kept for b in batches] == [[0], [2, 3]] and [len(b.failed) for b in batches] == [1, 0]
    assert batches[1].tensor.shape == (2, 3, 1, 128, 204)
    rows = [row for batch in batches for row in batch.tensor]
    for row, want in zip(rows, expected):
        torch.testing.assert_close(row, want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="float32 tensor of shape"):
        AudioTransform()(paths[0], out=torch.empty(2, 1, 128, 204))
    assert AudioTransform(sampler="paper").fixed_output_shape is None
