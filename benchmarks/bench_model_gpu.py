"""CUDA benchmark of the towers: batch 1..256, fp32 / bf16 autocast, eager / torch.compile, in ONE call.

Meant for a GPU lent for a few minutes: it needs no download (random imagebind_huge
weights), prints a markdown table per tower, and writes the same rows as JSON to --out.

    python benchmarks/bench_model_gpu.py --out gpu_bench.json                 # all towers, all batches
    python benchmarks/bench_model_gpu.py --modalities vision --batches 64 256 # a slice
    python benchmarks/bench_model_gpu.py --device cpu --preset imagebind_tiny --batches 1 2 --quick  # smoke

Target (issue 2): vision tower >= 1,500 images/s in bf16 on an H100.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import clips_per_item, encoder_macs, gflops, print_table  # noqa: E402

import openbind  # noqa: E402


def bench(fn, sync, warmup: int, iters: int, budget_s: float) -> float:
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    done = 0
    while done < iters and (done == 0 or time.perf_counter() - start < budget_s):
        fn()
        done += 1
    sync()
    return (time.perf_counter() - start) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="imagebind_huge")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--modalities", nargs="*", default=None)
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8, 32, 64, 128, 256])
    parser.add_argument("--modes", nargs="*", default=["eager", "compiled"], choices=["eager", "compiled"])
    parser.add_argument("--dtypes", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--budget-s", type=float, default=3.0, help="max timed seconds per configuration")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.iters, args.budget_s = 2, 0.5
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name()
    else:
        name = "cpu"
    print(f"torch {torch.__version__}, device {name}, preset {args.preset}", flush=True)
    config = openbind.get_model_config(args.preset)
    modalities = args.modalities or config.modalities
    rows, records = [], []
    for modality in modalities:
        model = openbind.create_model(config, modalities=[modality], device=device)
        encoder = model.encoders[modality]
        enc_config = config.encoders[modality]
        clips = clips_per_item(enc_config)
        macs = encoder_macs(enc_config, config.embed_dim) * clips
        for mode in args.modes:
            runner = torch.compile(encoder, dynamic=False) if mode == "compiled" else encoder
            for dtype in args.dtypes:
                for batch in args.batches:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    x = enc_config.example_input(batch, device=device)
                    items = x.flatten(0, 1) if clips > 1 else x

                    def step():
                        with torch.inference_mode(), torch.autocast(
                            device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"
                        ):
                            return runner(items)

                    try:
                        seconds = bench(step, sync, warmup=3, iters=args.iters, budget_s=args.budget_s)
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        rows.append([modality, mode, dtype, batch, "OOM", "", ""])
                        continue
                    mem = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else float("nan")
                    record = dict(modality=modality, mode=mode, dtype=dtype, batch=batch,
                                  items_per_s=batch / seconds, tflops=gflops(macs * batch, seconds) / 1e3,
                                  peak_gb=mem)  # fmt: skip
                    records.append(record)
                    rows.append([modality, mode, dtype, batch, f"{batch / seconds:.1f}",
                                 f"{record['tflops']:.1f}", f"{mem:.1f}"])  # fmt: skip
                    print(" | ".join(map(str, rows[-1])), flush=True)
        model = encoder = runner = None  # free the GPU memory before the next modality
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    print()
    print_table(["modality", "mode", "dtype", "batch", "items/s", "TFLOP/s", "peak GB"], rows)
    if args.out:
        Path(args.out).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": records}, indent=1))


if __name__ == "__main__":
    main()
