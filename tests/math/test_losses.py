"""Losses against hand values, F.binary_cross_entropy_with_logits, extreme logits, and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recnb.math.losses import bce_loss, bpr_loss, negative_sampling_loss, positive_only_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_hand_values():
    pos = torch.tensor([0.0, 2.0], dtype=torch.float64)
    neg = torch.tensor([[1.0, -1.0], [0.5, 3.0]], dtype=torch.float64)
    # -log σ(0) = log 2
    assert positive_only_loss(torch.zeros(3)).item() == pytest.approx(math.log(2))
    assert positive_only_loss(pos).item() == pytest.approx(-(log_sigmoid(0) + log_sigmoid(2)) / 2)
    ns = [-log_sigmoid(0) - log_sigmoid(-1) - log_sigmoid(1), -log_sigmoid(2) - log_sigmoid(-0.5) - log_sigmoid(-3)]
    assert negative_sampling_loss(pos, neg).item() == pytest.approx(sum(ns) / 2)
    bpr = [-log_sigmoid(0 - 1), -log_sigmoid(0 + 1), -log_sigmoid(2 - 0.5), -log_sigmoid(2 - 3)]
    assert bpr_loss(pos, neg).item() == pytest.approx(sum(bpr) / 4)


def test_bce_equals_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=g, dtype=torch.float64) * 4
    labels = torch.rand(5, 7, generator=g, dtype=torch.float64).round()
    assert bce_loss(logits, labels).item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, labels).item(), abs=1e-14)
    # soft labels too
    soft = torch.rand(5, 7, generator=g, dtype=torch.float64)
    assert bce_loss(logits, soft).item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, soft).item(), abs=1e-14)


def test_negative_sampling_is_bce_on_positives_and_negatives():
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
    labels = torch.cat([torch.ones(6, 1), torch.zeros(6, 4)], dim=1).double()
    # BCE averages over all 5 columns; negative sampling sums them per row
    want = 5 * F.binary_cross_entropy_with_logits(logits, labels)
    assert negative_sampling_loss(pos, neg).item() == pytest.approx(want.item(), abs=1e-12)
    assert positive_only_loss(pos).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)).item(), abs=1e-14
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_at_extreme_logits(dtype):
    big = torch.tensor([1e4, -1e4], dtype=dtype)
    assert torch.log(torch.sigmoid(big)).isinf().any()  # the naive form breaks...
    for loss in (
        positive_only_loss(big),
        negative_sampling_loss(big, big.flip(0).unsqueeze(1)),
        bpr_loss(big, big.flip(0).unsqueeze(1)),
        bce_loss(big, torch.tensor([1.0, 0.0], dtype=dtype)),
    ):
        assert torch.isfinite(loss)  # ...logsigmoid does not
    # -log σ(-1e4) = 1e4 (+ e^-1e4), so the positive-only mean is 5e3
    assert positive_only_loss(big).item() == pytest.approx(5e3)
    assert bce_loss(big, torch.tensor([1.0, 0.0], dtype=dtype)).item() == pytest.approx(0.0, abs=1e-30)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(2)
    pos = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    neg = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.rand(4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(positive_only_loss, (pos,))
    assert torch.autograd.gradcheck(negative_sampling_loss, (pos, neg))
    assert torch.autograd.gradcheck(bpr_loss, (pos, neg))
    assert torch.autograd.gradcheck(lambda x: bce_loss(x, labels), (pos,))


def test_hand_derived_gradients():
    pos = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64, requires_grad=True)
    neg = torch.tensor([[1.0, -2.0], [0.0, 0.5], [4.0, -1.0]], dtype=torch.float64, requires_grad=True)
    B, k = neg.shape
    # positive only: d/ds [-log σ(s)] = σ(s) - 1, divided by the batch size
    (gp,) = torch.autograd.grad(positive_only_loss(pos), pos)
    torch.testing.assert_close(gp, (torch.sigmoid(pos) - 1) / B)
    # negative sampling: positives as above; each negative d/ds [-log σ(-s)] = σ(s)
    gp, gn = torch.autograd.grad(negative_sampling_loss(pos, neg), (pos, neg))
    torch.testing.assert_close(gp, (torch.sigmoid(pos) - 1) / B)
    torch.testing.assert_close(gn, torch.sigmoid(neg) / B)
    # BPR: with d = s_pos - s_neg, d/dd [-log σ(d)] = σ(d) - 1; the negative gets the opposite sign
    gp, gn = torch.autograd.grad(bpr_loss(pos, neg), (pos, neg))
    d = pos.unsqueeze(1) - neg
    torch.testing.assert_close(gn, (1 - torch.sigmoid(d)) / (B * k))
    torch.testing.assert_close(gp, ((torch.sigmoid(d) - 1) / (B * k)).sum(dim=1))
    # BCE: d/ds = σ(s) - y
    y = torch.tensor([1.0, 0.0, 0.3], dtype=torch.float64)
    (gb,) = torch.autograd.grad(bce_loss(pos, y), pos)
    torch.testing.assert_close(gb, (torch.sigmoid(pos) - y) / B)


def test_positive_only_has_no_minimum_at_finite_scores():
    # the gradient σ(s) - 1 is negative for every finite s: descent always raises the score
    s = torch.linspace(-5, 20, 11, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(positive_only_loss(s), s)
    assert (g < 0).all()


def test_shape_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"neg_scores must be \(B, k\) with B = 3"):
        bpr_loss(torch.zeros(3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="pos_scores must be 1-D"):
        negative_sampling_loss(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="pos_scores must be 1-D"):
        positive_only_loss(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"logits and labels must have the same shape"):
        bce_loss(torch.zeros(3), torch.zeros(4))
