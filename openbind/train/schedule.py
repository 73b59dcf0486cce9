"""AdamW with the usual weight-decay exclusions, the warmup + cosine learning rate, and the paper's recipes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

# Parameters never decayed whatever their shape: learned tokens, positions, the extra attention key/value
# and the logit scale. Together with "ndim < 2" (biases, LayerNorm weights) this is the ViT/CLIP rule.
NO_DECAY_NAMES = ("cls_token", "pos_embed", "bias_k", "bias_v", "log_scale")


def decays(name: str, param: torch.Tensor) -> bool:
    """Whether `param` (named `name`, dotted) gets weight decay: matrices and kernels only."""
    return param.ndim >= 2 and name.rsplit(".", 1)[-1] not in NO_DECAY_NAMES


def weight_decay_groups(
    params_or_model: nn.Module | Iterable[tuple[str, nn.Parameter]] | Iterable[nn.Parameter],
    weight_decay: float,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups [decayed, not decayed] of the trainable parameters (empty groups dropped).

    Accepts a module, `named_parameters()` pairs, or bare parameters (then only the ndim rule applies).
    Frozen parameters (requires_grad False) are left out, so freeze before building the optimizer.
    """
    items = params_or_model.named_parameters() if isinstance(params_or_model, nn.Module) else params_or_model
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for item in items:
        name, param = item if isinstance(item, tuple) else ("", item)
        if param.requires_grad:
            (decay if decays(name, param) else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("no trainable parameters: nothing to optimize (is everything frozen?)")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(
    params_or_model: nn.Module | Iterable[tuple[str, nn.Parameter]] | Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, without weight decay on biases, norms, tokens, positions, scales."""
    groups = weight_decay_groups(params_or_model, weight_decay)
    try:  # the fused kernel is several times faster (CPU since torch 2.4, CUDA); fall back to foreach
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=True)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the base lr over `warmup_steps`, then cosine decay to `min_lr_ratio` * base at `total_steps`.

    Call `scheduler.step()` after every optimizer step. Step s (0-based) trains with factor (s+1)/warmup during
    warmup, so no step is wasted at lr 0; after `total_steps` the factor stays at `min_lr_ratio`. The state
    dict holds numbers only (safe for `torch.load(weights_only=True)`).
    """
    if not 0 <= warmup_steps <= total_steps or total_steps < 1:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps}, {total_steps}"
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _recipe(dataset: str, pair: str, lr: float, wd: float, batch: int, epochs: int, replication: float,
            temperature: float, grad_clip: float, drop_path: float) -> dict[str, Any]:  # fmt: skip
    return {
        "dataset": dataset,
        "pair": pair,  # anchor (frozen, OpenCLIP ViT-H) - new modality
        "lr": lr,
        "weight_decay": wd,
        "batch_size": batch,
        "epochs": epochs,
        "replication": replication,  # how many times the dataset is repeated per epoch
        "temperature": temperature,  # fixed; the encoder's scale is 1/temperature
        "grad_clip": grad_clip,  # max global gradient norm
        "drop_path": drop_path,
        "warmup_epochs": 2,
        "betas": (0.9, 0.95),
    }


# The paper's Table 9 (ImageBind, Girdhar et al. 2023), one entry per new modality. Thermal replication is 25
# in the table (the text says 50).
PAPER_RECIPES: dict[str, dict[str, Any]] = {
    "audio": _recipe("AudioSet", "video-audio", 1.6e-3, 0.2, 2048, 64, 1.25, 0.05, 1.0, 0.1),
    "depth": _recipe("SUN RGB-D", "image-depth", 1.6e-3, 0.2, 512, 64, 50, 0.2, 1.0, 0.0),
    "thermal": _recipe("LLVIP", "image-thermal", 5e-4, 0.05, 512, 64, 25, 0.1, 5.0, 0.0),
    "imu": _recipe("Ego4D", "video-imu", 5e-4, 0.5, 512, 8, 1, 0.2, 1.0, 0.7),
}
