"""`map_items`: the batch calls of every modality (keep the good items, report the bad ones)."""

from __future__ import annotations

import pytest
import torch

from openbind.errors import OpenBindInputError
from openbind.modalities.batch import BatchResult, map_items


class _Rows:
    """A fixed-shape transform (as image, audio and video ones): item -> [2] filled with the item's number."""

    fixed_output_shape = (2,)

    def __init__(self) -> None:
        self.outs: list[torch.Tensor] = []

    def __call__(self, item, out=None):
        if item == "bad":
            raise OpenBindInputError(item, "unreadable")
        self.outs.append(out)
        return torch.full((2,), float(item)) if out is None else out.fill_(float(item))


def test_fixed_shape_transforms_write_into_the_rows_of_one_batch_and_skip_bad_items():
    transform = _Rows()
    result = map_items(transform, [1, "bad", 2, "bad", 3], on_error="skip")
    assert isinstance(result, BatchResult) and result.kept == [0, 2, 4]
    assert [failure.index for failure in result.failed] == [1, 3]
    assert torch.equal(result.tensor, torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    storage = result.tensor.untyped_storage().data_ptr()
    assert [out.untyped_storage().data_ptr() for out in transform.outs] == [storage] * 3  # no stacking copy
    assert result.tensor.dtype == torch.float32


def test_other_transforms_are_stacked():
    result = map_items(lambda item: torch.full((3,), float(item)), [1, 2])
    assert torch.equal(result, torch.tensor([[1.0] * 3, [2.0] * 3]))


def test_raise_names_the_batch_item_and_empty_batches_are_refused():
    with pytest.raises(OpenBindInputError, match="batch item 1"):
        map_items(_Rows(), [1, "bad"])
    with pytest.raises(OpenBindInputError, match="empty batch"):
        map_items(_Rows(), [])
    assert map_items(_Rows(), [], on_error="skip").tensor.numel() == 0
    assert map_items(_Rows(), ["bad"], on_error="skip").tensor.numel() == 0
