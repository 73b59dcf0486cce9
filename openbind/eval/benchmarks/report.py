"""Benchmark results for people: a Markdown page per run with the paper's number beside ours, plots (confusion
matrix for up to 50 classes, per-class AP, recall@K), the Table 2 page of several runs, and the list of
benchmarks with the layouts they read."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openbind.eval.benchmarks.base import Benchmark
from openbind.eval.report import confusion_figure, save_figure, to_jsonable
from openbind.utils import atomic_write_text


def _cell(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def comparison_rows(result: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(metric, paper, openbind) for each metric the paper reports, then the others."""
    metrics, paper = result["metrics"], result.get("paper", {})
    names = [m for m in paper if m in metrics] + [m for m in metrics if m not in paper]
    return [(name, paper.get(name), metrics[name]) for name in names]


def render_result(result: Mapping[str, Any], plots: Sequence[Path] = ()) -> str:
    counts = result["counts"]
    lines = [
        f"# {result['title']}: {result['model']}",
        "",
        f"{counts['evaluated']} of {counts['items']} items evaluated ({counts['skipped']} skipped), "
        f"{counts['classes'] or counts['queries']} {'classes' if counts['classes'] else 'queries'}; "
        f"chance {_cell(result.get('chance'))}%. {counts['read_from_cache']} embeddings read from the cache, "
        f"{counts['embedded_now']} computed.",
        "",
        "| metric | paper | openbind |",
        "|---|---|---|",
        *[f"| {name} | {_cell(paper)} | {_cell(ours)} |" for name, paper, ours in comparison_rows(result)],
        "",
    ]
    if result.get("per_group"):
        lines += ["| group | top-1 |", "|---|---|", *[f"| {g} | {_cell(v)} |" for g, v in result["per_group"].items()], ""]
    if result.get("few_shot"):
        few = result["few_shot"]
        lines += [f"Few-shot linear probes ({few['split']}; mean ± std over seeds {few['seeds']}):", "",
                  "| k per class | top-1 |", "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {_cell(v['top1'])} ± {_cell(v['std'])} |" for k, v in few["shots"].items()] + [""]
    if result.get("choices"):
        lines += ["Protocol choices:", "", *[f"- {k}: {v}" for k, v in result["choices"].items()], ""]
    lines += [f"![{path.stem}]({path.name})" for path in plots]
    if result.get("skipped"):
        lines += ["", f"Skipped (first {len(result['skipped'])}):", "", *[f"- {s}" for s in result["skipped"]]]
    return "\n".join(lines) + "\n"


def write_plots(result: Mapping[str, Any], out: Path) -> list[Path]:
    """The result's plots as PNGs (none without matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    name, written = result["dataset"], []
    if result.get("confusion"):
        figure = confusion_figure(Figure, result["confusion"], list(result["per_class"]), name)
        written.append(save_figure(figure, out / f"{name}_confusion.png"))
    if result.get("per_class_ap"):
        ap = sorted(result["per_class_ap"].items(), key=lambda item: item[1], reverse=True)
        figure = Figure(figsize=(8, 3.5))
        axis = figure.add_subplot()
        axis.plot(range(1, len(ap) + 1), [v for _, v in ap])
        axis.set_xlabel("class (sorted by AP)")
        axis.set_ylabel("average precision (%)")
        axis.set_title(f"{result['title']}: per-class AP, mAP {_cell(result['metrics']['mAP'])}%")
        for rank, (label, value) in enumerate(ap[:5], start=1):
            axis.annotate(label, (rank, value), fontsize=7)
        written.append(save_figure(figure, out / f"{name}_per_class_ap.png"))
    if result.get("recall_curve"):
        figure = Figure(figsize=(5, 3.5))
        axis = figure.add_subplot()
        axis.plot([k for k, _ in result["recall_curve"]], [v for _, v in result["recall_curve"]])
        axis.set_xlabel("K")
        axis.set_ylabel("recall@K (%)")
        axis.set_ylim(0, 100)
        axis.set_title(f"{result['title']}: text -> {result['metric']}")
        written.append(save_figure(figure, out / f"{name}_recall.png"))
    return written


def write_table2(results: Sequence[Mapping[str, Any]], out: str | os.PathLike) -> list[Path]:
    """`table2.md` and `table2.json`: every run's headline metric beside the paper's."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["| benchmark | metric | paper | openbind | evaluated | skipped |", "|---|---|---|---|---|---|"]
    for result in results:
        metric = result["metric"]
        rows.append(
            f"| {result['title']} | {metric} | {_cell(result['paper'].get(metric))} | "
            f"{_cell(result['metrics'].get(metric))} | {result['counts']['evaluated']} | {result['counts']['skipped']} |"
        )
    model = results[0]["model"] if results else ""
    text = f"# ImageBind Table 2: the paper and openbind ({model})\n\n" + "\n".join(rows) + "\n"
    atomic_write_text(out / "table2.md", text)
    atomic_write_text(out / "table2.json", json.dumps(to_jsonable(list(results)), indent=2) + "\n")
    return [out / "table2.md", out / "table2.json"]


def describe(benchmarks: Sequence[Benchmark]) -> str:
    """The `openbind eval list` text: each benchmark, its metric, the paper's number and the layout it reads."""
    blocks = []
    for b in benchmarks:
        paper = ", ".join(f"{k} {v}" for k, v in b.paper.items())
        few = " (few-shot probes: --few-shot)" if b.probe is not None else ""
        layout = "\n".join("    " + line for line in b.layout.strip().splitlines())
        blocks.append(f"{b.name}: {b.title}, {b.task}, paper {paper}{few}\n  --root:\n{layout}")
    return "\n\n".join(blocks)
