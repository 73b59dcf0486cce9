"""Modalities: one package each, found through one registry (`openbind.modalities.registry`).

Each built-in package (`vision`, `text`, `audio`, `depth`, `thermal`, `imu`) holds what is specific to it: its
encoder config with ImageBind's defaults, its stem, its reference checkpoint names and constructor arguments,
its input transforms, and its registration. A new modality (point clouds, EEG, ...) is one more package that
calls `register_modality`; nothing outside it changes.
"""

from openbind.modalities.registry import (
    IMAGE_TOWER,
    TEXT_TOWER,
    InputKind,
    Modality,
    all_modalities,
    get_input,
    get_modality,
    input_for_path,
    input_names,
    kinds_in_file,
    modality_of,
    register_modality,
    unregister_modality,
)

# The built-ins register themselves on import.
from openbind.modalities import vision, text, audio, depth, thermal, imu  # noqa: E402, F401, I001

__all__ = [
    "IMAGE_TOWER",
    "TEXT_TOWER",
    "InputKind",
    "Modality",
    "all_modalities",
    "get_input",
    "get_modality",
    "input_for_path",
    "input_names",
    "kinds_in_file",
    "modality_of",
    "register_modality",
    "unregister_modality",
]
