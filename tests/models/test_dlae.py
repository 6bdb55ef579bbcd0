"""DLAE / EDLAE against direct numpy solves of their objectives, the dropout expectation, and the EASE limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnb.data.schema import IdIndex, Split
from recnb.models.dlae import DLAE, dlae_weights, dropout_penalty
from recnb.models.ease import EASE, ease_weights, gram


def _binary_split(x: np.ndarray) -> Split:
    u, i = np.nonzero(x)
    train = pd.DataFrame({"user_idx": u, "item_idx": i, "user_id": u, "item_id": i, "rating": np.nan})
    items = pd.DataFrame({"item_id": np.arange(x.shape[1])})
    return Split(train, train.iloc[:0], IdIndex.from_ids(np.arange(x.shape[0])), IdIndex.from_ids(np.arange(x.shape[1])), items)


X = (np.random.default_rng(0).random((40, 8)) < 0.35).astype(float)


def _weighted_ridge_columns(x: np.ndarray, lam: np.ndarray, zero_diagonal: bool) -> np.ndarray:
    """Column j: argmin_b ||x_j − X_S b||² + Σ_{i∈S} Λ_i b_i² over S = the other items (or all of them)."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        rows = np.delete(np.arange(n), j) if zero_diagonal else np.arange(n)
        a = x[:, rows]
        b[rows, j] = np.linalg.solve(a.T @ a + np.diag(lam[rows]), a.T @ x[:, j])
    return b


@pytest.mark.parametrize("zero_diagonal", [True, False])
@pytest.mark.parametrize(("dropout", "l2"), [(0.25, 1.0), (0.5, 10.0), (0.8, 0.5)])
def test_weights_are_the_column_wise_weighted_ridge_solution(dropout, l2, zero_diagonal):
    lam = dropout / (1 - dropout) * (X * X).sum(axis=0) + l2  # Λ = p/(1−p) diag(XᵀX) + λ
    np.testing.assert_allclose(dropout_penalty(gram(X), dropout, l2), lam)
    expected = _weighted_ridge_columns(X, lam, zero_diagonal)
    np.testing.assert_allclose(dlae_weights(gram(X), dropout, l2, zero_diagonal), expected, atol=1e-9)
    model = DLAE(dropout=dropout, l2=l2, zero_diagonal=zero_diagonal).fit(_binary_split(X))
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)
    users = [5, 0, 17]
    np.testing.assert_allclose(model.score(users).numpy(), X[users] @ expected, atol=1e-5)


def test_penalty_is_the_expected_loss_under_dropout():
    # E||X − X̃B||² over the 2^(entries) masks, by Monte Carlo with many draws, equals
    # ||X − XB||² + ||Λ^{1/2} B||² with Λ = p/(1−p) diag(G) (λ = 0 here)
    rng = np.random.default_rng(1)
    x, p = X[:12, :5], 0.3
    b = rng.normal(size=(5, 5))
    draws = 40_000
    keep = rng.random((draws, *x.shape)) >= p
    noisy = x[None] * keep / (1 - p)
    monte_carlo = ((x[None] - noisy @ b) ** 2).sum(axis=(1, 2)).mean()
    lam = p / (1 - p) * np.diag(x.T @ x)
    closed = ((x - x @ b) ** 2).sum() + (lam[:, None] * b ** 2).sum()
    assert monte_carlo == pytest.approx(closed, rel=0.01)


def test_no_dropout_with_zero_diagonal_is_ease_and_small_dropout_tends_to_it():
    g = gram(X)
    np.testing.assert_allclose(dlae_weights(g, 0.0, 3.0), ease_weights(g, 3.0), atol=1e-12)
    gaps = [np.abs(dlae_weights(g, p, 3.0) - ease_weights(g, 3.0)).max() for p in (0.1, 0.01, 0.001)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3
    split = _binary_split(X)
    np.testing.assert_allclose(DLAE(dropout=0.0, l2=3.0).fit(split).score().numpy(),
                               EASE(l2=3.0).fit(split).score().numpy(), atol=1e-6)


def test_dropout_keeps_the_unconstrained_model_off_the_identity():
    # without dropout, B = (G + λI)⁻¹G -> I as λ -> 0; with dropout its diagonal stays well below 1
    g = gram(X)
    assert np.diag(dlae_weights(g, 0.0, 1e-4, zero_diagonal=False)).min() > 0.999
    assert np.diag(dlae_weights(g, 0.5, 1e-4, zero_diagonal=False)).max() < 0.6
    assert np.all(np.diag(dlae_weights(g, 0.5, 1e-4)) == 0)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        DLAE(dropout=1.0)
    with pytest.raises(ValueError, match="l2 must be positive"):
        DLAE(l2=0.0)
    with pytest.raises(ValueError, match="square"):
        dlae_weights(np.ones((2, 3)), 0.5, 1.0)


def test_params_save_and_load_round_trip(tmp_path):
    model = DLAE(dropout=0.4, l2=2.0, zero_diagonal=False)
    assert model.get_params() == {"dropout": 0.4, "l2": 2.0, "zero_diagonal": False}
    model.fit(_binary_split(X)).save(tmp_path / "m")
    back = DLAE.load(tmp_path / "m")
    assert repr(back) == "DLAE(dropout=0.4, l2=2, zero_diagonal=False)"
    np.testing.assert_array_equal(back.score().numpy(), model.score().numpy())
