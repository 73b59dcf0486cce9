"""Video decoding and the video transform: parity with the reference, clip protocols, crops, seeking, audio,
input kinds and bad inputs. Synthetic videos are written with PyAV into tmp_path."""

from __future__ import annotations

import io
import random
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import openbind.io.video as video_io
import openbind.modalities.vision.video as video_module
from openbind.errors import OpenBindInputError
from openbind.io.video import open_video, probe_video, read_audio_track, read_video_frames
from openbind.modalities.batch import BatchResult
from openbind.modalities.vision.video import VideoTransform, load_video_with_audio, load_videos

VIDEO_FILES = ["synth_shapes_4s_320x240_25fps.mp4", "synth_short_1s_160x120_10fps.mp4"]


def write_video(
    path: Path,
    *,
    frames: int = 20,
    fps: int = 10,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    keyint: int | None = None,
    audio_rate: int | None = None,
    container_format: str | None = None,
) -> Path:
    """A small video whose frame i has a distinct brightness and a position-dependent pattern."""
    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"bf": "2", **({"g": str(keyint)} if keyint else {})}
        elif keyint:
            stream.gop_size = keyint
        audio = container.add_stream("aac", rate=audio_rate) if audio_rate else None
        if audio is not None:
            audio.layout = "stereo"
        for i in range(frames):
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[..., 0] = (i * 9) % 256
            image[..., 1] = (x * 255 // width).astype(np.uint8)
            image[..., 2] = (y * 255 // height).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            samples = int(audio_rate * frames / fps)
            tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(samples) / audio_rate)
            signal = np.stack([tone, 0.5 * tone]).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(signal[:, start : start + 1024]), format="fltp", layout="stereo"
                )
                chunk.sample_rate, chunk.pts = audio_rate, start
                for packet in audio.encode(chunk):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


# --- parity with the reference ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", VIDEO_FILES)
def test_matches_reference_output(name, preprocess_fixture, preprocess_inputs):
    out = VideoTransform()(preprocess_inputs / name)
    expected = preprocess_fixture["video"][name]
    assert out.shape == (15, 3, 2, 224, 224) and out.dtype == torch.float32
    assert (out - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", VIDEO_FILES)
def test_matches_reference_metadata_clips_and_raw_frames(name, preprocess_fixture, preprocess_inputs):
    debug = preprocess_fixture["video_debug"][name]
    transform = VideoTransform()
    with open_video(preprocess_inputs / name) as video:
        info = video.info
        assert (info.fps, info.num_frames, info.duration) == (debug["fps"], debug["num_frames"], debug["duration_s"])
        times = transform.clip_times(info.duration)
        kept = transform.clip_frame_indices(info.fps, info.num_frames)
        assert len(kept) == len(debug["clips"]) == 5
        for (start, end), indices, clip in zip(times, kept, debug["clips"]):
            assert (float(start), float(end)) == (clip["start"], clip["end"])
            first, stop = clip["frame_idx_range"]
            assert indices == [first + k for k in clip["subsample_idx_within_clip"]]
            assert np.array_equal(video.frames(indices), clip["sampled_frames_uint8_TxHxWxC"].numpy())


def test_batch_of_reference_videos(preprocess_fixture, preprocess_inputs):
    batch = load_videos([preprocess_inputs / name for name in VIDEO_FILES])
    assert batch.shape == (2, 15, 3, 2, 224, 224)
    for row, name in enumerate(VIDEO_FILES):
        assert (batch[row] - preprocess_fixture["video"][name]).abs().max().item() <= 1e-4


# --- clip protocols and crops ----------------------------------------------------------------------------


def test_reference_clip_starts_and_frame_rule():
    transform = VideoTransform()
    assert [(float(s), float(e)) for s, e in transform.clip_times(4.0)] == [
        (0.0, 2.0), (0.5, 2.5), (1.0, 3.0), (1.5, 3.5), (2.0, 4.0)
    ]
    # 1 s video: every clip is the whole video; frames 0..9, keeping the first and the last.
    assert transform.clip_frame_indices(10.0, 10) == [[0, 9]] * 5
    # frames ceil(25*0.5)=13 .. ceil(25*2.5)-1=62
    assert transform.clip_frame_indices(25.0, 100)[1] == [13, 62]
    assert VideoTransform(frames_per_clip=4).clip_frame_indices(25.0, 100)[0] == [0, 16, 32, 49]


def test_paper_protocol_covers_the_video_with_ceil_d_over_2_clips(tmp_path):
    paper = VideoTransform(protocol="paper")
    assert [(float(s), float(e)) for s, e in paper.clip_times(5.0)] == [(0.0, 2.0), (1.5, 3.5), (3.0, 5.0)]
    assert len(paper.clip_times(1.0)) == 1 and len(paper.clip_times(60.0)) == 30
    path = write_video(tmp_path / "five_seconds.mp4", frames=50)
    out = paper(path)
    assert out.shape == (9, 3, 2, 224, 224)  # 3 clips x 3 crops
    assert VideoTransform()(path).shape == (15, 3, 2, 224, 224)
    assert VideoTransform(protocol="paper", crops=1)(path).shape == (3, 3, 2, 224, 224)


def plain_reference_steps(transform: VideoTransform, frames: np.ndarray) -> torch.Tensor:
    """The reference's steps written plainly, for uint8 (clips, T, H, W, 3) frames: /255, F.interpolate of the
    whole clip, normalize, then the three crops of the longer side (start, center ceil((L-224)/2), end).
    openbind's output equals it bit for bit on torch 2.13; the tests allow 1e-6 (a few float32 ulps) for other
    torch versions' interpolation kernels."""
    clips = torch.from_numpy(frames).float().div(255).permute(0, 4, 1, 2, 3)  # (clips, 3, T, H, W)
    height, width = frames.shape[2:4]
    short = min(height, width)
    size = (height * 224 // short, width * 224 // short)
    resized = torch.stack([F.interpolate(c, size=size, mode="bilinear", align_corners=False) for c in clips])
    mean = torch.tensor(transform.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(transform.std).view(1, 3, 1, 1, 1)
    resized = (resized - mean) / std
    long, axis = max(size), (3 if size[0] > size[1] else 4)
    center = -(-(long - 224) // 2)
    starts = [center] if transform.crops == 1 else [0, center, long - 224]
    crops = [resized.narrow(axis, start, 224) for start in starts]
    return torch.stack(crops, dim=1).flatten(0, 1)


@pytest.mark.parametrize("width, height", [(64, 48), (48, 64)])
def test_long_video_under_the_paper_protocol_matches_the_plain_steps(tmp_path, width, height):
    """40 s: 20 clips, each frame decoded, resized, cropped and normalized into the output as it comes."""
    path = write_video(tmp_path / "forty_seconds.mp4", frames=80, fps=2, width=width, height=height)
    for crops in (1, 3):
        transform = VideoTransform(protocol="paper", crops=crops)
        out = transform(path)
        assert out.shape == (20 * crops, 3, 2, 224, 224)
        with open_video(path) as video:
            clips = transform.clip_frame_indices(video.info.fps, video.info.num_frames)
            frames = video.frames([i for clip in clips for i in clip]).reshape(20, 2, height, width, 3)
        torch.testing.assert_close(out, plain_reference_steps(transform, frames), rtol=0, atol=1e-6)


@pytest.mark.parametrize("per_group", [1, 3, 100])
def test_frames_resized_one_by_one_or_in_groups_give_the_same_output(tmp_path, monkeypatch, per_group):
    """Groups of 3 leave the last of the 10 frames alone in its group."""
    path = write_video(tmp_path / "v.mp4", frames=40)
    expected = VideoTransform()(path)
    monkeypatch.setattr(VideoTransform, "_frames_per_group", lambda self, height, width: per_group)
    assert torch.equal(VideoTransform()(path), expected)


def test_frames_go_one_by_one_at_one_thread_and_in_groups_at_more(monkeypatch):
    """One frame stays in the CPU's cache from decoding to the output; with more torch threads a frame is too
    little work to share out, so frames are resized together as far as the work buffer holds them."""
    previous = torch.get_num_threads()
    monkeypatch.setattr(video_module, "_FRAME_BYTES", 3 * 48 * 64 * 3 * 4)
    try:
        torch.set_num_threads(1)
        assert VideoTransform()._frames_per_group(48, 64) == 1
        torch.set_num_threads(2)
        assert VideoTransform()._frames_per_group(48, 64) == 3
        assert VideoTransform()._frames_per_group(1080, 1920) == 1
    finally:
        torch.set_num_threads(previous)


def test_frames_shared_by_clips_fill_every_place(tmp_path):
    """A 1 s video: the five 2 s clips all start at 0 and keep the same two frames."""
    path = write_video(tmp_path / "short.mp4", frames=10, fps=10)
    transform = VideoTransform()
    out = transform(path).view(5, 3, 3, 2, 224, 224)
    with open_video(path) as video:
        assert transform.clip_frame_indices(video.info.fps, video.info.num_frames) == [[0, 9]] * 5
        frames = video.frames([0, 9])[None]
    expected = plain_reference_steps(transform, frames).view(1, 3, 3, 2, 224, 224)
    torch.testing.assert_close(out, expected.expand_as(out), rtol=0, atol=1e-6)
    assert not torch.equal(out[..., 0, :, :], out[..., 1, :, :])


def test_outputs_never_share_the_work_buffers_of_later_calls(tmp_path):
    """Frames are decoded and resized in per-thread work buffers: what a call returns must stay as it was."""
    first, second = write_video(tmp_path / "a.mp4"), write_video(tmp_path / "b.mp4", width=48, height=64)
    transform = VideoTransform()
    out = transform(first)
    kept = out.clone()
    assert not torch.equal(transform(second)[:, :, :, :48], kept[:, :, :, :48])
    with open_video(second) as video:
        transform.resize(torch.from_numpy(video.frames([1])))
    assert torch.equal(out, kept)


def test_crop_offsets_landscape_and_portrait():
    transform = VideoTransform()
    assert transform.crop_offsets(224, 300) == [(0, 0), (0, 38), (0, 76)]  # center = ceil(76/2)
    assert transform.crop_offsets(299, 224) == [(0, 0), (38, 0), (75, 0)]  # center = ceil(75/2)
    assert VideoTransform(crops=1).crop_offsets(224, 300) == [(0, 38)]


def test_portrait_video_is_cropped_top_center_bottom(tmp_path):
    path = write_video(tmp_path / "portrait.mp4", width=48, height=64)
    transform = VideoTransform()
    out = transform(path)
    assert out.shape == (15, 3, 2, 224, 224)
    with open_video(path) as video:
        indices = transform.clip_frame_indices(video.info.fps, video.info.num_frames)[0]
        frames = video.frames(indices)
    assert transform.resize(torch.from_numpy(frames)).shape == (2, 3, 298, 224)  # floor(64/48*224) = 298
    assert transform.crop_offsets(298, 224) == [(0, 0), (37, 0), (74, 0)]
    torch.testing.assert_close(out[:3], plain_reference_steps(transform, frames[None]), rtol=0, atol=1e-6)


# --- decoding: seeking, input kinds, audio ---------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, codec, keyint",
    [("mp4", "libx264", 20), ("webm", "libvpx", 30), ("avi", "mpeg4", 15), ("mkv", "mpeg4", 1000)],
)
def test_seeking_reads_the_same_frames_as_a_full_decode(tmp_path, suffix, codec, keyint):
    path = write_video(tmp_path / f"long.{suffix}", frames=120, codec=codec, keyint=keyint)
    full = decode_all(path)
    rng = random.Random(0)
    with open_video(path) as video:
        assert video.info.num_frames == len(full) == 120
        for _ in range(4):
            indices = rng.sample(range(120), 6) + [0, 119]
            frames = video.frames(indices)
            for row, index in enumerate(indices):
                assert np.array_equal(frames[row], full[index]), (index, suffix)


def test_far_apart_clips_decode_only_frames_near_them(tmp_path, monkeypatch):
    path = write_video(tmp_path / "minute.mp4", frames=600, keyint=20)  # 60 s at 10 fps
    decoded = []
    original = video_io.VideoReader._indexed_frames

    def counting(self, target):
        for index, frame in original(self, target):
            decoded.append(index)
            yield index, frame

    monkeypatch.setattr(video_io.VideoReader, "_indexed_frames", counting)
    out = VideoTransform()(path)
    assert out.shape == (15, 3, 2, 224, 224)
    assert len(decoded) < 5 * (20 + 20) + 10  # per clip at most one GOP before it plus its 2 s
    monkeypatch.undo()
    assert torch.equal(out, VideoTransform()(path))


def test_stream_without_timestamps_is_read_from_the_start(tmp_path):
    path = write_video(tmp_path / "raw.h264", frames=30, container_format="h264")
    full = decode_all(path)
    with open_video(path) as video:
        assert video.info.num_frames == 30
        frames = video.frames([29, 3, 17])
        assert all(np.array_equal(frames[k], full[i]) for k, i in enumerate([29, 3, 17]))
        assert np.array_equal(video.frames([5])[0], full[5])  # again, after a rewind by reopening


def test_all_input_kinds_give_the_same_output(tmp_path):
    path = write_video(tmp_path / "clip.mp4")
    transform = VideoTransform(clips_per_video=2, crops=1)
    expected = transform(str(path))
    data = path.read_bytes()
    with open(path, "rb") as file:
        assert torch.equal(transform(file), expected)
    for item in (path, data, bytearray(data), io.BytesIO(data)):
        assert torch.equal(transform(item), expected)


def test_frames_at_timestamps_and_probe(tmp_path):
    path = write_video(tmp_path / "clip.mp4")
    full = decode_all(path)
    info = probe_video(path)
    assert (info.fps, info.num_frames, info.duration, info.width, info.height) == (10.0, 20, 2.0, 64, 48)
    assert not info.has_audio
    with open_video(path) as video:
        frames = video.frames_at([0.0, 0.95, 1.0, 5.0])
    for row, index in enumerate([0, 9, 10, 19]):
        assert np.array_equal(frames[row], full[index])
    assert np.array_equal(read_video_frames(path, [7, 7])[1], full[7])


def test_audio_track_and_video_with_audio(tmp_path):
    path = write_video(tmp_path / "talk.mp4", audio_rate=16000)
    waveform, rate = read_audio_track(path)
    assert rate == 16000 and waveform.dtype == np.float32 and waveform.shape[0] == 2
    assert abs(waveform.shape[1] - 32000) <= 2048  # 2 s, give or take the codec's padding
    spectrum = np.abs(np.fft.rfft(waveform[0]))
    assert abs(np.argmax(spectrum) * rate / waveform.shape[1] - 440) < 5
    assert abs(np.abs(waveform[1]).max() / np.abs(waveform[0]).max() - 0.5) < 0.05

    both = load_video_with_audio(path)
    assert torch.equal(both.video, VideoTransform()(path))
    assert both.sample_rate == 16000 and torch.equal(both.audio, torch.from_numpy(waveform))

    silent = write_video(tmp_path / "silent.mp4")
    assert load_video_with_audio(silent).audio is None
    with pytest.raises(OpenBindInputError, match="no audio stream"):
        read_audio_track(silent)


# --- batches and bad inputs ------------------------------------------------------------------------------


def test_batch_skip_keeps_good_videos_and_reports_bad_ones(tmp_path):
    good = write_video(tmp_path / "good.mp4")
    items = [good, tmp_path / "missing.mp4", good.read_bytes(), b"\x00" * 100]
    result = load_videos(items, on_error="skip")
    assert isinstance(result, BatchResult)
    assert result.tensor.shape == (2, 15, 3, 2, 224, 224)
    assert result.kept == [0, 2]
    assert [failure.index for failure in result.failed] == [1, 3]
    assert torch.equal(result.tensor[0], result.tensor[1])
    with pytest.raises(OpenBindInputError, match="batch item 1"):
        load_videos(items)


def _truncated(path: Path, target: Path, fraction: float) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_each_bad_input_raises_input_error_naming_the_item(tmp_path):
    import soundfile

    good = write_video(tmp_path / "good.mp4", frames=300)
    with av.open(str(tmp_path / "faststart.mp4"), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(300):
            noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    corrupt = bytearray((tmp_path / "faststart.mp4").read_bytes())
    corrupt[len(corrupt) // 3 : len(corrupt) // 3 + 3000] = bytes(3000)
    (tmp_path / "corrupt.mp4").write_bytes(bytes(corrupt))
    with av.open(str(tmp_path / "zero.avi"), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    soundfile.write(tmp_path / "sound.wav", np.zeros(8000, np.float32), 16000)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a video\n" * 50)

    cases = {
        "missing file": (tmp_path / "nope.mp4", "file not found"),
        "directory": (tmp_path, "not a file"),
        "empty file": (tmp_path / "empty.mp4", "empty"),
        "empty bytes": (b"", "empty"),
        "truncated (index lost)": (_truncated(good, tmp_path / "cut.mp4", 0.5), "cannot open"),
        # The decoder's thread count decides whether the cut packet fails to decode or the stream just ends early.
        "truncated (data lost)": (
            _truncated(tmp_path / "faststart.mp4", tmp_path / "cut2.mp4", 0.5), "truncated|corrupt video data"
        ),
        "corrupt data": (tmp_path / "corrupt.mp4", "corrupt"),
        "text file": (tmp_path / "notes.txt", "not a video"),
        "random bytes": (bytes(range(256)) * 8, "cannot open"),
        "no video stream": (tmp_path / "sound.wav", "no video stream"),
        "zero frames": (tmp_path / "zero.avi", "no frames"),
        "unsupported type": (3.5, "unsupported video input type"),
    }
    for kind, (item, reason) in cases.items():
        with pytest.raises(OpenBindInputError, match=reason) as info:
            VideoTransform()(item)
            pytest.fail(f"no error for {kind}")
        assert info.value.item is item, kind


def test_dataloader_workers_hand_over_batches_in_shared_memory_that_match_the_transform(tmp_path):
    from torch.utils.data import DataLoader

    from openbind.data.items import ItemDataset, collate_items

    good = write_video(tmp_path / "good.mp4", frames=50)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: decoding and resizing then round the same way
    try:
        expected = VideoTransform()(good)
    finally:
        torch.set_num_threads(threads)
    dataset = ItemDataset("video", [good, tmp_path / "missing.mp4", good, good], VideoTransform())
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_items))
    assert [b.kept for b in batches] == [[0], [2, 3]]
    assert [[f.index for f in b.failed] for b in batches] == [[1], []]
    full = batches[1].tensor
    assert full.shape == (2, 15, 3, 2, 224, 224)
    for batch in batches:
        for row in batch.tensor:
            torch.testing.assert_close(row, expected, rtol=0, atol=0)


_FORK_WITH_LIVE_DECODER = """
import gc, multiprocessing, sys
import av
import openbind.io.video  # noqa: F401  (what a program decoding with openbind has imported)

gc.disable()  # keep the decoder below uncollected until the fork, as a pending reference cycle would be
container = av.open(sys.argv[1])
stream = container.streams.video[0]
stream.thread_type, stream.codec_context.thread_count = "AUTO", 4
next(container.decode(stream))  # FFmpeg's decoding threads now exist, in this process only
cycle = [container, stream]
cycle.append(cycle)
del container, stream, cycle
child = multiprocessing.get_context("fork").Process(target=gc.collect)  # what a DataLoader worker's GC may do
child.start()
child.join(30)
if child.exitcode is None:
    child.kill()
sys.exit(0 if child.exitcode == 0 else 1)
"""


def test_forked_worker_never_frees_a_decoder_whose_threads_stayed_in_the_parent(tmp_path):
    """Freeing such a decoder waits forever for FFmpeg threads that a forked child does not have (seen as a
    DataLoader hang after earlier tests left PyAV objects in reference cycles); openbind.io freezes what a
    forked child inherits."""
    import subprocess
    import sys

    video = write_video(tmp_path / "v.mp4", frames=30, width=320, height=240)
    result = subprocess.run(
        [sys.executable, "-c", _FORK_WITH_LIVE_DECODER, str(video)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_out_must_match_the_output(tmp_path):
    path = write_video(tmp_path / "v.mp4")
    transform = VideoTransform()
    assert transform.fixed_output_shape == (15, 3, 2, 224, 224)
    assert VideoTransform(protocol="paper").fixed_output_shape is None
    out = torch.empty(15, 3, 2, 224, 224)
    assert transform(path, out).data_ptr() == out.data_ptr()
    assert torch.equal(out, transform(path))
    with pytest.raises(ValueError, match="contiguous float32"):
        transform(path, torch.empty(14, 3, 2, 224, 224))
