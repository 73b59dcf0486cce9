"""The `openbind eval` commands (the CLI stays a thin layer: parse, call the API, print)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from openbind.errors import OpenBindInputError
from openbind.eval.zeroshot import evaluate_zero_shot
from openbind.factory import create_model
from openbind.manifest import read_manifest
from openbind.modalities.text.transform import IMAGENET_TEMPLATES
from openbind.utils import atomic_write_text

# Manifest columns -> the model's encoder (images and videos both go through the vision tower).
ENCODER_OF_COLUMN = {"image": "vision", "video": "vision"}


def run_zero_shot(args: argparse.Namespace) -> int:
    model_path = Path(args.model)
    if (model_path / "model" / "config.json").is_file():  # a training run directory
        model_path = model_path / "model"
    model = create_model(str(model_path))
    classes = [line.strip() for line in Path(args.classes).read_text().splitlines() if line.strip()]
    manifest = read_manifest(args.data)
    for column in (args.modality, args.label_column):
        if column not in manifest.modalities + manifest.metadata:
            raise OpenBindInputError(args.data, f"has no {column!r} column (columns: {manifest.modalities + manifest.metadata})")
    rows = [row for row in manifest.rows if row.get(args.modality)]
    transform = None
    if args.modality in ENCODER_OF_COLUMN:
        from openbind.train.data import default_transform

        transform = default_transform(args.modality)
    result = evaluate_zero_shot(
        model,
        ENCODER_OF_COLUMN.get(args.modality, args.modality),
        [row[args.modality] for row in rows],
        [row[args.label_column] for row in rows],
        classes,
        templates=IMAGENET_TEMPLATES,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        transform=transform,
    )
    print(f"{args.modality} zero-shot on {result.num_items} items, {len(classes)} classes (chance {result.chance:.3f})")
    print(f"top-1 {result.top1:.4f}   top-5 {result.top5:.4f}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad item(s); first: {result.skipped[0]}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2))
    return 0
