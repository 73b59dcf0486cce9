"""ImageNet-1k validation (ILSVRC2012, 50,000 images), zero-shot top-1 over 1,000 classes.

Class index c is the c-th ILSVRC2012 synset id (wnid) in sorted order, the convention of every ImageNet
classifier. `classes/imagenet_wnids.txt` lists those 1,000 wnids (the leaf synsets of the devkit's meta.mat;
copied from timm's `imagenet_synsets.txt`), and `classes/imagenet.txt` their prompt names: OpenAI's cleaned
ImageNet class names, as shipped in open_clip's `zero_shot_metadata.py` (MIT licence, see
`classes/LICENSE-open_clip.txt`). Two pairs of classes share a name in that list ("missile", "sunglasses"); it
is kept as published, since the CLIP numbers were measured with it.

The devkit's ground truth gives ILSVRC2012_IDs, which are not class indices: meta.mat maps each ID to its
wnid, and the wnid gives the index.
"""

from __future__ import annotations

import re
from pathlib import Path

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, read_class_file, register_benchmark
from openbind.eval.benchmarks.layout import (
    chosen_classes,
    dataset_root,
    find_media,
    find_named,
    read_csv,
    read_mat,
    require_items,
)
from openbind.modalities import get_input

CLASSES_DIR = Path(__file__).resolve().parent / "classes"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"
KAGGLE_SOLUTION = "LOC_val_solution.csv"
_WNID = re.compile(r"n\d{8}")

LAYOUT = """\
<root>/                                     any one of three layouts:
  1. devkit + flat images (image-net.org)
     ILSVRC2012_img_val/ILSVRC2012_val_00000001.JPEG ...   (or the JPEGs anywhere beneath <root>)
     .../ILSVRC2012_validation_ground_truth.txt           (devkit data/, anywhere beneath <root>)
     .../meta.mat                                         (devkit data/, anywhere beneath <root>)
  2. class folders (torchvision)
     val/<wnid>/*.JPEG   or   <wnid>/*.JPEG                e.g. val/n01440764/ILSVRC2012_val_00000293.JPEG
  3. Kaggle (imagenet-object-localization-challenge)
     LOC_val_solution.csv                                 (anywhere beneath <root>)
     ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG (or anywhere beneath <root>)"""


def read_in1k(root: str | Path, classes: list[list[str]] | None = None) -> TestSet:
    """The 50,000 validation images with their sorted-wnid class index, from whichever layout `root` holds
    (class folders first, then the devkit, then Kaggle's CSV); `classes` replaces the 1,000 names, in
    sorted-wnid order."""
    root = dataset_root(root, LAYOUT)
    wnids = (CLASSES_DIR / "imagenet_wnids.txt").read_text(encoding="utf-8").split()
    index = {wnid: i for i, wnid in enumerate(wnids)}
    classes = chosen_classes(classes, read_class_file(CLASSES_DIR / "imagenet.txt"), "in1k", "sorted wnid order")
    folders = _class_folders(root, index)
    if folders is not None:
        items, labels, skipped = folders
        layout = "class folders"
    else:
        files = find_named(root, [GROUND_TRUTH, META, KAGGLE_SOLUTION])
        if GROUND_TRUTH in files:
            if META not in files:
                raise OpenBindInputError(str(root), f"{GROUND_TRUTH} found but no {META}; expected:\n{LAYOUT}")
            image_wnids = _devkit_wnids(files[GROUND_TRUTH], files[META])
            layout = "devkit"
        elif KAGGLE_SOLUTION in files:
            image_wnids = _kaggle_wnids(files[KAGGLE_SOLUTION])
            layout = "Kaggle"
        else:
            raise OpenBindInputError(str(root), f"no ImageNet validation labels found; expected:\n{LAYOUT}")
        unknown = sorted({w for w in image_wnids.values() if w not in index})
        if unknown:
            raise OpenBindInputError(str(root), f"labels name wnids outside ILSVRC2012's 1,000: {unknown[:5]}")
        found = find_media(root, image_wnids, get_input("image").suffixes)
        items, labels, skipped = [], [], []
        for image, wnid in image_wnids.items():
            if image in found:
                items.append(str(found[image]))
                labels.append(index[wnid])
            else:
                skipped.append(f"{image}: no {image}.JPEG beneath {root}")
    require_items(items, skipped, root, LAYOUT)
    return TestSet(
        kind="image", items=items, labels=labels, classes=classes, class_names=[c[0] for c in classes],
        skipped=skipped,
        choices={"layout": layout, "class order": "sorted wnid",
                 "class names": "OpenAI's cleaned ImageNet names (open_clip IMAGENET_CLASSNAMES)"},
    )  # fmt: skip


def _class_folders(root: Path, index: dict[str, int]) -> tuple[list[str], list[int], list[str]] | None:
    """Images of `val/<wnid>/` (or `<root>/<wnid>/`) labelled by their folder; None if neither has a wnid folder."""
    suffixes = get_input("image").suffixes
    for parent in (root / "val", root):
        if not parent.is_dir():
            continue
        folders = sorted(p for p in parent.iterdir() if p.is_dir() and _WNID.fullmatch(p.name))
        if not folders:
            continue
        items, labels, skipped = [], [], []
        for folder in folders:
            if folder.name not in index:
                skipped.append(f"{folder}: {folder.name} is not one of ILSVRC2012's 1,000 wnids")
                continue
            images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            items += [str(p) for p in images]
            labels += [index[folder.name]] * len(images)
        return items, labels, skipped
    return None


def _devkit_wnids(ground_truth: Path, meta: Path) -> dict[str, str]:
    """Image name -> wnid: line i of the ground truth is the ILSVRC2012_ID of ILSVRC2012_val_{i:08d}."""
    try:
        synsets = read_mat(meta, ["synsets.ILSVRC2012_ID", "synsets.WNID"])
        id_to_wnid = {int(i): w for i, w in zip(synsets["synsets.ILSVRC2012_ID"], synsets["synsets.WNID"], strict=True)}
    except ValueError as error:  # OpenBindInputError included
        reason = error.reason if isinstance(error, OpenBindInputError) else error
        raise OpenBindInputError(
            str(meta), f"not the devkit's meta.mat (a struct array `synsets` with ILSVRC2012_ID and WNID): {reason}"
        ) from None
    wnids = {}
    for number, value in enumerate(ground_truth.read_text(encoding="utf-8").split(), start=1):
        if not value.isdigit() or int(value) not in id_to_wnid:
            raise OpenBindInputError(str(ground_truth), f"line {number}: {value!r} is not an ILSVRC2012_ID of {meta}")
        wnids[f"ILSVRC2012_val_{number:08d}"] = id_to_wnid[int(value)]
    return wnids


def _kaggle_wnids(solution: Path) -> dict[str, str]:
    """Image name -> wnid: the first wnid of each row's PredictionString (its boxes all have the image's class)."""
    wnids = {}
    for number, row in enumerate(read_csv(solution, ["ImageId", "PredictionString"]), start=2):
        if not row["PredictionString"]:
            raise OpenBindInputError(str(solution), f"line {number}: no wnid in PredictionString")
        wnids[row["ImageId"]] = row["PredictionString"].split()[0]
    return dict(sorted(wnids.items()))


register_benchmark(
    Benchmark(
        name="in1k",
        title="ImageNet-1k (val)",
        task="classification",
        read=read_in1k,
        layout=LAYOUT,
        paper={"top1": 77.7},
        chance=0.1,
        notes="50,000 validation images; zero-shot with OpenAI's cleaned class names in sorted-wnid order.",
    )
)
