"""Bind-stage training throughput (samples/s) through the real `Trainer`, with and without the anchor cache,
in 1 process and in 2 processes (torchrun, gloo). Random weights; nothing is downloaded or decoded.

Sizes (the frozen anchor is the vision tower, the trained tower is audio; inputs at the reference sizes, so
257 image tokens and 229 audio tokens):
  small       imagebind_small's vision (11.3 M parameters, frozen) + audio (3.4 M, trained) towers
  huge-audio  imagebind_huge's vision (633 M, frozen) + audio (86 M, trained) towers
Only these two towers are built (a preset restricted to vision + audio, registered in this process).

What one measured step is: exactly one iteration of `Trainer.fit`'s loop, timed from the end of one LR
scheduler step to the end of the next (after --warmup steps), on rank 0:
  - the next batch of already-decoded pairs from memory (`PreloadedPairs`, the mixing sampler, collate);
  - without cache: the frozen vision tower's forward on the batch's images (no grad);
    with cache (`cache_anchors`): the lookup of their precomputed embeddings (`EmbeddingCache`, a memory-mapped
    .npy), so the step runs no vision tower at all;
  - the audio tower's forward and backward, the symmetric InfoNCE over the global batch (embeddings gathered
    across ranks) and the in-batch accuracy; gradient clipping; the fused AdamW step; the LR scheduler step;
  - with 2 processes, DDP's gradient all-reduce (gloo) and the rank batch-size check.
Not included: decoding files (the "files" are empty placeholders whose transforms give seeded random tensors of
the training shapes, decoded once by `PreloadedPairs` before training); filling the cache (one-time, done in
`Trainer.__init__`, reported separately as anchors/s); checkpoints and the model export (disabled here).

samples/s = global batch / median step time. 1 process uses --threads torch threads (default: torch's, one per core);
2 processes split the same global batch and use --threads / 2 threads each. Each configuration runs in a fresh
(sub)process; with --repeats N the configurations run N times in alternating order and the rows give the
median over repeats of the per-run medians. fp32 by default; --precisions fp32 bf16 adds bf16 autocast rows.

    python benchmarks/bench_bind.py                    # full CPU run (about 8 minutes on 2 cores)
    python benchmarks/bench_bind.py --quick            # smoke run: tiny and small presets, few steps
    python benchmarks/bench_bind.py --sizes small --precisions fp32 bf16 --repeats 3
    python benchmarks/bench_bind.py --device cuda --json bind_gpu.json   # one GPU (1-process rows only)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import print_table  # noqa: E402

SIZES = {"small": "imagebind_small", "huge-audio": "imagebind_huge"}
QUICK_SIZES = {"small": "imagebind_tiny", "huge-audio": "imagebind_small"}  # --quick: stand-ins, same code path
ANCHOR, TRAINED = "vision", "audio"
# per size and device: (global batch, measured steps, batches per epoch = distinct pairs / global batch)
DEFAULTS = {
    ("small", "cpu"): (32, 10, 4),
    ("huge-audio", "cpu"): (4, 3, 1),
    ("small", "cuda"): (256, 20, 4),
    ("huge-audio", "cuda"): (32, 10, 2),
}


def bench_preset(preset: str) -> str:
    """Register (in this process) `preset` restricted to the anchor and trained towers; returns its name."""
    from openbind.factory import PRESETS, get_model_config

    name = f"bench_bind:{preset}"
    if name not in PRESETS:
        PRESETS[name] = get_model_config(preset).subset([ANCHOR, TRAINED]).to_dict()
    return name


@dataclass(frozen=True)
class SyntheticInput:
    """A training transform that ignores the file and returns a random tensor seeded by its path (so a row always
    gives the same tensor, which the anchor cache needs). Its repr is stable: the cache key stays valid."""

    shape: tuple[int, ...]

    def __call__(self, path: object) -> torch.Tensor:
        generator = torch.Generator().manual_seed(zlib.crc32(str(path).encode()))
        return torch.randn(self.shape, generator=generator)


# --- worker: one configuration, in this process (or one rank of a torchrun group) ---------------------------------


def run_worker(spec: dict) -> None:
    from openbind.train import TrainConfig, Trainer
    from openbind.train.distributed import DistInfo, barrier, cleanup, init_distributed
    from openbind.train.pairs import PairDataset, PreloadedPairs

    torch.set_num_threads(spec["threads"])
    if spec["nproc"] > 1:
        dist = init_distributed("gloo")
    else:
        device = torch.device(spec["device"])
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        dist = DistInfo(0, 1, 0, device)
    sync = torch.cuda.synchronize if dist.device.type == "cuda" else (lambda: None)

    class BenchTrainer(Trainer):
        """The real Trainer with synthetic in-memory inputs, per-step timestamps, and no checkpoints/export."""

        def _build_datasets(self, manifests, replication):
            config, encoders = self.config, self.model.config.encoders
            vision, audio = encoders[ANCHOR], encoders[TRAINED]
            synthetic = {
                "image": SyntheticInput((3, vision.image_size, vision.image_size)),
                "audio": SyntheticInput((1, audio.num_mel_bins, audio.target_length)),  # one 2 s clip
            }
            datasets = []
            for manifest in manifests:
                manifest.transforms = synthetic
                dataset = PairDataset(
                    manifest, config.anchor, config.modality, load_anchor=not self._uses_cache, seed=config.seed
                )
                datasets.append(PreloadedPairs(dataset, 0, False, Path(manifest.name()).name))
            return datasets

        def _build_caches(self, datasets, prefix):
            start = time.perf_counter()
            caches = super()._build_caches(datasets, prefix)
            if prefix == "anchors":
                self.fill_s = time.perf_counter() - start
            return caches

        def save(self) -> None:  # checkpoints are not part of a training step
            pass

        def _export(self, left_chance: bool) -> Path:
            return self.out

    steps = spec["warmup"] + spec["steps"]
    config = TrainConfig(
        stage="bind", modality=TRAINED, anchor="image", train=[spec["manifest"]], out=spec["out"],
        model=bench_preset(spec["preset"]), epochs=steps / spec["epoch_batches"], batch_size=spec["batch"],
        lr=1e-4, warmup_epochs=0.0, precision=spec["precision"], grad_checkpointing=spec["grad_checkpointing"],
        cache_anchors=spec["cache"], preload=True, val_fraction=0.0, progress=False, log_every=10**9, save_every=10**9,
    )  # fmt: skip
    start = time.perf_counter()
    trainer = BenchTrainer(config, dist)
    setup_s = time.perf_counter() - start
    trainer.total_steps = steps  # epochs * steps_per_epoch, without float rounding

    stamps: list[float] = []
    losses: list[torch.Tensor] = []
    scheduler_step, real_loss = trainer.scheduler.step, trainer._loss

    def timed_scheduler_step(*args, **kwargs):
        scheduler_step(*args, **kwargs)
        sync()
        stamps.append(time.perf_counter())

    def recorded_loss(batch, size):
        loss, accuracy = real_loss(batch, size)
        losses.append(loss.detach())
        return loss, accuracy

    trainer.scheduler.step = timed_scheduler_step
    trainer._loss = recorded_loss
    if dist.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit()
    times = [b - a for a, b in zip(stamps[spec["warmup"] - 1 :], stamps[spec["warmup"] :])]
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    hwm_kb = int(status.split("VmHWM:")[1].split()[0]) if "VmHWM:" in status else 0
    params = {m: sum(p.numel() for p in trainer.model.encoders[m].parameters()) for m in (ANCHOR, TRAINED)}
    result = {
        **{k: spec[k] for k in ("size", "preset", "precision", "cache", "nproc", "threads", "batch", "device")},
        "grad_checkpointing": spec["grad_checkpointing"],
        "step_s": times,
        "median_step_s": statistics.median(times),
        "samples_per_s": spec["batch"] / statistics.median(times),
        "setup_s": setup_s - getattr(trainer, "fill_s", 0.0),
        "cache_fill_s": getattr(trainer, "fill_s", None),
        "cache_fill_anchors": spec["batch"] * spec["epoch_batches"] if spec["cache"] else None,
        "losses": [float(x) for x in losses],
        "peak_rss_gb_rank0": hwm_kb * 1024 / 1e9,
        "peak_cuda_gb": torch.cuda.max_memory_allocated() / 1e9 if dist.device.type == "cuda" else None,
        "params_m": {m: n / 1e6 for m, n in params.items()},
        "torch": torch.__version__,
    }
    if dist.is_main:
        Path(spec["result"]).write_text(json.dumps(result))
    del trainer  # DistributedDataParallel must go before its process group
    barrier()
    cleanup()


# --- driver --------------------------------------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(spec: dict, workdir: Path, timeout: float) -> dict:
    """Run one configuration in a fresh process (or a 2-process torchrun group) and return rank 0's result."""
    run = Path(tempfile.mkdtemp(prefix="run_", dir=workdir))
    rows = spec["batch"] * spec["epoch_batches"]
    (run / "files").mkdir()
    lines = ["image,audio"]
    for i in range(rows):  # empty placeholders: the manifest needs existing files, the transforms ignore them
        (run / "files" / f"{i}.png").touch()
        (run / "files" / f"{i}.wav").touch()
        lines.append(f"files/{i}.png,files/{i}.wav")
    (run / "pairs.csv").write_text("\n".join(lines) + "\n")
    spec = {**spec, "manifest": str(run / "pairs.csv"), "out": str(run / "out"), "result": str(run / "result.json")}
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    worker = [str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    if spec["nproc"] > 1:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(spec["nproc"]),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *worker,
        ]  # fmt: skip
    else:
        command = [sys.executable, *worker]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not Path(spec["result"]).is_file():
            lines = (proc.stdout + proc.stderr).splitlines()
            errors = [line for line in lines if "Error:" in line and "ChildFailedError" not in line]
            tail = "\n".join(errors[:5] or lines[-30:])
            return {**spec, "error": f"exit code {proc.returncode}:\n{tail}"}
        return json.loads(Path(spec["result"]).read_text())
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    finally:
        shutil.rmtree(run, ignore_errors=True)


def describe(result: dict) -> str:
    name = f"{result['size']} ({result['preset']}) {result['precision']} {'cache' if result['cache'] else 'no cache'}"
    name += f", {_procs(result['nproc'], result['threads'], result['device'])}"
    if "error" in result:
        return f"{name}: FAILED {result['error']}"
    times = result["step_s"]
    text = (
        f"{name}: {result['samples_per_s']:.2f} samples/s, median step {result['median_step_s']:.3f} s over "
        f"{len(times)} steps (min {min(times):.3f}, max {max(times):.3f}); setup {result['setup_s']:.1f} s"
    )
    if result["cache"]:
        fill, anchors = result["cache_fill_s"], result["cache_fill_anchors"]
        text += f"; cache fill (once) {anchors} anchors in {fill:.1f} s = {anchors / fill:.2f} anchors/s"
    text += f"; peak RSS {result['peak_rss_gb_rank0']:.2f} GB" + (" (rank 0)" if result["nproc"] > 1 else "")
    if result.get("peak_cuda_gb"):
        text += f", peak CUDA {result['peak_cuda_gb']:.2f} GB"
    loss = result["losses"]
    return text + f"; loss {loss[0]:.3f} -> {loss[-1]:.3f}"


def _procs(nproc: int, threads: int, device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{nproc} process on {device}"
    return f"{nproc} proc{'s' if nproc > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"


def table(results: list[dict], procs: list[int], threads: int, device: str) -> tuple[list[str], list[list[object]]]:
    def rate(size, precision, cache, nproc):
        key = (size, precision, cache, nproc)
        runs = [r for r in results if (r["size"], r["precision"], r["cache"], r["nproc"]) == key and "error" not in r]
        return statistics.median(r["samples_per_s"] for r in runs) if runs else math.nan

    def fmt(x: float) -> str:
        return "failed" if math.isnan(x) else f"{x:.2f}" if x < 100 else f"{x:.0f}"

    headers = ["size (trained / frozen anchor)", "precision", "anchor embeddings", "global batch"]
    headers += [f"{_procs(n, threads // n, device)} samples/s" for n in procs]
    if len(procs) > 1:
        headers.append(f"{procs[-1]} procs / 1 proc")
    headers.append("cache speed-up (" + " / ".join(f"{n}p" for n in procs) + ")" if len(procs) > 1 else "cache speed-up")
    rows = []
    keys = list(dict.fromkeys((r["size"], r["precision"], r["cache"]) for r in results))
    for size, precision, cache in keys:
        sample = next(r for r in results if (r["size"], r["precision"], r["cache"]) == (size, precision, cache))
        params = next((r["params_m"] for r in results if r["size"] == size and "params_m" in r), None)
        label = f"{size}: {sample['preset']}"
        if params:
            label += f" audio {params[TRAINED]:.1f} M / vision {params[ANCHOR]:.1f} M"
        rates = [rate(size, precision, cache, n) for n in procs]
        row = [label, precision, "cached (lookup)" if cache else "frozen tower forward", sample["batch"]]
        row += [fmt(x) for x in rates]
        if len(procs) > 1:
            row.append(f"{rates[-1] / rates[0]:.2f}x" if not math.isnan(rates[-1] / rates[0]) else "")
        if cache:
            ups = [rate(size, precision, True, n) / rate(size, precision, False, n) for n in procs]
            row.append(" / ".join(f"{u:.2f}x" if not math.isnan(u) else "-" for u in ups))
        else:
            row.append("")
        rows.append(row)
    return headers, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--precisions", nargs="*", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--cache", nargs="*", default=["off", "on"], choices=["off", "on"],
                        help="without and/or with the frozen-tower (anchor embedding) cache")  # fmt: skip
    parser.add_argument("--procs", nargs="*", type=int, default=None, help="process counts (default: 1 2 on CPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda: 1-process rows only)")
    threads = torch.get_num_threads()
    parser.add_argument("--threads", type=int, default=threads, help=f"torch threads in 1 process (default {threads})")
    parser.add_argument("--batch-small", type=int, default=None, help="global batch (default: 32 CPU, 256 CUDA)")
    parser.add_argument("--batch-huge", type=int, default=None, help="global batch (default: 4 CPU, 32 CUDA)")
    parser.add_argument("--steps-small", type=int, default=None, help="measured steps (default: 10 CPU, 20 CUDA)")
    parser.add_argument("--steps-huge", type=int, default=None, help="measured steps (default: 3 CPU, 10 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 CPU, 3 CUDA)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute the trained tower's blocks")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per configuration")
    parser.add_argument("--json", default=None, help="also write every run's result here")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny / small presets stand in for small / huge-audio, 2 steps")  # fmt: skip
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        run_worker(json.loads(args.worker))
        return

    device = torch.device(args.device).type
    procs = args.procs or ([1, 2] if device == "cpu" else [1])
    if device == "cuda" and procs != [1]:
        parser.error("--device cuda measures 1 process only (one GPU)")
    if any(n < 1 or args.threads % n for n in procs):
        parser.error(f"--threads {args.threads} must split evenly over process counts {procs}")
    warmup = args.warmup if args.warmup is not None else (1 if device == "cpu" else 3)
    if warmup < 1:
        parser.error("--warmup must be at least 1 (the first step's start is the end of the warm-up)")
    presets = QUICK_SIZES if args.quick else SIZES
    specs = []
    for size in args.sizes:
        batch, steps, epoch_batches = DEFAULTS[(size, device)]
        batch = (args.batch_small if size == "small" else args.batch_huge) or (8 if args.quick else batch)
        steps = (args.steps_small if size == "small" else args.steps_huge) or (2 if args.quick else steps)
        if batch % max(procs):
            parser.error(f"the {size} global batch {batch} must split evenly over {max(procs)} processes")
        for precision in args.precisions:
            for nproc in procs:
                for cache in args.cache:
                    specs.append({
                        "size": size, "preset": presets[size], "precision": precision, "cache": cache == "on",
                        "nproc": nproc, "threads": args.threads // nproc, "batch": batch, "steps": steps,
                        "warmup": warmup, "epoch_batches": epoch_batches, "device": args.device,
                        "grad_checkpointing": args.grad_checkpointing,
                    })  # fmt: skip
    print(
        f"torch {torch.__version__}, device {args.device}, {os.cpu_count()} CPUs, {args.threads} threads in 1 "
        f"process, {len(specs)} configurations x {args.repeats} repeats; load average {_load()}",
        flush=True,
    )
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="openbind_bench_bind_"))
    try:
        for repeat in range(args.repeats):
            for spec in specs if repeat % 2 == 0 else specs[::-1]:  # alternate the order between repeats
                result = launch(spec, workdir, args.timeout)
                results.append(result)
                print(describe(result), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nload average at the end: {_load()} (other processes running make the multi-thread rows slower)\n")
    print_table(*table(results, procs, args.threads, args.device))


if __name__ == "__main__":
    main()
