"""`ModelConfig`: the joint embedding dim and one encoder config per modality, JSON round-trippable.

The per-modality config classes live with their modality (`openbind.modalities.<name>`), their shared base in
`openbind.model.config`; the registry tells which class reads which modality's entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openbind.modalities import all_modalities, get_modality
from openbind.model.config import EncoderConfig
from openbind.utils import atomic_write_text

OFFICIAL_EMBED_DIM = 768  # the reference constructor's default `out_embed_dim`


@dataclass
class ModelConfig:
    """A model: the joint embedding dim, one encoder config per modality (any subset of them), and the options
    of the input transforms its towers expect, per input kind (`inputs`: e.g. {"audio": {"sample_rate": 16000,
    "num_mel_bins": 128, ...}}; a kind not listed uses its transform's defaults). Evaluation builds every
    transform from them, so a model trained on other inputs is evaluated on its own."""

    embed_dim: int
    encoders: dict[str, EncoderConfig] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        kinds = {kind.name for m in modalities for kind in get_modality(m).inputs}
        inputs = {kind: options for kind, options in self.inputs.items() if kind in kinds}
        return ModelConfig(self.embed_dim, {m: self.encoders[m] for m in modalities}, inputs)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"embed_dim": self.embed_dim}
        data["encoders"] = {m: c.to_dict() for m, c in self.encoders.items()}
        if self.inputs:
            data["inputs"] = {kind: dict(options) for kind, options in self.inputs.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        encoders = {m: get_modality(m).config_cls.from_dict(c) for m, c in data["encoders"].items()}
        return cls(int(data["embed_dim"]), encoders, {k: dict(v) for k, v in data.get("inputs", {}).items()})

    def input_options(self, kind: str) -> dict[str, Any]:
        """The options this model's transform of input kind `kind` takes (lists back to tuples)."""
        return {k: tuple(v) if isinstance(v, list) else v for k, v in self.inputs.get(kind, {}).items()}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> ModelConfig:
        path = Path(text_or_path)
        text = path.read_text() if not str(text_or_path).lstrip().startswith("{") else str(text_or_path)
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_official_kwargs(cls, **kwargs: Any) -> ModelConfig:
        """The config equal to the reference `ImageBindModel(**kwargs)`: its defaults fill what is not given,
        and each registered modality with an official tower builds its config from them."""
        towers = [get_modality(m) for m in all_modalities() if get_modality(m).from_official is not None]
        defaults = {"out_embed_dim": OFFICIAL_EMBED_DIM}
        for modality in towers:
            defaults.update(modality.official_defaults)
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise ValueError(f"unknown ImageBindModel kwargs: {sorted(unknown)}")
        values = {**defaults, **kwargs}
        return cls(int(values["out_embed_dim"]), {m.name: m.from_official(values) for m in towers})
