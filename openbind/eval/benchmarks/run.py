"""Running a benchmark: read the published layout -> embed with the model's own transforms (cached on disk) ->
score by the paper's protocol -> a result dict, written as JSON, Markdown and plots.

Metrics are percentages, as the paper prints them. The result follows CLIP_benchmark's JSON where it fits
(`dataset`, `model`, `task`, `metrics`) and adds what reproducing a number needs: the paper's value, the counts,
every skipped file with its reason, the protocol choices and the transform options used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from openbind.eval.benchmarks.base import Benchmark, TestSet, get_benchmark, read_class_file
from openbind.eval.embedding import embed_items
from openbind.eval.embedding_cache import EmbeddingStore, item_key, model_fingerprint
from openbind.eval.fewshot import few_shot
from openbind.eval.multilabel import label_matrix, mean_average_precision
from openbind.eval.report import to_jsonable
from openbind.eval.retrieval import recall_at_k
from openbind.eval.zeroshot import ZeroShotResult, build_classifier
from openbind.factory import create_model
from openbind.modalities import TEXT_TOWER, get_input
from openbind.modalities.text.transform import IMAGENET_TEMPLATES
from openbind.model.imagebind import ImageBind
from openbind.utils import atomic_write_text
from openbind.weights.hub import cache_dir

logger = logging.getLogger("openbind")

RECALL_KS = (1, 5, 10)
SHOWN_SKIPPED = 200  # a result lists the first skipped files; the count is always complete


@dataclass
class Embedded:
    """Embeddings of the items that could be embedded: rows of `tensor` are `kept` item positions."""

    tensor: torch.Tensor
    kept: list[int]
    failed: list[str]
    options: dict[str, Any]
    reused: int = 0


class Runner:
    """One model, evaluated on any number of benchmarks; embeddings cached under `cache_root` (None: no cache)."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        batch_size: int = 32,
        num_workers: int = 0,
        cache_root: str | os.PathLike | None = "default",
        templates: Sequence[str] = IMAGENET_TEMPLATES,
        progress: bool = True,
    ):
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
        self.source = str(model)
        self.model: ImageBind = create_model(self.source, device=device, precision=precision)
        fingerprint = model_fingerprint(self.source)  # the weights, and how they run: int8 embeds differently
        self.fingerprint = None if fingerprint is None else fingerprint + ("" if precision == "fp32" else f"-{precision}")
        if cache_root == "default":
            cache_root = cache_dir() / "embeddings"
        self.cache_root = Path(cache_root) if cache_root is not None and self.fingerprint else None
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress
        self.templates = list(templates)

    def embed(self, test_set: TestSet, kind: str) -> Embedded:
        """Every item of `test_set` as `kind`, through the model's transform for it plus the paper's protocol
        options; items already in the cache are read back, the others embedded and added."""
        options = {**self.model.config.input_options(kind), **get_input(kind).evaluation}
        transform = test_set.transform(options) if test_set.transform is not None else get_input(kind).transform(**options)
        keys = [item_key(key, _path_of(item)) for key, item in zip(test_set.item_keys(), test_set.items, strict=True)]
        store = EmbeddingStore(self.cache_root, self.fingerprint, kind, transform) if self.cache_root else None
        todo = store.missing(keys) if store is not None else list(range(len(keys)))
        result = embed_items(
            self.model, kind, [test_set.items[i] for i in todo], transform=transform, batch_size=self.batch_size,
            num_workers=self.num_workers, on_error="skip", progress=self.progress,
        )  # fmt: skip
        failed_positions = {todo[f.index] for f in result.failed}
        failed = [f"{test_set.item_keys()[todo[f.index]]}: {f.reason}" for f in result.failed]
        if store is None:
            return Embedded(result.tensor, [todo[i] for i in result.kept], failed, options)
        store.add([keys[todo[i]] for i in result.kept], result.tensor)
        kept = [i for i in range(len(keys)) if i not in failed_positions]
        tensor = store.get([keys[i] for i in kept]) if kept else torch.empty(0, self.model.config.embed_dim)
        return Embedded(tensor, kept, failed, options, reused=len(keys) - len(todo))

    def text(self, texts: Sequence[str]) -> torch.Tensor:
        return embed_items(self.model, TEXT_TOWER, list(texts), batch_size=256, progress=False, on_error="raise")

    def run(
        self,
        benchmark: str | Benchmark,
        root: str | os.PathLike,
        *,
        classes: str | os.PathLike | None = None,
        shots: Sequence[int] = (),
    ) -> dict[str, Any]:
        """Evaluate one benchmark on the dataset at `root`; `classes`: a class file replacing the built-in
        list; `shots`: few-shot probe sizes (benchmarks with a few-shot protocol)."""
        benchmark = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
        if shots and benchmark.probe is None:
            raise ValueError(f"{benchmark.name} has no few-shot protocol (those that do: ESC-50, SUN-D)")
        test_set = benchmark.read(Path(root).expanduser(), read_class_file(classes) if classes else None)
        if not test_set.items:
            raise ValueError(f"{benchmark.name}: no item of {root} could be used ({len(test_set.skipped)} skipped)")
        embedded = self.embed(test_set, test_set.kind)
        if not embedded.kept:
            raise ValueError(f"{benchmark.name}: none of the {len(test_set.items)} items could be embedded")
        score = {"classification": self._classify, "multilabel": self._multilabel, "retrieval": self._retrieve}
        metrics, details = score[benchmark.task](test_set, embedded)
        result: dict[str, Any] = {
            "dataset": benchmark.name,
            "title": benchmark.title,
            "model": self.source,
            "task": benchmark.task,
            "metric": benchmark.metric,
            "metrics": metrics,
            "paper": benchmark.paper,
            "chance": details.pop("chance"),
            "paper_chance": benchmark.chance,
            "counts": {
                "items": len(test_set.items) + len(test_set.skipped),
                "evaluated": len(embedded.kept),
                "skipped": len(test_set.skipped) + len(embedded.failed),
                "embedded_now": len(embedded.kept) - embedded.reused,
                "read_from_cache": embedded.reused,
                "classes": len(test_set.classes),
                "queries": len(test_set.queries),
            },
            "skipped": (test_set.skipped + embedded.failed)[:SHOWN_SKIPPED],
            "choices": {**test_set.choices, "templates": len(self.templates)},
            "transform": embedded.options,
            **details,
        }
        if shots:
            result["few_shot"] = self._few_shot(benchmark, root, test_set, embedded, shots)
        return result

    # --- protocols -------------------------------------------------------------------------------------------

    def _classifier_scores(self, test_set: TestSet, embedded: Embedded) -> torch.Tensor:
        names = {display: prompts for display, prompts in zip(test_set.class_names, test_set.classes, strict=True)}
        classifier = build_classifier(self.model, names, self.templates)
        return classifier.scores(embedded.tensor)

    def _classify(self, test_set: TestSet, embedded: Embedded) -> tuple[dict[str, float], dict[str, Any]]:
        scores = self._classifier_scores(test_set, embedded)
        labels = [test_set.labels[i] for i in embedded.kept]
        result = ZeroShotResult.from_scores(scores, labels, test_set.class_names)
        metrics = {"top1": 100 * result.top1, "top5": 100 * result.top5, "mean_per_class": 100 * result.mean_per_class}
        details: dict[str, Any] = {
            "per_class": dict(zip(test_set.class_names, result.per_class, strict=True)),
            "chance": 100 / len(test_set.class_names),
        }
        if len(test_set.class_names) <= 50:
            details["confusion"] = result.confusion.tolist()
        if test_set.groups is not None:
            groups = [test_set.groups[i] for i in embedded.kept]
            per_group = {}
            for group in sorted(set(groups), key=str):
                rows = [j for j, g in enumerate(groups) if g == group]
                part = ZeroShotResult.from_scores(scores[rows], [labels[j] for j in rows], test_set.class_names)
                per_group[str(group)] = 100 * part.top1
            details["per_group"] = per_group
            metrics["top1"] = sum(per_group.values()) / len(per_group)  # the mean over folds is the headline
            metrics["top1_pooled"] = 100 * result.top1
        return metrics, details

    def _multilabel(self, test_set: TestSet, embedded: Embedded) -> tuple[dict[str, float], dict[str, Any]]:
        scores = self._classifier_scores(test_set, embedded)
        positives = label_matrix([test_set.labels[i] for i in embedded.kept], len(test_set.classes))
        m_ap, per_class = mean_average_precision(scores, positives)
        evaluated = int((~per_class.isnan()).sum())
        per_class_ap = {n: 100 * v for n, v in zip(test_set.class_names, per_class.tolist(), strict=True) if v == v}
        chance = 100 * positives[:, ~per_class.isnan()].float().mean().item()  # a random ranking's AP: the prevalence
        return {"mAP": 100 * m_ap}, {"per_class_ap": per_class_ap, "classes_with_positives": evaluated, "chance": chance}

    def _retrieve(self, test_set: TestSet, embedded: Embedded) -> tuple[dict[str, float], dict[str, Any]]:
        """Text -> items: each query's id is its target item, each gallery item's its own position."""
        targets = [_single_target(t) for t in test_set.query_targets]
        kept = set(embedded.kept)
        usable = [q for q, target in enumerate(targets) if target in kept]
        if not usable:
            raise ValueError("no query has an embedded target")
        queries = self.text([test_set.queries[q] for q in usable])
        query_ids = [targets[q] for q in usable]
        results = {test_set.kind: recall_at_k(queries, embedded.tensor, query_ids, embedded.kept, ks=RECALL_KS)}
        details: dict[str, Any] = {
            "chance": 100 / len(embedded.kept),
            "queries_evaluated": len(usable),
            "recall_curve": _recall_curve(queries, embedded.tensor, query_ids, embedded.kept),
        }
        weight = test_set.choices.get("audio_weight")
        if weight is not None:  # MSR-VTT: the sound of the same videos, alone and added to the frames
            audio = self.embed(test_set, "audio")
            sound = dict(zip(audio.kept, audio.tensor))
            with_sound = [j for j, q in enumerate(usable) if targets[q] in sound]
            if with_sound:
                results["audio"] = recall_at_k(
                    queries[with_sound], audio.tensor, [query_ids[j] for j in with_sound], audio.kept, ks=RECALL_KS
                )
            combined = torch.stack([
                F.normalize((1 - weight) * vector + weight * sound[item], dim=-1) if item in sound else vector
                for item, vector in zip(embedded.kept, embedded.tensor, strict=True)
            ])  # fmt: skip
            results["A+V"] = recall_at_k(queries, combined, query_ids, embedded.kept, ks=RECALL_KS)
            details["videos_with_sound"] = len(sound)
        metrics = {}
        for name, values in results.items():
            prefix = "" if name == test_set.kind else f"{name} "
            metrics.update({f"{prefix}R@{k}": 100 * values[f"R@{k}"] for k in RECALL_KS})
        details["retrieval"] = results
        return metrics, details

    def _few_shot(
        self, benchmark: Benchmark, root: str | os.PathLike, test_set: TestSet, embedded: Embedded, shots: Sequence[int]
    ) -> dict[str, Any]:
        """Probes on frozen embeddings: trained on the benchmark's train split (SUN-D) or on every group but the
        first (ESC-50: folds 2-5), tested on the first group (fold 1) or the whole test set."""
        labels = [test_set.labels[i] for i in embedded.kept]
        if benchmark.read_train is not None:
            train_set = benchmark.read_train(Path(root).expanduser(), None)
            train = self.embed(train_set, train_set.kind)
            train_x, train_y = train.tensor, [train_set.labels[i] for i in train.kept]
            test_x, test_y, split = embedded.tensor, labels, "train split -> test split"
        else:
            groups = [test_set.groups[i] for i in embedded.kept]
            first = sorted(set(groups), key=str)[0]
            test_rows = [j for j, g in enumerate(groups) if g == first]
            train_rows = [j for j, g in enumerate(groups) if g != first]
            train_x, train_y = embedded.tensor[train_rows], [labels[j] for j in train_rows]
            test_x, test_y = embedded.tensor[test_rows], [labels[j] for j in test_rows]
            split = f"group {first} is the test set, the others train"
        result = few_shot(train_x, train_y, test_x, test_y, len(test_set.classes), shots=shots, recipe=benchmark.probe)
        return {"split": split, **result}


def _path_of(item: Any) -> str | None:
    """The file an item reads (its cache key carries that file's size and modification time)."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    path = getattr(item, "path", None)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def _single_target(target: Any) -> int:
    """A query's target item (an index, or a list holding one)."""
    if isinstance(target, int):
        return target
    if len(target) != 1:
        raise ValueError(f"a retrieval query needs exactly one target item, got {target!r}")
    return int(target[0])


def _recall_curve(queries: torch.Tensor, gallery: torch.Tensor, query_ids: list, gallery_ids: list) -> list[list[float]]:
    """[[k, recall@k percent], ...] for k = 1..50 (or the gallery size): the recall@K plot."""
    ks = list(range(1, min(50, len(gallery)) + 1))
    values = recall_at_k(queries, gallery, query_ids, gallery_ids, ks=ks)
    return [[k, 100 * values[f"R@{k}"]] for k in ks]


def write_result(result: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """`<out>/<dataset>.json`, `<out>/<dataset>.md` and its plots; returns the paths written."""
    from openbind.eval.benchmarks.report import render_result, write_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = result["dataset"]
    json_path = out / f"{name}.json"
    atomic_write_text(json_path, json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n")
    plots = write_plots(result, out)
    markdown = out / f"{name}.md"
    atomic_write_text(markdown, render_result(result, plots))
    return [json_path, markdown, *plots]



def evaluate(
    benchmark: str,
    root: str | os.PathLike,
    model: str,
    *,
    out: str | os.PathLike | None = None,
    classes: str | os.PathLike | None = None,
    shots: Sequence[int] = (),
    **runner_options: Any,
) -> dict[str, Any]:
    """Evaluate `model` on one benchmark (see `Runner` for the options) and write the result into `out`."""
    result = Runner(model, **runner_options).run(benchmark, root, classes=classes, shots=shots)
    if out is not None:
        write_result(result, out)
    return result


def evaluate_table2(
    roots: dict[str, str | os.PathLike], model: str, *, out: str | os.PathLike, **runner_options: Any
) -> list[dict[str, Any]]:
    """Every benchmark whose root is given, with one model; each result and the side-by-side Table 2 in `out`."""
    from openbind.eval.benchmarks.report import write_table2

    for name in roots:
        get_benchmark(name)
    runner = Runner(model, **runner_options)
    results = []
    for name, root in roots.items():
        results.append(runner.run(name, root))
        write_result(results[-1], out)
    write_table2(results, out)
    return results


def read_roots(path: str | os.PathLike) -> dict[str, str]:
    """A roots file (TOML): `benchmark = "folder"` per line, e.g. `esc50 = "~/data/ESC-50-master"`."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        data = tomllib.load(f)
    roots = data.get("roots", data)
    bad = [k for k, v in roots.items() if not isinstance(v, str)]
    if bad or not roots:
        raise ValueError(f"{path}: give one `benchmark = \"folder\"` line per benchmark (problem with {bad or 'no entry'})")
    return {name: str(Path(folder).expanduser()) for name, folder in roots.items()}
