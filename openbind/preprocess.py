"""Reference-compatible batch entry points: user items (paths, bytes, file objects, arrays) -> model inputs.

Each function takes one item or a list and returns the batch tensor the model expects, computed exactly as
the reference pipeline does by default; keyword options are passed to the modality's transform (see
`docs/modalities/`). `on_error="skip"` keeps every good item and reports the bad ones (a `BatchResult`).
For large jobs, `loader(modality, items, num_workers=N)` decodes in worker processes and yields
`BatchResult`s (good items stacked, bad ones listed), never stopping on a bad file.

    vision(items)  -> [N, 3, 224, 224]          audio(items) -> [N, 3, 1, 128, 204]
    video(items)   -> [N, 15, 3, 2, 224, 224]   text(strings) -> [N, 77]
    depth(items)   -> [N, 1, 224, 224]          thermal(items) -> [N, 1, 224, 224]
    imu(items)     -> [N, 6, 2000]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from openbind.errors import OpenBindInputError
from openbind.modalities.batch import BatchResult, ItemFailure, OnError
from openbind.shared_batches import PooledBatchResult, SlotBatch, worker_batch


def vision(items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    from openbind.modalities.vision.transform import ImageTransform, load_images

    return load_images(items, transform=ImageTransform(**options), on_error=on_error)


def video(items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    from openbind.modalities.vision.video import VideoTransform, load_videos

    return load_videos(items, transform=VideoTransform(**options), on_error=on_error)


def audio(items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    from openbind.modalities.audio.transform import AudioTransform, load_audios

    return load_audios(items, transform=AudioTransform(**options), on_error=on_error)


def text(strings: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
    from openbind.modalities.text.transform import load_texts

    return load_texts(strings, context_length=context_length)


def depth(items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    from openbind.modalities.depth.transform import DepthTransform, load_depths

    return load_depths(items, transform=DepthTransform(**options), on_error=on_error)


def thermal(items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    from openbind.modalities.thermal.transform import ThermalTransform, load_thermals

    return load_thermals(items, transform=ThermalTransform(**options), on_error=on_error)


def imu(items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    from openbind.modalities.imu.transform import ImuTransform, load_imus

    return load_imus(items, transform=ImuTransform(**options), on_error=on_error)


def transform_for(modality: str, **options: Any) -> Callable[[Any], torch.Tensor]:
    """The per-item transform of a modality (its reference defaults, overridden by `options`)."""
    if modality == "vision":
        from openbind.modalities.vision.transform import ImageTransform

        return ImageTransform(**options)
    if modality == "video":
        from openbind.modalities.vision.video import VideoTransform

        return VideoTransform(**options)
    if modality == "audio":
        from openbind.modalities.audio.transform import AudioTransform

        return AudioTransform(**options)
    if modality == "text":
        return TextTokens(**options)
    if modality == "depth":
        from openbind.modalities.depth.transform import DepthTransform

        return DepthTransform(**options)
    if modality == "thermal":
        from openbind.modalities.thermal.transform import ThermalTransform

        return ThermalTransform(**options)
    if modality == "imu":
        from openbind.modalities.imu.transform import ImuTransform

        return FirstClip(ImuTransform(**options)) if options.get("clips", 1) == 1 else ImuTransform(**options)
    raise OpenBindInputError(modality, "unknown modality: use vision, video, audio, text, depth, thermal or imu")


@dataclass(frozen=True)
class TextTokens:
    """One caption -> int64 [context_length] CLIP token ids."""

    context_length: int = 77

    def __call__(self, item: Any) -> torch.Tensor:
        return text([item], context_length=self.context_length)[0]


@dataclass(frozen=True)
class FirstClip:
    """Keep clip 0 of a transform that returns [clips, ...] (one IMU window -> [6, 2000]; training pairs one
    clip with one clip)."""

    transform: Callable[[Any], torch.Tensor]

    @property
    def fixed_output_shape(self) -> tuple[int, ...] | None:
        """The inner transform's shape less its clip axis, where that is fixed at one clip."""
        shape = getattr(self.transform, "fixed_output_shape", None)
        return shape[1:] if shape is not None and shape[0] == 1 else None

    def __call__(self, item: Any, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            return self.transform(item)[0]
        return self.transform(item, out=out.unsqueeze(0))[0]


class ItemDataset(Dataset):
    """Items of one modality -> (index, model input) or, for a bad item, its `ItemFailure` (never raises for bad
    input, so a DataLoader with worker processes keeps going)."""

    def __init__(self, modality: str, items: Sequence[Any], transform: Callable[[Any], torch.Tensor] | None = None):
        self.items = list(items)
        self.transform = transform or transform_for(modality)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor] | ItemFailure:
        return self._load(i)

    def __getitems__(self, indices: list[int]) -> list[tuple[int, torch.Tensor] | ItemFailure]:
        """One batch, as a DataLoader worker fetches it. A transform with a `fixed_output_shape` and an `out`
        argument (image, audio, video; a video is 18 MB) writes each item straight into its row of one batch in
        shared memory, which reaches the main process as is: no stacking copy, no copy into shared memory
        (`collate_items` passes it on), and memory the worker reuses once the main process has let go of it
        (`openbind.shared_batches`)."""
        shape = getattr(self.transform, "fixed_output_shape", None)
        if shape is None or get_worker_info() is None:
            return [self._load(i) for i in indices]
        batch = worker_batch((len(indices), *shape))
        try:
            batch.extend(self._load(i, out=row) for i, row in zip(indices, batch.tensor))
        except BaseException:
            batch.release()
            raise
        return batch

    def _load(self, i: int, out: torch.Tensor | None = None) -> tuple[int, torch.Tensor] | ItemFailure:
        try:
            return i, self.transform(self.items[i]) if out is None else self.transform(self.items[i], out=out)
        except OpenBindInputError as error:
            return ItemFailure(i, self.items[i], error)


def collate_items(batch: Sequence[tuple[int, torch.Tensor] | ItemFailure]) -> BatchResult:
    """Stack the good items of a batch; `kept` holds their dataset indices, `failed` the bad ones.

    In a worker process torch's `default_collate` stacks straight into shared memory, sparing the copy that
    sending a plainly stacked batch to the main process would make (a video batch is 18 MB per item)."""
    good = [x for x in batch if not isinstance(x, ItemFailure)]
    failed = [x for x in batch if isinstance(x, ItemFailure)]
    if isinstance(batch, SlotBatch) and not failed:
        return PooledBatchResult(batch, [i for i, _ in good])  # already stacked, in reusable shared memory
    tensor = default_collate([t for _, t in good]) if good else torch.empty(0)
    if isinstance(batch, SlotBatch):
        batch.release()  # its good rows were copied
    return BatchResult(tensor, [i for i, _ in good], failed)


def loader(
    modality: str,
    items: Sequence[Any],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    transform: Callable[[Any], torch.Tensor] | None = None,
    **options: Any,
) -> DataLoader:
    """A DataLoader over `items` yielding `BatchResult`s, decoding in `num_workers` processes.

    Image, audio and video batches arrive in shared memory that each worker refills once no tensor of the main
    process shares it any more (`openbind.shared_batches`): keeping a batch is safe, it just costs new memory."""
    dataset = ItemDataset(modality, items, transform or transform_for(modality, **options))
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_items)
