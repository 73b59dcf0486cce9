"""CPU runtimes per tower at imagebind_huge size (random weights): torch fp32, bf16 autocast and dynamic int8,
onnxruntime fp32 and int8 (`openbind export onnx [--int8]`), items/s and the minimum cosine to torch fp32.

One tower at a time, freed before the next; the variants are alternated in every repeat, in two groups that each
time torch fp32 as their own baseline (`tower_row`), and the table gives medians. Exports go to a temporary
folder (huge vision: ~2.5 GB fp32).

    python benchmarks/bench_runtimes.py                          # all towers, batch 2, 3 repeats
    python benchmarks/bench_runtimes.py --modalities vision --repeats 5
    python benchmarks/bench_runtimes.py --quick                  # smoke run on the tiny preset
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import median, print_table, time_call  # noqa: E402

from openbind import create_model, get_model_config  # noqa: E402
from openbind.runtime import OnnxModel, export_onnx  # noqa: E402

VARIANTS = ("torch fp32", "torch bf16", "torch int8", "onnx fp32", "onnx int8")
SEED = 0


def tower_row(preset: str, modality: str, batch: int, repeats: int, threads: int, work: Path) -> list[object]:
    """Two groups, each alternated with torch fp32 as its own baseline, so that at most one of the two large
    variants (torch fp32 + onnxruntime fp32) is in memory beside the int8 ones: torch fp32/bf16/int8, then
    torch fp32 and onnxruntime fp32/int8."""
    torch.manual_seed(SEED)
    model = create_model(preset, modalities=[modality], progress=False)
    x = model.config.encoders[modality].example_input(batch)
    started = time.perf_counter()
    export_onnx(model, work / "fp32")
    export_seconds = time.perf_counter() - started
    export_onnx(model, work / "int8", int8=True)
    torch.manual_seed(SEED)  # the same random weights, quantized
    int8 = create_model(preset, modalities=[modality], precision="int8", progress=False)
    measured = alternate({
        "torch fp32": partial(model.encode, modality, x),
        "torch bf16": partial(bf16, model, modality, x),
        "torch int8": partial(int8.encode, modality, x),
    }, repeats)  # fmt: skip
    del int8
    gc.collect()
    onnx = alternate({
        "torch fp32": partial(model.encode, modality, x),
        "onnx fp32": partial(OnnxModel(work / "fp32", threads=threads).encode, modality, x),
        "onnx int8": partial(OnnxModel(work / "int8", threads=threads).encode, modality, x),
    }, repeats)  # fmt: skip
    gc.collect()
    reference = measured["torch fp32"][1]
    row: list[object] = [modality]
    for name in VARIANTS:
        group = measured if name in measured else onnx
        seconds, output = group[name]
        cosine = float(F.cosine_similarity(output.float(), reference, dim=-1).min())
        row += [f"{batch / seconds:.2f}", f"{group['torch fp32'][0] / seconds:.2f}x", f"{cosine:.5f}"]
    return row + [f"{export_seconds:.0f}"]


def alternate(runs: dict[str, Callable[[], torch.Tensor]], repeats: int) -> dict[str, tuple[float, torch.Tensor]]:
    """{name: (median seconds, output)}: one warm-up call each (its output kept), then `repeats` rounds that
    call every variant in turn."""
    with torch.inference_mode():
        outputs = {name: run() for name, run in runs.items()}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeats):
            for name, run in runs.items():
                times[name].append(time_call(run))
    return {name: (median(times[name]), outputs[name]) for name in runs}


def bf16(model, modality: str, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model.encode(modality, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="imagebind_huge")
    parser.add_argument("--modalities", nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--quick", action="store_true", help="tiny preset, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.repeats = "imagebind_tiny", 1
    torch.set_num_threads(args.threads)
    modalities = args.modalities or get_model_config(args.preset).modalities
    headers = ["tower"]
    for name in VARIANTS:
        headers += [f"{name} items/s", "speed-up", "min cos"]
    rows = []
    for modality in modalities:
        with tempfile.TemporaryDirectory(prefix="bench_runtimes_") as work:
            rows.append(tower_row(args.preset, modality, args.batch, args.repeats, args.threads, Path(work)))
        print(f"{modality} done", file=sys.stderr, flush=True)
    print(f"{args.preset}, random weights, batch {args.batch}, {args.threads} threads, medians of {args.repeats}; "
          "speed-up and min cosine against torch fp32")  # fmt: skip
    print_table(headers + ["fp32 export s"], rows)


if __name__ == "__main__":
    main()
