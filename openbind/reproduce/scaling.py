"""The paper's scaling claim on the built-in world: a stronger image encoder lifts every bound modality.

Image + text towers of several sizes are aligned, each larger one on more image-caption pairs (larger encoders
are pretrained on more data, as CLIP's and OpenCLIP's are); then audio, depth, thermal and IMU are bound to each
frozen pair with one fixed recipe (the quickstart's) and the same bound-tower sizes. The report sets each bound
modality's emergent zero-shot against the image tower's own zero-shot accuracy (the paper's Figure 6).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from openbind.config import ModelConfig
from openbind.eval.report import save_figure, to_jsonable, write_report
from openbind.factory import PRESETS, create_model
from openbind.modalities import IMAGE_TOWER, TEXT_TOWER
from openbind.reproduce.quickstart import (
    STAGES,
    Stage,
    evaluate_world,
    merge_towers,
    run_parallel,
    stage_config,
)
from openbind.train import TrainConfig
from openbind.utils import atomic_write_text
from openbind.weights.checkpoint import CONFIG_NAME, save_checkpoint
from openbind.world import WorldInfo, write_world

IMAGE = "image"  # the image tower's own zero-shot: what each size is ranked by


@dataclass(frozen=True)
class ImageTower:
    """One size of the aligned pair: the image (vision) and text towers, and the image-caption pairs per
    (object, environment) it is aligned on (the training videos' captioned frames come on top, for every size)."""

    name: str
    width: int
    depth: int
    heads: int
    text_width: int
    text_depth: int
    text_heads: int
    align_per_combo: int

    @property
    def label(self) -> str:
        return f"{self.name}\n{self.width}x{self.depth}, {self.align_per_combo}/pair"


@dataclass(frozen=True)
class ScalingRecipe:
    """Everything a scaling run trains: the world, the tower sizes (smallest first), the align and bind stages."""

    towers: tuple[ImageTower, ...]
    world: Mapping[str, Any] = field(default_factory=dict)
    align: Stage = STAGES[0]
    binds: tuple[Stage, ...] = STAGES[1:]
    base: str = "imagebind_world"  # the preset that gives every other tower (and the joint dimension)


RECIPES = {
    # 64x2 / 128x3 (the quickstart's architecture) / 192x4 image towers with 400 / 800 / 1,200 object images;
    # one align recipe (35 epochs, batch 64) and the quickstart's bind recipe for every size.
    "full": ScalingRecipe(
        towers=(
            ImageTower("small", 64, 2, 2, 64, 1, 2, align_per_combo=10),
            ImageTower("medium", 128, 3, 4, 128, 2, 4, align_per_combo=20),
            ImageTower("large", 192, 4, 6, 192, 3, 6, align_per_combo=30),
        ),
        align=Stage("align", "text", "image", epochs=35, lr=2e-3, batch_size=64),
    ),
    # seconds: tests of the pipeline, not of the claim
    "smoke": ScalingRecipe(
        towers=(
            ImageTower("small", 16, 1, 2, 16, 1, 2, align_per_combo=1),
            ImageTower("medium", 32, 1, 2, 32, 1, 2, align_per_combo=2),
            ImageTower("large", 48, 1, 2, 48, 1, 2, align_per_combo=2),
        ),
        world=dict(
            train_per_class=2, test_per_class=1, videos_train_per_activity=1, videos_test_per_activity=1,
            arithmetic_per_combo=1,
        ),
        align=Stage("align", "text", "image", epochs=1, lr=2e-3, batch_size=4),
        binds=tuple(
            Stage(s.name, s.modality, s.anchor, epochs=1, lr=s.lr, batch_size=4, augment=s.augment) for s in STAGES[1:]
        ),
    ),
}


SUMMARY = """\
What varies: only the image and text towers (sizes below) and, with them, the number of image-caption pairs they
are aligned on: each larger pair sees more pairs, as larger CLIP encoders are pretrained on more data. The world,
the align recipe (epochs, batch, learning rate), the bound towers' sizes, the bind recipe and its data are the
same for every size. Each bound modality was trained only against its size's frozen image tower (IMU against
video frames) and is classified through that size's text tower (emergent zero-shot)."""


def run_scaling(
    out: str | Path,
    *,
    recipe: ScalingRecipe | str = "full",
    seed: int = 0,
    processes: int = 2,
    progress: bool = True,
) -> Path:
    """Train and evaluate every tower size of `recipe` into `out`; return the path of `report.md` (beside it:
    report.json and scaling.png). Every trained run is kept under `out/towers/<size>/`; a rerun into the same
    `out` resumes or skips what exists. Runs train `processes` at a time with one torch thread each."""
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
        recipe = RECIPES[recipe]
    if len(recipe.towers) < 2 or len({t.name for t in recipe.towers}) != len(recipe.towers):
        raise ValueError("recipe.towers must hold at least two sizes with distinct names")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    start = tick = time.perf_counter()

    world_dir = out / "world"
    if (world_dir / "world.json").is_file():
        world = WorldInfo.load(world_dir)
    else:
        kwargs = {"seed": seed, "processes": processes, **recipe.world}
        kwargs["align_per_combo"] = max(t.align_per_combo for t in recipe.towers)
        world = write_world(world_dir, progress=progress, **kwargs)
    available = world.config["align_per_combo"]
    if any(t.align_per_combo > available for t in recipe.towers):
        raise ValueError(f"the world in {world_dir} has {available} images per (object, environment); "
                         f"recipe.towers ask for up to {max(t.align_per_combo for t in recipe.towers)}")  # fmt: skip
    seconds["world"] = time.perf_counter() - tick

    tick = time.perf_counter()
    aligns = {}
    for tower in recipe.towers:
        tower_dir = out / "towers" / tower.name
        manifest = write_align_subset(world, tower.align_per_combo, tower_dir / "align_train.csv")
        init = _initial_model(tower, recipe.base, seed, tower_dir / "init")
        aligns[tower.name] = stage_config(recipe.align, manifest, tower_dir / "runs" / "align", model=str(init),
                                          init=None, seed=seed, progress=progress)  # fmt: skip
    aligned_before = {name for name, config in aligns.items() if _is_trained(config)}
    longest_first = sorted(recipe.towers, key=_align_cost, reverse=True)
    trained = train_missing([aligns[t.name] for t in longest_first], processes, progress, desc="align image+text")
    aligned = {name: trained[config.out] for name, config in aligns.items()}
    seconds["align (all sizes)"] = time.perf_counter() - tick

    tick = time.perf_counter()
    binds = [(tower, stage) for stage in recipe.binds for tower in recipe.towers]  # longest stages first
    configs = [
        stage_config(stage, world.manifests[f"{stage.name}_train"], out / "towers" / tower.name / "runs" / stage.name,
                     model=str(aligned[tower.name]), init=aligned[tower.name], seed=seed, progress=progress)
        for tower, stage in binds
    ]  # fmt: skip
    untouched = {t.name for (t, _), c in zip(binds, configs) if t.name in aligned_before} - {
        t.name for (t, _), c in zip(binds, configs) if not _is_trained(c)
    }  # sizes with nothing to train: their saved evaluation stands
    trained = train_missing(configs, processes, progress, desc=f"bind {', '.join(s.name for s in recipe.binds)}")
    bound = [trained[config.out] for config in configs]
    seconds["bind (all sizes)"] = time.perf_counter() - tick

    tick = time.perf_counter()
    evaluations = {}
    for tower in tqdm(recipe.towers, desc="evaluate", unit="size", disable=not progress):
        saved = out / "towers" / tower.name / "evaluation.json"
        if tower.name in untouched and saved.is_file():  # nothing of this size was trained again
            evaluations[tower.name] = json.loads(saved.read_text())
            continue
        towers = {stage.modality: path for (t, stage), path in zip(binds, bound) if t is tower}
        evaluation = to_jsonable(evaluate_world(merge_towers(aligned[tower.name], towers), world, progress=False))
        atomic_write_text(saved, json.dumps(evaluation))
        evaluations[tower.name] = evaluation
    seconds["evaluate"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - start

    results = scaling_results(recipe.towers, evaluations, [stage.modality for stage in recipe.binds])
    results["seconds"] = seconds
    results["recipe"] = recipe
    write_report(out, results, title="openbind scaling: a stronger image encoder lifts every bound modality",
                 summary=SUMMARY + "\n\n" + "\n".join(scaling_table(results)), plotters=[plot_scaling])  # fmt: skip
    return out / "report.md"


def train_missing(configs: list[TrainConfig], processes: int, progress: bool, desc: str) -> dict[str, Path]:
    """Train the runs that have not written their model yet (`processes` at a time); {run dir: model dir}."""
    done = {c.out: Path(c.out) / "model" for c in configs if _is_trained(c)}
    todo = [c for c in configs if not _is_trained(c)]
    trained = run_parallel(todo, processes, progress, desc=desc) if todo else []
    return {**done, **{config.out: path for config, (_, path) in zip(todo, trained)}}


def _is_trained(config: TrainConfig) -> bool:
    return (Path(config.out) / "model" / CONFIG_NAME).is_file()


def write_align_subset(world: WorldInfo, per_combo: int, path: Path) -> Path:
    """The world's image-caption pairs with the first `per_combo` images of every (object, environment) and
    every captioned video frame, paths made relative to `path` (written atomically, unless already there)."""
    if path.is_file():
        return path
    source = world.manifests["align_train"]
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    kept, seen = [], {}
    for row in rows:
        if not row["activity"]:  # an object image; video frames carry their activity and are all kept
            combo = (row["object"], row["environment"])
            seen[combo] = seen.get(combo, 0) + 1
            if seen[combo] > per_combo:
                continue
        kept.append({**row, IMAGE: os.path.relpath(source.parent / row[IMAGE], path.parent)})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text.getvalue())
    return path


def tower_config(tower: ImageTower, base: str) -> ModelConfig:
    """The base preset with the image and text towers of `tower`: every bound tower keeps the base's size."""
    data = copy.deepcopy(PRESETS[base])
    data["encoders"][IMAGE_TOWER].update(width=tower.width, depth=tower.depth, heads=tower.heads)
    data["encoders"][TEXT_TOWER].update(width=tower.text_width, depth=tower.text_depth, heads=tower.text_heads)
    return ModelConfig.from_dict(data)


def _initial_model(tower: ImageTower, base: str, seed: int, directory: Path) -> Path:
    """A randomly initialised model of this size (seeded), saved once for the align run to start from."""
    if not (directory / CONFIG_NAME).is_file():
        torch.manual_seed(seed)
        config = tower_config(tower, base)
        save_checkpoint(create_model(config).state_dict(), config, directory)
    return directory


def _align_cost(tower: ImageTower) -> float:
    """Relative cost of an align run: trunk width^2 x depth of both towers, times the pairs."""
    return (tower.width**2 * tower.depth + tower.text_width**2 * tower.text_depth) * tower.align_per_combo


def scaling_results(
    towers: Sequence[ImageTower], evaluations: Mapping[str, Mapping[str, Any]], modalities: Sequence[str]
) -> dict[str, Any]:
    """Per size: the image tower's zero-shot and each bound modality's emergent zero-shot, their chance levels,
    and each bound modality's Spearman rank correlation with the image tower across sizes."""
    first = evaluations[towers[0].name]
    modalities = [m for m in first["zero_shot"] if m in modalities]  # in the evaluation's order
    image = [evaluations[t.name]["zero_shot"][IMAGE] for t in towers]
    emergent = {m: [evaluations[t.name]["zero_shot"][m] for t in towers] for m in modalities}
    return {
        "towers": [{"name": t.name, "label": t.label.replace("\n", ", "), "width": t.width, "depth": t.depth,
                    "align_per_combo": t.align_per_combo} for t in towers],  # fmt: skip
        "image_top1": image,
        "emergent_top1": emergent,
        "chance": {m: first["chance"][m] for m in [IMAGE, *modalities]},
        "rank_correlation": {m: spearman(image, values) for m, values in emergent.items()},
        "retrieval_audio_to_depth_R@1": [evaluations[t.name]["retrieval"]["audio->depth"]["R@1"] for t in towers],
        "arithmetic_hit_rate": [evaluations[t.name]["arithmetic"]["hit_rate"] for t in towers],
        "per_size": {t.name: evaluations[t.name] for t in towers},
    }


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get their mean rank); None when either side is constant."""
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else None


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of their ranks."""
    return [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


def scaling_table(results: Mapping[str, Any]) -> list[str]:
    """Markdown: one row per size, one column per zero-shot accuracy (percent), then the rank correlations."""
    emergent = results["emergent_top1"]
    header = ["image encoder", "image (trained)", *(f"{m} (emergent)" for m in emergent), "audio->depth R@1"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for i, tower in enumerate(results["towers"]):
        cells = [results["image_top1"][i], *(emergent[m][i] for m in emergent), results["retrieval_audio_to_depth_R@1"][i]]
        lines.append(f"| {tower['label']} | " + " | ".join(f"{100 * v:.1f}" for v in cells) + " |")
    chance = results["chance"]
    lines.append("| chance | " + " | ".join(f"{100 * chance[m]:.1f}" for m in [IMAGE, *emergent]) + " | |")
    rho = ", ".join(f"{m} {_signed(r)}" for m, r in results["rank_correlation"].items())
    return ["", *lines, "", f"Spearman rank correlation with the image tower's top-1 across sizes: {rho}."]


def _signed(value: float | None) -> str:
    return "undefined (constant)" if value is None else f"{value:+.2f}"


def plot_scaling(out_dir: Path, data: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """The paper's figure: x the image encoder, y each bound modality's emergent top-1, chance dotted."""
    from matplotlib.figure import Figure

    labels = [f"{t['name']}\n{t['width']}x{t['depth']}, {t['align_per_combo']}/pair\nimage {100 * a:.0f}%"
              for t, a in zip(data["towers"], data["image_top1"])]  # fmt: skip
    xs = range(len(labels))
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for i, (modality, values) in enumerate(data["emergent_top1"].items()):
        color = f"C{i}"
        ax.plot(xs, [100 * v for v in values], marker="o", color=color, label=modality)
        ax.axhline(100 * data["chance"][modality], color=color, linestyle=":", linewidth=1)
    ax.plot(xs, [100 * v for v in data["image_top1"]], marker="s", color="black", linestyle="--",
            label="image (trained with text)")  # fmt: skip
    ax.set_xticks(list(xs), labels)
    ax.set_xlabel("image encoder (size, images per object-environment pair, its own zero-shot)")
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Emergent zero-shot against image encoder (chance dotted)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return [("Emergent zero-shot of each bound modality against the image encoder",
             save_figure(fig, out_dir / "scaling.png"))]  # fmt: skip
