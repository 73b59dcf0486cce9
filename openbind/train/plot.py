"""Training curves: loss and in-batch accuracy against step, from a run's log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def _records(path: Path | None) -> list[dict]:
    if path is None or not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(log_path: Path, out_path: Path, val_path: Path | None = None) -> Path | None:
    """Loss and in-batch accuracy against step, training and (from `val_path`) validation, as a PNG (skipped
    without matplotlib)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    records, val = _records(log_path), _records(val_path)
    if not records:
        return None
    figure = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(figure)
    for axis, key in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        axis.plot([r["step"] for r in records], [r[key] for r in records], label="training")
        if val:
            axis.plot([r["step"] for r in val], [r["val_" + key] for r in val], "o-", label="validation")
            axis.legend()
        axis.set_xlabel("step")
        axis.set_title(key)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out_path, dpi=100)
    return out_path
