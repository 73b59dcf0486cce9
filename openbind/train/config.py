"""`TrainConfig`: everything one training run needs, saved as `train_config.json`; its field help is the CLI's.

Two stages, as in ImageBind: `align` trains the image and text towers CLIP-style on (image, caption) pairs;
`bind` freezes them and trains one modality's encoder on (image or video, modality) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openbind.modalities import IMAGE_TOWER, TEXT_TOWER, get_input, get_modality, modality_of

STAGES = ("align", "bind")
PRECISIONS = ("fp32", "bf16")


def anchor_kinds() -> list[str]:
    """The input kinds a bound modality is paired with: those of the image tower (image, video)."""
    return [kind.name for kind in get_modality(IMAGE_TOWER).inputs]


def _option(default: Any, help: str, **kwargs: Any) -> Any:
    """A field with its command-line help (`openbind train ... --help` shows it)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    """Everything a run needs; saved as `train_config.json` in the run directory."""

    stage: str = field(metadata={"help": "align (image + text towers) or bind (one modality to the frozen pair)"})
    train: list[str] = field(metadata={
        "help": "training manifest(s): CSV/JSONL with input-kind columns (image, video, text, audio, depth, "
        "thermal, imu, or a registered modality's), paths relative to the manifest; several are mixed with one "
        "pair type per batch"})  # fmt: skip
    out: str = field(metadata={
        "help": "run directory: train_config.json, log.jsonl, checkpoints/, cache/, curves.png and the final model/"})
    modality: str = _option("text", "bind: the input kind to bind (audio, depth, thermal, imu, ...); align: text")
    anchor: str = _option("image", "the frozen side of each pair: image or video (video for IMU, as in the paper)")
    model: str = _option("imagebind_small", "preset or checkpoint directory to start from when --init is not given "
                         "(see `openbind models`)")  # fmt: skip
    init: str | None = _option(None, "start from this run directory (its model/) or checkpoint directory, e.g. the "
                               "align run")  # fmt: skip
    epochs: float | None = _option(None, "passes over the (replicated) training data; may be fractional. Default: "
                                   "enough for 600 steps and at least 10 epochs (towers trained from scratch sit at "
                                   "chance for the first few hundred steps, so a small dataset needs many passes)")
    batch_size: int = _option(64, "global batch size, split across processes")
    lr: float | None = _option(None, "peak learning rate of AdamW (betas 0.9, 0.95). Default: 2e-3 x sqrt(batch / 64) "
                               "x 128 / width of the widest trained tower (2e-3 for imagebind_world at batch 64)")
    weight_decay: float = _option(0.2, "AdamW weight decay (not applied to biases, norms, tokens, positions, scales)")
    warmup_epochs: float = _option(1.0, "linear warmup length before the cosine decay")
    min_lr_ratio: float = _option(0.0, "final learning rate as a fraction of --lr")
    grad_clip: float | None = _option(1.0, "clip the gradient norm to this value (0 disables)")
    val: list[str] = _option([], "validation manifest(s): scored at every checkpoint; the step of the lowest "
                             "validation loss is exported as model/")
    val_fraction: float = _option(0.1, "without --val, hold out this fraction of each training manifest's pairs "
                                  "(seeded: a resumed run holds out the same; at least 32 and at most 2,000 pairs; "
                                  "a manifest with fewer than 32 / fraction pairs keeps them all); 0 disables")
    drop_path: float | None = _option(None, "maximum stochastic-depth rate of the trained towers (default: the config's)")
    finetune: str = _option("full", "full | last:N (last N blocks + head) | lora:R (rank-R adapters on attention and MLP)")
    precision: str = _option("fp32", "fp32 | bf16 (autocast)")
    grad_checkpointing: bool = _option(False, "recompute activations in the backward pass to save memory")
    cache_anchors: bool = _option(True, "bind: embed every anchor once with the frozen tower and cache it on disk",
                                  bind_only=True)  # fmt: skip
    preload: bool = _option(False, "decode every training input once and keep it in memory (fast for small datasets)")
    augment: bool = _option(False, "bind 2-D maps (depth, thermal): random crops (70-100%% of the side) and left-right "
                            "flips; helps towers that learn from few maps", bind_only=True)  # fmt: skip
    local_loss: bool = _option(False, "multi-process: each rank scores only its own rows against all gathered negatives")
    replication: list[float] = _option([], "per-manifest replication factors (the paper's Table 9), one per --train")
    num_workers: int = _option(0, "DataLoader worker processes for decoding")
    seed: int = _option(0, "seed of the data order and initialization (the run is deterministic given seed and "
                        "world size)")  # fmt: skip
    save_every: int = _option(500, "steps between checkpoints (one is also written at the end of every epoch)")
    keep: int = _option(3, "complete checkpoints to keep")
    log_every: int = _option(10, "steps between log.jsonl records")
    progress: bool = _option(True, "show progress bars")

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.anchor not in anchor_kinds():
            raise ValueError(f"anchor must be one of {anchor_kinds()}, got {self.anchor!r}")
        try:
            get_input(self.modality)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        if self.stage == "align" and self.modality != TEXT_TOWER:
            raise ValueError(f"the align stage pairs images with text (modality {TEXT_TOWER!r})")
        if self.stage == "bind" and self.encoder in (IMAGE_TOWER, TEXT_TOWER):
            raise ValueError(f"bind trains a new modality against frozen image/text towers, not {self.modality!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.augment and (self.stage != "bind" or not get_modality(self.encoder).augmentable):
            raise ValueError(
                f"augment crops and flips 2-D maps (a modality registered as augmentable) in the bind stage, "
                f"not {self.stage} {self.modality!r}"
            )
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5], got {self.val_fraction}")
        if self.replication and len(self.replication) != len(self.train):
            raise ValueError("give one replication factor per training manifest")
        parse_finetune(self.finetune)

    @property
    def encoder(self) -> str:
        """The encoder of the paired input kind (text for align)."""
        return modality_of(self.modality).name

    @property
    def trained(self) -> list[str]:
        """The encoders this stage trains."""
        return [IMAGE_TOWER, TEXT_TOWER] if self.stage == "align" else [self.encoder]


def parse_finetune(spec: str) -> tuple[str, int]:
    kind, _, value = spec.partition(":")
    if kind == "full" and not value:
        return "full", 0
    if kind in ("last", "lora") and value.isdigit() and int(value) > 0:
        return kind, int(value)
    raise ValueError(f"finetune must be 'full', 'last:N' or 'lora:R' with a positive integer, got {spec!r}")
