"""Cosine similarity against hand computation, numpy and scikit-learn; zero vectors give 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics.pairwise import cosine_similarity as sk_cosine

from recnb.math.similarity import all_vs_all, cosine, cosine_grad, normalise_rows, one_vs_many


def test_hand_values():
    # 000: <[1, .5, -1], [0, 1, .5]> = 0 + .5 - .5 = 0, so the cosine is exactly 0
    assert cosine(torch.tensor([1.0, 0.5, -1.0]), torch.tensor([0.0, 1.0, 0.5])).item() == 0.0
    # 3-4-5 triangle: cos = 3 / 5
    assert cosine(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(0.6)
    u = torch.tensor([0.5, 0.3, 0.2, 0.1, 0.1], dtype=torch.float64)
    v = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.1], dtype=torch.float64)
    assert cosine(u, v).item() == pytest.approx(0.35 / math.sqrt(0.40 * 0.31), abs=1e-15)


def test_one_vs_many_hand_values():
    u = torch.tensor([1.0, 0.5, -1.0], dtype=torch.float64)
    g = torch.tensor([[0.5, 0.5, 0.5], [-0.5, 1.0, -0.5], [0.5, -0.5, 0.5]], dtype=torch.float64)
    # dots .25, .5, -.25; |u| = 1.5; |g| = sqrt(.75), sqrt(1.5), sqrt(.75)
    want = [0.25 / (1.5 * math.sqrt(0.75)), 0.5 / (1.5 * math.sqrt(1.5)), -0.25 / (1.5 * math.sqrt(0.75))]
    assert one_vs_many(u, g).tolist() == pytest.approx(want, abs=1e-15)


def test_zero_vectors_give_zero_never_nan():
    z = torch.zeros(3)
    assert cosine(z, torch.tensor([1.0, 2.0, 3.0])).item() == 0.0
    assert cosine(z, z).item() == 0.0
    sims = all_vs_all(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 2.0], [0.0, 0.0]]))
    torch.testing.assert_close(sims, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    assert normalise_rows(torch.zeros(2, 4)).abs().sum() == 0


def test_gradient_through_zero_vector_is_finite():
    u = torch.zeros(3, requires_grad=True)
    cosine(u, torch.tensor([1.0, 0.0, 0.0])).backward()
    assert torch.isfinite(u.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_vs_all_matches_sklearn_and_keeps_dtype(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    got = all_vs_all(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype))
    assert got.dtype == dtype and got.shape == (7, 11)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(got.numpy(), sk_cosine(a, b), atol=tol)


def test_normalise_rows_unit_norm():
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    torch.testing.assert_close(normalise_rows(x), torch.tensor([[0.6, 0.8], [0.0, -1.0]]))


@settings(max_examples=80, deadline=None)
@given(
    a=arrays(np.float64, (4, 3), elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
    b=arrays(np.float64, (5, 3), elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
)
def test_batched_equals_pairwise_and_is_bounded(a, b):
    A, B = torch.from_numpy(a), torch.from_numpy(b)
    sims = all_vs_all(A, B)
    assert torch.isfinite(sims).all() and sims.abs().max() <= 1.0
    for i in range(4):
        np.testing.assert_allclose(sims[i].numpy(), one_vs_many(A[i], B).numpy(), atol=1e-12)
        for j in range(5):
            na, nb = np.linalg.norm(a[i]), np.linalg.norm(b[j])
            want = 0.0 if na == 0 or nb == 0 else np.dot(a[i], b[j]) / (na * nb)
            assert sims[i, j].item() == pytest.approx(np.clip(want, -1, 1), abs=1e-9)


def test_scale_invariance():
    u, g = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([1.0, 0.5, 0.5])
    assert cosine(7.5 * u, 0.01 * g).item() == pytest.approx(cosine(u, g).item(), abs=1e-6)


def test_bad_shapes_and_dtypes_raise():
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        cosine(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"users \(U, d\) and items \(N, d\)"):
        all_vs_all(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="floating-point"):
        normalise_rows(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="share a dtype"):
        all_vs_all(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.float64))


def test_cosine_grad_matches_autograd_and_is_orthogonal_to_u():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        u = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
        v = torch.randn(6, generator=g, dtype=torch.float64)
        (auto,) = torch.autograd.grad(cosine(u, v), u)
        hand = cosine_grad(u.detach(), v)
        torch.testing.assert_close(hand, auto)
        assert abs(torch.dot(hand, u.detach()).item()) < 1e-12
    with pytest.raises(ValueError, match="zero vector"):
        cosine_grad(torch.zeros(2), torch.ones(2))


def test_descending_on_cosine_lowers_it():
    # 004 §4.2: u_new = u - α ∂sim/∂u for a positive pair makes the pair *less* similar
    u = torch.tensor([0.5, 0.3, 0.2, 0.1, 0.1], dtype=torch.float64)
    v = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.1], dtype=torch.float64)
    before = cosine(u, v)
    assert cosine(u - 0.1 * cosine_grad(u, v), v) < before < cosine(u + 0.1 * cosine_grad(u, v), v)


def test_nan_or_infinite_entries_raise_naming_the_argument():
    ok = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^u holds 1 NaN or infinite value\(s\), first at position\(s\) \[1\]"):
        cosine(torch.tensor([1.0, float("nan"), 0.0]), ok)
    with pytest.raises(ValueError, match=r"^g holds 2 NaN or infinite"):
        cosine(ok, torch.tensor([float("inf"), 0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"^items holds 1 NaN .* position\(s\) \[\(1, 2\)\]"):
        one_vs_many(ok, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"^users holds"):
        all_vs_all(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"^items holds"):
        all_vs_all(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, float("-inf")]]))
    assert cosine(ok, ok).item() == pytest.approx(1.0)  # finite input is unaffected
