"""Text: CLIP BPE token ids (B,77) through token + position embeddings and a causal trunk; pooled at EOT."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from openbind.config import EncoderConfig
from openbind.modalities import Modality, register_modality


@dataclass
class TextConfig(EncoderConfig):
    width: int = 1024
    depth: int = 24
    heads: int = 16
    vocab_size: int = 49408
    context_length: int = 77
    scale: float | None = 1 / 0.07
    learnable_scale: bool = True
    max_scale: float | None = 100.0

    modality = "text"
    item_ndims = (1,)
    causal = True
    pool = "eos"

    def num_tokens(self) -> int:
        return self.context_length

    def build_stem(self) -> nn.Module:
        return TextStem(self)


class TextStem(nn.Module):
    def __init__(self, config: TextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.pos_embed = nn.Parameter(torch.empty(1, config.context_length, config.width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"text expects (B, L) integer token ids, got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.shape[1] > self.pos_embed.shape[1]:
            raise ValueError(f"text has {tokens.shape[1]} tokens; the context length is {self.pos_embed.shape[1]}")
        x = self.token_embedding(tokens)
        return x + self.pos_embed[:, : tokens.shape[1]].to(x.dtype)


def causal_mask(config: TextConfig) -> torch.Tensor:
    """The reference stores its causal mask as a buffer (0 on and below the diagonal, -inf above)."""
    n = config.context_length
    return torch.full((n, n), float("-inf")).triu_(1)


TEXT = register_modality(
    Modality(
        name="text",
        config_cls=TextConfig,
        official_keys={
            "modality_preprocessors.text.token_embedding.weight": "stem.token_embedding.weight",
            "modality_preprocessors.text.pos_embed": "stem.pos_embed",
            "modality_heads.text.proj.0.weight": "head.norm.weight",
            "modality_heads.text.proj.0.bias": "head.norm.bias",
            "modality_heads.text.proj.1.weight": "head.proj.weight",
            "modality_postprocessors.text.1.log_logit_scale": "log_scale",
        },
        derived_official_keys={"modality_preprocessors.text.mask": causal_mask},
        load="openbind.modalities.text.transform:load_texts",
    )
)
