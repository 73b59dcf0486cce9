"""The quickstart: world -> align -> bind audio, depth, thermal, IMU -> evaluate -> report, on a laptop CPU.

It shows ImageBind's central claim in minutes: audio, depth, thermal and IMU encoders are only ever trained
against images (or video), yet they classify through *text* prompts and retrieve each other (never-paired
modalities), and an image embedding plus a sound embedding retrieves images of the sum.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from openbind.eval.arithmetic import arithmetic_hit_rate
from openbind.eval.embedding import embed_items
from openbind.eval.report import summarize_zero_shot, write_report
from openbind.eval.retrieval import recall_both_directions
from openbind.eval.zeroshot import ZeroShotResult, build_classifier
from openbind.factory import create_model
from openbind.modalities import get_input
from openbind.model.imagebind import ImageBind
from openbind.train import TrainConfig, Trainer
from openbind.weights.checkpoint import save_checkpoint
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
    augment: bool = False


STAGES = (  # binds longest first, so that two processes finish them at about the same time
    Stage("align", "text", "image", epochs=26, lr=2e-3, batch_size=64),  # 1,920 pairs: 780 steps
    Stage("depth", "depth", "image", epochs=105, lr=2e-3, batch_size=50, augment=True),  # 2,520 steps
    Stage("thermal", "thermal", "image", epochs=100, lr=2e-3, batch_size=50, augment=True),  # 2,400 steps
    Stage("audio", "audio", "image", epochs=25, lr=2e-3, batch_size=50),
    Stage("imu", "imu", "video", epochs=60, lr=2e-3, batch_size=40),
)


def run_quickstart(
    out: str | Path,
    *,
    seed: int = 0,
    preset: str = "imagebind_world",
    stages: Sequence[Stage] = STAGES,
    world_kwargs: dict[str, Any] | None = None,
    processes: int = 2,
    progress: bool = True,
) -> Path:
    """Run everything into `out` and return the path of `report.md` (beside it: report.json, plots, and
    `model/`, the aligned model with every bound tower).

    The world renders in `processes` processes. `stages` starts with align; the binds after it all start from
    the aligned model, so they too run `processes` at a time, one torch thread each (on the 2-core machine two
    1-thread binds did 1.16x the samples/s of one 2-thread bind when quiet, and one thread per process stays
    fast when other jobs share the cores); their towers are then merged into one model. `processes=1` runs
    everything in this process. Each stage resumes where an earlier, interrupted quickstart into `out` stopped.
    """
    if not stages or stages[0].name != "align" or any(stage.name == "align" for stage in stages[1:]):
        raise ValueError("stages must start with the one align stage, followed by bind stages")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    tick = time.perf_counter()
    world_dir = out / "world"
    if (world_dir / "world.json").is_file():
        world = WorldInfo.load(world_dir)
    else:
        world_kwargs = {"seed": seed, "processes": processes, **(world_kwargs or {})}
        world = write_world(world_dir, progress=progress, **world_kwargs)
    seconds["world"] = time.perf_counter() - tick

    align = stages[0]
    seconds["align"], aligned = run_stage(_stage_config(align, world, out, preset, None, seed, progress))
    configs = [_stage_config(stage, world, out, preset, aligned, seed, progress) for stage in stages[1:]]
    tick = time.perf_counter()
    bound = run_parallel(configs, processes, progress)
    seconds.update({stage.name: stage_seconds for stage, (stage_seconds, _) in zip(stages[1:], bound)})
    if processes > 1 and len(configs) > 1:
        seconds["binds (in parallel)"] = time.perf_counter() - tick

    tick = time.perf_counter()
    model = merge_towers(aligned, {stage.modality: path for stage, (_, path) in zip(stages[1:], bound)})
    save_checkpoint(model.state_dict(), model.config, out / "model")  # every trained tower in one model
    results = evaluate_world(model, world, progress=progress)
    seconds["evaluate"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - start
    results["seconds"] = seconds
    results["curves"] = {stage.name: _loss_curve(out / "runs" / stage.name / "log.jsonl") for stage in stages}
    write_report(
        out, results, title="openbind quickstart: emergent alignment in the built-in world", schema="quickstart",
        summary=SUMMARY,
    )
    return out / "report.md"


def _stage_config(
    stage: Stage, world: WorldInfo, out: Path, preset: str, init: Path | None, seed: int, progress: bool
) -> TrainConfig:
    train = world.manifests[f"{stage.name}_train"]
    return stage_config(stage, train, out / "runs" / stage.name, model=preset, init=init, seed=seed, progress=progress)


def stage_config(
    stage: Stage, train: str | Path, run_dir: str | Path, *, model: str, init: Path | None, seed: int, progress: bool
) -> TrainConfig:
    """The training run of one stage on one manifest: every option given, so no default of TrainConfig moves it."""
    return TrainConfig(
        stage="align" if stage.name == "align" else "bind",
        train=[str(train)],
        out=str(run_dir),
        modality=stage.modality,
        anchor=stage.anchor,
        model=model,
        init=str(init) if init else None,
        epochs=stage.epochs,
        batch_size=stage.batch_size,
        lr=stage.lr,
        weight_decay=stage.weight_decay,
        augment=stage.augment,
        warmup_epochs=min(2.0, stage.epochs / 10),
        grad_clip=None,
        val_fraction=0.0,  # the recipe trains on every pair and exports its last step, as its numbers were measured
        preload=True,
        seed=seed,
        save_every=10**9,  # one checkpoint per epoch is plenty here
        progress=progress,
    )


def run_stage(config: TrainConfig, threads: int | None = None) -> tuple[float, Path]:
    """Train one stage (resuming a partial run); (seconds, trained model directory)."""
    if threads:
        torch.set_num_threads(threads)
    tick = time.perf_counter()
    model_dir = Trainer(config).fit(resume=True)
    return time.perf_counter() - tick, model_dir


def run_parallel(
    configs: list[TrainConfig],
    processes: int,
    progress: bool,
    desc: str | None = None,
    side_jobs: Sequence[tuple[Callable[..., Any], dict[str, Any]]] = (),
) -> list[Any]:
    """Run independent training runs, `processes` at a time with one torch thread each (in this process with
    the default threads when `processes` is 1); one progress bar over all their steps. `side_jobs`, (function,
    keyword arguments) pairs, share the pool after the runs (a process a run leaves free takes one). Returns
    (seconds, model dir) per run, then each side job's result."""
    if processes <= 1 or len(configs) + len(side_jobs) <= 1:
        return [run_stage(config) for config in configs] + [fn(**kwargs) for fn, kwargs in side_jobs]
    quiet = [dataclasses.replace(config, progress=False) for config in configs]
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
    with ProcessPoolExecutor(min(processes, len(configs) + len(side_jobs)), mp_context=context) as pool:
        futures = [pool.submit(run_stage, config, 1) for config in quiet]
        side = [pool.submit(_one_thread, fn, kwargs) for fn, kwargs in side_jobs]
        # every row of the world's manifests is a good pair, and the sampler drops the last partial batch
        total = sum(math.ceil(c.epochs * (len(_rows(Path(c.train[0]))) // c.batch_size)) for c in configs)
        desc = desc or f"bind {', '.join(c.modality for c in configs)}"
        # with no training runs the bar counts the side jobs instead of steps
        unit = "step" if configs else "job"
        with tqdm(total=total or len(side), desc=desc, unit=unit, disable=not progress) as bar:
            while True:
                done = sum(f.done() for f in side)
                bar.n = sum(_logged_steps(Path(config.out) / "log.jsonl") for config in configs) if configs else done
                if side and configs:
                    bar.set_postfix_str(f"other jobs {done}/{len(side)}", refresh=False)
                bar.refresh()
                if all(future.done() for future in futures + side):
                    break
                time.sleep(0.5)
        return [future.result() for future in futures + side]


def _one_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    torch.set_num_threads(1)
    return fn(**kwargs)


def _logged_steps(log: Path) -> int:
    """The last step a run's log.jsonl records (0 before its first record)."""
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):  # a line being written
            continue
    return 0


def merge_towers(base: str | Path, towers: dict[str, str | Path]) -> ImageBind:
    """The model at `base` with each named modality's encoder taken from the model directory beside it."""
    model = create_model(str(base))
    for modality, source in towers.items():
        trained = create_model(str(source), modalities=[modality])
        model.encoders[modality].load_state_dict(trained.encoders[modality].state_dict())
    return model


def _loss_curve(log: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, log.read_text().splitlines()) if r.get("loss") is not None]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def manifest_files(path: Path, column: str) -> tuple[list[str], list[dict[str, str]]]:
    rows = _rows(path)
    return [str(path.parent / row[column]) for row in rows], rows


def embed_files(model: ImageBind, column: str, items: list[str], progress: bool) -> torch.Tensor:
    """Embeddings of manifest files through the same transforms as training, with the model's recorded input
    options (so every item must load)."""
    transform = get_input(column).training_transform(**model.config.input_options(column))
    return embed_items(model, column, items, transform=transform, progress=progress, on_error="raise")


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
        files, rows = manifest_files(world.manifests[f"eval_{name}_test"], column)
        labels = torch.tensor([classes.index(row["label"]) for row in rows])
        embeddings = embed_files(model, column, files, progress)
        zero_shot[name] = ZeroShotResult.from_scores(classifier.scores(embeddings), labels, classes)
    results = summarize_zero_shot(zero_shot)

    scenes_path = world.manifests["scenes_test"]
    audio_files, scenes = manifest_files(scenes_path, "audio")
    depth_files, _ = manifest_files(scenes_path, "depth")
    ids = [row["scene"] for row in scenes]
    audio = embed_files(model, "audio", audio_files, progress)
    depth = embed_files(model, "depth", depth_files, progress)
    retrieval = recall_both_directions(audio, depth, ids, ids, names=("audio", "depth"), ks=(1, 5))
    chance = {f"R@{k}": k / len(ids) for k in (1, 5)}
    results["retrieval"] = {**retrieval, "chance": chance, "note": "audio and depth were never trained together"}

    query_path, gallery_path = world.manifests["arithmetic_test"], world.manifests["arithmetic_gallery_test"]
    query_images, queries = manifest_files(query_path, "image")
    query_audio, _ = manifest_files(query_path, "audio")
    gallery_images, gallery = manifest_files(gallery_path, "image")
    results["arithmetic"] = arithmetic_hit_rate(
        embed_files(model, "image", query_images, progress),
        embed_files(model, "audio", query_audio, progress),
        embed_files(model, "image", gallery_images, progress),
        [(row["object"], row["environment"]) for row in gallery],
        [(row["object"], row["environment"]) for row in queries],
        k=5,
    )
    return results
