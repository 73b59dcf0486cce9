"""Few-shot on the built-in world (the paper's Figure 3): do bound embeddings help when labels are scarce?

For each bound modality (audio, depth): a linear probe on its frozen bound embeddings, trained on k labelled
examples per class (k = 1, 2, 4, 8), against an encoder of the same architecture trained from scratch on the
same k examples (random init, encoder and linear head trained end to end with cross-entropy, the bind's
crop-and-flip augmentation for maps). Both are scored on the held-out test scenes, over several random draws
of the k examples (mean and spread). The examples are drawn from the bind's training scenes, which the bound
encoder saw paired with images but never with a label.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from openbind.config import ModelConfig
from openbind.eval.fewshot import ProbeRecipe, few_shot, sample_shots
from openbind.eval.report import save_figure, write_report
from openbind.eval.zeroshot import accuracy
from openbind.factory import create_model, get_model_config
from openbind.modalities import get_input, get_modality, modality_of
from openbind.reproduce.quickstart import (
    STAGES,
    Stage,
    embed_files,
    manifest_files,
    merge_towers,
    run_parallel,
    run_stage,
    stage_config,
)
from openbind.train import TrainConfig
from openbind.train.augment import crop_flip
from openbind.weights.checkpoint import CONFIG_NAME
from openbind.world import WorldInfo, write_world


@dataclass(frozen=True)
class ScratchRecipe:
    """The from-scratch baseline: AdamW on cross-entropy, the whole k-shot set as one batch, until the model
    classifies all its k examples right (checked every `check_every` steps, without augmentation) or for at most
    `max_steps` steps. With k examples there is nothing to validate on; fitting them is the natural stop."""

    max_steps: int = 300
    check_every: int = 25
    lr: float = 2e-3
    weight_decay: float = 0.05


@dataclass(frozen=True)
class FewShotRecipe:
    """The modalities probed, shots per class, draws of the examples, both recipes, and (when no trained
    quickstart is given) the world and the quickstart stages trained first."""

    modalities: tuple[str, ...] = ("audio", "depth")
    shots: tuple[int, ...] = (1, 2, 4, 8)
    draws: int = 3
    probe: ProbeRecipe = ProbeRecipe()
    scratch: ScratchRecipe = ScratchRecipe()
    world: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[Stage, ...] = STAGES


RECIPES = {
    "full": FewShotRecipe(),
    # seconds: tests of the pipeline, not of the claim
    "smoke": FewShotRecipe(
        shots=(1, 2), draws=2, probe=ProbeRecipe(epochs=5), scratch=ScratchRecipe(max_steps=3, check_every=2),
        world=dict(train_per_class=2, test_per_class=1, align_per_combo=1, videos_train_per_activity=1,
                   videos_test_per_activity=1, arithmetic_per_combo=1),
        stages=tuple(Stage(s.name, s.modality, s.anchor, epochs=1, lr=s.lr, batch_size=4, augment=s.augment)
                     for s in STAGES),
    ),
}  # fmt: skip

SUMMARY = """\
A linear probe on the frozen bound embeddings (the encoder was bound to images, never trained with a label)
against the same encoder architecture trained from scratch, with its linear head, on the same k labelled
examples per class; top-1 on the held-out test scenes, mean +- standard deviation over draws of the examples."""


def run_fewshot(
    out: str | Path,
    *,
    source: str | Path | None = None,
    recipe: FewShotRecipe | str = "full",
    seed: int = 0,
    processes: int = 2,
    progress: bool = True,
) -> Path:
    """Write the few-shot report into `out` and return the path of `report.md` (beside it: report.json and
    fewshot.png). `source`: a quickstart output directory (its `model/` and `world/`) whose bound towers are
    probed; without it the world, the align stage and the probed modalities' binds are trained into `out` first
    (the quickstart's recipes; resumed on a rerun)."""
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
        recipe = RECIPES[recipe]
    if not recipe.shots or min(recipe.shots) < 1 or recipe.draws < 1:
        raise ValueError("recipe.shots must be positive shot counts and recipe.draws >= 1")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    out = Path(out)
    start = time.perf_counter()
    if source is not None:
        source = Path(source)
        if not (source / "model" / CONFIG_NAME).is_file() or not (source / "world" / "world.json").is_file():
            raise ValueError(f"source must be a quickstart output directory with model/ and world/, got {source}")
        world, base, binds = WorldInfo.load(source / "world"), source / "model", []
    else:
        world, base, binds = _align(out, recipe, seed, processes, progress)
    config = get_model_config(str(base))
    missing = [kind for kind in recipe.modalities if modality_of(kind).name not in config.encoders]
    if missing:
        raise ValueError(f"the model at {base} has no {missing} tower to probe")

    # The from-scratch baselines need only the world: they share the pool with the binds (a process the short
    # audio bind leaves free takes them), which keeps a run without --from under 10 minutes.
    classes = list(world.objects)
    data = {modality: _split(world, modality, classes) for modality in recipe.modalities}
    seeds = [seed + draw for draw in range(recipe.draws)]
    scratch_jobs = [
        (scratch_few_shot, dict(config=config.subset([modality_of(modality).name]), kind=modality, **data[modality],
                                num_classes=len(classes), shots=recipe.shots, seeds=seeds, recipe=recipe.scratch,
                                progress=progress and processes <= 1))
        for modality in recipe.modalities
    ]  # fmt: skip
    finished = run_parallel(binds, processes, progress, desc="binds and from-scratch baselines", side_jobs=scratch_jobs)
    bound_dirs, scratch = finished[: len(binds)], finished[len(binds) :]
    model = merge_towers(base, {bind.modality: path for bind, (_, path) in zip(binds, bound_dirs)})
    trained = time.perf_counter()

    results: dict[str, Any] = {"shots": list(recipe.shots), "draws": recipe.draws, "recipe": recipe, "modalities": {}}
    for modality, baseline in zip(recipe.modalities, scratch):
        split = data[modality]
        bound = few_shot(
            embed_files(model, modality, split["train_files"], progress), split["train_labels"],
            embed_files(model, modality, split["test_files"], progress), split["test_labels"], len(classes),
            shots=recipe.shots, seeds=seeds, recipe=recipe.probe,
        )  # fmt: skip
        results["modalities"][modality] = {"bound_probe": bound, "from_scratch": baseline,
                                           "chance": 1 / len(classes)}  # fmt: skip
    results["seconds"] = {"train": trained - start, "probe": time.perf_counter() - trained}
    results["seconds"]["total"] = time.perf_counter() - start
    write_report(out, results, title="openbind few-shot: bound embeddings against training from scratch",
                 summary=SUMMARY + "\n\n" + "\n".join(fewshot_table(results)), plotters=[plot_fewshot])  # fmt: skip
    return out / "report.md"


def _split(world: WorldInfo, modality: str, classes: list[str]) -> dict[str, list[Any]]:
    """A bound modality's training scenes (the shots are drawn from them) and held-out test scenes, with labels."""
    train_files, train_rows = manifest_files(world.manifests[f"{modality}_train"], modality)
    test_files, test_rows = manifest_files(world.manifests[f"eval_{modality}_test"], modality)
    return {"train_files": train_files, "train_labels": [classes.index(row["label"]) for row in train_rows],
            "test_files": test_files, "test_labels": [classes.index(row["label"]) for row in test_rows]}  # fmt: skip


def _align(
    out: Path, recipe: FewShotRecipe, seed: int, processes: int, progress: bool
) -> tuple[WorldInfo, Path, list[TrainConfig]]:
    """The quickstart's world and align stage, trained into `out` (resumable), and the configs of the probed
    modalities' binds on it."""
    world_dir = out / "world"
    if (world_dir / "world.json").is_file():
        world = WorldInfo.load(world_dir)
    else:
        world = write_world(world_dir, progress=progress, **{"seed": seed, "processes": processes, **recipe.world})
    align, *binds = recipe.stages
    runs = out / "runs"
    _, aligned = run_stage(stage_config(align, world.manifests["align_train"], runs / align.name,
                                        model="imagebind_world", init=None, seed=seed, progress=progress))  # fmt: skip
    configs = [
        stage_config(stage, world.manifests[f"{stage.name}_train"], runs / stage.name, model="imagebind_world",
                     init=aligned, seed=seed, progress=progress)
        for stage in binds
        if stage.modality in recipe.modalities
    ]  # fmt: skip
    return world, aligned, configs


def scratch_few_shot(
    config: ModelConfig,
    kind: str,
    train_files: Sequence[str],
    train_labels: Sequence[int],
    test_files: Sequence[str],
    test_labels: Sequence[int],
    num_classes: int,
    *,
    shots: Sequence[int],
    seeds: Sequence[int],
    recipe: ScratchRecipe,
    progress: bool = True,
) -> dict[str, Any]:
    """Top-1 (percent) of the encoder of `kind` in `config` (random init) + a linear head trained end to end on
    k examples per class, the same draws as `eval.fewshot.few_shot` with these seeds; mean and standard
    deviation."""
    transform = get_input(kind).training_transform(**config.input_options(kind))
    modality = modality_of(kind).name
    augment = get_modality(modality).augmentable
    test = torch.stack([transform(f) for f in test_files])
    test_labels_t = torch.as_tensor(list(test_labels))
    inputs: dict[int, torch.Tensor] = {}  # decoded training items, by position
    results: dict[str, Any] = {"recipe": asdict(recipe), "seeds": list(seeds), "augment": augment, "shots": {}}
    runs = [(k, s) for k in shots for s in seeds]
    scores: dict[int, list[float]] = {k: [] for k in shots}
    fit: dict[int, list[float]] = {k: [] for k in shots}  # top-1 on its own k examples: was it trained enough?
    taken: dict[int, list[int]] = {k: [] for k in shots}
    for k, seed in tqdm(runs, desc=f"from scratch {kind}", unit="run", disable=not progress):
        chosen = sample_shots(train_labels, k, seed)
        for i in chosen:
            if i not in inputs:
                inputs[i] = transform(train_files[i])
        x = torch.stack([inputs[i] for i in chosen])
        y = torch.as_tensor([train_labels[i] for i in chosen])
        encoder, head, steps = _train_from_scratch(config, modality, num_classes, x, y, recipe, seed, augment)
        taken[k].append(steps)
        with torch.inference_mode():
            logits = torch.cat([head(F.normalize(encoder(batch), dim=-1)) for batch in test.split(50)])
            fit[k].append(100 * accuracy(head(F.normalize(encoder(x), dim=-1)), y, topk=(1,))["top1"])
        scores[k].append(100 * accuracy(logits, test_labels_t, topk=(1,))["top1"])
    for k in shots:
        results["shots"][str(k)] = {"top1": float(np.mean(scores[k])), "std": float(np.std(scores[k])),
                                    "per_seed": scores[k], "train_top1": float(np.mean(fit[k])),
                                    "steps": taken[k]}  # fmt: skip
    return results


def _train_from_scratch(
    config: ModelConfig, modality: str, num_classes: int, x: torch.Tensor, y: torch.Tensor,
    recipe: ScratchRecipe, seed: int, augment: bool,
) -> tuple[torch.nn.Module, torch.nn.Linear, int]:  # fmt: skip
    """The trained encoder and head, and the steps taken."""
    torch.manual_seed(seed)
    encoder = create_model(config).encoders[modality]
    head = torch.nn.Linear(config.embed_dim, num_classes)
    generator = torch.Generator().manual_seed(seed)
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.95))
    for step in range(recipe.max_steps):
        if step % recipe.check_every == 0 and _fits(encoder, head, x, y):
            break
        encoder.train()
        batch = crop_flip(x, generator) if augment else x
        loss = F.cross_entropy(head(F.normalize(encoder(batch), dim=-1)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    else:
        step = recipe.max_steps
    encoder.eval()
    return encoder, head, step


def _fits(encoder: torch.nn.Module, head: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> bool:
    encoder.eval()
    with torch.inference_mode():
        return bool((head(F.normalize(encoder(x), dim=-1)).argmax(-1) == y).all())


def fewshot_table(results: Mapping[str, Any]) -> list[str]:
    """Markdown: per modality and k, the bound probe and the from-scratch encoder (mean +- std, percent)."""
    lines = ["", "| modality | k per class | bound embeddings + linear probe | from scratch (end to end) | "
             "from scratch on its own k examples | chance |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for modality, entry in results["modalities"].items():
        for k in results["shots"]:
            bound, scratch = entry["bound_probe"]["shots"][str(k)], entry["from_scratch"]["shots"][str(k)]
            lines.append(f"| {modality} | {k} | {bound['top1']:.1f} +- {bound['std']:.1f} | "
                         f"{scratch['top1']:.1f} +- {scratch['std']:.1f} | {scratch['train_top1']:.1f} | "
                         f"{100 * entry['chance']:.1f} |")  # fmt: skip
    return lines


def plot_fewshot(out_dir: Path, data: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """The paper's few-shot figure: top-1 against k per modality, bound probe vs from scratch, chance dotted."""
    from matplotlib.figure import Figure

    modalities = data["modalities"]
    fig = Figure(figsize=(4.5 * len(modalities), 3.6))
    for i, (modality, entry) in enumerate(modalities.items()):
        ax = fig.add_subplot(1, len(modalities), i + 1)
        ks = data["shots"]
        for key, label, color in (("bound_probe", "bound + linear probe", "C0"), ("from_scratch", "from scratch", "C1")):
            rows = [entry[key]["shots"][str(k)] for k in ks]
            ax.errorbar(ks, [r["top1"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=3,
                        color=color, label=label)  # fmt: skip
        ax.axhline(100 * entry["chance"], color="gray", linestyle=":", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_ylim(0, 100)
        ax.set_xlabel("labelled examples per class (k)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{modality} few-shot")
        ax.legend(loc="upper left", fontsize="small")
    return [("Few-shot top-1 against k: bound embeddings vs from scratch", save_figure(fig, out_dir / "fewshot.png"))]
