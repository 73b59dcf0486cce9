"""`export_onnx`: one ONNX graph per tower (dynamic batch; text also of dynamic length), each checked against the
torch model on export, optionally with onnxruntime's dynamic int8 quantization of the trunks' linear layers."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openbind.model.encoder import Encoder
from openbind.model.imagebind import ImageBind
from openbind.runtime.onnx_model import FORMAT, INPUT_NAME, MIN_TEXT_LENGTH, OUTPUT_NAME, RECORD_NAME, OnnxModel
from openbind.utils import atomic_write_text, fsync_dir
from openbind.weights.checkpoint import CONFIG_NAME

logger = logging.getLogger("openbind")

FP32_MIN_COSINE = 0.9999  # an fp32 graph below this against torch is a broken export, not rounding
INT8_WARN_COSINE = 0.999  # int8 below this on the check inputs is logged: try the fp32 export for that tower
OPSET = 18
CHECK_BATCH = 3
CHECK_SEED = 0


class ExportCheckError(RuntimeError):
    """An exported graph's embeddings differ from the torch model's."""


class _Tower(nn.Module):
    """One encoder as an exportable graph: model-ready items (the tower's widest layout) -> unit embeddings."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_trimmed(x)


def export_onnx(
    model: ImageBind, out: str | os.PathLike, *, int8: bool = False, source_fingerprint: str | None = None
) -> dict[str, dict[str, Any]]:
    """Write `out/<modality>.onnx` for every tower of `model`, its `config.json` and `onnx.json` (the record:
    precision, `source_fingerprint` (the fingerprint of the model directory it was exported from, so an index
    built with that model accepts the export for queries), and per tower its file, logit scale and the minimum
    cosine of its embeddings to the torch model's on random inputs). Raises `ExportCheckError` when an fp32
    graph's cosine is below 0.9999; int8 cosines are recorded (and logged when below 0.999). The directory
    appears whole or not at all. Returns the towers' records. `create_model(out)` then loads the export on
    onnxruntime.
    """
    if not isinstance(model, ImageBind):
        raise ValueError(f"export_onnx takes an openbind ImageBind model, got {type(model).__name__}")
    if model.device.type != "cpu" or any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("export an fp32 model on the CPU (create_model(..., precision='fp32', device='cpu'))")
    if any(type(m).__module__.startswith("torch.ao.") for m in model.modules()):
        raise ValueError("export the fp32 model: int8 graphs come from export_onnx(..., int8=True)")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise RuntimeError(f"ONNX export needs torch >= 2.5 (its torch.export-based exporter); this is {torch.__version__}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty directory")
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        towers = _export(model, work, int8, source_fingerprint)
        if out.exists():
            out.rmdir()
        os.replace(work, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return towers


def _export(model: ImageBind, work: Path, int8: bool, source_fingerprint: str | None) -> dict[str, dict[str, Any]]:
    import onnxruntime

    was_training = model.training
    model.eval()
    try:
        towers = {}
        for modality, encoder in model.encoders.items():
            file = f"{modality}.onnx"
            input_dtype = _export_tower(encoder, work / file)
            towers[modality] = {
                "file": file,
                "input_dtype": str(input_dtype).removeprefix("torch."),
                "scale": None if encoder.scale is None else float(encoder.scale.detach()),
            }
        model.config.to_json(work / CONFIG_NAME)
        record = {"format": FORMAT, "precision": "fp32", "opset": OPSET, "towers": towers,
                  "source_fingerprint": source_fingerprint, "torch": torch.__version__,
                  "onnxruntime": onnxruntime.__version__}  # fmt: skip
        _write_record(work, record)
        for modality, cosine in check_export(model, work).items():
            towers[modality]["cosine_fp32"] = cosine
            if cosine < FP32_MIN_COSINE:
                raise ExportCheckError(
                    f"the exported {modality} graph's embeddings have cosine {cosine:.6f} to the torch model's "
                    f"(at least {FP32_MIN_COSINE} expected)"
                )
        _write_record(work, record)
        if int8:
            for modality in towers:
                _quantize_file(work / towers[modality]["file"])
            record["precision"] = "int8"
            _write_record(work, record)
            for modality, cosine in check_export(model, work).items():
                towers[modality]["cosine_int8"] = cosine
                if cosine < INT8_WARN_COSINE:
                    logger.warning("int8 %s: cosine %.5f to fp32 on random inputs", modality, cosine)
            _write_record(work, record)
        return towers
    finally:
        model.train(was_training)


def check_export(model: ImageBind, directory: Path, batch: int = CHECK_BATCH) -> dict[str, float]:
    """Per tower: the minimum over random example inputs (clips included) of the cosine between the export's
    embeddings on onnxruntime and the torch model's."""
    exported = OnnxModel(directory)
    cosines = {}
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(CHECK_SEED)
        for modality, encoder in model.encoders.items():
            x = encoder.config.example_input(batch)
            expected = model.encode(modality, x)
            cosines[modality] = float((exported.encode(modality, x) * expected).sum(dim=-1).min())
    return cosines


def _export_tower(encoder: Encoder, path: Path) -> torch.dtype:
    """Export one tower's graph to `path`; returns the dtype of its input."""
    config = encoder.config
    with torch.random.fork_rng():
        torch.manual_seed(CHECK_SEED)
        example = config.example_input(2)
    items = config.export_input(example.flatten(0, 1) if example.ndim == max(config.item_ndims) + 2 else example)
    dims: dict[int, Any] = {0: torch.export.Dim("batch")}
    if config.pool == "eos":  # token ids: the length varies too (trimmed after the batch's last EOT)
        dims[1] = torch.export.Dim("length", min=MIN_TEXT_LENGTH, max=items.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Tower(encoder).eval(), (items.contiguous(),), str(path), input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamo=True, opset_version=OPSET, dynamic_shapes=(dims,),
            external_data=True, verbose=False,
        )  # fmt: skip
    return items.dtype


def _quantize_file(path: Path) -> None:
    """onnxruntime's dynamic int8 of the trunk's linear layers (the same layers as `quantize_int8`), in place."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(path), load_external_data=False).graph
    # The exporter records each node's module path ("namespace"): pick the trunk's linear layers by it.
    trunk = [
        node.name for node in graph.node
        if node.op_type in ("MatMul", "Gemm")
        and any(p.key == "namespace" and ".trunk" in p.value for p in node.metadata_props)
    ]  # fmt: skip
    if not trunk:
        raise ExportCheckError(f"{path}: found no trunk layers to quantize (no module paths in the graph)")
    quantized = path.with_name(path.stem + ".int8.onnx")
    root = logging.getLogger()
    root.addFilter(_drop_preprocessing_advice)
    try:
        quantize_dynamic(
            path, quantized, weight_type=QuantType.QInt8, nodes_to_quantize=trunk, use_external_data_format=True
        )
    finally:
        root.removeFilter(_drop_preprocessing_advice)
    for file in (path, path.with_name(path.name + ".data")):
        file.unlink(missing_ok=True)
    onnx.save(onnx.load(str(quantized)), str(path), save_as_external_data=True, location=path.name + ".data")
    for file in (quantized, quantized.with_name(quantized.name + ".data")):
        file.unlink(missing_ok=True)


def _drop_preprocessing_advice(record: logging.LogRecord) -> bool:
    """onnxruntime's quantizer advises shape inference on the root logger for every model; the exporter's graphs
    carry their shapes already."""
    return not record.getMessage().startswith("Please consider to run pre-processing")


def _write_record(directory: Path, record: dict[str, Any]) -> None:
    atomic_write_text(directory / RECORD_NAME, json.dumps(record, indent=2) + "\n")
