"""The training loop of both ImageBind stages, on one process or many (torchrun).

- `align`: train the image and text towers CLIP-style on (image, caption) pairs (the stand-in for OpenCLIP
  when no pretrained image/text weights exist), with the text tower's learnable logit scale.
- `bind`: freeze the image and text towers and train one modality's encoder on (image or video, modality)
  pairs with symmetric InfoNCE at the modality's fixed temperature. The frozen tower's embeddings of every
  anchor are computed once and cached on disk (`cache_anchors`), so later epochs never decode an anchor file.

A run directory holds `train_config.json`, `log.jsonl`, `checkpoints/step_*` (written atomically; `--resume`
continues from the newest complete one with the same data order, optimizer, scheduler and RNG) and, at the
end, `model/` (`config.json` + `model.safetensors`), which `--init` of the next stage and `create_model` read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from openbind.data.manifest import read_manifest
from openbind.factory import create_model
from openbind.modalities import IMAGE_TOWER, get_modality
from openbind.model.imagebind import ImageBind
from openbind.preprocess import record_inputs
from openbind.train.augment import crop_flip
from openbind.train.cache import EmbeddingCache, fill_cache, module_fingerprint
from openbind.train.config import TrainConfig, parse_finetune
from openbind.train.distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from openbind.train.finetune import apply_lora, freeze, merge_lora, unfreeze_last_blocks
from openbind.train.loader import make_loader
from openbind.train.loss import contrastive_accuracy, contrastive_loss
from openbind.train.pairs import PairDataset, PreloadedPairs
from openbind.train.plot import plot_curves
from openbind.train.schedule import build_optimizer, warmup_cosine
from openbind.train.state import load_training_state, restore_rng, save_training_state
from openbind.utils import atomic_write_text
from openbind.weights.checkpoint import save_checkpoint

logger = logging.getLogger("openbind")

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
        self.datasets = self._build_datasets()
        self.caches = self._build_caches() if self._uses_cache else None
        self.towers = PairTowers(self.model.encoders[IMAGE_TOWER], self.model.encoders[self.config.encoder])
        self.ddp = (
            DistributedDataParallel(self.towers, find_unused_parameters=False) if self.dist.distributed else self.towers
        )
        self.optimizer = build_optimizer(self.towers, config.lr, config.weight_decay)
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = max(1, math.ceil(config.epochs * self.steps_per_epoch))
        warmup = min(self.total_steps - 1, round(config.warmup_epochs * self.steps_per_epoch))
        self.scheduler = warmup_cosine(self.optimizer, warmup, self.total_steps, config.min_lr_ratio)
        self.step = 0
        self.saved_step = -1
        self.position = {"epoch": 0, "batch": 0}

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

    def _build_datasets(self) -> list[torch.utils.data.Dataset]:
        config = self.config
        datasets = []
        for i, path in enumerate(config.train):
            replication = config.replication[i] if config.replication else 1.0
            dataset = PairDataset(
                read_manifest(path), config.anchor, config.modality, replication=replication,
                load_anchor=not self._uses_cache, seed=config.seed, options=self.model.config.inputs,
            )  # fmt: skip
            if config.preload:
                dataset = PreloadedPairs(dataset, config.num_workers, self._show, Path(path).name)
            datasets.append(dataset)
        return datasets

    @property
    def _show(self) -> bool:
        return self.config.progress and self.dist.is_main

    def _base(self, dataset: torch.utils.data.Dataset) -> PairDataset:
        return dataset.dataset if isinstance(dataset, PreloadedPairs) else dataset

    def _build_caches(self) -> list[EmbeddingCache]:
        """Embed every anchor once with the frozen tower; later epochs read the embeddings from disk."""
        anchor = self.model.encoders[IMAGE_TOWER]
        fingerprint = module_fingerprint(anchor)
        caches = []
        for i, dataset in enumerate(self.datasets):
            base = self._base(dataset)
            path = self.out / "cache" / f"anchors_{i}_{base.manifest.fingerprint[:12]}.npy"
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
        if self.dist.is_main:
            restore_rng(state)
        else:
            torch.manual_seed(self.config.seed + self.dist.rank + 1000 * self.step)
        logger.info("resumed %s at step %d (epoch %d, batch %d)", self.out, self.step, *self.position.values())
        return True

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
        scale = self.model.encoders[self.config.encoder].scale
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
        return self._export()

    def _export(self) -> Path:
        """Write the whole model (frozen towers included) for `--init` of the next stage and `create_model`."""
        target = self.out / "model"
        if self.dist.is_main:
            merge_lora(self.model)
            save_checkpoint(self.model.state_dict(), record_inputs(self.model.config), target)
            plot_curves(self.out / "log.jsonl", self.out / "curves.png")
        barrier()
        return target
