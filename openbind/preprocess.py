"""Reference-compatible batch entry points: user items (paths, bytes, file objects, arrays) -> model inputs.

Each function takes one item or a list and returns the batch tensor the model expects, computed exactly as
the reference pipeline does by default; keyword options are passed to the modality's transform (see
`docs/modalities/`). `on_error="skip"` keeps every good item and reports the bad ones (a `BatchResult`).

    vision(items)  -> [N, 3, 224, 224]          audio(items) -> [N, 3, 1, 128, 204]
    video(items)   -> [N, 15, 3, 2, 224, 224]   text(strings) -> [N, 77]
    depth(items)   -> [N, 1, 224, 224]          thermal(items) -> [N, 1, 224, 224]
    imu(items)     -> [N, 6, 2000]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from openbind.modalities.batch import BatchResult, OnError


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
