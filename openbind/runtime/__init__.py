"""CPU runtimes: dynamic int8 towers in torch, one ONNX graph per tower, and an onnxruntime-backed model with the
torch model's embedding interface (`create_model(export_dir)`); docs/runtimes.md says when to use which."""

from openbind.runtime.int8 import quantize_int8
from openbind.runtime.onnx_export import export_onnx
from openbind.runtime.onnx_model import OnnxModel, is_onnx_export

__all__ = ["OnnxModel", "export_onnx", "is_onnx_export", "quantize_int8"]
