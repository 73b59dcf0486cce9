"""Random crop-and-flip of bound 2D maps: crops stay inside the map, flips mirror, draws follow the generator."""

from __future__ import annotations

import pytest
import torch

from openbind.train.augment import MIN_SCALE, crop_flip


def _ramps(n: int = 64, size: int = 56) -> torch.Tensor:
    """Maps whose value is the column position in [0, 1]: a crop keeps a sub-range, a flip reverses it."""
    return torch.linspace(0, 1, size).expand(n, 1, size, size).contiguous()


def test_crops_stay_inside_the_map_and_cover_at_least_the_minimum_scale():
    out = crop_flip(_ramps(), torch.Generator().manual_seed(0))
    assert out.shape == (64, 1, 56, 56)
    assert out.min() >= 0 and out.max() <= 1
    rows = out[:, 0, 28]  # one row per map
    span = (rows[:, -1] - rows[:, 0]).abs()
    assert (span >= MIN_SCALE - 0.05).all() and (span <= 1).all()
    assert (span < 0.95).any(), "some crops are tighter than the whole map"
    for row in rows:  # monotonic: a crop of a ramp is a ramp
        steps = row.diff()
        assert (steps >= -1e-6).all() or (steps <= 1e-6).all()


def test_about_half_the_maps_are_mirrored():
    out = crop_flip(_ramps(400), torch.Generator().manual_seed(1))
    mirrored = (out[:, 0, 0, -1] < out[:, 0, 0, 0]).float().mean().item()
    assert 0.4 < mirrored < 0.6


def test_the_generator_decides_the_draws():
    maps = torch.rand(8, 1, 32, 32)
    a = crop_flip(maps, torch.Generator().manual_seed(3))
    b = crop_flip(maps, torch.Generator().manual_seed(3))
    c = crop_flip(maps, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_only_2d_maps_are_augmented():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        crop_flip(torch.zeros(2, 6, 2000), torch.Generator())
