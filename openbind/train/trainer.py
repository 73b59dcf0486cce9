"""The training loop of both ImageBind stages, on one process or many (torchrun).

- `align`: train the image and text towers CLIP-style on (image, caption) pairs (the stand-in for OpenCLIP
  when no pretrained image/text weights exist), with the text tower's learnable logit scale.
- `bind`: freeze the image and text towers and train one modality's encoder on (image or video, modality)
  pairs with symmetric InfoNCE at the modality's fixed temperature. The frozen tower's embeddings of every
  anchor are computed once and cached on disk (`cache_anchors`), so later epochs never decode an anchor file.

A run directory holds `train_config.json`, `log.jsonl`, `val.jsonl`, `checkpoints/step_*` (written atomically;
`--resume` continues from the newest complete one with the same data order, optimizer, scheduler and RNG),
`best/` (the trained weights of the lowest validation loss) and, at the end, `summary.json` and `model/`
(`config.json` + `model.safetensors`), which `--init` of the next stage and `create_model` read. Options left
out (epochs, learning rate, validation split) come from the data and the model (`defaults`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from openbind.data.manifest import Manifest, read_manifest
from openbind.factory import create_model
from openbind.modalities import IMAGE_TOWER, get_modality
from openbind.model.imagebind import ImageBind
from openbind.preprocess import record_inputs
from openbind.train.augment import crop_flip
from openbind.train.cache import EmbeddingCache, fill_cache, module_fingerprint
from openbind.train.config import TrainConfig, parse_finetune
from openbind.train.defaults import auto_epochs, auto_lr, chance_loss, validation_size
from openbind.train.distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from openbind.train.finetune import apply_lora, freeze, merge_lora, unfreeze_last_blocks
from openbind.train.loader import make_loader
from openbind.train.loss import contrastive_accuracy, contrastive_loss
from openbind.train.pairs import PairDataset, PreloadedPairs
from openbind.train.plot import plot_curves
from openbind.train.schedule import build_optimizer, warmup_cosine
from openbind.train.state import load_training_state, restore_rng, save_training_state
from openbind.train.validation import read_best, read_best_weights, split_manifest, validation_metrics, write_best
from openbind.utils import atomic_write_text
from openbind.weights.checkpoint import save_checkpoint

logger = logging.getLogger("openbind")

# The training loss counts as still at chance while its mean over the last CHANCE_WINDOW steps is above
# CHANCE_RATIO times the chance level (2 ln batch); checked a third of the way through a run and at its end.
CHANCE_RATIO, CHANCE_WINDOW = 0.9, 20


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def set_drop_path(encoder: nn.Module, max_rate: float) -> None:
    """Re-spread stochastic depth linearly from 0 (first block) to `max_rate` (last block)."""
    blocks = list(encoder.trunk.blocks)
    for i, block in enumerate(blocks):
        block.drop_path.p = max_rate * i / (len(blocks) - 1) if len(blocks) > 1 else 0.0


class PairTowers(nn.Module):
    """The anchor (vision) and paired encoders as one module, so DistributedDataParallel can wrap the pair."""

    def __init__(self, anchor: nn.Module, other: nn.Module):
        super().__init__()
        self.anchor = anchor
        self.other = other

    def forward(self, anchor: torch.Tensor | None, other: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return (self.anchor(anchor) if anchor is not None else None), self.other(other)


class Trainer:
    """Runs one stage from a `TrainConfig`: `Trainer(config).fit()` returns the path of the trained model."""

    def __init__(self, config: TrainConfig, dist: DistInfo | None = None):
        self.config = config
        self.dist = dist or init_distributed()
        self.out = Path(config.out)
        self.device = self.dist.device
        torch.manual_seed(config.seed)  # the same initial weights on every rank (frozen towers are not in DDP)
        self.model = self._build_model()
        if self.dist.rank:
            torch.manual_seed(config.seed + self.dist.rank)  # a different drop-path stream per rank
        train, val = self._manifests()
        self.datasets = self._build_datasets(train, config.replication)
        self.val_datasets = self._build_datasets(val, [1.0] * len(val))
        small = [m.name() for m, d in zip(val, self.val_datasets) if len(d) < 2]
        if small:
            raise ValueError(f"val: {small} hold fewer than 2 pairs of {config.anchor} and {config.modality}")
        self.caches = self._build_caches(self.datasets, "anchors") if self._uses_cache else None
        self.val_caches = self._build_caches(self.val_datasets, "val_anchors") if self._uses_cache else None
        self.towers = PairTowers(self.model.encoders[IMAGE_TOWER], self.model.encoders[self.config.encoder])
        self.ddp = (
            DistributedDataParallel(self.towers, find_unused_parameters=False) if self.dist.distributed else self.towers
        )
        self.steps_per_epoch = self._steps_per_epoch()
        self.epochs = config.epochs if config.epochs is not None else auto_epochs(self.steps_per_epoch)
        width = max(self.model.encoders[name].config.width for name in config.trained)
        self.lr = config.lr if config.lr is not None else auto_lr(config.batch_size, width)
        self.optimizer = build_optimizer(self.towers, self.lr, config.weight_decay)
        self.total_steps = max(1, math.ceil(self.epochs * self.steps_per_epoch))
        warmup = min(self.total_steps - 1, round(config.warmup_epochs * self.steps_per_epoch))
        self.scheduler = warmup_cosine(self.optimizer, warmup, self.total_steps, config.min_lr_ratio)
        self.step = 0
        self.saved_step = -1
        self.position = {"epoch": 0, "batch": 0}
        self.best = None
        self.recent_losses: deque[float] = deque(maxlen=CHANCE_WINDOW)
        self.chance_warned = False
        self.summary: dict[str, Any] | None = None
        if config.epochs is None or config.lr is None:
            logger.info("%s: %s epochs (%d steps), lr %.3g", self.out, self.epochs, self.total_steps, self.lr)

    # --- setup -----------------------------------------------------------------------------------------------

    @property
    def _uses_cache(self) -> bool:
        return self.config.stage == "bind" and self.config.cache_anchors

    def _build_model(self) -> ImageBind:
        config = self.config
        source = config.init or config.model
        model = create_model(source, device=self.device)
        if config.stage == "bind" and config.encoder not in model.modalities:
            tower = get_modality(config.encoder).config_cls()
            logger.info("%s has no %s tower: binding a new one (%s)", source, config.encoder, tower)
            model.add_encoder(config.encoder, tower)
        missing = [m for m in (IMAGE_TOWER, config.encoder) if m not in model.modalities]
        if missing:
            raise ValueError(f"the model from {source!r} has no {missing} encoder (it has {model.modalities})")
        if model.encoders[config.encoder].scale is None:
            raise ValueError(
                f"the {config.encoder} tower has no temperature to train with: set its config's scale (1/temperature; "
                "ImageBind uses 5 to 20)"
            )
        freeze(model)
        for name in config.trained:
            self._make_trainable(model.encoders[name])
        model.train()
        for name, encoder in model.encoders.items():
            if name not in config.trained:
                encoder.eval()  # frozen towers: no dropout, no drop path
        return model

    def _make_trainable(self, encoder: nn.Module) -> None:
        kind, value = parse_finetune(self.config.finetune)
        if kind == "full":
            encoder.requires_grad_(True)
            if encoder.log_scale is not None and not encoder.config.learnable_scale:
                encoder.log_scale.requires_grad_(False)  # a buffer anyway; fixed temperature
        elif kind == "last":
            unfreeze_last_blocks(encoder, value)
        else:
            apply_lora(encoder.trunk, rank=value, alpha=2.0 * value)
            encoder.head.requires_grad_(True)
        if self.config.drop_path is not None:
            set_drop_path(encoder, self.config.drop_path)
        encoder.trunk.grad_checkpointing = self.config.grad_checkpointing

    def _manifests(self) -> tuple[list[Manifest], list[Manifest]]:
        """(training, validation) manifests: --val's, or a seeded share of each training manifest held out."""
        config = self.config
        train = [read_manifest(path) for path in config.train]
        if config.val:
            return train, [read_manifest(path) for path in config.val]
        if not config.val_fraction:
            return train, []
        kept, val = [], []
        for manifest in train:
            pairs = sum(row.get(config.anchor) is not None and row.get(config.modality) is not None for row in manifest.rows)
            size = validation_size(pairs, config.val_fraction)
            if size == 0:
                if self.dist.is_main:
                    logger.warning(
                        "%s: %d pairs are too few to hold out a validation split (--val-fraction %g); every pair "
                        "trains and the last step is exported. Give --val to validate.",
                        manifest.name(), pairs, config.val_fraction,
                    )  # fmt: skip
                kept.append(manifest)
                continue
            rest, held = split_manifest(manifest, config.anchor, config.modality, size, config.seed)
            kept.append(rest)
            val.append(held)
        return kept, val

    def _build_datasets(self, manifests: list[Manifest], replication: list[float]) -> list[torch.utils.data.Dataset]:
        config = self.config
        datasets = []
        for i, manifest in enumerate(manifests):
            dataset = PairDataset(
                manifest, config.anchor, config.modality, replication=replication[i] if replication else 1.0,
                load_anchor=not self._uses_cache, seed=config.seed, options=self.model.config.inputs,
            )  # fmt: skip
            if config.preload:
                dataset = PreloadedPairs(dataset, config.num_workers, self._show, Path(manifest.name()).name)
            datasets.append(dataset)
        return datasets

    @property
    def _show(self) -> bool:
        return self.config.progress and self.dist.is_main

    def _base(self, dataset: torch.utils.data.Dataset) -> PairDataset:
        return dataset.dataset if isinstance(dataset, PreloadedPairs) else dataset

    def _build_caches(self, datasets: list[torch.utils.data.Dataset], prefix: str) -> list[EmbeddingCache]:
        """Embed every anchor once with the frozen tower; later epochs read the embeddings from disk."""
        anchor = self.model.encoders[IMAGE_TOWER]
        fingerprint = module_fingerprint(anchor)
        caches = []
        for i, dataset in enumerate(datasets):
            base = self._base(dataset)
            path = self.out / "cache" / f"{prefix}_{i}_{base.manifest.fingerprint[:12]}.npy"
            cache = None  # rank 0 alone opens it first: another rank opening a missing cache would reset it
            if self.dist.is_main:
                cache = EmbeddingCache.for_dataset(path, base, self.model.config.embed_dim, fingerprint=fingerprint)
                if not cache.complete:
                    fill_cache(
                        cache, base, anchor, num_workers=self.config.num_workers, autocast=self._autocast,
                        progress=self._show,
                    )  # fmt: skip
            barrier()
            if not self.dist.is_main:
                cache = EmbeddingCache.for_dataset(path, base, self.model.config.embed_dim, fingerprint=fingerprint)
            caches.append(cache)
        return caches

    def _steps_per_epoch(self) -> int:
        sampler = make_loader(
            self.datasets, self.config.batch_size, seed=self.config.seed, epoch=0,
            rank=self.dist.rank, world_size=self.dist.world_size,
        ).batch_sampler  # fmt: skip
        if sampler.num_batches() == 0:
            raise ValueError(
                f"batch size {self.config.batch_size} is larger than the training data "
                f"({sum(len(d) for d in self.datasets)} pairs): lower --batch-size"
            )
        return sampler.num_batches()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    # --- checkpoints -----------------------------------------------------------------------------------------

    def _trained_state(self) -> dict[str, torch.Tensor]:
        state = {}
        for name in self.config.trained:
            for key, value in self.model.encoders[name].state_dict().items():
                state[f"encoders.{name}.{key}"] = value
        return state

    def save(self) -> None:
        if self.step == self.saved_step:
            return
        self.saved_step = self.step
        self._validate()
        if self.dist.is_main:
            save_training_state(
                self.out / "checkpoints", model_state=self._trained_state(), optimizer=self.optimizer,
                scheduler=self.scheduler, step=self.step, epoch=self.position["epoch"],
                data_position=dict(self.position), keep=self.config.keep,
            )  # fmt: skip
        barrier()

    def resume(self) -> bool:
        """Continue from the newest complete checkpoint of this run; False when there is none."""
        state = load_training_state(self.out / "checkpoints")
        if state is None:
            return False
        self.model.load_state_dict(state.model_state, strict=False)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.step = self.saved_step = state.step
        self.position = dict(state.data_position)
        self.best = read_best(self.out / "best")
        log = self.out / "log.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
        self.recent_losses.extend(r["loss"] for r in records[-CHANCE_WINDOW:] if r["step"] <= self.step)
        if self.dist.is_main:
            restore_rng(state)
        else:
            torch.manual_seed(self.config.seed + self.dist.rank + 1000 * self.step)
        logger.info("resumed %s at step %d (epoch %d, batch %d)", self.out, self.step, *self.position.values())
        return True

    # --- validation ------------------------------------------------------------------------------------------

    def _validate(self) -> None:
        """Score the validation pairs; keep the trained weights in `best/` when their loss is the lowest yet."""
        if not self.val_datasets or self.step == 0:
            return
        trained = [self.model.encoders[name] for name in self.config.trained]
        for encoder in trained:
            encoder.eval()
        try:
            sizes = [len(dataset) for dataset in self.val_datasets]
            metrics = [
                validation_metrics(dataset, self.config.batch_size, self._val_embedder(i), self._scale())
                for i, dataset in enumerate(self.val_datasets)
            ]
        finally:
            for encoder in trained:
                encoder.train()
        record = {"step": self.step, "epoch": self.position["epoch"]}
        for key in metrics[0]:
            record[key] = sum(m[key] * n for m, n in zip(metrics, sizes)) / sum(sizes)
        if self.dist.is_main:
            with open(self.out / "val.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            if self.best is None or record["val_loss"] < self.best["val_loss"]:
                write_best(self.out / "best", self._trained_state(), record)
        if self.best is None or record["val_loss"] < self.best["val_loss"]:
            self.best = record

    def _val_embedder(self, index: int):
        def embed(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
            with self._autocast():
                other = self.towers.other(batch["other"].to(self.device))
                if self.val_caches is not None:
                    return self.val_caches[index].get(batch["index"]).to(self.device), other
                return self.towers.anchor(batch["anchor"].to(self.device)), other

        return embed

    def _scale(self) -> torch.Tensor:
        return self.model.encoders[self.config.encoder].scale

    def _check_chance(self, final: bool) -> bool:
        """Whether the recent training loss has left chance level; warns (once mid-run, and at the end) if not."""
        if not self.recent_losses:
            return True
        loss, chance = sum(self.recent_losses) / len(self.recent_losses), chance_loss(self.config.batch_size)
        if loss < CHANCE_RATIO * chance:
            return True
        if final or not self.chance_warned:
            self.chance_warned = True
            advice = (
                "The exported model has not learned to match pairs: check that the pairs belong together, then "
                "train longer (--epochs) or try another --lr."
                if final
                else "It may still leave it; if it does not, stop and check the data, --epochs and --lr."
            )
            message = (
                f"{self.out}: after {self.step} steps the training loss ({loss:.2f}) is still at chance level "
                f"(2 ln {self.config.batch_size} = {chance:.2f}; in-batch accuracy at chance is "
                f"{1 / self.config.batch_size:.3f}). {advice}"
            )
            if self.dist.is_main:
                logger.warning(message)
        return False

    # --- the loop --------------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[tuple[int, dict[str, Any]]]:
        config = self.config
        epoch = self.position["epoch"]
        while self.step < self.total_steps:
            loader = make_loader(
                self.datasets, config.batch_size, seed=config.seed, epoch=epoch, num_workers=config.num_workers,
                rank=self.dist.rank, world_size=self.dist.world_size, start_batch=self.position["batch"],
            )  # fmt: skip
            for batch in loader:
                yield epoch, batch
                if self.step >= self.total_steps:
                    return
            epoch += 1
            self.position = {"epoch": epoch, "batch": 0}
            self.save()

    def _smallest_local_batch(self, batch: dict[str, Any]) -> int:
        """The fewest good pairs any rank holds for this step. Under DDP every rank must contribute the same
        number (smaller only when some rank dropped bad items), and all ranks must skip a step together."""
        local = 0 if batch["other"] is None else batch["other"].shape[0]
        if not self.dist.distributed:
            return local
        size = torch.tensor([local], device=self.device)
        torch.distributed.all_reduce(size, op=torch.distributed.ReduceOp.MIN)
        return int(size)

    def _loss(self, batch: dict[str, Any], size: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = {**batch, **{k: batch[k][:size] for k in ("anchor", "other", "index") if batch[k] is not None}}
        other = batch["other"].to(self.device)
        if self.config.augment:
            seed = np.random.SeedSequence([self.config.seed, self.dist.rank, self.step]).generate_state(1)[0]
            other = crop_flip(other, torch.Generator().manual_seed(int(seed)))
        if self.caches is not None:
            anchor_emb = self.caches[batch["dataset"]].get(batch["index"])
            if anchor_emb is None:
                raise RuntimeError("anchor embedding cache is incomplete; delete the run's cache/ directory")
            with self._autocast():
                _, other_emb = self.ddp(None, other)
            anchor_emb = anchor_emb.to(self.device)
        else:
            with self._autocast():
                anchor_emb, other_emb = self.ddp(batch["anchor"].to(self.device), other)
        scale = self._scale()
        loss = contrastive_loss(anchor_emb, other_emb.float(), scale, local_loss=self.config.local_loss)
        accuracy = contrastive_accuracy(anchor_emb, other_emb)[0]
        return loss, accuracy

    def fit(self, resume: bool = False) -> Path:
        """Train to the end (or continue a run with `resume`); returns the directory of the trained model."""
        config = self.config
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "train_config.json", json.dumps(dataclasses.asdict(config), indent=2))
        if resume:
            self.resume()
        elif self.dist.is_main and (self.out / "checkpoints").exists() and any((self.out / "checkpoints").iterdir()):
            raise FileExistsError(f"{self.out} already holds checkpoints: pass --resume to continue, or a new --out")
        log = open(self.out / "log.jsonl", "a") if self.dist.is_main else None
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"{config.stage} {config.modality}",
                   disable=not self._show)  # fmt: skip
        start, samples = time.perf_counter(), 0
        try:
            for epoch, batch in self._batches():
                size = self._smallest_local_batch(batch)
                if size == 0:  # every item of this batch (on some rank) was bad
                    self.position = {"epoch": epoch, "batch": batch["batch"] + 1}
                    continue
                loss, accuracy = self._loss(batch, size)
                # local_loss: each rank holds its own share; the mean over ranks is the global batch's loss
                reported = all_reduce_mean(loss) if config.local_loss else loss.detach()
                if not torch.isfinite(reported):
                    raise TrainingDiverged(
                        f"the loss became {reported.item()} at step {self.step}: stopped. The last good checkpoint is "
                        f"kept in {self.out / 'checkpoints'} (resume with --resume); try a lower --lr, a smaller "
                        "--grad-clip or --precision fp32"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = (
                    torch.nn.utils.clip_grad_norm_(self.towers.parameters(), config.grad_clip)
                    if config.grad_clip
                    else None
                )
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                self.recent_losses.append(reported.item())
                if self.step == max(100, self.total_steps // 3) and self.step < self.total_steps:
                    self._check_chance(final=False)
                samples += batch["other"].shape[0] * self.dist.world_size
                self.position = {"epoch": epoch, "batch": batch["batch"] + 1}
                if log is not None and (self.step % config.log_every == 0 or self.step == self.total_steps):
                    elapsed = time.perf_counter() - start
                    record = {
                        "step": self.step, "epoch": epoch, "loss": reported.item(), "accuracy": accuracy.item(),
                        "lr": self.scheduler.get_last_lr()[0], "samples_per_s": samples / max(elapsed, 1e-9),
                        "grad_norm": float(grad_norm) if grad_norm is not None else None,
                        "bad_items": batch["num_bad"],
                    }  # fmt: skip
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{reported.item():.3f}", acc=f"{accuracy.item():.2f}")
                bar.update(1)
                if self.step % config.save_every == 0 and self.step < self.total_steps:
                    self.save()
        finally:
            bar.close()
            if log is not None:
                log.close()
        self.save()
        left_chance = self._check_chance(final=True)
        return self._export(left_chance)

    def _export(self, left_chance: bool) -> Path:
        """Write the whole model (frozen towers included) for `--init` of the next stage and `create_model`: the
        trained weights of the best validation step (the last step without validation), and `summary.json`."""
        target = self.out / "model"
        exported = self.step
        if self.best is not None and self.best["step"] != self.step:
            self.model.load_state_dict(read_best_weights(self.out / "best"), strict=False)
            exported = self.best["step"]
        if self.dist.is_main:
            summary = {
                "steps": self.total_steps, "epochs": self.epochs, "lr": self.lr, "batch_size": self.config.batch_size,
                "train_pairs": sum(len(self._base(d).rows) for d in self.datasets),
                "val_pairs": sum(len(d) for d in self.val_datasets), "best": self.best, "exported_step": exported,
                "final_loss": sum(self.recent_losses) / len(self.recent_losses) if self.recent_losses else None,
                "chance_loss": chance_loss(self.config.batch_size), "left_chance": left_chance,
            }  # fmt: skip
            atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
            self.summary = summary
            merge_lora(self.model)
            save_checkpoint(self.model.state_dict(), record_inputs(self.model.config), target)
            plot_curves(self.out / "log.jsonl", self.out / "curves.png", self.out / "val.jsonl")
        barrier()
        return target
