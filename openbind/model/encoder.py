"""One modality encoder: stem -> trunk -> head -> L2 normalization (the scale is applied by the caller)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from openbind.model.config import EncoderConfig
from openbind.model.transformer import LAYER_NORM_EPS, Transformer


class Head(nn.Module):
    """LayerNorm -> (dropout) -> bias-free projection of the pooled token to the joint space."""

    def __init__(self, width: int, embed_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(width, embed_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(self.norm(x)))


class Encoder(nn.Module):
    """Maps one modality's input tensor to unit-length embeddings; `scale` is its logit scale (or None)."""

    def __init__(self, config: EncoderConfig, embed_dim: int):
        super().__init__()
        if config.causal and config.kv_bias:
            raise ValueError("a causal trunk with extra learned key/value is not supported")
        self.config = config
        self.stem = config.build_stem()
        self.trunk = Transformer(
            config.width,
            config.depth,
            config.heads,
            mlp_ratio=config.mlp_ratio,
            kv_bias=config.kv_bias,
            drop_path=config.drop_path,
            pre_norm=config.pre_trunk_norm,
            causal=config.causal,
        )
        self.head = Head(config.width, embed_dim, config.head_dropout)
        if config.scale is None:
            self.log_scale = None
        elif config.learnable_scale:
            self.log_scale = nn.Parameter(torch.empty(()))
        else:
            self.register_buffer("log_scale", torch.empty(()))

    @property
    def scale(self) -> torch.Tensor | None:
        """The multiplier of the unit embeddings in the reference forward (1/temperature in training)."""
        if self.log_scale is None:
            return None
        scale = self.log_scale.exp()
        return scale.clamp(max=self.config.max_scale) if self.config.max_scale is not None else scale

    def pool(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.config.pool == "eos":  # the EOT id is the largest in the vocabulary
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), x.argmax(dim=-1)]
        return hidden[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_trimmed(trim_padding(self.config, x))

    def embed_trimmed(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` without trimming: a graph of the input's shape alone (what `openbind.runtime` exports)."""
        hidden = self.trunk(self.stem(x))
        return F.normalize(self.head(self.pool(hidden, x)), dim=-1)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Random init for training from scratch; pretrained loads never call this.

        CLIP's scheme: projections with std width^-0.5 (residual outputs further scaled by (2 depth)^-0.5),
        tokens 0.02, positions 0.01. With ViT's uniform 0.02 a small model starts with every input mapped to
        nearly the same embedding and a contrastive loss sits on a long plateau before it learns anything.
        """
        width, depth = self.config.width, self.config.depth
        residual_std = width**-0.5 * (2 * depth) ** -0.5
        for module in self.trunk.blocks:
            nn.init.normal_(module.attn.qkv.weight, std=width**-0.5)
            nn.init.normal_(module.attn.proj.weight, std=residual_std)
            nn.init.normal_(module.mlp.fc1.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(module.mlp.fc2.weight, std=residual_std)
            for linear in (module.attn.qkv, module.attn.proj, module.mlp.fc1, module.mlp.fc2):
                nn.init.zeros_(linear.bias)
            if module.attn.bias_k is not None:
                nn.init.normal_(module.attn.bias_k, std=0.02)
                nn.init.normal_(module.attn.bias_v, std=0.02)
        nn.init.normal_(self.head.proj.weight, std=width**-0.5)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, (nn.Conv2d, nn.Conv3d)) or (isinstance(module, nn.Linear) and module in self.stem.modules()):
                module.reset_parameters()  # fan-in scaled: patches of any size start at unit scale
        for name, param in self.stem.named_parameters():
            if name == "cls_token":
                nn.init.normal_(param, std=0.02)
            elif name == "pos_embed":
                nn.init.normal_(param, std=0.01)
        if self.log_scale is not None:
            self.log_scale.fill_(math.log(self.config.scale))


def trim_padding(config: EncoderConfig, x: torch.Tensor) -> torch.Tensor:
    """Causal attention pooled at EOT: the pooled token never sees the padding after it, so the sequence can end
    at the batch's last EOT. Same result; captions of ~10 tokens cost ~8x less than 77. Other towers' inputs are
    returned unchanged."""
    if config.pool != "eos" or not config.causal or x.shape[0] == 0:
        return x
    return x[:, : int(x.argmax(dim=-1).max()) + 1]
