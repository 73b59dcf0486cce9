"""Dynamic int8 quantization of the trunks' linear layers: weights int8 ahead of time, activations quantized per
batch (no calibration data), int8 matrix products on the CPU (VNNI / AMX where present)."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from openbind.model.imagebind import ImageBind


def quantize_int8(model: ImageBind) -> ImageBind:
    """Quantize `model` in place (CPU, fp32 weights) and return it.

    Only the trunks' linear layers (attention q/k/v and output projections, MLPs: nearly all the multiply-adds)
    become int8. The stems (raw inputs with the widest value ranges) and the heads (whose error lands directly
    in the embedding) stay fp32: together they are under 1% of the work of any tower. On CPUs with AVX-512 VNNI
    the activations use all 8 bits (`full_range_activations`).
    """
    if model.device.type != "cpu":
        raise ValueError(f"int8 runs on the CPU; this model is on {model.device}")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("int8 quantization starts from fp32 weights")
    for encoder in model.encoders.values():
        quantize_linear_layers(encoder.trunk)
    return model


def quantize_linear_layers(module: nn.Module) -> nn.Module:
    """Replace every `nn.Linear` inside `module` with its dynamic int8 twin, in place (8-bit activations where
    `full_range_activations`, else torch's 7-bit default); returns `module`."""
    # torch's own dynamic quantization, not torchao's: it is in every torch >= 2.3 and its fbgemm/oneDNN kernels
    # ran ~1.6x faster than torchao 0.18's eager int8 on a 1280-wide MLP here. It warns that it moves to torchao.
    from torch.ao.quantization import quantize_dynamic

    mapping = {nn.Linear: FullRangeLinear} if full_range_activations() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, mapping=mapping, inplace=True)


def full_range_activations() -> bool:
    """Whether int8 activations may use all 8 bits here: on CPUs with AVX-512 VNNI.

    torch's dynamic linear quantizes activations to 7 bits (`reduce_range=True`) so that the pairwise 16-bit
    sums of pre-VNNI x86 kernels cannot saturate; VNNI kernels sum into 32 bits, and the 8th bit brought the
    narrow towers of `imagebind_huge` from cosine 0.996-0.998 to 0.998-0.999 against fp32 (docs/benchmarks.md).
    """
    # newer torch names the probe _is_vnni_supported, older _is_cpu_support_vnni; both report AVX-512 VNNI
    probe = getattr(torch.cpu, "_is_vnni_supported", None) or getattr(torch.cpu, "_is_cpu_support_vnni", None)
    return bool(probe is not None and probe())


class FullRangeLinear(DynamicLinear):
    """torch's dynamic int8 linear with 8-bit activations: the stock module passes `reduce_range=True`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, False).to(x.dtype)
