"""Training openbind the ImageBind way: align image and text, then bind a new modality to the frozen pair.

- `config`, `trainer`: `Trainer(TrainConfig(...)).fit()` runs one stage on one process or many (torchrun).
- `defaults`: epochs, learning rate and validation size worked out from the data and the model when not given.
- `validation`: the seeded held-out split, validation loss, the best step's weights.
- `pairs`, `sampler`, `loader`: (anchor, other) pair datasets, the mixing batch sampler, the DataLoader.
- `cache`: the frozen anchor tower's embeddings on disk; `augment`: crops and flips of 2-D maps.
- `loss`: symmetric InfoNCE (the paper's sum L(I,M) + L(M,I)), exact across data-parallel ranks.
- `distributed`: torchrun setup and the few collectives a loop needs; no-ops in one process.
- `schedule`: AdamW with the usual weight-decay exclusions, warmup + cosine, the paper's Table 9 recipes.
- `finetune`: freezing, unfreezing an encoder's last blocks, LoRA adapters (apply, merge, save).
- `state`: training checkpoints that appear complete or not at all, with exact resume (optimizer, RNG, data).
"""

from openbind.train.config import TrainConfig
from openbind.train.distributed import DistInfo, all_reduce_mean, barrier, broadcast_object, cleanup, init_distributed
from openbind.train.finetune import (
    LORA_TARGETS,
    LoRALinear,
    apply_lora,
    freeze,
    lora_state_dict,
    merge_lora,
    unfreeze_last_blocks,
)
from openbind.train.loss import contrastive_accuracy, contrastive_loss, gather_batch
from openbind.train.schedule import (
    NO_DECAY_NAMES,
    PAPER_RECIPES,
    build_optimizer,
    decays,
    warmup_cosine,
    weight_decay_groups,
)
from openbind.train.state import (
    TrainingState,
    get_rng_state,
    is_complete,
    list_checkpoints,
    load_training_state,
    restore_rng,
    save_training_state,
)
from openbind.train.trainer import Trainer, TrainingDiverged

__all__ = [
    "LORA_TARGETS",
    "NO_DECAY_NAMES",
    "PAPER_RECIPES",
    "DistInfo",
    "LoRALinear",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingState",
    "all_reduce_mean",
    "apply_lora",
    "barrier",
    "broadcast_object",
    "build_optimizer",
    "cleanup",
    "contrastive_accuracy",
    "contrastive_loss",
    "decays",
    "freeze",
    "gather_batch",
    "get_rng_state",
    "init_distributed",
    "is_complete",
    "list_checkpoints",
    "load_training_state",
    "lora_state_dict",
    "merge_lora",
    "restore_rng",
    "save_training_state",
    "unfreeze_last_blocks",
    "warmup_cosine",
    "weight_decay_groups",
]
