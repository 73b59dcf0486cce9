"""ImageBind: a dict of per-modality encoders mapping into one joint embedding space."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from openbind.config import ModelConfig
from openbind.errors import OpenBindInputError
from openbind.model.config import EncoderConfig
from openbind.model.encoder import Encoder


class ImageBind(nn.Module):
    """`model(inputs)` reproduces the reference forward; `model.embed(...)` is the user-facing API.

    Build it with `openbind.create_model(...)` (presets, pretrained weights, precision) or directly from a
    `ModelConfig` (parameters are then left uninitialized unless built on the meta device and loaded, or
    `init_weights()` is called).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict({m: Encoder(c, config.embed_dim) for m, c in config.encoders.items()})
        self.autocast_dtype: torch.dtype | None = None  # set by create_model(precision="amp_bf16"/"amp_fp16")

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def init_weights(self) -> ImageBind:
        for encoder in self.encoders.values():
            encoder.init_weights()
        return self

    def add_encoder(self, modality: str, config: EncoderConfig) -> Encoder:
        """Add a new, initialized tower: binding a modality this model does not have yet."""
        if modality in self.encoders:
            raise ValueError(f"this model already has a {modality!r} encoder")
        device = next(self.parameters()).device
        encoder = Encoder(config, self.config.embed_dim).to(device)
        encoder.init_weights()
        self.encoders[modality] = encoder
        self.config = ModelConfig(self.config.embed_dim, {**self.config.encoders, modality: config})
        return encoder

    def logit_scale(self, modality: str) -> float:
        """The factor the reference multiplies this modality's unit embeddings by (1.0 for vision)."""
        scale = self._encoder(modality).scale
        return 1.0 if scale is None else float(scale.detach())

    def _encoder(self, modality: str) -> Encoder:
        if modality not in self.encoders:
            raise KeyError(f"this model has no {modality!r} encoder (it has {self.modalities})")
        return self.encoders[modality]

    def forward(self, inputs: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """The reference semantics: normalize, multiply by the modality's scale, then average over clips.

        Clip-averaged outputs are therefore neither unit length nor exactly the scale (as in the reference).
        `None` inputs are skipped (the reference crashes on them).
        """
        outputs = {}
        for modality, x in inputs.items():
            if x is None:
                continue
            encoder = self._encoder(modality)
            items, clips = split_clips(modality, encoder.config, x)
            embedding = encoder(items)
            if encoder.scale is not None:
                embedding = embedding * encoder.scale
            if clips is not None:
                embedding = embedding.view(-1, clips, embedding.shape[-1]).mean(dim=1)
            outputs[modality] = embedding
        return outputs

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings of a model-ready tensor; clips are averaged, then renormalized."""
        encoder = self._encoder(modality)
        items, clips = split_clips(modality, encoder.config, x)
        if items.is_floating_point():  # bf16/fp16 weights take inputs of their dtype (token ids stay integers)
            items = items.to(next(encoder.parameters()).dtype)
        with self._autocast(items.device):
            embedding = encoder(items).float()
        if clips is not None:
            embedding = F.normalize(embedding.view(-1, clips, embedding.shape[-1]).mean(dim=1), dim=-1)
        return embedding

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.inference_mode()
    def embed(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Unit-norm embeddings for any subset of input kinds, from tensors or raw items.

        `model.embed(text=["a dog"], vision=["dog.jpg"], audio=[...], video=["clip.mp4"])`: each key is a
        modality or one of its input kinds (video goes through the vision tower), and the result has the same
        keys. Tensors are used as model inputs; anything else (strings, paths, bytes, arrays) goes through the
        input kind's processor (`openbind.preprocess`, with the transform options this model records): the model
        itself never decodes. `None` is skipped.
        """
        return embed_inputs(self, {**(inputs or {}), **kwargs})

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


def split_clips(modality: str, config: EncoderConfig, x: torch.Tensor) -> tuple[torch.Tensor, int | None]:
    """(items, clips per item or None): one more dim than an item is a batch, two more are clips."""
    if x.ndim in (d + 1 for d in config.item_ndims):
        return x, None
    if x.ndim == max(config.item_ndims) + 2:
        return x.flatten(0, 1), x.shape[1]
    shapes = " or ".join(f"{d + 1}-D (B, ...)" for d in config.item_ndims)
    raise OpenBindInputError(x, f"{modality} input must be {shapes}, or {max(config.item_ndims) + 2}-D (B, clips, ...)")


def embed_inputs(model: Any, items: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """`embed` for any model object with `config`, `modalities`, `device` and `encode` (the torch model and the
    onnxruntime one): raw items through the input kind's processor, then `encode`."""
    from openbind import preprocess
    from openbind.modalities import modality_of

    out = {}
    for kind, value in items.items():
        if value is None:
            continue
        modality = modality_of(kind).name
        if modality not in model.modalities:
            raise KeyError(f"this model has no {modality!r} encoder (it has {model.modalities})")
        if not isinstance(value, torch.Tensor):
            value = preprocess.load(kind, value, **model.config.input_options(kind))
        out[kind] = model.encode(modality, value.to(model.device))
    return out
