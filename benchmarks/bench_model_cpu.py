"""CPU benchmark of the towers at imagebind_huge size (random weights).

Measures, in one process so the numbers are comparable on a noisy shared machine:
  1. per-modality forward throughput at batch 1 and 8, fp32 and bf16 autocast (alternated, medians), and the
     cosine between the bf16 and fp32 embeddings;
  2. the fraction of the machine's matmul rate the vision tower reaches (fp32, batch 4): model FLOP/s over a
     large square matmul's FLOP/s, measured alternately;
  3. (--load) time and peak RSS from a huge-size safetensors checkpoint on disk to the first embedding, in a
     fresh subprocess (the checkpoint is written once to --checkpoint-dir with random weights).

    python benchmarks/bench_model_cpu.py                 # everything (about 10 minutes on 2 cores)
    python benchmarks/bench_model_cpu.py --quick         # smoke run on the tiny preset
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import clips_per_item, encoder_macs, gflops, median, print_table, time_call  # noqa: E402

import openbind  # noqa: E402


def run_forward(encoder, x, clips: int, bf16: bool) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        items = x.flatten(0, 1) if clips > 1 else x
        return encoder(items).float()


def throughput(model, preset_config, modalities, batches, repeats) -> list[list[object]]:
    rows = []
    for modality in modalities:
        encoder = model.encoders[modality]
        config = preset_config.encoders[modality]
        clips = clips_per_item(config)
        macs = encoder_macs(config, preset_config.embed_dim) * clips
        for batch in batches:
            x = config.example_input(batch)
            times = {False: [], True: []}
            outputs = {}
            for bf16 in (False, True):  # warm-up (and the outputs compared below)
                outputs[bf16] = run_forward(encoder, x, clips, bf16)
            for _ in range(repeats):
                for bf16 in (False, True):
                    times[bf16].append(time_call(lambda: run_forward(encoder, x, clips, bf16)))
            cosine = float(F.cosine_similarity(outputs[False], outputs[True], dim=-1).min())
            t32, t16 = median(times[False]), median(times[True])
            rows.append([
                modality, batch, f"{batch / t32:.2f}", f"{gflops(macs * batch, t32):.0f}",
                f"{batch / t16:.2f}", f"{gflops(macs * batch, t16):.0f}", f"{t32 / t16:.2f}x", f"{cosine:.5f}",
            ])  # fmt: skip
            print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def matmul_fraction(model, preset_config, repeats: int, batch: int = 4, n: int = 4096) -> dict:
    encoder = model.encoders["vision"]
    config = preset_config.encoders["vision"]
    x = config.example_input(batch)
    a, b = torch.randn(n, n), torch.randn(n, n)
    macs = encoder_macs(config, preset_config.embed_dim) * batch
    run_forward(encoder, x, 1, False)
    torch.mm(a, b)
    mm_rates, model_rates = [], []
    for _ in range(repeats):
        mm_rates.append(2 * n**3 / time_call(lambda: torch.mm(a, b)) / 1e9)
        model_rates.append(gflops(macs, time_call(lambda: run_forward(encoder, x, 1, False))))
        mm_rates.append(2 * n**3 / time_call(lambda: torch.mm(a, b)) / 1e9)
    ratios = [m / ((mm_rates[2 * i] + mm_rates[2 * i + 1]) / 2) for i, m in enumerate(model_rates)]
    return {
        "matmul_gflops": median(mm_rates),
        "vision_gflops": median(model_rates),
        "fraction": median(ratios),
    }


LOAD_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
import torch, openbind
directory, modality = sys.argv[1], sys.argv[2]
model = openbind.create_model(directory)
loaded = time.perf_counter()
modalities = model.modalities if modality == "all" else [modality]
with torch.inference_mode():
    for m in modalities:
        emb = model.encode(m, model.config.encoders[m].example_input(1))
done = time.perf_counter()
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0]) * 1024
weights = sum(v.numel() * v.element_size() for v in model.state_dict().values())
print(json.dumps({"import_build_load_s": loaded - start, "first_embedding_s": done - start,
                  "peak_rss_gb": hwm / 1e9, "weights_gb": weights / 1e9, "modalities": modalities}))
"""


def ensure_huge_checkpoint(directory: Path) -> Path:
    if (directory / "config.json").is_file() and (directory / "model.safetensors").is_file():
        return directory
    print(f"writing a random imagebind_huge checkpoint to {directory} (once) ...", flush=True)
    from openbind.weights.checkpoint import save_checkpoint

    model = openbind.create_model("imagebind_huge")
    save_checkpoint(model.state_dict(), model.config, directory)
    del model
    return directory


def load_to_first_embedding(directory: Path, modality: str, cold: bool) -> dict:
    for file in directory.glob("*.safetensors") if cold else ():  # evict the checkpoint (only) from the cache
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            cold = False
        finally:
            os.close(fd)
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(directory), modality],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["page_cache"] = "cold (checkpoint evicted)" if cold else "warm"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="imagebind_huge")
    parser.add_argument("--modalities", nargs="*", default=None, help="default: all six")
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="also measure checkpoint -> first embedding")
    parser.add_argument("--checkpoint-dir", default=os.path.join(tempfile.gettempdir(), "openbind_huge_random"))
    parser.add_argument("--quick", action="store_true", help="tiny preset, one repeat: a smoke run")
    parser.add_argument("--skip-throughput", action="store_true", help="only the checkpoint -> embedding part")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.repeats = "imagebind_tiny", 1
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, preset {args.preset}", flush=True)
    config = openbind.get_model_config(args.preset)
    modalities = args.modalities or config.modalities
    if not args.skip_throughput:
        measure_throughput(args, config, modalities)
    if args.load:
        measure_load(args, config)


def measure_throughput(args: argparse.Namespace, config, modalities: list[str]) -> None:
    model = openbind.create_model(config, modalities=modalities)
    headers = ["modality", "batch", "fp32 items/s", "fp32 GFLOP/s", "bf16 items/s", "bf16 GFLOP/s",
               "bf16 speed-up", "min cosine bf16 vs fp32"]  # fmt: skip
    print(" | ".join(headers), flush=True)
    rows = throughput(model, config, modalities, args.batches, args.repeats)
    print()
    print_table(headers, rows)
    if "vision" in modalities:
        frac = matmul_fraction(model, config, args.repeats)
        print(
            f"\nvision fp32 batch 4: {frac['vision_gflops']:.1f} GFLOP/s; 4096^2 fp32 matmul: "
            f"{frac['matmul_gflops']:.1f} GFLOP/s; fraction (median of paired runs): {frac['fraction']:.3f}"
        )


def measure_load(args: argparse.Namespace, config) -> None:
    """Checkpoint on disk -> first embedding, in fresh processes: cold (checkpoint evicted) then warm."""
    if args.quick:
        from openbind.weights.checkpoint import save_checkpoint

        directory = Path(tempfile.mkdtemp())
        model = openbind.create_model(config)
        save_checkpoint(model.state_dict(), model.config, directory)
    else:
        directory = ensure_huge_checkpoint(Path(args.checkpoint_dir))
    for cold in (True, False):
        for modality in ("text", "vision", "all"):
            r = load_to_first_embedding(directory, modality, cold)
            print(
                f"checkpoint -> first {modality} embedding: {r['first_embedding_s']:.2f} s "
                f"(import+build+load {r['import_build_load_s']:.2f} s), peak RSS {r['peak_rss_gb']:.2f} GB, "
                f"weights {r['weights_gb']:.2f} GB, ratio {r['peak_rss_gb'] / r['weights_gb']:.2f}, "
                f"page cache {r['page_cache']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
