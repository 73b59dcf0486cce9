"""What trains: freezing towers, unfreezing an encoder's last blocks, and LoRA adapters (written here, no peft).

All functions change `requires_grad` only; train/eval mode stays the caller's choice. Build the optimizer
after choosing what trains (it only takes trainable parameters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from openbind.model.encoder import Encoder

LORA_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients to every parameter of `module` (e.g. the image and text towers); returns it."""
    module.requires_grad_(False)
    return module


def unfreeze_last_blocks(encoder: Encoder, n: int) -> list[str]:
    """Train only the last `n` trunk blocks of `encoder` and its head; freeze the rest of it.

    The stem, the earlier blocks and the logit scale stay frozen (the paper keeps temperatures fixed).
    Returns the names of the trainable parameters, relative to `encoder`.
    """
    blocks = encoder.trunk.blocks
    if not 0 <= n <= len(blocks):
        raise ValueError(f"n must be in [0, {len(blocks)}] (the encoder has {len(blocks)} blocks), got {n}")
    freeze(encoder)
    for block in list(blocks)[len(blocks) - n :]:
        block.requires_grad_(True)
    encoder.head.requires_grad_(True)
    return [name for name, param in encoder.named_parameters() if param.requires_grad]


class LoRALinear(nn.Linear):
    """A frozen `nn.Linear` plus a trainable low-rank update: y = W x + b + (alpha / rank) * B A x.

    It reuses the wrapped layer's own `weight` and `bias` (no copy, same state-dict keys) and adds
    `lora_A` (rank x in, Kaiming-uniform as nn.Linear) and `lora_B` (out x rank, zeros), so at
    construction its output equals the wrapped layer's exactly. Adapters take the base weight's dtype/device.
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        nn.Module.__init__(self)  # not nn.Linear.__init__: the base's parameters are adopted, not reallocated
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.register_parameter("weight", base.weight)
        self.register_parameter("bias", base.bias)
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return F.linear(x, self.weight, self.bias) + self.scaling * update

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain nn.Linear with W + scaling * B A folded in (computed in float32, stored in W's dtype)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        delta = self.scaling * (self.lora_B.float() @ self.lora_A.float())
        linear.weight = nn.Parameter((self.weight.float() + delta).to(self.weight.dtype))
        linear.weight.requires_grad_(self.weight.requires_grad)
        if self.bias is not None:
            linear.bias = self.bias
        return linear

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling}"


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def apply_lora(
    module: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str] = LORA_TARGETS,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze `module` and wrap every nn.Linear whose dotted name ends with one of `targets` in a LoRALinear.

    Afterwards only the adapters train; unfreeze anything else explicitly (e.g. a head) if wanted. Returns the
    names of the wrapped layers; raises if none matched (a misspelt target would otherwise train nothing).
    """
    freeze(module)
    names = [
        name
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and not isinstance(child, LoRALinear) and _matches(name, targets)
    ]
    if not names:
        raise ValueError(f"no nn.Linear in the module matches the LoRA targets {tuple(targets)}")
    for name in names:
        _replace(module, name, LoRALinear(module.get_submodule(name), rank, alpha, dropout))
    return names


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put plain nn.Linear layers back; returns `module`.

    The merged state dict has exactly the keys of the model before `apply_lora`, so it loads into a plain model.
    """
    for name in [n for n, child in module.named_modules() if isinstance(child, LoRALinear)]:
        _replace(module, name, module.get_submodule(name).merged())
    return module


def lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors (`...lora_A`, `...lora_B`), keyed as in `module.state_dict()`; a few MB to save."""
    return {
        key: value
        for key, value in module.state_dict().items()
        if key.endswith(".lora_A") or key.endswith(".lora_B")
    }
