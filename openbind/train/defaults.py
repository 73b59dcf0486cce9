"""The values a run takes when the options are left out, worked out from the data and the model.

Defaults that suit one dataset leave another at chance: a fixed epoch count gives a small dataset a few
hundred steps, too few for towers trained from scratch to leave the plateau where every pair scores alike.
docs/training.md ("Defaults") has the measurements behind these numbers.
"""

from __future__ import annotations

import math

# Optimizer steps a run takes at least: from-scratch image/text towers sit at chance for the first few hundred
# steps before they start to match pairs.
MIN_STEPS = 600
# Passes over the data a run takes at least (larger datasets reach MIN_STEPS in fewer).
MIN_EPOCHS = 10
# Peak learning rate at the reference batch and width (imagebind_world: towers 128 wide, batch 64), tuned on the
# quickstart; other batches scale it by sqrt(batch / 64) (Adam's square-root rule), other widths by
# 128 / width (wider towers need smaller steps), which gives 1.9e-3 for the paper's audio recipe (width 768,
# batch 2048: the paper used 1.6e-3).
REFERENCE_LR, REFERENCE_BATCH, REFERENCE_WIDTH = 2e-3, 64, 128
# The validation split held out of the training manifest when no --val is given: at least MIN_VAL_PAIRS (a
# dataset with fewer than MIN_VAL_PAIRS / fraction pairs keeps them all for training) and at most MAX_VAL_PAIRS.
MIN_VAL_PAIRS, MAX_VAL_PAIRS = 32, 2000


def auto_epochs(steps_per_epoch: int) -> float:
    """Enough epochs for MIN_STEPS steps, and at least MIN_EPOCHS."""
    return float(max(MIN_EPOCHS, math.ceil(MIN_STEPS / max(1, steps_per_epoch))))


def auto_lr(batch_size: int, width: int) -> float:
    """REFERENCE_LR scaled by sqrt(batch_size / REFERENCE_BATCH) and REFERENCE_WIDTH / width."""
    return REFERENCE_LR * math.sqrt(batch_size / REFERENCE_BATCH) * REFERENCE_WIDTH / width


def validation_size(pairs: int, fraction: float) -> int:
    """How many of `pairs` to hold out: round(fraction * pairs) within [MIN_VAL_PAIRS, MAX_VAL_PAIRS], or 0 when
    that fraction would be under MIN_VAL_PAIRS (too few to tell a better checkpoint from noise)."""
    wanted = round(fraction * pairs)
    return 0 if wanted < MIN_VAL_PAIRS else min(wanted, MAX_VAL_PAIRS)


def chance_loss(batch_size: int) -> float:
    """The symmetric InfoNCE loss of towers that score every pair alike: ln(batch) per direction, two directions."""
    return 2.0 * math.log(batch_size)
