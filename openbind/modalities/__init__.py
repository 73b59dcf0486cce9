"""The modality registry: a modality is the unit of extension.

Each modality package (`vision`, `text`, `audio`, `depth`, `thermal`, `imu`) holds what is specific to it: its
encoder config with ImageBind's defaults, its stem, its official checkpoint names and its input transform. A new
modality (point clouds, EEG, ...) is one more package that calls `register_modality`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openbind.config import EncoderConfig


@dataclass(frozen=True)
class Modality:
    """What the rest of openbind needs to know about a modality.

    `official_keys` maps the reference checkpoint's non-trunk-block keys of this modality to keys inside our
    encoder (trunk blocks are mapped generically); `derived_official_keys` are reference buffers we compute
    instead of storing (name -> function of the config that rebuilds them). `load` turns user items (files,
    arrays, strings) into a model input batch; it is imported lazily so that the model never needs the
    decoding libraries.
    """

    name: str
    config_cls: type[EncoderConfig]
    official_keys: dict[str, str]
    derived_official_keys: dict[str, Callable[[EncoderConfig], Any]] = field(default_factory=dict)
    load: str | None = None  # "module:function" of the batch loader


_REGISTRY: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    _REGISTRY[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    _register_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; known: {sorted(_REGISTRY)}") from None


def all_modalities() -> list[str]:
    _register_builtins()
    return list(_REGISTRY)


def official_head_keys(m: str, norm: str, proj: str, scale: bool) -> dict[str, str]:
    """The reference's head and postprocessor names (their Sequential indices differ per modality)."""
    keys = {
        f"modality_heads.{m}.{norm}.weight": "head.norm.weight",
        f"modality_heads.{m}.{norm}.bias": "head.norm.bias",
        f"modality_heads.{m}.{proj}.weight": "head.proj.weight",
    }
    if scale:
        keys[f"modality_postprocessors.{m}.1.log_logit_scale"] = "log_scale"
    return keys


def _register_builtins() -> None:
    if not _REGISTRY:
        from openbind.modalities import audio, depth, imu, text, thermal, vision  # noqa: F401
