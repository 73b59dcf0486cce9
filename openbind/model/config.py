"""`EncoderConfig`: what every modality encoder's config shares, and what each one must say about itself.

Each modality subclasses it (`openbind.modalities.<name>`) with its stem's geometry and ImageBind's defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class EncoderConfig:
    """The trunk size and the output scale, plus the class-level facts of a modality: its name, whether the
    trunk has a pre-norm or a causal mask, how the pooled token is chosen, and the number of dims of one input
    item (so clip dimensions can be told apart from batch dimensions)."""

    width: int
    depth: int
    heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    kv_bias: bool = False  # one extra learned key/value per attention layer (audio, depth, thermal, imu)
    head_dropout: float = 0.0
    scale: float | None = None  # output scale (1/temperature); None = no scaling (vision)
    learnable_scale: bool = False
    max_scale: float | None = None  # clamp of a learnable scale (text: 100)

    modality: ClassVar[str] = ""
    item_ndims: ClassVar[tuple[int, ...]] = ()  # ndim of one un-batched item, e.g. vision (3, 4): image or clip
    pre_trunk_norm: ClassVar[bool] = False
    causal: ClassVar[bool] = False
    pool: ClassVar[str] = "cls"  # "cls" (token 0) or "eos" (position of the largest token id)

    def build_stem(self) -> nn.Module:
        raise NotImplementedError

    def num_tokens(self) -> int:
        """Sequence length the trunk sees (CLS included)."""
        raise NotImplementedError

    def stem_macs(self) -> float:
        """Multiply-adds of the stem for one clip (benchmarks count FLOPs with it)."""
        raise NotImplementedError

    def example_input(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """Random model input of `batch` items in the shape the default transform gives (tests, benchmarks)."""
        raise NotImplementedError

    def export_input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of items in the one layout an exported graph of this tower takes (its widest item rank), with
        the same embeddings; the default: unchanged."""
        return x

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown {cls.modality} config fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
