"""EASE against a direct constrained least-squares (per-column ridge) solution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnb.data.schema import IdIndex, Split
from recnb.data.splits import holdout_validation, random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate, tune
from recnb.models.ease import EASE, ease_weights, gram
from recnb.models.popularity import PopularityRecommender


def _binary_split(x: np.ndarray) -> Split:
    u, i = np.nonzero(x)
    train = pd.DataFrame({"user_idx": u, "item_idx": i, "user_id": u, "item_id": i, "rating": np.nan})
    items = pd.DataFrame({"item_id": np.arange(x.shape[1])})
    return Split(train, train.iloc[:0], IdIndex.from_ids(np.arange(x.shape[0])), IdIndex.from_ids(np.arange(x.shape[1])), items)


def _ridge_columns(x: np.ndarray, l2: float) -> np.ndarray:
    """For each item j: argmin_b ||x_j − X_{−j} b||² + λ||b||², placed in column j (row j stays 0)."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = np.delete(np.arange(n), j)
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ x[:, j])
    return b


@pytest.mark.parametrize("l2", [0.5, 3.0, 50.0])
def test_weights_equal_per_column_ridge_regression_with_zero_diagonal(l2):
    x = (np.random.default_rng(0).random((30, 9)) < 0.35).astype(float)
    model = EASE(l2=l2).fit(_binary_split(x))
    expected = _ridge_columns(x, l2)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)
    assert np.all(np.diag(model.weights_) == 0)
    # the scores are X B, batched over any users
    users = [3, 0, 29]
    np.testing.assert_allclose(model.score(users).numpy(), x[users] @ expected, atol=1e-5)
    assert model.score().shape == (30, 9)


def test_unconstrained_solution_would_be_near_identity():
    # the constraint matters: without it, B = (G + λI)⁻¹ G -> I as λ -> 0
    x = (np.random.default_rng(1).random((40, 6)) < 0.5).astype(float)
    g = gram(x)
    free = np.linalg.solve(g + 1e-3 * np.eye(6), g)
    np.testing.assert_allclose(free, np.eye(6), atol=1e-3)
    assert np.abs(np.diag(ease_weights(g, 1e-3))).max() == 0.0
    np.testing.assert_allclose(g, x.T @ x)


def test_bad_lambda_is_rejected():
    with pytest.raises(ValueError, match="l2 must be positive"):
        EASE(l2=0)
    with pytest.raises(ValueError, match="square"):
        ease_weights(np.ones((2, 3)), 1.0)


def test_lambda_tuned_on_validation_beats_popularity_on_the_shop():
    data = make_shop(n_users=200, n_items=80, n_categories=5, n_interactions=5000, seed=0)
    split = random_holdout(data, test_ratio=0.2, seed=0)
    validation = holdout_validation(split, ratio=0.25, seed=0)
    grid = [1.0, 30.0, 1000.0]
    search = tune(EASE(), validation, validation, {"l2": grid}, k=10)
    curve = search.table
    assert list(curve["l2"]) == grid
    for l2, value in zip(curve["l2"], curve["value"]):
        assert value == pytest.approx(evaluate(EASE(l2=l2).fit(validation), validation, k=10, metrics=("ndcg",))["ndcg@10"])
    assert search.best_params_["l2"] == curve.loc[curve["value"].idxmax(), "l2"]
    model = search.refit(split)
    ease = evaluate(model, split, k=10)["ndcg@10"]
    pop = evaluate(PopularityRecommender().fit(split), split, k=10)["ndcg@10"]
    assert ease > pop
    assert repr(model) == f"EASE(l2={model.l2:g})"
