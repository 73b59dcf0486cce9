"""The input pipelines on their own: user items (paths, bytes, file objects, arrays, strings) -> model inputs.

`load(kind, items)` runs the transform of one input kind (a manifest column name such as "image", "video",
"audio", or a modality's name for its first kind: "vision" -> images) over one item or a list, computed exactly
as the reference does by default; keyword options go to the transform (see `docs/modalities/`).
`on_error="skip"` keeps every good item and reports the bad ones (a `BatchResult`). Each kind is also an
attribute, for the built-ins:

    vision(items)  -> [N, 3, 224, 224]          audio(items) -> [N, 3, 1, 128, 204]
    video(items)   -> [N, 15, 3, 2, 224, 224]   text(strings) -> [N, 77]
    depth(items)   -> [N, 1, 224, 224]          thermal(items) -> [N, 1, 224, 224]
    imu(items)     -> [N, 6, 2000]

For large jobs, `loader(kind, items, num_workers=N)` decodes in worker processes and yields `BatchResult`s
(good items stacked, bad ones listed), never stopping on a bad file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from openbind.config import ModelConfig
from openbind.data.items import loader
from openbind.modalities import all_modalities, get_input, get_modality, input_names
from openbind.modalities.batch import BatchResult, OnError

__all__ = ["load", "loader", "record_inputs", "transform_for", "transform_options"]


def load(kind: str, items: Any, *, on_error: OnError = "raise", **options: Any) -> torch.Tensor | BatchResult:
    """One item or a list of one input kind -> the model's input batch (a `BatchResult` with on_error="skip")."""
    return get_input(kind).load(items, on_error=on_error, **options)


def transform_for(kind: str, **options: Any) -> Callable[..., torch.Tensor]:
    """The per-item transform of an input kind (its reference defaults, overridden by `options`)."""
    return get_input(kind).transform(**options)


def transform_options(kind: str, **options: Any) -> dict[str, Any]:
    """Every option of an input kind's transform, its defaults filled in (JSON values): what a model directory
    records, so that the model is later fed exactly what it was trained or converted with."""
    transform = get_input(kind).transform(**options)
    transform = getattr(transform, "transform", transform)  # a FirstClip wrapper holds the configured transform
    if not dataclasses.is_dataclass(transform):
        return dict(options)
    return {f.name: _jsonable(getattr(transform, f.name)) for f in dataclasses.fields(transform)}


def record_inputs(config: ModelConfig) -> ModelConfig:
    """`config` with the full options of every input kind of its towers (see `transform_options`)."""
    kinds = [kind.name for modality in config.encoders for kind in get_modality(modality).inputs]
    inputs = {kind: transform_options(kind, **config.input_options(kind)) for kind in kinds}
    return dataclasses.replace(config, inputs=inputs)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def __getattr__(name: str) -> Callable[..., Any]:
    """`preprocess.audio(items)` and the like: `load` bound to a registered input kind or modality."""
    if name.startswith("_") or name not in {*input_names(), *all_modalities()}:
        raise AttributeError(f"module 'openbind.preprocess' has no attribute {name!r}")
    return partial(load, name)


def __dir__() -> list[str]:
    return sorted({*__all__, *input_names(), *all_modalities()})
