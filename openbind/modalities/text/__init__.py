"""Text: CLIP BPE token ids (B,77) through token + position embeddings and a causal trunk; pooled at EOT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from openbind.modalities.batch import OnError
from openbind.modalities.registry import InputKind, ItemTransform, Modality, register_modality
from openbind.model.config import EncoderConfig

EOT_TOKEN_ID = 49407  # the vocabulary's last id; pooling takes the position of the largest id


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

    def stem_macs(self) -> float:
        return 0.0  # an embedding lookup

    def example_input(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        tokens = torch.randint(1, self.vocab_size - 400, (batch, self.context_length), device=device)
        tokens[:, -1] = EOT_TOKEN_ID
        return tokens


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


def from_official(k: dict[str, Any]) -> TextConfig:
    return TextConfig(width=k["text_embed_dim"], depth=k["text_num_blocks"], heads=k["text_num_heads"])


def text_transform(**options: Any) -> ItemTransform:
    from openbind.modalities.text.transform import TextTokens

    return TextTokens(**options)


def load_texts(items: Any, *, on_error: OnError = "raise", context_length: int = 77) -> Any:
    from openbind.modalities.text.transform import load_texts

    return load_texts(items, context_length=context_length, on_error=on_error)


TEXT = register_modality(
    Modality(
        name="text",
        config_cls=TextConfig,
        inputs=(InputKind("text", text_transform, load_texts, suffixes=(".txt",), holds_files=False, batched=True),),
        official_keys={
            "modality_preprocessors.text.token_embedding.weight": "stem.token_embedding.weight",
            "modality_preprocessors.text.pos_embed": "stem.pos_embed",
            "modality_heads.text.proj.0.weight": "head.norm.weight",
            "modality_heads.text.proj.0.bias": "head.norm.bias",
            "modality_heads.text.proj.1.weight": "head.proj.weight",
            "modality_postprocessors.text.1.log_logit_scale": "log_scale",
        },
        official_defaults=dict(text_embed_dim=768, text_num_blocks=12, text_num_heads=12),
        from_official=from_official,
        derived_official_keys={"modality_preprocessors.text.mask": causal_mask},
    )
)
