"""What bounds int8 on the CPU: the matrix products alone, and where an int8 graph's time goes.

1. The trunk's four linear shapes at `imagebind_huge` vision, batch 2 (514 rows): GOP/s of fp32 and dynamic
   int8, in torch (`nn.Linear`, torch's dynamic int8 linear as `precision="int8"` uses it) and onnxruntime
   (MatMul, DynamicQuantizeMatMul: what the session makes of an `--int8` export's linear layers). The variants
   alternate in every repeat. If the int8 products alone are N times fp32's, no tower gets past N.
2. `--profile GRAPH ...`: onnxruntime's own profiler on ONNX graphs (e.g. `DIR/vision.onnx` of `openbind
   export onnx --int8`), batch 2 of random inputs: each operator type's share of the run.

    python benchmarks/bench_int8_bound.py
    python benchmarks/bench_int8_bound.py --profile huge_int8/vision.onnx
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import median, print_table, time_call  # noqa: E402

from openbind.runtime.int8 import quantize_linear_layers  # noqa: E402

ROWS = 2 * 257  # batch 2 of the vision tower's 256 patches + class token
SHAPES = ((1280, 3840), (1280, 1280), (1280, 5120), (5120, 1280))  # qkv, proj, fc1, fc2


def onnx_linear(k: int, n: int, int8: bool, threads: int):
    """One linear layer as an onnxruntime session: MatMul, or DynamicQuantizeMatMul with int8 weights."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((k, n), dtype=np.float32) * 0.02
    if int8:
        scale = np.float32(np.abs(weight).max() / 127)
        inits = [numpy_helper.from_array(np.round(weight / scale).astype(np.int8), "w"),
                 numpy_helper.from_array(np.array(scale), "scale"), numpy_helper.from_array(np.array(0, np.int8), "zero")]  # fmt: skip
        node = helper.make_node("DynamicQuantizeMatMul", ["x", "w", "scale", "zero"], ["y"], domain="com.microsoft")
    else:
        inits, node = [numpy_helper.from_array(weight, "w")], helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node], "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [ROWS, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [ROWS, n])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def gemm_rows(repeats: int, threads: int) -> list[list[object]]:
    rows = []
    for k, n in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(ROWS, k)
        linear = nn.Linear(k, n)
        quantized = quantize_linear_layers(nn.Sequential(linear))[0]  # a new module; `linear` stays fp32
        fp32_session, int8_session = onnx_linear(k, n, False, threads), onnx_linear(k, n, True, threads)
        feed = {"x": x.numpy()}
        runs = {
            "torch fp32": lambda: linear(x), "torch int8": lambda: quantized(x),
            "onnxruntime fp32": lambda: fp32_session.run(None, feed), "onnxruntime int8": lambda: int8_session.run(None, feed),
        }  # fmt: skip
        times: dict[str, list[float]] = collections.defaultdict(list)
        with torch.inference_mode():
            for run in runs.values():
                run()
            for _ in range(repeats):
                for name, run in runs.items():
                    times[name].append(time_call(run))
        seconds = {name: median(t) for name, t in times.items()}
        gop = 2 * ROWS * k * n / 1e9
        rows.append([f"{ROWS}x{k}x{n}", *(f"{gop / s:.0f}" for s in seconds.values()),
                     f"{seconds['torch fp32'] / seconds['torch int8']:.2f}x",
                     f"{seconds['onnxruntime fp32'] / seconds['onnxruntime int8']:.2f}x",
                     f"{seconds['torch fp32'] / seconds['onnxruntime int8']:.2f}x"])  # fmt: skip
    return rows


def profile(graph: Path, threads: int, runs: int = 3) -> list[list[object]]:
    """Each operator type's share of `runs` timed runs (after one untimed) of `graph` on random inputs."""
    import onnx
    import onnxruntime

    (value,) = onnx.load(str(graph), load_external_data=False).graph.input
    shape = [2 if not d.dim_value else d.dim_value for d in value.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else rng.integers(1, 1000, shape).astype(dtype)
    with tempfile.TemporaryDirectory() as work:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        session.run(None, {value.name: x})
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(work) / "profile")
        session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, {value.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    total = sum(per_op.values())
    return [[f"{graph.parent.name}/{graph.name}", op, f"{100 * us / total:.1f}%", f"{us / 1000 / runs:.0f}"] for op, us in per_op.most_common(8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--profile", nargs="+", type=Path, default=[], metavar="GRAPH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"linear layers, {args.threads} threads, medians of {args.repeats}: GOP/s, then int8 / fp32 speed")
    print_table(["rows x in x out", "torch fp32", "torch int8", "onnxruntime fp32", "onnxruntime int8",
                 "torch int8/fp32", "onnxruntime int8/fp32", "onnxruntime int8/torch fp32"],
                gemm_rows(args.repeats, args.threads))  # fmt: skip
    for graph in args.profile:
        print()
        print_table(["graph", "operator", "share", "ms per run"], profile(graph, args.threads))


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
