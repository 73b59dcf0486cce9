"""Symmetric InfoNCE against an explicit per-row / per-column log-sum-exp, values and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from openbind.errors import OpenBindInputError
from openbind.train import contrastive_accuracy, contrastive_loss


def naive_loss(a: torch.Tensor, m: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The paper's L(A,M) + L(M,A), one explicit log-sum-exp per row and per column (O(n^2) Python loops)."""
    n = a.shape[0]
    rows = []
    cols = []
    for i in range(n):
        row = [scale * (a[i] * m[j]).sum() for j in range(n)]
        rows.append(torch.logsumexp(torch.stack(row), 0) - row[i])
        col = [scale * (a[j] * m[i]).sum() for j in range(n)]
        cols.append(torch.logsumexp(torch.stack(col), 0) - col[i])
    return torch.stack(rows).mean() + torch.stack(cols).mean()


@pytest.mark.parametrize("n, d, scale", [(1, 4, 1.0), (5, 8, 20.0), (9, 3, 0.3), (16, 32, 100.0)])
def test_loss_and_gradients_equal_naive_loops(n, d, scale):
    g = torch.Generator().manual_seed(n * 100 + d)
    a0 = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    m0 = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    # correlated pairs, so the loss is not near log(n) everywhere
    m0 = F.normalize(m0 + 2 * a0, dim=-1)

    a, m = a0.clone().requires_grad_(), m0.clone().requires_grad_()
    s = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    loss = contrastive_loss(a, m, s)
    loss.backward()

    a_ref, m_ref = a0.clone().requires_grad_(), m0.clone().requires_grad_()
    s_ref = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    ref = naive_loss(a_ref, m_ref, s_ref)
    ref.backward()

    # contrastive_loss computes logits in float32
    torch.testing.assert_close(loss.double(), ref, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(a.grad, a_ref.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.grad, m_ref.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.grad, s_ref.grad, atol=1e-4, rtol=1e-4)


def test_loss_is_the_sum_of_both_directions_not_the_mean():
    """Orthogonal embeddings at scale 0: each direction is log(n), the paper's sum gives 2 log(n)."""
    e = torch.eye(4)
    assert contrastive_loss(e, e, 0.0).item() == pytest.approx(2 * math.log(4))
    # perfect alignment at a high scale: both directions near zero
    assert contrastive_loss(e, e, 100.0).item() < 1e-6


def test_float_scale_equals_tensor_scale_and_local_loss_is_the_same_in_one_process():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    m = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    base = contrastive_loss(a, m, 7.0)
    assert torch.equal(base, contrastive_loss(a, m, torch.tensor(7.0)))
    assert torch.equal(base, contrastive_loss(a, m, 7.0, local_loss=True))
    assert torch.equal(base, contrastive_loss(a, m, 7.0, gather=False))
    # asymmetric: swapping the roles transposes the logits, the symmetric sum is unchanged
    torch.testing.assert_close(base, contrastive_loss(m, a, 7.0))


def test_bf16_inputs_give_a_float32_loss():
    g = torch.Generator().manual_seed(1)
    a = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    m = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    loss = contrastive_loss(a.bfloat16(), m.bfloat16(), 20.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, contrastive_loss(a, m, 20.0), atol=0.1, rtol=0.02)


def test_accuracy_counts_rows_and_columns_separately():
    a = torch.eye(3)
    m = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])  # row 1 of m points at a[0]
    forward, backward = contrastive_accuracy(a, m)
    # anchor -> other: a0 -> m0 (first of the tie m0/m1), a1 -> argmax over [0,0,0] = m0 (miss), a2 -> m2
    assert forward.item() == pytest.approx(2 / 3)
    # other -> anchor: m0 -> a0, m1 -> a0 (miss), m2 -> a2
    assert backward.item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("shapes", [((4, 8), (4, 7)), ((4, 8), (5, 8)), ((8,), (8,)), ((2, 4, 8), (2, 4, 8))])
def test_bad_shapes_are_refused(shapes):
    a, m = torch.zeros(shapes[0]), torch.zeros(shapes[1])
    with pytest.raises(OpenBindInputError, match="same shape"):
        contrastive_loss(a, m, 1.0)
    with pytest.raises(OpenBindInputError):
        contrastive_accuracy(a, m)
