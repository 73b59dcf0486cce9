"""The modality registry: the one place the rest of openbind learns what modalities exist and what they read.

A `Modality` is an encoder (its config class, which builds the stem), the reference checkpoint's names for its
weights, and the input kinds it reads. An `InputKind` is one kind of user input for that encoder: a manifest
column, a `openbind.preprocess` entry point and a set of file suffixes, with its transforms. The vision encoder
reads two kinds, `image` and `video`; every other built-in modality reads one kind of its own name.

ImageBind binds every modality to the image tower, which is aligned with the text tower: those two roles are
the method's, not a modality's, and are named by `IMAGE_TOWER` and `TEXT_TOWER`.

Third-party modalities register on import; a package can also name the module that registers them under the
`openbind.modalities` entry-point group, which the registry loads the first time it is asked for a name it does
not know (so `create_model` on a checkpoint of that modality, and the CLI, find it without an import).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import torch

from openbind.model.config import EncoderConfig

IMAGE_TOWER = "vision"  # the tower every other modality is bound to
TEXT_TOWER = "text"  # the tower aligned with images, through which every modality is classified zero-shot
ENTRY_POINT_GROUP = "openbind.modalities"

ItemTransform = Callable[..., torch.Tensor]  # one item -> its model input (optionally written into `out=`)


@dataclass(frozen=True)
class InputKind:
    """One kind of input of a modality's encoder.

    `transform(**options)` builds the per-item transform with the reference's inference defaults (options
    override them); `load(items, on_error=..., **options)` runs it over a batch (one item or a list) and returns
    the stacked tensor, or a `BatchResult` with `on_error="skip"`. `suffixes` are the file suffixes of this kind
    (for a kind that does not hold files, files whose content is the input: a caption in a .txt).
    `train_transform(**options)` is the per-item input of one training pair (one clip where inference averages
    several; None: `transform(**options)`).
    `evaluation` holds the options the paper's evaluation protocol sets on top of a model's (audio: clips that
    cover the whole recording). `holds_files` is False
    where a manifest cell holds the input itself (a caption), and `batched` is True where `load` is faster on
    whole lists than the per-item transform (the tokenizer). `found_in` names other input kinds whose files also
    carry this one (audio: the sound track of a video file), so a file can be indexed as each of them.
    """

    name: str
    transform: Callable[..., ItemTransform]
    load: Callable[..., Any]
    train_transform: Callable[..., ItemTransform] | None = None
    suffixes: tuple[str, ...] = ()
    holds_files: bool = True
    batched: bool = False
    evaluation: dict[str, Any] = field(default_factory=dict)
    found_in: tuple[str, ...] = ()

    def training_transform(self, **options: Any) -> ItemTransform:
        return self.train_transform(**options) if self.train_transform is not None else self.transform(**options)


@dataclass(frozen=True)
class Modality:
    """Everything the rest of openbind needs to know about one modality.

    `official_defaults` are the reference constructor's keyword arguments for this tower with their defaults,
    and `from_official(kwargs)` builds the tower's config from them; `official_keys` maps the reference
    checkpoint's non-trunk keys of this tower to keys inside our encoder (trunk blocks are mapped by rule) and
    `derived_official_keys` names reference buffers we compute instead of storing. `augmentable`: inputs are 2-D
    maps whose meaning survives a crop and a left-right flip (depth, thermal; not a spectrogram or an IMU window).
    """

    name: str
    config_cls: type[EncoderConfig]
    inputs: tuple[InputKind, ...]
    official_keys: dict[str, str] = field(default_factory=dict)
    official_defaults: dict[str, Any] = field(default_factory=dict)
    from_official: Callable[[dict[str, Any]], EncoderConfig] | None = None
    derived_official_keys: dict[str, Callable[[EncoderConfig], torch.Tensor]] = field(default_factory=dict)
    augmentable: bool = False


_MODALITIES: dict[str, Modality] = {}
_INPUTS: dict[str, tuple[InputKind, Modality]] = {}
_plugins_loaded = False


def register_modality(modality: Modality) -> Modality:
    """Add (or replace) a modality; its input kinds' names must not belong to another modality."""
    if not modality.inputs:
        raise ValueError(f"modality {modality.name!r} needs at least one input kind")
    for kind in modality.inputs:
        owner = _INPUTS.get(kind.name)
        if owner is not None and owner[1].name != modality.name:
            raise ValueError(f"input kind {kind.name!r} already belongs to modality {owner[1].name!r}")
    old = _MODALITIES.get(modality.name)
    for kind in old.inputs if old is not None else ():
        del _INPUTS[kind.name]
    _MODALITIES[modality.name] = modality
    _INPUTS.update({kind.name: (kind, modality) for kind in modality.inputs})
    return modality


def unregister_modality(name: str) -> None:
    """Remove a modality (tests that register a temporary one clean up with this)."""
    modality = _MODALITIES.pop(name)
    for kind in modality.inputs:
        del _INPUTS[kind.name]


def _load_plugins() -> None:
    """Import the modules that third-party packages list under the `openbind.modalities` entry points."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()


def _known(lookup: dict[str, Any], name: str) -> bool:
    _load_plugins()
    return name in lookup


def get_modality(name: str) -> Modality:
    if not _known(_MODALITIES, name):
        raise KeyError(
            f"unknown modality {name!r}; known: {all_modalities()} (a new modality registers itself when its "
            f"package is imported, or through the {ENTRY_POINT_GROUP!r} entry points)"
        )
    return _MODALITIES[name]


def all_modalities() -> list[str]:
    _load_plugins()
    return list(_MODALITIES)


def get_input(name: str) -> InputKind:
    """An input kind by its name ("image", "video", "audio", ...) or by its modality's name (its first kind:
    "vision" -> "image")."""
    if _known(_INPUTS, name):
        return _INPUTS[name][0]
    if name in _MODALITIES:
        return _MODALITIES[name].inputs[0]
    raise KeyError(f"unknown input kind {name!r}; known: {input_names()} or a modality name")


def modality_of(input_name: str) -> Modality:
    """The modality whose encoder reads this input kind (or the modality of that name): "video" -> vision."""
    get_input(input_name)
    return _INPUTS[input_name][1] if input_name in _INPUTS else _MODALITIES[input_name]


def input_names() -> list[str]:
    """Every input kind's name, in registration order: the manifest columns that hold model inputs."""
    _load_plugins()
    return list(_INPUTS)


def input_for_path(path: str | os.PathLike) -> InputKind | None:
    """The input kind a file's suffix names (".jpg" -> image, ".mp4" -> video), or None."""
    _load_plugins()
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    return next((kind for kind, _ in _INPUTS.values() if suffix and suffix in kind.suffixes), None)


def kinds_in_file(kind: str) -> list[str]:
    """The input kinds a file of input kind `kind` carries: itself, then every kind `found_in` it (a video's
    frames, then its sound)."""
    _load_plugins()
    return [kind] + [other.name for other, _ in _INPUTS.values() if kind in other.found_in]


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
