"""The quickstart: world -> align -> bind audio, depth, thermal, IMU -> evaluate -> report, on a laptop CPU.

It shows ImageBind's central claim in minutes: audio, depth, thermal and IMU encoders are only ever trained
against images (or video), yet they classify through *text* prompts and retrieve each other (never-paired
modalities), and an image embedding plus a sound embedding retrieves images of the sum.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from openbind.eval.arithmetic import arithmetic_hit_rate
from openbind.eval.embedding import embed_items
from openbind.eval.report import summarize_zero_shot, write_report
from openbind.eval.retrieval import recall_both_directions
from openbind.eval.zeroshot import ZeroShotResult, build_classifier
from openbind.factory import create_model
from openbind.model.imagebind import ImageBind
from openbind.train.data import default_transform
from openbind.train.trainer import TrainConfig, Trainer
from openbind.world import WorldInfo, write_world
from openbind.world.concepts import with_article

logger = logging.getLogger("openbind")

# Zero-shot prompts in the world's own words (CLIP's prompt ensembling with the world's caption templates
# instead of ImageNet's: the text tower only knows the language the align stage taught it).
OBJECT_PROMPTS = ("a photo of {}.", "a picture of {}.", "{}.")
ACTIVITY_PROMPTS = ("a video of someone {}.", "a person is {}.")


SUMMARY = """\
What was trained: the image and text towers on (image, caption) pairs (`align`); then, with both frozen,
an audio encoder on (image, sound) pairs, a depth encoder on (image, depth) pairs, a thermal encoder on
(image, thermal) pairs and an IMU encoder on (video, IMU) pairs (`bind`). No sound, depth map, thermal image
or IMU recording was ever paired with text, nor with each other.

What that gives, on held-out scenes with unseen instances: each bound modality is classified through *text*
prompts (emergent zero-shot; image is the directly trained reference), audio and depth of the same scene find
each other (never-paired retrieval), and an image embedding plus a sound embedding retrieves images of the
object in the sound's environment (embedding arithmetic, against the image alone). Chance levels beside."""


@dataclass(frozen=True)
class Stage:
    """One training run of the quickstart."""

    name: str
    modality: str
    anchor: str
    epochs: float
    lr: float
    batch_size: int
    weight_decay: float = 0.05


STAGES = (
    Stage("align", "text", "image", epochs=35, lr=2e-3, batch_size=64),
    Stage("audio", "audio", "image", epochs=40, lr=2e-3, batch_size=50),
    Stage("depth", "depth", "image", epochs=60, lr=3e-3, batch_size=50),
    Stage("thermal", "thermal", "image", epochs=60, lr=3e-3, batch_size=50),
    Stage("imu", "imu", "video", epochs=60, lr=2e-3, batch_size=40),
)


def run_quickstart(
    out: str | Path,
    *,
    seed: int = 0,
    preset: str = "imagebind_world",
    stages: Sequence[Stage] = STAGES,
    world_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Run everything into `out` and return the path of `report.md` (beside it: report.json and plots)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    start = time.perf_counter()

    tick = time.perf_counter()
    world_dir = out / "world"
    if (world_dir / "world.json").is_file():
        world = WorldInfo.load(world_dir)
    else:
        world = write_world(world_dir, seed=seed, progress=progress, **(world_kwargs or {}))
    seconds["world"] = time.perf_counter() - tick

    previous: Path | None = None
    for stage in stages:
        tick = time.perf_counter()
        run_dir = out / "runs" / stage.name
        config = TrainConfig(
            stage="align" if stage.name == "align" else "bind",
            train=[str(world.manifests[f"{stage.name}_train"])],
            out=str(run_dir),
            modality=stage.modality,
            anchor=stage.anchor,
            model=preset,
            init=str(previous) if previous else None,
            epochs=stage.epochs,
            batch_size=stage.batch_size,
            lr=stage.lr,
            weight_decay=stage.weight_decay,
            warmup_epochs=min(2.0, stage.epochs / 10),
            grad_clip=None,
            preload=True,
            seed=seed,
            save_every=10**9,  # one checkpoint per epoch is plenty here
            progress=progress,
        )
        previous = Trainer(config).fit(resume=True)
        seconds[stage.name] = time.perf_counter() - tick
        curves[stage.name] = _loss_curve(run_dir / "log.jsonl")

    tick = time.perf_counter()
    model = create_model(str(previous))
    results = evaluate_world(model, world, progress=progress)
    seconds["evaluate"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - start
    results["seconds"] = seconds
    results["curves"] = curves
    write_report(
        out, results, title="openbind quickstart: emergent alignment in the built-in world", schema="quickstart",
        summary=SUMMARY,
    )
    return out / "report.md"


def _loss_curve(log: Path) -> list[tuple[int, float]]:
    import json

    return [(r["step"], r["loss"]) for r in map(json.loads, log.read_text().splitlines()) if r.get("loss") is not None]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _files(path: Path, column: str) -> tuple[list[str], list[dict[str, str]]]:
    rows = _rows(path)
    return [str(path.parent / row[column]) for row in rows], rows


def _embed(model: ImageBind, column: str, items: list[str], progress: bool) -> torch.Tensor:
    """Embeddings of manifest files through the same transforms as training (so every item must load)."""
    modality = "vision" if column in ("image", "video") else column
    transform = default_transform(column)
    return embed_items(model, modality, items, transform=transform, progress=progress, on_error="raise")


def evaluate_world(model: ImageBind, world: WorldInfo, *, progress: bool = True) -> dict[str, Any]:
    """Zero-shot per modality (emergent for all but image), never-paired retrieval, embedding arithmetic."""
    objects, activities = list(world.objects), list(world.activities)
    with_articles = {name: with_article(name) for name in objects}
    object_classifier = build_classifier(model, with_articles, OBJECT_PROMPTS)
    activity_classifier = build_classifier(model, activities, ACTIVITY_PROMPTS)
    zero_shot: dict[str, ZeroShotResult] = {}
    for name, column, classifier, classes in (
        ("image", "image", object_classifier, objects),
        ("audio", "audio", object_classifier, objects),
        ("depth", "depth", object_classifier, objects),
        ("thermal", "thermal", object_classifier, objects),
        ("imu", "imu", activity_classifier, activities),
        ("video", "video", activity_classifier, activities),
    ):
        files, rows = _files(world.manifests[f"eval_{name}_test"], column)
        labels = torch.tensor([classes.index(row["label"]) for row in rows])
        embeddings = _embed(model, column, files, progress)
        zero_shot[name] = ZeroShotResult.from_scores(classifier.scores(embeddings), labels, classes)
    results = summarize_zero_shot(zero_shot)

    scenes_path = world.manifests["scenes_test"]
    audio_files, scenes = _files(scenes_path, "audio")
    depth_files, _ = _files(scenes_path, "depth")
    ids = [row["scene"] for row in scenes]
    audio = _embed(model, "audio", audio_files, progress)
    depth = _embed(model, "depth", depth_files, progress)
    retrieval = recall_both_directions(audio, depth, ids, ids, names=("audio", "depth"), ks=(1, 5))
    chance = {f"R@{k}": k / len(ids) for k in (1, 5)}
    results["retrieval"] = {**retrieval, "chance": chance, "note": "audio and depth were never trained together"}

    query_path, gallery_path = world.manifests["arithmetic_test"], world.manifests["arithmetic_gallery_test"]
    query_images, queries = _files(query_path, "image")
    query_audio, _ = _files(query_path, "audio")
    gallery_images, gallery = _files(gallery_path, "image")
    results["arithmetic"] = arithmetic_hit_rate(
        _embed(model, "image", query_images, progress),
        _embed(model, "audio", query_audio, progress),
        _embed(model, "image", gallery_images, progress),
        [(row["object"], row["environment"]) for row in gallery],
        [(row["object"], row["environment"]) for row in queries],
        k=5,
    )
    return results
