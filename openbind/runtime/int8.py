"""Dynamic int8 quantization of the trunks' linear layers: weights int8 ahead of time, activations quantized per
batch (no calibration data), int8 matrix products on the CPU (VNNI / AMX where present)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from openbind.model.imagebind import ImageBind


def quantize_int8(model: ImageBind) -> ImageBind:
    """Quantize `model` in place (CPU, fp32 weights) and return it.

    Only the trunks' linear layers (attention q/k/v and output projections, MLPs: nearly all the multiply-adds)
    become int8. The stems (raw inputs with the widest value ranges) and the heads (whose error lands directly
    in the embedding) stay fp32: together they are under 1% of the work of any tower.
    """
    if model.device.type != "cpu":
        raise ValueError(f"int8 runs on the CPU; this model is on {model.device}")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("int8 quantization starts from fp32 weights")
    # torch's own dynamic quantization, not torchao's: it is in every torch >= 2.3 and its fbgemm/oneDNN kernels
    # ran ~1.6x faster than torchao 0.18's eager int8 on a 1280-wide MLP here. It warns that it moves to torchao.
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for encoder in model.encoders.values():
            quantize_dynamic(encoder.trunk, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model
