"""Model configuration: one dataclass per modality encoder and one for the model, JSON round-trippable.

The per-modality config classes live with their modality (`openbind.modalities.<name>`); this module holds
the shared base, the model config and the preset registry.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class EncoderConfig:
    """What every modality encoder shares: the trunk size and the output scale.

    Subclasses add their stem's geometry and set the class-level facts of their modality: the name, whether
    the trunk has a pre-norm or a causal mask, how the pooled token is chosen, and the number of dims of one
    input item (so clip dimensions can be told apart from batch dimensions).
    """

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

    def build_stem(self):  # -> nn.Module; each modality returns its own
        raise NotImplementedError

    def num_tokens(self) -> int:
        """Sequence length the trunk sees (CLS included)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"unknown {cls.modality} config fields: {sorted(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass
class ModelConfig:
    """A model: the joint embedding dim and one encoder config per modality (any subset of them)."""

    embed_dim: int
    encoders: dict[str, EncoderConfig] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def subset(self, modalities: list[str] | tuple[str, ...] | None) -> ModelConfig:
        """The same model restricted to `modalities` (None = all)."""
        if modalities is None:
            return self
        missing = [m for m in modalities if m not in self.encoders]
        if missing:
            raise ValueError(f"modalities {missing} are not in this config (it has {self.modalities})")
        return ModelConfig(self.embed_dim, {m: self.encoders[m] for m in modalities})

    def to_dict(self) -> dict[str, Any]:
        return {"embed_dim": self.embed_dim, "encoders": {m: c.to_dict() for m, c in self.encoders.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        from openbind.modalities import get_modality

        encoders = {m: get_modality(m).config_cls.from_dict(c) for m, c in data["encoders"].items()}
        return cls(int(data["embed_dim"]), encoders)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from openbind.utils import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> ModelConfig:
        path = Path(text_or_path)
        text = path.read_text() if not str(text_or_path).lstrip().startswith("{") else str(text_or_path)
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_official_kwargs(cls, **kwargs: Any) -> ModelConfig:
        """The config equal to the reference `ImageBindModel(**kwargs)` (its defaults fill what is not given)."""
        from openbind.weights.official import config_from_official_kwargs

        return config_from_official_kwargs(**kwargs)
