"""Emergent zero-shot classification: score any modality's embeddings against text-prompt class embeddings.

The CLIP recipe, which the ImageBind paper uses for every modality: each class name is put into every prompt
template, the prompts are embedded and normalized, averaged and renormalized; an item's class scores are its
cosine similarities to these class rows. A class may have several names (NYU-D's "other" is scored as the
max over 18 names): it gets one row per name and its score is the max over them, since its names describe
different things (a mean of their embeddings would describe none of them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from openbind.data.manifest import Manifest
from openbind.errors import OpenBindInputError
from openbind.eval.embedding import embed_items
from openbind.modalities.text.transform import IMAGENET_TEMPLATES, class_prompts
from openbind.model.imagebind import ImageBind

ClassNames = Sequence[str | Sequence[str]] | Mapping[str, str | Sequence[str]]


@dataclass
class ZeroShotClassifier:
    """Class rows for zero-shot scoring: `weights[r]` is the unit prompt embedding of name r, which belongs
    to class `row_class[r]`; a class's score is the max over its rows (one row per class unless synonyms)."""

    weights: torch.Tensor  # [R, D]
    row_class: torch.Tensor  # [R] long, in [0, C)
    classnames: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[N, C] cosine scores (max over each class's names)."""
        sims = F.normalize(embeddings.float(), dim=-1) @ self.weights.to(embeddings.device).T
        if torch.equal(self.row_class.cpu(), torch.arange(self.num_classes)):
            return sims
        index = self.row_class.to(sims.device).expand_as(sims)
        out = sims.new_full((sims.shape[0], self.num_classes), float("-inf"))
        return out.scatter_reduce(1, index, sims, reduce="amax")


def build_classifier(
    model: ImageBind,
    classnames: ClassNames,
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    *,
    batch_size: int = 256,
    progress: bool = False,
) -> ZeroShotClassifier:
    """Text-prompt class rows for zero-shot scoring (the CLIP recipe: embed, normalize, average, renormalize).

    `classnames` entries are names or lists of synonyms (scored as the max over them); a mapping
    {display name: name or synonyms} names the classes in reports (by default a class is named by its first
    name).
    """
    displays, names = _class_names(classnames)
    templates = list(templates)
    if not templates or any("{}" not in t for t in templates):
        raise OpenBindInputError(templates, "give at least one template, each with a '{}' for the class name")
    row_class = torch.tensor([c for c, group in enumerate(names) for _ in group], dtype=torch.long)
    flat = [name for group in names for name in group]
    prompts = [prompt for per_name in class_prompts(flat, templates) for prompt in per_name]
    embeddings = embed_items(model, "text", prompts, batch_size=batch_size, progress=progress, on_error="raise")
    rows = F.normalize(F.normalize(embeddings, dim=-1).view(len(flat), len(templates), -1).mean(dim=1), dim=-1)
    return ZeroShotClassifier(rows, row_class, displays)


def zero_shot_scores(embeddings: torch.Tensor, classifier: ZeroShotClassifier | torch.Tensor) -> torch.Tensor:
    """[N, C] cosine scores of items against a classifier (or a plain [C, D] tensor of class rows)."""
    if isinstance(classifier, torch.Tensor):
        rows = F.normalize(classifier.float(), dim=-1)
        classifier = ZeroShotClassifier(rows, torch.arange(len(rows)), [str(c) for c in range(len(rows))])
    return classifier.scores(embeddings)


def accuracy(
    scores: torch.Tensor, labels: torch.Tensor | Sequence[int], topk: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """{"top1": fraction, "top5": ...}: an item counts if its label is among its k best classes.

    k is capped at the number of classes (top-5 of a 3-class task is 1.0).
    """
    if len(scores) == 0:
        raise OpenBindInputError(scores, "no items to score")
    labels = _labels_tensor(labels, scores.shape[1], len(scores))
    ranked = scores.topk(min(max(topk), scores.shape[1]), dim=1).indices.cpu()
    hits = ranked == labels[:, None]
    return {f"top{k}": hits[:, : min(k, scores.shape[1])].any(dim=1).float().mean().item() for k in topk}


@dataclass
class ZeroShotResult:
    """Accuracies (fractions), per-class accuracy (NaN for a class without items), the confusion matrix
    (rows: true class, columns: predicted) and chance level 1/C to read them against."""

    top1: float
    top5: float
    per_class: list[float]
    confusion: torch.Tensor  # [C, C] long
    chance: float
    classnames: list[str]
    num_items: int
    skipped: list[str] = field(default_factory=list)  # why items could not be embedded

    @classmethod
    def from_scores(
        cls, scores: torch.Tensor, labels: torch.Tensor | Sequence[int], classnames: Sequence[str]
    ) -> ZeroShotResult:
        num_classes = scores.shape[1]
        if len(classnames) != num_classes:
            raise OpenBindInputError(classnames, f"{len(classnames)} class names for {num_classes} score columns")
        labels = _labels_tensor(labels, num_classes, len(scores))
        acc = accuracy(scores, labels, topk=(1, 5))
        predicted = scores.argmax(dim=1).cpu()
        confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
        confusion = confusion.view(num_classes, num_classes)
        totals = confusion.sum(dim=1)
        per_class = torch.where(totals > 0, confusion.diagonal() / totals.clamp(min=1), float("nan"))
        return cls(
            top1=acc["top1"],
            top5=acc["top5"],
            per_class=per_class.tolist(),
            confusion=confusion,
            chance=1.0 / num_classes,
            classnames=list(classnames),
            num_items=len(labels),
        )

    @property
    def mean_per_class(self) -> float:
        """Balanced accuracy: the mean over classes that have items."""
        return torch.tensor(self.per_class).nanmean().item()

    def to_dict(self) -> dict[str, Any]:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "mean_per_class": self.mean_per_class,
            "chance": self.chance,
            "num_items": self.num_items,
            "classnames": self.classnames,
            "per_class": self.per_class,
            "confusion": self.confusion.tolist(),
            "skipped": self.skipped,
        }


def evaluate_zero_shot(
    model: ImageBind,
    kind: str,
    items: Sequence[Any] | torch.Tensor,
    labels: Sequence[int | str] | torch.Tensor,
    classnames: ClassNames,
    *,
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    batch_size: int = 32,
    progress: bool = True,
    num_workers: int = 0,
    transform: Callable[[Any], torch.Tensor] | None = None,
) -> ZeroShotResult:
    """Embed `items` (skipping bad ones, listed in `skipped`), classify them zero-shot and score them.

    `labels` are class indices or class (display) names; `transform` replaces the modality's default loader
    (see `embed_items`).
    """
    displays, _ = _class_names(classnames)
    if len(labels) != len(items):
        raise OpenBindInputError(labels, f"{len(labels)} labels for {len(items)} items")
    if not isinstance(labels, torch.Tensor) and any(isinstance(label, str) for label in labels):
        position = {name: i for i, name in enumerate(displays)}
        unknown = sorted({label for label in labels if label not in position})
        if unknown:
            raise OpenBindInputError(unknown, f"labels that are not class names (classes: {displays})")
        labels = [position[label] for label in labels]
    labels = _labels_tensor(labels, len(displays), len(items))
    classifier = build_classifier(model, classnames, templates, progress=progress)
    embedded = embed_items(
        model, kind, items, batch_size=batch_size, progress=progress, num_workers=num_workers, on_error="skip",
        transform=transform,
    )
    if not embedded.kept:
        raise OpenBindInputError(kind, f"none of the {len(items)} items could be embedded")
    result = ZeroShotResult.from_scores(classifier.scores(embedded.tensor), labels[embedded.kept], displays)
    result.skipped = [str(failure.error) for failure in embedded.failed]
    return result


def _class_names(classnames: ClassNames) -> tuple[list[str], list[list[str]]]:
    """(display name per class, prompt names per class)."""
    if isinstance(classnames, Mapping):
        pairs = [(str(k), [v] if isinstance(v, str) else list(v)) for k, v in classnames.items()]
    else:
        pairs = []
        for entry in classnames:
            group = [entry] if isinstance(entry, str) else list(entry)
            pairs.append((group[0] if group else "", group))
    if not pairs:
        raise OpenBindInputError(classnames, "give at least one class")
    for display, group in pairs:
        if not group or not all(isinstance(name, str) and name.strip() for name in group):
            raise OpenBindInputError(display or group, "each class needs at least one non-empty name")
    return [d for d, _ in pairs], [g for _, g in pairs]


def _labels_tensor(labels: torch.Tensor | Sequence[int], num_classes: int, num_items: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).long().cpu().flatten() if len(labels) else torch.empty(0, dtype=torch.long)
    if len(labels) != num_items:
        raise OpenBindInputError(labels, f"{len(labels)} labels for {num_items} items")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise OpenBindInputError(labels, f"labels must be class indices in [0, {num_classes})")
    return labels


def evaluate_manifest(
    model: ImageBind,
    manifest: Manifest,
    kind: str,
    classnames: ClassNames,
    *,
    label_column: str = "label",
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
) -> ZeroShotResult:
    """Zero-shot accuracy over a manifest's `kind` column (rows without one are left out) against its
    `label_column`, each item through its kind's inference transform (audio: three clips averaged; video: five
    clips of three crops), a layout's own transform where the manifest names one (SUN RGB-D's depth)."""
    columns = manifest.modalities + manifest.metadata
    for column in (kind, label_column):
        if column not in columns:
            raise OpenBindInputError(manifest.name(), f"has no {column!r} column (columns: {columns})")
    rows = [row for row in manifest.rows if row.get(kind)]
    return evaluate_zero_shot(
        model, kind, [row[kind] for row in rows], [row[label_column] for row in rows], classnames,
        templates=templates, batch_size=batch_size, num_workers=num_workers, progress=progress,
        transform=manifest.transforms.get(kind),
    )  # fmt: skip
