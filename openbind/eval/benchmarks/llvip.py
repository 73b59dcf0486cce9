"""LLVIP: person vs background on crops of LLVIP's infrared test images, read from the dataset as published.

LLVIP ships whole 1280x1024 frames with VOC boxes of the people in them; the benchmark is a two-class task on
crops: every person box, and for each one a box of the same size drawn at random where no person is. An item is
the image with its box; `ThermalCrops` cuts the box and applies the model's thermal transform to the crop.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.eval.benchmarks.base import Benchmark, TestSet, register_benchmark
from openbind.eval.benchmarks.layout import checked_options, chosen_classes, dataset_root
from openbind.io.image import open_image
from openbind.modalities.thermal.transform import ThermalTransform

LLVIP_CLASSES = (("person", "man", "woman", "people"), ("street", "road", "car", "light", "tree"))
LLVIP_CLASS_NAMES = ("person", "background")
BACKGROUND_SEED = 0
BACKGROUND_TRIES = 100  # random positions tried per person box before giving up on its background box

Box = tuple[int, int, int, int]  # left, top, right, bottom (pixels; right and bottom exclusive, as PIL crops)


@dataclass(frozen=True)
class Crop:
    """A box of an infrared image and its class (0 person, 1 background)."""

    path: str
    box: Box
    label: int

    def key(self) -> str:
        return f"{self.path}#box={','.join(map(str, self.box))}"


@dataclass
class ThermalCrops:
    """The per-item transform: cut the box, then the model's thermal transform on the crop."""

    options: dict[str, Any]
    transform: ThermalTransform = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.transform = checked_options(ThermalTransform, self.options, "thermal")

    @property
    def fixed_output_shape(self) -> tuple[int, int, int]:
        return self.transform.fixed_output_shape

    def __call__(self, item: Crop, out: torch.Tensor | None = None) -> torch.Tensor:
        image = _decoded(item.path, self.transform.max_pixels)
        if item.box[2] > image.width or item.box[3] > image.height:
            raise OpenBindInputError(item.path, f"box {item.box} outside the {image.width}x{image.height} image")
        return self.transform(image.crop(item.box), out=out)


@functools.lru_cache(maxsize=1)
def _decoded(path: str, max_pixels: int | None) -> Image.Image:
    """The last image decoded in this process: the crops of one image are consecutive items."""
    return open_image(path, max_pixels=max_pixels)


def read_llvip(root: str | os.PathLike, classes: list[list[str]] | None = None) -> TestSet:
    """Every person box of LLVIP's infrared test images, plus one random background box per person box."""
    prompts = chosen_classes(classes, LLVIP_CLASSES, "llvip")
    root = dataset_root(root, LLVIP_LAYOUT)
    root = root / "LLVIP" if not (root / "infrared").is_dir() and (root / "LLVIP").is_dir() else root
    images_dir, annotations_dir = root / "infrared" / "test", root / "Annotations"
    for folder in (images_dir, annotations_dir):
        if not folder.is_dir():
            raise OpenBindInputError(str(folder), "LLVIP folder missing (expected infrared/test/ and Annotations/)")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        raise OpenBindInputError(str(images_dir), "no infrared test images")
    items: list[Crop] = []
    skipped: list[str] = []
    without_background = 0
    for image in images:
        try:
            (width, height), people = _annotation(annotations_dir / f"{image.stem}.xml", image)
        except OpenBindInputError as error:
            skipped.append(f"{image.name}: {error.reason}")
            continue
        items.extend(Crop(str(image), box, 0) for box in people)
        rng = np.random.default_rng([BACKGROUND_SEED, zlib.crc32(image.stem.encode())])
        for box in people:
            background = _background_box(rng, box, people, width, height)
            if background is None:
                without_background += 1
            else:
                items.append(Crop(str(image), background, 1))
    if not items:
        raise OpenBindInputError(str(root), f"no person box in any annotated test image: {skipped[:3]}")
    persons = sum(item.label == 0 for item in items)
    return TestSet(
        kind="thermal", items=items, labels=[item.label for item in items], classes=prompts,
        class_names=list(LLVIP_CLASS_NAMES), keys=[item.key() for item in items], transform=ThermalCrops,
        skipped=skipped,
        choices={
            "crops": f"{persons} person boxes (VOC <object><name>person</name>) of {len(images)} infrared test "
                     f"images and {len(items) - persons} background boxes",
            "background": f"per person box, one box of the same width and height at a uniformly random position "
                          f"inside the image that intersects no person box of that image (background boxes may "
                          f"overlap each other); {BACKGROUND_TRIES} tries, else none ({without_background} person "
                          f"boxes got none); numpy default_rng([{BACKGROUND_SEED}, crc32(image stem)]) per image",
            "boxes": "VOC xmin, ymin, xmax, ymax used as the crop box (left, top, right, bottom), clipped to "
                     "the image",
            "scoring": "each class scores the best of its prompt names",
        },
    )  # fmt: skip


def _annotation(path: Path, image: Path) -> tuple[tuple[int, int], list[Box]]:
    """((width, height), person boxes) of one VOC file; the size from <size>, else from the image header."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise OpenBindInputError(str(path), f"no annotation Annotations/{path.name}") from None
    except (OSError, ET.ParseError) as error:
        raise OpenBindInputError(str(path), f"unreadable annotation ({error})") from None
    size = tree.find("size")
    try:
        width, height = (int(float(size.findtext(tag))) for tag in ("width", "height"))
    except (AttributeError, TypeError, ValueError):
        width, height = open_image(image).size
    boxes = []
    for obj in tree.iter("object"):
        if (obj.findtext("name") or "").strip().lower() != "person":
            continue
        try:
            left, top, right, bottom = (int(round(float(obj.find("bndbox").findtext(tag))))
                                        for tag in ("xmin", "ymin", "xmax", "ymax"))  # fmt: skip
        except (AttributeError, TypeError, ValueError):
            raise OpenBindInputError(str(path), "a person <object> without a numeric <bndbox>") from None
        box = (max(left, 0), max(top, 0), min(right, width), min(bottom, height))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
    return (width, height), boxes


def _background_box(rng: np.random.Generator, like: Box, people: list[Box], width: int, height: int) -> Box | None:
    """A box of `like`'s size at a random position that intersects no box of `people`, or None."""
    box_w, box_h = like[2] - like[0], like[3] - like[1]
    if box_w > width or box_h > height:
        return None
    for _ in range(BACKGROUND_TRIES):
        left = int(rng.integers(0, width - box_w + 1))
        top = int(rng.integers(0, height - box_h + 1))
        box = (left, top, left + box_w, top + box_h)
        if not any(box[0] < p[2] and p[0] < box[2] and box[1] < p[3] and p[1] < box[3] for p in people):
            return box
    return None


LLVIP_LAYOUT = """\
<root>/                       LLVIP/ as unpacked (or the folder holding it)
  infrared/test/NNNNNN.jpg    infrared test frames (visible/ is not used)
  Annotations/NNNNNN.xml      VOC boxes: <object><name>person</name><bndbox>xmin ymin xmax ymax</bndbox>"""

register_benchmark(
    Benchmark(
        name="llvip", title="LLVIP (infrared person vs background crops)", task="classification", read=read_llvip,
        layout=LLVIP_LAYOUT, paper={"top1": 63.4}, chance=50.0,
        notes="Thermal only; person = person/man/woman/people, background = street/road/car/light/tree.",
    )
)  # fmt: skip
