"""What a benchmark is: a reader of one published dataset layout, the protocol it is scored with, and the paper's
number. A reader turns the folder as its publisher ships it into a `TestSet`; the runner (`run.py`) embeds it
with the model's own transforms, scores it and writes the results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from openbind.eval.fewshot import ProbeRecipe

Task = Literal["classification", "multilabel", "retrieval"]
ItemTransform = Callable[..., torch.Tensor]


@dataclass
class TestSet:
    """A benchmark's test set as read from disk: what to embed, and what the right answers are.

    `kind`: the input kind of the items ("image", "video", "audio", "depth", "thermal", "imu"). `items`: what the
    per-item transform reads (file paths, or small picklable records where an item needs more, such as a crop box
    or a scene's focal length); `keys[i]` identifies item i in the embedding cache (default: its path).
    `transform(options)`: the per-item transform built on the model's options for `kind` (None: the kind's
    inference transform with those options); it must be picklable (a dataclass, not a lambda) so that DataLoader
    workers can run it.

    Classification: `labels[i]` is the class index of item i, `classes[c]` the prompt names of class c (several
    names: the class scores the max over them) and `class_names[c]` its display name. Multi-label: `labels[i]` is
    a list of class indices. Retrieval: `queries` are the texts, `query_targets[q]` the index of the item query q
    should find. `groups[i]` splits the items for per-group scores (ESC-50's folds). `skipped` lists the rows that
    could not be used (a missing file) with the reason; `choices` records what the protocol leaves open and what
    this reader chose (seeds, splits, dropped items).
    """

    __test__ = False  # not a pytest test class, whatever its name

    kind: str
    items: list[Any]
    labels: list[Any] = field(default_factory=list)
    classes: list[list[str]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    query_targets: list[int] = field(default_factory=list)
    groups: list[Any] | None = None
    keys: list[str] | None = None
    transform: Callable[[dict[str, Any]], ItemTransform] | None = None
    skipped: list[str] = field(default_factory=list)
    choices: dict[str, Any] = field(default_factory=dict)

    def item_keys(self) -> list[str]:
        return self.keys if self.keys is not None else [str(item) for item in self.items]


@dataclass(frozen=True)
class Benchmark:
    """One evaluation of the ImageBind paper: `read(root, classes)` -> `TestSet`, scored by `task`.

    `layout` is the folder tree `--root` points at, as the publisher ships it (shown by `openbind eval list` and
    in docs/evaluation.md); `paper` the paper's numbers for the benchmark's metrics (percent), `chance` the chance
    level (percent); `default_classes` the built-in class list where the protocol has one (`--classes` replaces
    it). `probe` is the few-shot recipe where the paper has one (then the probes train on `read_train(root,
    classes)`, the benchmark's train split, or where that is None on every group but the first, which is tested).
    """

    name: str
    title: str
    task: Task
    read: Callable[..., TestSet]
    layout: str
    paper: dict[str, float]
    chance: float | None = None
    metric: str = "top1"
    probe: ProbeRecipe | None = None
    read_train: Callable[..., TestSet] | None = None
    notes: str = ""


_BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(benchmark: Benchmark) -> Benchmark:
    _BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def get_benchmark(name: str) -> Benchmark:
    try:
        return _BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(_BENCHMARKS)}") from None


def all_benchmarks() -> list[Benchmark]:
    return list(_BENCHMARKS.values())


def read_class_file(path: str | Path) -> list[list[str]]:
    """A `--classes` file: one class per line, in label order; `a | b | c` gives one class several prompt names."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return [[name.strip() for name in line.split("|") if name.strip()] for line in lines if line]


def names_from(classes: Sequence[str | Sequence[str]]) -> list[list[str]]:
    return [[c] if isinstance(c, str) else list(c) for c in classes]
