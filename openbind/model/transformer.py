"""The shared transformer trunk: batch-first pre-norm blocks on `scaled_dot_product_attention`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

LAYER_NORM_EPS = 1e-6  # trunk blocks, the vision pre-trunk norm and all heads (docs/imagebind.md section 1.3)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch for a random subset of samples in training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention with a packed q/k/v projection.

    With `kv_bias`, one learned key and one learned value are appended after projection (ImageBind's audio,
    depth, thermal and IMU towers), so every query can also attend to a learned "null" token.
    """

    def __init__(self, dim: int, heads: int, kv_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if kv_bias:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        else:
            self.bias_k = self.bias_v = None

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)  # each (b, h, n, d/h)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.to(k.dtype).view(1, h, 1, d // h).expand(b, -1, -1, -1)], dim=2)
            v = torch.cat([v, self.bias_v.to(v.dtype).view(1, h, 1, d // h).expand(b, -1, -1, -1)], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as the reference
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, kv_bias: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, heads, kv_bias=kv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), causal=causal))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of blocks with drop path growing linearly from 0 to `drop_path`; optional pre-trunk LayerNorm."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        kv_bias: bool = False,
        drop_path: float = 0.0,
        pre_norm: bool = False,
        causal: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.pre_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS) if pre_norm else None
        rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, kv_bias, rate) for rate in rates)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, self.causal, use_reentrant=False)
            else:
                x = block(x, causal=self.causal)
        return x
