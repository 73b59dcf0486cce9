"""CPU runtimes per tower at imagebind_huge size (random weights): torch fp32, bf16 autocast and dynamic int8,
onnxruntime fp32 and int8 (`openbind export onnx [--int8]`), items/s and the minimum cosine to torch fp32.

One tower at a time (its variants alive together, freed before the next tower); the variants are alternated in
every repeat and the table gives medians. Exports go to a temporary folder (huge vision: ~2.5 GB fp32).

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
    torch.manual_seed(SEED)
    model = create_model(preset, modalities=[modality], progress=False)
    x = model.config.encoders[modality].example_input(batch)
    started = time.perf_counter()
    export_onnx(model, work / f"{modality}-fp32")
    export_seconds = time.perf_counter() - started
    export_onnx(model, work / f"{modality}-int8", int8=True)
    torch.manual_seed(SEED)  # the same random weights, quantized
    int8 = create_model(preset, modalities=[modality], precision="int8", progress=False)
    runs = {
        "torch fp32": lambda: model.encode(modality, x),
        "torch bf16": lambda: bf16(model, modality, x),
        "torch int8": lambda: int8.encode(modality, x),
        "onnx fp32": lambda: onnx_fp32.encode(modality, x),
        "onnx int8": lambda: onnx_int8.encode(modality, x),
    }
    onnx_fp32 = OnnxModel(work / f"{modality}-fp32", threads=threads)
    onnx_int8 = OnnxModel(work / f"{modality}-int8", threads=threads)
    with torch.inference_mode():
        outputs = {name: run() for name, run in runs.items()}  # warm-up, and the embeddings compared
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(repeats):
            for name in VARIANTS:
                times[name].append(time_call(runs[name]))
    reference = outputs["torch fp32"]
    row: list[object] = [modality]
    for name in VARIANTS:
        seconds = median(times[name])
        cosine = float(F.cosine_similarity(outputs[name].float(), reference, dim=-1).min())
        row += [f"{batch / seconds:.2f}", f"{median(times['torch fp32']) / seconds:.2f}x", f"{cosine:.5f}"]
    del model, int8, onnx_fp32, onnx_int8, runs, outputs
    gc.collect()
    return row + [f"{export_seconds:.0f}"]


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
