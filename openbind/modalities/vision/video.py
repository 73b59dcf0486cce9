"""Videos -> model input (clips*crops, 3, 2, 224, 224), as the reference preprocesses them.

Reference (ImageBind data.py with pytorchvideo): 5 clips of 2 s with starts i*max(d-2,0)/4; the frames of a
clip are indices ceil(fps*start) .. min(ceil(fps*end), n)-1, of which it keeps 2 spread uniformly (the first
and the last); /255; shorter side to 224 by bilinear interpolation (no antialias, align_corners=False, longer
side floor(long/short*224)); CLIP normalize; 3 crops of 224 along the longer side (start, center with offset
ceil((L-224)/2), end). Output clip-major, then crop.

Only the kept frames are decoded to RGB (see `openbind.io.video`), each distinct frame once; they are resized
together (in chunks of at most 32 MB of float frames) in per-thread work buffers (`openbind.io.scratch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import torch

from openbind.io.scratch import scratch
from openbind.io.video import SINGLE_VIDEO_TYPES, VideoInput, VideoReader, open_video
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out
from openbind.modalities.vision import CLIP_MEAN, CLIP_STD


_CHUNK_BYTES = 32 << 20  # float frames resized together (at least one), and the work buffers kept per thread


@dataclass(frozen=True)
class VideoTransform:
    """One video -> float32 (clips*crops, 3, frames_per_clip, size, size). The defaults are the reference.

    `protocol="reference"` takes `clips_per_video` clips whose starts are spread evenly over [0, d - clip];
    `protocol="paper"` (the paper's evaluation) takes ceil(d / clip_duration) clips spread the same way, so
    together they cover the whole video. `crops` is 3 (start/center/end of the longer side) or 1 (center).
    """

    clip_duration: float = 2.0
    clips_per_video: int = 5
    frames_per_clip: int = 2
    size: int = 224
    crops: Literal[1, 3] = 3
    protocol: Literal["reference", "paper"] = "reference"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.protocol not in ("reference", "paper"):
            raise ValueError(f"protocol must be 'reference' or 'paper', got {self.protocol!r}")
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {self.crops}")
        if self.clip_duration <= 0 or self.clips_per_video < 1 or self.frames_per_clip < 1:
            raise ValueError("clip_duration, clips_per_video and frames_per_clip must be positive")

    @property
    def fixed_output_shape(self) -> tuple[int, ...] | None:
        """The output shape whatever the video (None under the paper protocol, whose clip count varies)."""
        if self.protocol == "paper":
            return None
        return (self.clips_per_video * self.crops, 3, self.frames_per_clip, self.size, self.size)

    def __call__(self, item: VideoInput, out: torch.Tensor | None = None) -> torch.Tensor:
        """out: a contiguous float32 tensor of the output's shape to write into (e.g. one row of a batch in
        shared memory, which then reaches a DataLoader's main process without a copy)."""
        with open_video(item, threads=decoder_threads()) as video:
            return self.from_reader(video, out)

    def from_reader(self, video: VideoReader, out: torch.Tensor | None = None) -> torch.Tensor:
        """Transform an already open video (lets a caller read its audio from the same open file)."""
        info = video.info
        clips = self.clip_frame_indices(info.fps, info.num_frames)
        unique, inverse = np.unique(np.asarray(clips).ravel(), return_inverse=True)
        frames = self._decode_resize(video, unique.tolist())
        if not np.array_equal(inverse, np.arange(inverse.size)):  # clips share frames: repeat them (a copy)
            frames = frames[torch.from_numpy(inverse)]
        frames = frames.view(len(clips), self.frames_per_clip, *frames.shape[1:]).transpose(1, 2)
        return self.spatial_crops(frames, out).flatten(0, 1)

    def _decode_resize(self, video: VideoReader, indices: list[int]) -> torch.Tensor:
        """Resized frames for sorted distinct `indices`, in a work buffer valid until this thread's next call.

        Frames are resized in chunks of at most `_CHUNK_BYTES` of float frames as they are decoded, so that only a
        chunk of full-size frames is held (long videos under the paper protocol keep thousands)."""
        info = video.info
        per_chunk = max(1, min(len(indices), _CHUNK_BYTES // (info.height * info.width * 3 * 4)))
        chunk = scratch("video_decoded", (per_chunk, info.height, info.width, 3), torch.uint8, _CHUNK_BYTES).numpy()
        height, width = self._resized_size(info.height, info.width)
        resized = scratch("video_resized", (len(indices), height, width, 3), max_bytes=_CHUNK_BYTES)
        resized = resized.permute(0, 3, 1, 2)  # channels-last, as decoded
        done = filled = 0
        for _, rgb in video.iter_frames(indices):
            chunk[filled] = rgb
            filled += 1
            if filled == per_chunk or done + filled == len(indices):
                self.resize_normalize(chunk[:filled], out=resized[done : done + filled])
                done, filled = done + filled, 0
        return resized

    def clip_times(self, duration: float) -> list[tuple[Fraction, Fraction]]:
        """(start, end) in seconds of each clip, in the reference sampler's exact (Fraction) arithmetic."""
        clip = Fraction(self.clip_duration)
        if self.protocol == "paper":
            count = max(1, math.ceil(duration / self.clip_duration))
        else:
            count = self.clips_per_video
        step = Fraction(max(duration - clip, 0)) / max(count - 1, 1)
        return [(step * i, step * i + clip) for i in range(count)]

    def clip_frame_indices(self, fps: float, num_frames: int) -> list[list[int]]:
        """The frame indices kept for each clip: `frames_per_clip` of its frames, first and last included."""
        kept = []
        for start, end in self.clip_times(num_frames / fps):
            first = min(math.ceil(fps * float(start)), num_frames - 1)
            stop = max(min(math.ceil(fps * float(end)), num_frames), first + 1)
            # pytorchvideo's UniformTemporalSubsample: linspace over the clip's frames, truncated to int.
            offsets = torch.linspace(0, stop - first - 1, self.frames_per_clip).clamp(0, stop - first - 1).long()
            kept.append([first + int(offset) for offset in offsets])
        return kept

    def resize_normalize(self, frames: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (K, H, W, 3) -> float32 (K, 3, h, w) with the shorter side = size, CLIP-normalized, written into
        `out` (a (K, 3, h, w) float32 tensor, best channels-last) when given."""
        # Kept in channels-last memory (as decoded): no transposing copy, and the faster interpolation kernel.
        count, height, width = frames.shape[:3]
        x = scratch("video_float", (count, height, width, 3), max_bytes=_CHUNK_BYTES).permute(0, 3, 1, 2)
        x.copy_(torch.from_numpy(frames).permute(0, 3, 1, 2)).div_(255.0)
        new_size = self._resized_size(height, width)
        if out is None:
            out = torch.empty(count, *new_size, 3).permute(0, 3, 1, 2)
        # F.interpolate's kernel, writing into `out`: a fresh output costs as much in page faults as the resize.
        torch.ops.aten.upsample_bilinear2d.out(x, list(new_size), False, None, None, out=out)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return out.sub_(mean).div_(std)

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) with the shorter side = size and the longer floor(long / short * size), as the reference."""
        if width < height:
            return int(math.floor(height / width * self.size)), self.size
        return self.size, int(math.floor(width / height * self.size))

    def spatial_crops(self, clips: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(clips, 3, T, h, w) -> (clips, crops, 3, T, size, size): start/center/end of the longer side,
        written into `out` (any contiguous tensor of as many elements) when given."""
        height, width = clips.shape[-2:]
        size = self.size
        center_y, center_x = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
        if height > width:
            offsets = [(0, center_x), (center_y, center_x), (height - size, center_x)]
        else:
            offsets = [(center_y, 0), (center_y, center_x), (center_y, width - size)]
        if self.crops == 1:
            offsets = offsets[1:2]
        crops = [clips[..., y : y + size, x : x + size] for y, x in offsets]
        shape = (clips.shape[0], len(crops), *crops[0].shape[1:])
        # Contiguous: stack's own output would keep the crops' channels-last strides (and flatten would copy).
        out = clips.new_empty(shape) if out is None else writable_out(out, shape, any_shape=True)
        return torch.stack(crops, dim=1, out=out)


def decoder_threads() -> int:
    """As many decoder threads as torch's intra-op threads: all cores in a plain process, one in each
    DataLoader worker (torch gives workers one thread), where more would fight the other workers."""
    return torch.get_num_threads()


@dataclass
class VideoWithAudio:
    """A video's model input and its raw audio track (None when the file has no audio)."""

    video: torch.Tensor
    audio: torch.Tensor | None  # float32 (channels, samples)
    sample_rate: int | None


def load_video_with_audio(item: VideoInput, *, transform: VideoTransform | None = None) -> VideoWithAudio:
    """Read the video clips and the audio track of one file, opening it once."""
    transform = transform or VideoTransform()
    with open_video(item, threads=decoder_threads()) as video:
        clips = transform.from_reader(video)
        audio = video.audio()
    if audio is None:
        return VideoWithAudio(clips, None, None)
    return VideoWithAudio(clips, torch.from_numpy(audio[0]), audio[1])


def load_videos(
    items: VideoInput | list[VideoInput],
    *,
    transform: VideoTransform | None = None,
    on_error: OnError = "raise",
) -> torch.Tensor | BatchResult:
    """Videos (paths, bytes, binary files) -> float32 (N, 15, 3, 2, 224, 224) with the default transform.

    With `on_error="skip"` a `BatchResult` keeps the good videos and lists the bad ones.
    """
    transform = transform or VideoTransform()
    return map_items(transform, as_item_list(items, SINGLE_VIDEO_TYPES), on_error)
