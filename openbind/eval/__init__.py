"""Evaluation: the paper's protocols on any embeddings, plus reports.

- `zeroshot`: emergent zero-shot classification with text-prompt classifiers (the CLIP recipe; classes with
  several names scored as the max over them, as for NYU-D's "other").
- `retrieval`: recall@k and median rank, with many-to-many relevance by id.
- `arithmetic`: image + audio embedding composition and its retrieval hit rate.
- `embedding`: embedding whole evaluation sets in batches, skipping and reporting bad items.
- `report`: report.json, report.md and PNG plots (plots need matplotlib).
"""

from openbind.eval.arithmetic import arithmetic_hit_rate, compose
from openbind.eval.embedding import embed_items
from openbind.eval.report import summarize_zero_shot, to_jsonable, validate_quickstart, write_report
from openbind.eval.retrieval import recall_at_k, recall_both_directions, retrieval_ranks
from openbind.eval.zeroshot import (
    ZeroShotClassifier,
    ZeroShotResult,
    accuracy,
    build_classifier,
    evaluate_manifest,
    evaluate_zero_shot,
    zero_shot_scores,
)

__all__ = [
    "ZeroShotClassifier",
    "ZeroShotResult",
    "accuracy",
    "arithmetic_hit_rate",
    "build_classifier",
    "compose",
    "embed_items",
    "evaluate_manifest",
    "evaluate_zero_shot",
    "recall_at_k",
    "recall_both_directions",
    "retrieval_ranks",
    "summarize_zero_shot",
    "to_jsonable",
    "validate_quickstart",
    "write_report",
    "zero_shot_scores",
]
