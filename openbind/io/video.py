"""Read chosen frames and the audio track of a video with PyAV, decoding only what is needed.

Frames are addressed by index (their rank in presentation time), the way the reference's decoder (decord)
addresses them, and the stream metadata is computed as it does: fps = the stream's average frame rate,
frame count = the container's count (estimated from duration * fps when absent), duration = frames / fps.
To fetch frames the reader seeks to the keyframe before the first wanted frame and decodes forward, converting
only the frames it keeps to RGB; far-apart frames get a new seek. Memory is bounded by the frames kept.
"""

from __future__ import annotations

import io
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Union

import av
import numpy as np

from openbind.errors import OpenBindInputError

VideoInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

# What a batch call treats as one video rather than as a sequence of videos.
SINGLE_VIDEO_TYPES: tuple[type, ...] = (str, os.PathLike, bytes, bytearray, memoryview, io.IOBase)

_MIN_SEEK_GAP_S = 2.0  # decode forward rather than seek when the next wanted frame is closer than this
_END_TOLERANCE_S = 1.0  # a stream may end this much before its announced frame count without being broken


@dataclass(frozen=True)
class VideoInfo:
    """Stream metadata as the reference computes it."""

    fps: float
    num_frames: int
    duration: float  # num_frames / fps, in seconds
    width: int
    height: int
    has_audio: bool


class VideoReader:
    """An open video: its metadata, any frames by index, and its audio track. Use as a context manager.

    threads: decoder threads; 0 lets FFmpeg use one per core. A process that decodes in several worker
    processes at once (a DataLoader) wants 1 per worker, or the workers' threads fight over the cores.
    """

    def __init__(self, item: VideoInput, threads: int = 0):
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0: one per core), got {threads!r}")
        self.item = item
        self._threads = threads
        self._source = _Source(item)
        self._container = self._source.open()
        try:
            self._init_stream()
        except av.error.FFmpegError as error:
            self.close()
            raise OpenBindInputError(item, f"cannot read the video stream ({error})") from error
        except BaseException:
            self.close()
            raise

    def _init_stream(self) -> None:
        if self._container.format.name == "tty":  # FFmpeg renders any .txt file as an ANSI-art video
            raise OpenBindInputError(self.item, "a text file, not a video")
        if not self._container.streams.video:
            raise OpenBindInputError(self.item, "no video stream in the file")
        stream = self._video_stream()
        if stream.codec_context is None:
            raise OpenBindInputError(self.item, "unsupported video codec")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise OpenBindInputError(self.item, "unknown frame rate")
        self._rate = Fraction(rate)
        self._time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 1)
        self._t0 = stream.start_time if stream.start_time is not None else 0
        self._no_seek = False  # set once seeking proves useless (no timestamps, or seeks that overshoot)
        self._at_start = True  # nothing read since the container was opened or rewound
        num_frames = self._count_frames()
        if num_frames <= 0:
            raise OpenBindInputError(self.item, "video stream has no frames")
        if not stream.codec_context.width or not stream.codec_context.height:
            raise OpenBindInputError(self.item, "zero-size video frames")
        fps = float(self._rate)
        self.info = VideoInfo(
            fps=fps,
            num_frames=num_frames,
            duration=num_frames / fps,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            has_audio=bool(self._container.streams.audio),
        )

    def _video_stream(self) -> av.VideoStream:
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        if self._stream.codec_context is not None:
            self._stream.codec_context.thread_count = self._threads
        return self._stream

    def _count_frames(self) -> int:
        stream = self._stream
        if stream.frames > 0:
            return stream.frames
        if stream.duration:
            return int(stream.duration * self._time_base * self._rate)
        if self._container.duration:
            return int(Fraction(self._container.duration, av.time_base) * self._rate)
        # No metadata at all (a raw stream): count the packets, which needs no decoding.
        self._at_start = False
        return sum(1 for packet in self._container.demux(stream) if packet.size)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 (len(indices), H, W, 3) RGB frames in the order asked (repeats allowed).

        A wanted frame missing from the stream (a timestamp gap, or a stream a little shorter than announced)
        is replaced by the frame shown at that time, i.e. the last one before it.
        """
        indices = [int(i) for i in indices]
        out = np.empty((len(indices), self.info.height, self.info.width, 3), dtype=np.uint8)
        rows: dict[int, list[int]] = {}
        for row, index in enumerate(indices):
            rows.setdefault(index, []).append(row)
        for index, rgb in self.iter_frames(rows):
            out[rows[index]] = rgb
        return out

    def iter_frames(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, uint8 (H, W, 3) RGB frame) for each distinct index, in increasing order, as decoded.

        Lets a caller process frames as they come, holding only the ones it keeps.
        """
        wanted = sorted({int(i) for i in indices})
        if wanted and (wanted[0] < 0 or wanted[-1] >= self.info.num_frames):
            n = self.info.num_frames
            raise ValueError(f"frame indices must lie in [0, {n}), got {wanted[0]}..{wanted[-1]}")
        try:
            for index, frame in self._collect(wanted):
                yield index, frame.to_ndarray(format="rgb24", width=self.info.width, height=self.info.height)
        except av.error.FFmpegError as error:
            raise OpenBindInputError(self.item, f"corrupt video data ({error})") from error

    def frames_at(self, timestamps: Sequence[float]) -> np.ndarray:
        """The frames shown at `timestamps` (seconds from the stream start): index floor(t * fps)."""
        last = self.info.num_frames - 1
        return self.frames([min(max(math.floor(t * self.info.fps), 0), last) for t in timestamps])

    def audio(self) -> tuple[np.ndarray, int] | None:
        """The first audio track as float32 (channels, samples) and its sample rate; None when there is none."""
        if not self._container.streams.audio:
            return None
        try:
            self._rewind()
            stream = self._container.streams.audio[0]
            if stream.codec_context is None:
                raise OpenBindInputError(self.item, "unsupported audio codec")
            self._at_start = False
            chunks: list[np.ndarray] = []
            resampler = None
            for frame in self._container.decode(stream):
                if resampler is None:  # to float planes at the track's own rate and layout
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            if resampler is not None:
                chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.error.FFmpegError as error:
            raise OpenBindInputError(self.item, f"corrupt audio data ({error})") from error
        if not chunks or resampler is None:
            raise OpenBindInputError(self.item, "audio stream has no samples")
        return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), int(resampler.rate)

    def _collect(self, wanted: list[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield (index, frame) for each wanted index (sorted, unique), decoding as little as possible."""
        pending = deque(wanted)
        seek_gap = max(1, math.ceil(_MIN_SEEK_GAP_S * self._rate))
        while pending:
            last = last_key = None
            target = pending[0]
            for index, frame in self._indexed_frames(target):
                if frame.key_frame:
                    if last_key is not None and index > last_key:
                        seek_gap = max(seek_gap, index - last_key)  # a seek within a GOP gains nothing
                    last_key = index
                while pending and pending[0] < index:  # skipped by the stream: show the previous frame
                    yield pending.popleft(), last if last is not None else frame
                if pending and pending[0] == index:
                    yield pending.popleft(), frame
                last = frame
                if not pending:
                    break
                if index >= target and pending[0] - index > seek_gap and not self._no_seek:
                    break  # far ahead: seek there
            else:
                self._check_end(pending, last)
                while pending:
                    yield pending.popleft(), last

    def _check_end(self, pending: deque[int], last: av.VideoFrame | None) -> None:
        """The stream ended with frames still wanted: accept a slightly short stream, refuse a broken one."""
        if last is None:
            raise OpenBindInputError(self.item, "no decodable video frame")
        if last.pts is None or self._no_seek:
            return
        last_index = self._index_of(last.pts)
        if pending[-1] - last_index > _END_TOLERANCE_S * self._rate:
            raise OpenBindInputError(
                self.item, f"video stream ends at frame {last_index} of {self.info.num_frames} (truncated or corrupt)"
            )

    def _indexed_frames(self, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded frames with their index, from the last keyframe at or before frame `target` on."""
        from_start = target == 0 or self._no_seek
        if from_start:
            self._rewind()
        else:
            time = (Fraction(target) - Fraction(1, 2)) / self._rate  # half a frame early: land at or before
            try:
                self._container.seek(self._t0 + math.floor(time / self._time_base), stream=self._stream)
            except av.error.FFmpegError:  # the input cannot seek: read it from the start
                self._no_seek = True
                yield from self._indexed_frames(0)
                return
        self._at_start = False
        index = -1
        for count, frame in enumerate(self._container.decode(self._stream)):
            if frame.pts is not None:
                index = self._index_of(frame.pts)
            elif from_start or count:
                index += 1  # no timestamp: the frame after the previous one
            if not from_start and count == 0 and (frame.pts is None or index > target):
                # Nothing to place this frame by, or the seek overshot: count frames from the start instead.
                self._no_seek = True
                yield from self._indexed_frames(0)
                return
            yield index, frame

    def _index_of(self, pts: int) -> int:
        return round((pts - self._t0) * self._time_base * self._rate)

    def _rewind(self) -> None:
        """Back to the first packet: seek, or reopen an input that cannot seek (a raw stream)."""
        if self._at_start:
            return
        try:
            self._container.seek(0)
        except av.error.FFmpegError:
            self._container.close()
            self._container = self._source.open()
            self._video_stream()
        self._at_start = True


class _Source:
    """Opens (and reopens, to rewind an unseekable input) the container for a path, bytes or a file."""

    def __init__(self, item: VideoInput):
        self.item = item
        self._path: str | None = None
        self._data: bytes | None = None
        self._start: int | None = None  # where a seekable file object's data begins
        self._opened = False
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if not path.exists():
                raise OpenBindInputError(item, "file not found")
            if not path.is_file():
                raise OpenBindInputError(item, "not a file")
            if path.stat().st_size == 0:
                raise OpenBindInputError(item, "empty file: no video data")
            self._path = str(path)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            if not len(item):
                raise OpenBindInputError(item, "empty bytes: no video data")
            self._data = bytes(item)
        elif hasattr(item, "read"):
            if getattr(item, "seekable", lambda: False)():
                self._start = item.tell()
        else:
            raise OpenBindInputError(
                item, f"unsupported video input type {type(item).__name__} (give a path, bytes or a binary file)"
            )

    def open(self) -> av.container.InputContainer:
        item = self.item
        source: Any
        if isinstance(item, (str, os.PathLike)):
            source = self._path
        elif isinstance(item, (bytes, bytearray, memoryview)):
            source = io.BytesIO(self._data)
        else:
            if self._opened and self._start is None:
                raise OpenBindInputError(item, "cannot rewind a non-seekable file object")
            if self._start is not None:
                item.seek(self._start)
            source = item
        self._opened = True
        try:
            return av.open(source, mode="r")
        except av.error.FFmpegError as error:
            reason = f"cannot open as a video: truncated, corrupt or not a video ({error})"
            raise OpenBindInputError(item, reason) from error
        except (OSError, ValueError, TypeError) as error:  # unreadable or text-mode file objects
            raise OpenBindInputError(item, f"cannot read video ({error})") from error


def open_video(item: VideoInput, threads: int = 0) -> VideoReader:
    """Open a video (path, bytes or binary file); close it with `with open_video(x) as video: ...`.
    threads: decoder threads (0: one per core)."""
    return VideoReader(item, threads)


def probe_video(item: VideoInput) -> VideoInfo:
    with open_video(item) as video:
        return video.info


def read_video_frames(item: VideoInput, indices: Sequence[int]) -> np.ndarray:
    """uint8 (len(indices), H, W, 3) RGB frames of `item`, decoding only around the wanted ones."""
    with open_video(item) as video:
        return video.frames(indices)


def read_audio_track(item: VideoInput) -> tuple[np.ndarray, int]:
    """The audio track of a video file: float32 (channels, samples) and the sample rate."""
    with open_video(item) as video:
        audio = video.audio()
    if audio is None:
        raise OpenBindInputError(item, "no audio stream in the file")
    return audio
