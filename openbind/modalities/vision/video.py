"""Videos -> model input (clips*crops, 3, 2, 224, 224), as the reference preprocesses them.

Reference (ImageBind data.py with pytorchvideo): 5 clips of 2 s with starts i*max(d-2,0)/4; the frames of a
clip are indices ceil(fps*start) .. min(ceil(fps*end), n)-1, of which it keeps 2 spread uniformly (the first
and the last); /255; shorter side to 224 by bilinear interpolation (no antialias, align_corners=False, longer
side floor(long/short*224)); CLIP normalize; 3 crops of 224 along the longer side (start, center with offset
ceil((L-224)/2), end). Output clip-major, then crop.

Only the kept frames are decoded to RGB (see `openbind.io.video`), each distinct frame once. At 1 torch thread
(DataLoader workers) each frame is resized, cropped and normalized into the output as it comes, so it stays in
the CPU's cache between the steps (resizing all frames together would stream them through memory several
times: 1.15-1.3x slower with two processes at once on the project's 2-core machine). At more threads frames are
resized in
groups, since one frame is too little work to share out. Work buffers: `openbind.io.scratch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch

from openbind.io.scratch import scratch
from openbind.io.video import SINGLE_VIDEO_TYPES, VideoInput, VideoReader, open_video
from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items, writable_out
from openbind.modalities.vision.transform import CLIP_MEAN, CLIP_STD

_FRAME_BYTES = 32 << 20  # work buffers kept per thread: a float 1080p frame (25 MB) fits, a larger one is fresh


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
        shape = (len(clips), self.crops, 3, self.frames_per_clip, self.size, self.size)
        out = torch.empty(shape) if out is None else writable_out(out, shape, any_shape=True)
        uses: dict[int, list[tuple[int, int]]] = {}  # frame index -> the (clip, time) places it fills
        for clip, indices in enumerate(clips):
            for time, index in enumerate(indices):
                uses.setdefault(index, []).append((clip, time))
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        per_group = self._frames_per_group(info.height, info.width)
        decoded = scratch("video_decoded", (per_group, info.height, info.width, 3), torch.uint8, _FRAME_BYTES)
        decoded_array = decoded.numpy()  # filled with numpy: a torch copy could wake torch's threads per frame
        group: list[int] = []
        last = max(uses)
        for index, rgb in video.iter_frames(list(uses)):
            decoded_array[len(group)] = rgb
            group.append(index)
            if len(group) == per_group or index == last:
                places = [uses[i] for i in group]
                self._crop_into(out, self.resize(decoded[: len(group)]), places, mean, std)
                group.clear()
        return out.flatten(0, 1)

    def _crop_into(
        self,
        out: torch.Tensor,
        resized: torch.Tensor,
        places: list[list[tuple[int, int]]],
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        """Write the crops of resized frames, (x - mean) / std, into `out` (clips, crops, 3, T, size, size), each
        frame at its (clip, time) places."""
        offsets = self.crop_offsets(*resized.shape[-2:])
        for frame, frame_places in zip(resized, places):
            for k, (y, x) in enumerate(offsets):
                crop = frame[:, y : y + self.size, x : x + self.size]
                for clip, time in frame_places:  # normalized as written: 2.5x faster than a copy after
                    torch.sub(crop, mean, out=out[clip, k, :, time]).div_(std)

    def _frames_per_group(self, height: int, width: int) -> int:
        """Frames resized together: one at 1 torch thread (it stays in the CPU's cache from decoding to the
        output), as many as fit in the work buffer at more (a frame is too little work to share out)."""
        if torch.get_num_threads() == 1:
            return 1
        return max(1, _FRAME_BYTES // (height * width * 3 * 4))

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

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (K, H, W, 3) frames -> float32 (K, 3, h, w) in [0, 1] with the shorter side = size, in this
        thread's work buffer (valid until its next call)."""
        count, height, width = frames.shape[:3]
        new_size = self._resized_size(height, width)
        # Channels-last, as decoded: no transposing copy, and the faster interpolation kernel.
        x = scratch("video_float", (count, height, width, 3), max_bytes=_FRAME_BYTES).permute(0, 3, 1, 2)
        torch.div(frames.permute(0, 3, 1, 2), 255.0, out=x)
        resized = scratch("video_resized", (count, *new_size, 3), max_bytes=_FRAME_BYTES).permute(0, 3, 1, 2)
        # F.interpolate's kernel, writing into the work buffer: a fresh output costs as much in page faults as
        # the resize itself.
        return torch.ops.aten.upsample_bilinear2d.out(x, list(new_size), False, None, None, out=resized)

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) with the shorter side = size and the longer floor(long / short * size), as the reference."""
        if width < height:
            return int(math.floor(height / width * self.size)), self.size
        return self.size, int(math.floor(width / height * self.size))

    def crop_offsets(self, height: int, width: int) -> list[tuple[int, int]]:
        """(top, left) of each size x size crop of a resized frame: start, center, end of the longer side (the
        center alone with `crops=1`); the center offset is ceil((L - size) / 2)."""
        size = self.size
        center_y, center_x = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
        if height > width:
            offsets = [(0, center_x), (center_y, center_x), (height - size, center_x)]
        else:
            offsets = [(center_y, 0), (center_y, center_x), (center_y, width - size)]
        return offsets[1:2] if self.crops == 1 else offsets


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
