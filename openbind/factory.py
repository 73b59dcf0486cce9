"""`create_model`: presets, pretrained weights (local or downloaded), subsets of modalities, precision."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from openbind.config import ModelConfig
from openbind.errors import CheckpointError
from openbind.model.imagebind import ImageBind
from openbind.runtime.onnx_model import OnnxModel, is_onnx_export
from openbind.weights.checkpoint import CONFIG_NAME, checkpoint_files, read_state_dict
from openbind.weights.hub import resolve_checkpoint
from openbind.weights.official import convert_official_state_dict, is_official_state_dict, load_state_dict_strict

# Presets as data: {"official": kwargs} is the reference constructor `ImageBindModel(**kwargs)`; any other entry
# is a `ModelConfig.to_dict()`. `imagebind_huge` is the released model; the others run on a laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "imagebind_huge": {"official": dict(
        out_embed_dim=1024, vision_embed_dim=1280, vision_num_blocks=32, vision_num_heads=16,
        text_embed_dim=1024, text_num_blocks=24, text_num_heads=16, audio_drop_path=0.1, imu_drop_path=0.7,
    )},
    # 36 M parameters (16 M in text): CPU demos
    "imagebind_small": {"official": dict(
        out_embed_dim=256, vision_embed_dim=384, vision_num_blocks=6, vision_num_heads=6,
        text_embed_dim=256, text_num_blocks=4, text_num_heads=4, audio_embed_dim=256, audio_num_blocks=4,
        audio_num_heads=4, depth_embed_dim=192, depth_num_blocks=4, depth_num_heads=4, thermal_embed_dim=192,
        thermal_num_blocks=4, thermal_num_heads=4, imu_embed_dim=192, imu_num_blocks=4, imu_num_heads=4,
    )},
    # 4 M parameters (3 M in the vocabulary): tests in seconds
    "imagebind_tiny": {"official": dict(
        out_embed_dim=64, vision_embed_dim=96, vision_num_blocks=2, vision_num_heads=4,
        text_embed_dim=64, text_num_blocks=2, text_num_heads=4, audio_embed_dim=64, audio_num_blocks=2,
        audio_num_heads=4, depth_embed_dim=48, depth_num_blocks=2, depth_num_heads=4, thermal_embed_dim=64,
        thermal_num_blocks=2, thermal_num_heads=4, imu_embed_dim=64, imu_num_blocks=2, imu_num_heads=4,
    )},
    # 10 M parameters (6 M in the vocabulary): the quickstart. Small towers with coarse patches (about 50 tokens
    # per input) train on a laptop CPU in minutes; inputs keep the reference sizes, so the standard transforms
    # apply. Thermal has no per-patch norm: a material's temperature is what identifies it. Depth and thermal maps
    # are standardized with about the world's pixel mean and std (as images are with CLIP's): towers trained from
    # scratch on raw [0, 1] maps learned the silhouettes far worse (depth 0.60 against 0.88, docs/quickstart.md).
    "imagebind_world": {"embed_dim": 128, "encoders": {
        "vision": dict(width=128, depth=3, heads=4, patch_size=(2, 32, 32)),
        "text": dict(width=128, depth=2, heads=4),
        "audio": dict(width=128, depth=2, heads=4, kernel_size=16, stride=16, drop_path=0.0),
        "depth": dict(width=96, depth=2, heads=4, kernel_size=32),
        "thermal": dict(width=96, depth=2, heads=4, kernel_size=32, patch_norm=False),
        "imu": dict(width=128, depth=2, heads=4, chunk=40, drop_path=0.0, head_dropout=0.0),
    }, "inputs": {"depth": {"mean": 0.14, "std": 0.126}, "thermal": {"mean": 0.336, "std": 0.182}}},
}  # fmt: skip

PRECISIONS = ("fp32", "bf16", "fp16", "amp_bf16", "amp_fp16", "int8")
RUNTIMES = ("torch", "onnx")


def list_models() -> list[str]:
    return sorted(PRESETS)


def _checkpoint_dir(name: str) -> str:
    """A training run directory stands for the model it wrote (`RUN/model/`)."""
    model_dir = Path(name) / "model"
    return str(model_dir) if (model_dir / CONFIG_NAME).is_file() else name


def get_model_config(name: str) -> ModelConfig:
    """The config of a preset name, or of a checkpoint directory holding `config.json` (or a training run
    directory holding one in `model/`)."""
    name = _checkpoint_dir(name)
    if name in PRESETS:
        preset = PRESETS[name]
        if "official" in preset:
            return ModelConfig.from_official_kwargs(**preset["official"])
        return ModelConfig.from_dict(preset)
    path = Path(name)
    if (path / CONFIG_NAME).is_file():
        return ModelConfig.from_json(path / CONFIG_NAME)
    raise ValueError(f"unknown model {name!r}: use one of {list_models()} or a checkpoint directory with {CONFIG_NAME}")


def create_model(
    name: str | ModelConfig,
    pretrained: str | Path | None = None,
    modalities: Sequence[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    compile: bool = False,
    sha256: str | None = None,
    progress: bool = True,
    runtime: str | None = None,
) -> ImageBind | OnnxModel:
    """Build a model in eval mode.

    name: a preset (`list_models()`), a `ModelConfig`, a checkpoint or training run directory (its weights are
    then loaded unless `pretrained` says otherwise), or an ONNX export directory (`openbind export onnx`).
    pretrained: a local `.pth`/`.safetensors` file or checkpoint directory, a URL, or a known name
    ("imagebind_huge"), downloaded to the cache with resume. modalities: build and load only these (e.g.
    ["text", "audio"]); the other towers are never allocated nor read. precision: "fp32", "bf16"/"fp16"
    (weights cast), "amp_bf16"/"amp_fp16" (fp32 weights, autocast in `embed`), "int8" (CPU: dynamic int8 of the
    trunks' linear layers, `openbind.runtime.quantize_int8`). runtime: "torch", or "onnx" (an `OnnxModel` on
    onnxruntime, CPU; its precision is the export's); None picks "onnx" for an ONNX export directory.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if runtime not in (None, *RUNTIMES):
        raise ValueError(f"runtime must be one of {RUNTIMES} (or None: from the model), got {runtime!r}")
    onnx_export = not isinstance(name, ModelConfig) and is_onnx_export(name)
    if runtime == "onnx" or (runtime is None and onnx_export):
        if not onnx_export:
            raise ValueError(f"runtime 'onnx' takes an ONNX export directory (openbind export onnx), got {name!r}")
        if pretrained is not None or compile or precision != "fp32" or torch.device(device).type != "cpu":
            raise ValueError(
                "an ONNX export runs on the CPU with the weights and precision it was exported with: "
                "pretrained, compile, precision and device do not apply (export with --int8 for int8)"
            )
        return OnnxModel(name, modalities)
    if onnx_export:
        raise ValueError(f"{name} is an ONNX export: load it with runtime='onnx'")
    if precision == "int8" and torch.device(device).type != "cpu":
        raise ValueError(f"precision 'int8' runs on the CPU, not {device}")
    if isinstance(name, ModelConfig):
        config = name
    else:
        name = _checkpoint_dir(name)
        config = get_model_config(name)
        if pretrained is None and name not in PRESETS:
            pretrained = name
    config = config.subset(list(modalities) if modalities is not None else None)
    with torch.device("meta"):
        model = ImageBind(config)  # no memory, no random init: tensors come from the checkpoint or init below
    if pretrained is None:
        model.to_empty(device=device)
        model.init_weights()
    else:
        path = resolve_checkpoint(pretrained, sha256=sha256, progress=progress)
        load_weights(model, path)
        model.to(device)
    if precision in ("bf16", "fp16"):
        model.to(torch.bfloat16 if precision == "bf16" else torch.float16)
    elif precision.startswith("amp_"):
        model.autocast_dtype = torch.bfloat16 if precision == "amp_bf16" else torch.float16
    model.eval()
    if precision == "int8":
        from openbind.runtime.int8 import quantize_int8

        quantize_int8(model)
    if compile:
        for encoder in model.encoders.values():
            encoder.compile()
    return model


def load_weights(model: ImageBind, path: str | Path) -> None:
    """Load a checkpoint (official `.pth`, openbind safetensors or checkpoint directory) strictly into `model`."""
    path = Path(path)
    wanted = set(model.modalities)

    def keep(key: str) -> bool:
        parts = key.split(".")
        return len(parts) > 2 and parts[1] in wanted

    files = checkpoint_files(path, wanted) if path.is_dir() else [path]
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(read_state_dict(file, keep))
    if not state:
        raise CheckpointError(f"{path} holds no weights for {sorted(wanted)}")
    if is_official_state_dict(state):
        state, problems = convert_official_state_dict(state, model.config)
    else:
        problems = []
    load_state_dict_strict(model, state, problems)
