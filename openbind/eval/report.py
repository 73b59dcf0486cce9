"""Evaluation reports: `report.json` (the results as given, made JSON-safe), `report.md` (tables) and PNG plots.

Results are one dict; the sections the markdown knows how to draw are

    zero_shot   {modality: top-1 fraction, or a ZeroShotResult / its to_dict()}
    chance      {modality: 1/C}                       (optional when zero_shot entries carry their own)
    confusion   {modality: {"matrix": CxC, "classnames": [...]}}   (optional; see summarize_zero_shot)
    retrieval   {task: {"R@1": ..., "R@5": ..., ...}} or one flat {"R@1": ...}
    arithmetic  {"hit_rate": ..., "image_only_hit_rate": ..., ...}
    seconds     {stage: seconds, ..., "total": ...}
    curves      {name: [(step, loss), ...]}           (training loss curves, plotted only)

Any other key is kept in the JSON. Plots need matplotlib (an optional dependency, imported only here and
only when plotting); without it the report is written without plots and says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openbind.errors import OpenBindInputError
from openbind.eval.zeroshot import ZeroShotResult
from openbind.utils import atomic_path, atomic_write_text

SCHEMAS = ("quickstart",)

Plotter = Callable[[Path, Mapping[str, Any]], list[tuple[str, Path]]]


def write_report(
    out_dir: str | Path,
    results: Mapping[str, Any],
    *,
    title: str,
    plots: bool = True,
    schema: str | None = None,
    summary: str | None = None,
    plotters: Sequence[Plotter] = (),
) -> list[Path]:
    """Write report.json, report.md and (with matplotlib) PNG plots into `out_dir`; return the paths.

    `schema="quickstart"` first checks that the results have the keys and value types the quickstart promises
    (top-1 fractions per evaluated input kind, their chance levels, retrieval, both arithmetic hit rates, seconds
    with a total) and raises OpenBindInputError listing every problem, writing nothing.
    `summary` is a paragraph printed under the title (what the numbers show). `plotters` draw an experiment's
    own figures after the standard ones: each gets `out_dir` and the JSON-safe results and returns its
    (caption, PNG path) pairs (see `save_figure`).
    """
    if schema is not None and schema not in SCHEMAS:
        raise ValueError(f"unknown report schema {schema!r}; known: {SCHEMAS}")
    data = to_jsonable(dict(results))
    if schema == "quickstart":
        validate_quickstart(data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    atomic_write_text(json_path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    images: list[tuple[str, Path]] = []
    note = None
    if plots:
        try:
            images = _write_plots(out_dir, data)
            for plotter in plotters:
                images.extend(plotter(out_dir, data))
        except ImportError:
            note = "Plots skipped: matplotlib is not installed (`pip install matplotlib`)."
    md_path = out_dir / "report.md"
    atomic_write_text(md_path, render_markdown(data, title=title, images=images, note=note, summary=summary))
    return [json_path, md_path, *(path for _, path in images)]


def summarize_zero_shot(results: Mapping[str, ZeroShotResult]) -> dict[str, Any]:
    """The report sections of per-modality zero-shot results: zero_shot (top-1), zero_shot_top5, chance and
    confusion, ready to merge into the results dict."""
    return {
        "zero_shot": {m: r.top1 for m, r in results.items()},
        "zero_shot_top5": {m: r.top5 for m, r in results.items()},
        "chance": {m: r.chance for m, r in results.items()},
        "confusion": {m: {"matrix": r.confusion.tolist(), "classnames": r.classnames} for m, r in results.items()},
    }


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: tensors and numpy values become numbers/lists, NaN and infinities null, mapping keys
    strings, dataclasses dicts (their `to_dict()` if they have one); anything else its `str()`."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # torch tensors, numpy arrays and numpy scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def validate_quickstart(data: Mapping[str, Any]) -> None:
    """Raise OpenBindInputError naming every missing or mistyped quickstart key."""
    problems: list[str] = []

    def fractions(section: str, keys: tuple[str, ...], low_open: bool = False) -> None:
        block = data.get(section)
        if not isinstance(block, Mapping):
            problems.append(f"{section!r} must be a dict" if section in data else f"missing {section!r}")
            return
        for key in keys:
            value = block.get(key)
            if key not in block:
                problems.append(f"missing {section}[{key!r}]")
            elif not _is_number(value) or not (0 < value <= 1 if low_open else 0 <= value <= 1):
                interval = "(0, 1]" if low_open else "[0, 1]"
                problems.append(f"{section}[{key!r}] must be a fraction in {interval}, got {value!r}")

    evaluated = list(data.get("zero_shot") or {}) if isinstance(data.get("zero_shot"), Mapping) else []
    if not evaluated:
        problems.append("'zero_shot' must be a non-empty dict of top-1 fractions per input kind")
    fractions("zero_shot", evaluated)
    fractions("chance", evaluated, low_open=True)
    fractions("arithmetic", ("hit_rate", "image_only_hit_rate"))
    retrieval = data.get("retrieval")
    if not isinstance(retrieval, Mapping) or not retrieval:
        problems.append("'retrieval' must be a non-empty dict" if "retrieval" in data else "missing 'retrieval'")
    seconds = data.get("seconds")
    if not isinstance(seconds, Mapping):
        problems.append("'seconds' must be a dict" if "seconds" in data else "missing 'seconds'")
    else:
        if "total" not in seconds:
            problems.append("missing seconds['total']")
        problems.extend(
            f"seconds[{k!r}] must be a non-negative number, got {v!r}"
            for k, v in seconds.items()
            if not _is_number(v) or v < 0
        )
    if problems:
        raise OpenBindInputError("quickstart report", "; ".join(problems))


def render_markdown(
    data: Mapping[str, Any],
    *,
    title: str,
    images: Sequence[tuple[str, Path]] = (),
    note: str | None = None,
    summary: str | None = None,
) -> str:
    """The markdown report of JSON-safe results (see the module docstring for the sections)."""
    lines = [f"# {title}", ""] + ([summary, ""] if summary else [])
    for section in (_zero_shot_table(data), _retrieval_table(data), _arithmetic_table(data), _seconds_table(data)):
        lines.extend(section)
    if images or note:
        lines.extend(["## Plots", ""])
        if note:
            lines.extend([note, ""])
        for caption, path in images:
            lines.extend([f"![{caption}]({path.name})", ""])
    lines.append("All values, as given, are in `report.json`.")
    return "\n".join(lines) + "\n"


def _zero_shot_table(data: Mapping[str, Any]) -> list[str]:
    rows = _zero_shot_rows(data)
    if not rows:
        return []
    has_top5 = any(r["top5"] is not None for r in rows.values())
    header = "| Modality | Top-1 |" + (" Top-5 |" if has_top5 else "") + " Chance |"
    lines = ["## Zero-shot classification", "", header, "|---|---:|" + ("---:|" if has_top5 else "") + "---:|"]
    for modality, r in rows.items():
        top5 = f" {_percent(r['top5'])} |" if has_top5 else ""
        lines.append(f"| {modality} | {_percent(r['top1'])} |{top5} {_percent(r['chance'])} |")
    return [*lines, ""]


def _zero_shot_rows(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{modality: {top1, top5, chance, confusion, classnames}} from either form of the zero_shot section."""
    zero_shot = data.get("zero_shot")
    if not isinstance(zero_shot, Mapping):
        return {}
    chance = _mapping(data.get("chance"))
    top5 = _mapping(data.get("zero_shot_top5"))
    confusion = _mapping(data.get("confusion"))
    rows = {}
    for modality, value in zero_shot.items():
        entry = value if isinstance(value, Mapping) else {"top1": value}
        matrix = _mapping(confusion.get(modality))
        rows[modality] = {
            "top1": entry.get("top1"),
            "top5": entry.get("top5", top5.get(modality)),
            "chance": entry.get("chance", chance.get(modality)),
            "confusion": entry.get("confusion", matrix.get("matrix")),
            "classnames": entry.get("classnames", matrix.get("classnames")),
        }
    return rows


def _retrieval_table(data: Mapping[str, Any]) -> list[str]:
    retrieval = data.get("retrieval")
    if not isinstance(retrieval, Mapping) or not retrieval:
        return []
    tasks = {"retrieval": retrieval} if not any(isinstance(v, Mapping) for v in retrieval.values()) else retrieval
    tasks = {name: v for name, v in tasks.items() if isinstance(v, Mapping)}
    columns = ["R@1", "R@5"]
    columns += [c for c in ("R@10", "median_rank") if any(c in v for v in tasks.values())]
    lines = ["## Retrieval", "", "| Task | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, metrics in tasks.items():
        cells = [_number(metrics.get(c)) if c == "median_rank" else _percent(metrics.get(c)) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _arithmetic_table(data: Mapping[str, Any]) -> list[str]:
    arithmetic = data.get("arithmetic")
    if not isinstance(arithmetic, Mapping) or not arithmetic:
        return []
    lines = ["## Embedding arithmetic", "", "| Metric | Value |", "|---|---:|"]
    for key, value in arithmetic.items():
        lines.append(f"| {key} | {_percent(value) if key.endswith('rate') else _number(value)} |")
    return [*lines, ""]


def _seconds_table(data: Mapping[str, Any]) -> list[str]:
    seconds = data.get("seconds")
    if not isinstance(seconds, Mapping) or not seconds:
        return []
    lines = ["## Time", "", "| Stage | Seconds |", "|---|---:|"]
    stages = [k for k in seconds if k != "total"] + (["total"] if "total" in seconds else [])
    for stage in stages:
        name = f"**{stage}**" if stage == "total" else stage
        lines.append(f"| {name} | {_number(seconds[stage], '.1f')} |")
    return [*lines, ""]


def _write_plots(out_dir: Path, data: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """The PNGs with their captions; raises ImportError without matplotlib."""
    from matplotlib.figure import Figure

    def save(fig: Figure, name: str, caption: str) -> None:
        images.append((caption, save_figure(fig, out_dir / name)))

    images: list[tuple[str, Path]] = []
    rows = {m: r for m, r in _zero_shot_rows(data).items() if _is_number(r["top1"])}
    if rows:
        fig = Figure(figsize=(1.2 * len(rows) + 2, 3.5))
        ax = fig.add_subplot()
        names = list(rows)
        ax.bar(names, [rows[m]["top1"] for m in names], color="tab:blue", label="top-1")
        chance = [(i, rows[m]["chance"]) for i, m in enumerate(names) if _is_number(rows[m]["chance"])]
        if chance:
            xs, ys = zip(*chance, strict=True)
            lefts, rights = [x - 0.4 for x in xs], [x + 0.4 for x in xs]
            ax.hlines(ys, lefts, rights, colors="black", linestyles="--", label="chance")
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title("Zero-shot top-1 vs chance")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        save(fig, "zero_shot_top1.png", "Zero-shot top-1 accuracy per modality against chance")
    for modality, r in _zero_shot_rows(data).items():
        if isinstance(r["confusion"], list) and r["confusion"]:
            fig = confusion_figure(Figure, r["confusion"], r["classnames"], modality)
            save(fig, f"confusion_{_slug(modality)}.png", f"Confusion matrix, {modality}")
    points = {
        name: [p for p in curve if isinstance(p, list) and len(p) == 2 and all(map(_is_number, p))]
        for name, curve in _mapping(data.get("curves")).items()
        if isinstance(curve, list)
    }
    points = {name: p for name, p in points.items() if p}
    if points:
        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
        for name, p in points.items():
            ax.plot([s for s, _ in p], [loss for _, loss in p], label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("Training loss")
        ax.legend()
        save(fig, "loss_curves.png", "Training loss curves")
    return images


def save_figure(figure: Any, path: Path) -> Path:
    """A matplotlib Figure as a PNG, written atomically on the Agg canvas (no display, pyplot untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def confusion_figure(figure_cls: Any, matrix: list[list[int]], classnames: Any, modality: str) -> Any:
    """Row-normalized heatmap (each true class sums to 1), counts written in the cells when they fit."""
    size = len(matrix)
    fig = figure_cls(figsize=(min(2 + 0.5 * size, 14), min(1.5 + 0.5 * size, 13)))
    ax = fig.add_subplot()
    totals = [max(sum(row), 1) for row in matrix]
    fractions = [[count / total for count in row] for row, total in zip(matrix, totals, strict=True)]
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    labels = classnames if isinstance(classnames, list) and len(classnames) == size else list(range(size))
    if size <= 40:
        ax.set_xticks(range(size), [str(c) for c in labels], rotation=90)
        ax.set_yticks(range(size), [str(c) for c in labels])
    if size <= 15:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if count / totals[i] > 0.5 else "black"
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Zero-shot confusion: {modality}")
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if _is_number(value) else "–"


def _number(value: Any, spec: str = "g") -> str:
    return format(value, spec) if _is_number(value) else "–" if value is None else str(value)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
