"""The built-in world's held-out scenes laid out as four published datasets, evaluated with `openbind eval`.

A check that the benchmark readers map labels right, end to end: the quickstart's test scenes are written as
ESC-50 (`meta/esc50.csv` + `audio/`, 5 folds), AudioSet (`eval_segments.csv` with its comment lines and quoted MID
lists, `class_labels_indices.csv`, `Y{id}.wav`), Clotho (`clotho_captions_evaluation.csv` + `evaluation/` with
spaces in the names; the scenes' captions as queries) and SUN RGB-D (`SUNRGBD/kv1/NYUdata/<scene>/` with
`depth_bfx/` in SUN's bit-rotated millimetres, `intrinsics.txt`, `scene.txt`, and the toolbox's `allsplit.mat`),
then evaluated with the quickstart's model. The accuracies should be far above chance and close to the
quickstart's own report for audio and depth (which uses the world's prompts; pass `--templates` with those to
compare like with like).

    python examples/world_benchmarks.py --world quickstart_out/world --model quickstart_out/model --out world_eval
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from openbind.eval.benchmarks import evaluate
from openbind.eval.benchmarks.report import comparison_rows
from openbind.world import WorldInfo


def scenes(world: WorldInfo) -> list[dict[str, str]]:
    with open(world.manifests["scenes_test"], newline="") as f:
        return [{k: (str(world.out_dir / v) if k in ("image", "audio", "depth") else v) for k, v in row.items()}
                for row in csv.DictReader(f)]  # fmt: skip


def write_esc50(rows: list[dict[str, str]], objects: list[str], root: Path) -> Path:
    folder = root / "ESC-50-master"
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    (folder / "meta").mkdir(exist_ok=True)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for i, row in enumerate(rows):
        target, fold = objects.index(row["object"]), i % 5 + 1
        name = f"{fold}-{100000 + i}-A-{target}.wav"
        shutil.copy(row["audio"], folder / "audio" / name)
        lines.append(f"{name},{fold},{target},{row['object'].replace(' ', '_')},False,{100000 + i},A")
    (folder / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return folder


def write_audioset(rows: list[dict[str, str]], objects: list[str], root: Path) -> Path:
    folder = root / "audioset"
    (folder / "audio" / "eval").mkdir(parents=True, exist_ok=True)
    mids = {name: f"/m/0w{i:03d}" for i, name in enumerate(objects)}
    labels = ["index,mid,display_name"] + [f'{i},{mids[n]},"{n}"' for i, n in enumerate(objects)]
    (folder / "class_labels_indices.csv").write_text("\n".join(labels) + "\n")
    segments = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# num_ytids=0, num_segs=0, num_unique_labels=0,",
                "# YTID, start_seconds, end_seconds, positive_labels"]  # fmt: skip
    for i, row in enumerate(rows):
        ytid = f"w{i:05d}xyzAB"
        shutil.copy(row["audio"], folder / "audio" / "eval" / f"Y{ytid}.wav")
        segments.append(f'{ytid}, 30.000, 40.000, "{mids[row["object"]]}"')
    (folder / "eval_segments.csv").write_text("\n".join(segments) + "\n")
    return folder


def write_clotho(rows: list[dict[str, str]], root: Path) -> Path:
    folder = root / "clotho"
    (folder / "evaluation").mkdir(parents=True, exist_ok=True)
    with open(folder / "clotho_captions_evaluation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name"] + [f"caption_{k}" for k in range(1, 6)])
        for i, row in enumerate(rows):
            name = f"scene {i:04d} {row['object']} in the {row['environment']}.wav"
            shutil.copy(row["audio"], folder / "evaluation" / name)
            writer.writerow([name] + [row["text"]] * 5)
    return folder


def write_sunrgbd(rows: list[dict[str, str]], root: Path, focal_px: float) -> tuple[Path, Path]:
    """Scenes under kv1/NYUdata with the object as scene.txt; the classes file names the objects."""
    folder = root / "sunrgbd"
    tests = []
    for i, row in enumerate(rows):
        scene = folder / "SUNRGBD" / "kv1" / "NYUdata" / f"NYU{i + 1:04d}"
        (scene / "image").mkdir(parents=True, exist_ok=True)
        (scene / "depth_bfx").mkdir(exist_ok=True)
        shutil.copy(row["image"], scene / "image" / f"NYU{i + 1:04d}.jpg")
        mm = np.asarray(Image.open(row["depth"])).astype(np.uint32)
        rotated = ((mm << 3) | (mm >> 13)) & 0xFFFF
        Image.fromarray(rotated.astype(np.uint16)).save(scene / "depth_bfx" / f"NYU{i + 1:04d}.png")
        (scene / "intrinsics.txt").write_text(f"{focal_px} 0 112\n0 {focal_px} 112\n0 0 1\n")
        (scene / "scene.txt").write_text(row["object"].replace(" ", "_"))
        tests.append(f"/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU{i + 1:04d}")
    split = folder / "SUNRGBDtoolbox" / "traintestSUNRGBD"
    split.mkdir(parents=True, exist_ok=True)
    cell = np.empty((1, len(tests)), dtype=object)
    cell[0, :] = tests
    scipy.io.savemat(split / "allsplit.mat", {"alltest": cell, "alltrain": np.empty((1, 0), dtype=object)})
    classes = root / "sun_classes.txt"
    classes.write_text("\n".join(sorted({row["object"] for row in rows})) + "\n")
    return folder, classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", required=True, help="a world folder (quickstart_out/world)")
    parser.add_argument("--model", required=True, help="a model trained on it (quickstart_out/model)")
    parser.add_argument("--out", required=True, help="where the layouts and the results go")
    parser.add_argument("--templates", default=None, help="prompt templates file (default: CLIP's 80)")
    args = parser.parse_args()
    world, out = WorldInfo.load(args.world), Path(args.out)
    rows, objects = scenes(world), list(world.objects)
    layouts = out / "layouts"
    if layouts.exists():
        shutil.rmtree(layouts)
    options = {"progress": False}
    if args.templates:
        options["templates"] = [t for t in Path(args.templates).read_text().splitlines() if t.strip()]
    sun_root, sun_classes = write_sunrgbd(rows, layouts, focal_px=518.857901)
    runs = [
        ("esc50", write_esc50(rows, objects, layouts), None),
        ("audioset", write_audioset(rows, objects, layouts), None),
        ("clotho", write_clotho(rows, layouts), None),
        ("sun-d", sun_root, sun_classes),
    ]
    quickstart = json.loads((Path(args.model).parent / "report.json").read_text()) if (
        Path(args.model).parent / "report.json").is_file() else {}  # fmt: skip
    summary = {}
    for name, root, classes in runs:
        result = evaluate(name, root, args.model, out=out / "results", classes=classes, cache_root=None, **options)
        summary[name] = {metric: ours for metric, _, ours in comparison_rows(result)}
        summary[name]["chance"] = result["chance"]
        print(f"{name}: {result['counts']['evaluated']} items; " + ", ".join(
            f"{metric} {value:.1f}" for metric, value in summary[name].items() if isinstance(value, float)))  # fmt: skip
    if quickstart:
        summary["quickstart"] = {k: 100 * v for k, v in quickstart["zero_shot"].items()}
        print("quickstart zero-shot top-1: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["quickstart"].items()))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
