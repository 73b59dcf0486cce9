"""Text inputs: strings -> CLIP token ids, and the prompt templates used for zero-shot classification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from openbind.modalities.batch import BatchResult, OnError, as_item_list, map_items
from openbind.modalities.text.tokenizer import tokenize

# The 80 prompt templates CLIP uses for ImageNet zero-shot; the ImageBind paper uses them for every modality.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)  # fmt: skip


def load_texts(
    texts: str | Sequence[str], context_length: int = 77, on_error: OnError = "raise"
) -> torch.Tensor | BatchResult:
    """Strings -> LongTensor[N, context_length] of CLIP BPE ids (the reference's ids exactly), tokenized as one
    batch; with `on_error="skip"` string by string, so that a non-string item is reported, not raised."""
    if on_error == "raise":
        return tokenize(texts, context_length=context_length)
    return map_items(TextTokens(context_length), as_item_list(texts, (str,)), on_error)


@dataclass(frozen=True)
class TextTokens:
    """One caption -> int64 [context_length] CLIP token ids."""

    context_length: int = 77

    def __call__(self, item: str) -> torch.Tensor:
        return load_texts([item], context_length=self.context_length)[0]


def class_prompts(classnames: Sequence[str], templates: Sequence[str] = IMAGENET_TEMPLATES) -> list[list[str]]:
    """For each class, its name in every template (zero-shot classifiers average their embeddings)."""
    return [[template.format(name) for template in templates] for name in classnames]
