"""Do the training defaults learn on data nobody tuned them for? align + bind audio with no training option.

    python benchmarks/bench_defaults.py OUT [--datasets textures10 textures6 textures16] [--model imagebind_world]

For each dataset (written by `defaults_data.py` into OUT/data/NAME unless there already) it runs, as a new
user would,

    openbind train align --train align.csv --model MODEL --out OUT/runs/NAME/align
    openbind train bind --modality audio --train audio.csv --init OUT/runs/NAME/align --out OUT/runs/NAME/audio

then classifies the held-out images (align model) and spoken words (bound model) zero-shot, with the dataset's
caption templates as prompts, and prints one table row per dataset (also in OUT/runs/NAME/result.json).
Re-running
continues where it stopped (the runs use --resume).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from defaults_data import make_dataset  # noqa: E402

DATASETS = {  # name: (make_dataset options, what it varies)
    "textures10": (dict(classes=10, per_class=180, test_per_class=20, captions="plain"), "the issue's size"),
    "textures6": (dict(classes=6, per_class=100, test_per_class=20, captions="terse"), "few pairs, bare words"),
    "textures16": (dict(classes=16, per_class=75, test_per_class=15, captions="descriptive"), "many classes"),
    "patterns8": (dict(classes=8, per_class=150, test_per_class=20, captions="plain", style="patterns"), "texture only"),
    "shapes10": (dict(classes=10, per_class=180, test_per_class=20, captions="plain", style="shapes"), "shape only"),
}


def _openbind(*args: str) -> float:
    """Run `python -m openbind.cli ARGS` in a fresh process; seconds taken."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "openbind.cli", *args], check=True)
    return time.perf_counter() - start


def _zero_shot(run: Path, data: Path, kind: str) -> float:
    import openbind
    from openbind.data.manifest import read_manifest
    from openbind.eval import evaluate_manifest

    model = openbind.create_model(str(run))
    classes = (data / "classes.txt").read_text().split()
    templates = (data / "templates.txt").read_text().splitlines()
    manifest = read_manifest(data / f"test_{kind}.csv")
    return evaluate_manifest(model, manifest, kind, classes, templates=templates, progress=False).top1


def run_dataset(out: Path, name: str, model: str) -> dict:
    options, varies = DATASETS[name]
    data, runs = out / "data" / name, out / "runs" / name
    if not (data / "templates.txt").is_file():
        make_dataset(data, **options)
    align, audio = runs / "align", runs / "audio"
    quiet = ["--no-progress", "--resume"]  # display and restart only: no training option
    seconds = _openbind("train", "align", "--train", str(data / "align.csv"), "--model", model, "--out", str(align),
                        *quiet)  # fmt: skip
    seconds += _openbind("train", "bind", "--modality", "audio", "--train", str(data / "audio.csv"), "--init",
                         str(align), "--out", str(audio), *quiet)  # fmt: skip
    summaries = {stage: json.loads((runs / stage / "summary.json").read_text()) for stage in ("align", "audio")}
    classes = len((data / "classes.txt").read_text().split())
    image, sound = _zero_shot(align, data, "image"), _zero_shot(audio, data, "audio")
    result = {
        "dataset": name, "varies": varies, "pairs": sum(1 for _ in open(data / "align.csv")) - 1,
        "classes": classes, "captions": options["captions"], "align_image_top1": image, "audio_top1": sound,
        "chance": 1 / classes, "audio_x_chance": sound * classes, "train_seconds": seconds,
        "align_steps": summaries["align"]["steps"], "align_lr": summaries["align"]["lr"],
        "align_exported_step": summaries["align"]["exported_step"], "bind_steps": summaries["audio"]["steps"],
        "bind_exported_step": summaries["audio"]["exported_step"],
    }  # fmt: skip
    (runs / "result.json").write_text(json.dumps(result, indent=2))
    return result


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | pairs | classes | captions | align steps | image top-1 | audio top-1 | chance | audio x chance | "
        "seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} ({r['varies']}) | {r['pairs']:,} | {r['classes']} | {r['captions']} | {r['align_steps']} "
            f"| {r['align_image_top1']:.3f} | {r['audio_top1']:.3f} | {r['chance']:.3f} | {r['audio_x_chance']:.1f} "
            f"| {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for the data and the runs")
    parser.add_argument("--datasets", nargs="+", default=["textures10", "textures6", "textures16"],
                        choices=sorted(DATASETS), help="which datasets to train on (default: the three textures)")
    parser.add_argument("--model", default="imagebind_world", help="preset to train from (default imagebind_world)")
    args = parser.parse_args(argv)
    print(table([run_dataset(args.out, name, args.model) for name in args.datasets]))


if __name__ == "__main__":
    main()
