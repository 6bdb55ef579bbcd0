"""Biased MF recovers a planted low-rank rating matrix, beats the mean and bias-only baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnb.data.schema import IdIndex, Split
from recnb.evaluation import rating_metrics
from recnb.models.mf import BiasedMF, GlobalMean


def _planted(seed: int = 0, n_u: int = 120, n_i: int = 80, rank: int = 2, density: float = 0.4) -> Split:
    """Ratings ``3.5 + a_u + c_i + p_u·q_i + N(0, 0.1²)`` on a random ``density`` of the cells; 20 % test."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 1, (n_u, rank)), rng.normal(0, 1, (n_i, rank))
    r = 3.5 + rng.normal(0, 0.5, (n_u, 1)) + rng.normal(0, 0.5, (1, n_i)) + p @ q.T + rng.normal(0, 0.1, (n_u, n_i))
    u, i = np.nonzero(rng.random((n_u, n_i)) < density)
    f = pd.DataFrame({"user_idx": u, "item_idx": i, "rating": r[u, i], "user_id": u, "item_id": i})
    test = rng.random(len(f)) < 0.2
    items = pd.DataFrame({"item_id": np.arange(n_i)})
    return Split(f[~test], f[test], IdIndex.from_ids(np.arange(n_u)), IdIndex.from_ids(np.arange(n_i)), items, "planted")


@pytest.fixture(scope="module")
def planted() -> Split:
    return _planted()


def _mf(**kw) -> BiasedMF:
    return BiasedMF(**{"embedding_dim": 4, "lr": 0.03, "l2": 0.005, "max_epochs": 25, "batch_size": 256, **kw})


def test_recovers_planted_low_rank_matrix(planted):
    global_mean = rating_metrics(GlobalMean().fit(planted), planted)["rmse"]
    bias_only = rating_metrics(_mf(init_std=0.0).fit(planted), planted)["rmse"]  # e = 0 stays 0: no gradient
    model = _mf().fit(planted)
    got = rating_metrics(model, planted)
    assert bias_only < global_mean
    assert got["rmse"] < 0.4 * bias_only, (got, bias_only, global_mean)
    assert got["rmse"] < 0.5  # the planted signal has std ~1.6, noise 0.1
    # score() is the same prediction laid out as (users, items)
    row = planted.test.iloc[0]
    assert model.score([int(row.user_idx)])[0, int(row.item_idx)].item() == pytest.approx(
        model.predict(torch.tensor([int(row.user_idx)]), torch.tensor([int(row.item_idx)])).item(), abs=1e-5
    )
    history = model.trainer_.logger.history
    assert history["train_mse"].dropna().iloc[-1] < 0.5 * history["train_mse"].dropna().iloc[0]


def test_same_seed_same_model_different_seed_different_model(planted):
    a = _mf(max_epochs=2, seed=1).fit(planted).score()
    b = _mf(max_epochs=2, seed=1).fit(planted).score()
    c = _mf(max_epochs=2, seed=2).fit(planted).score()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_implicit_pooling_pools_over_interacted_items(planted):
    model = _mf(implicit_pooling=True, max_epochs=15).fit(planted)
    # e_u = p_u + |N(u)|^-1/2 Σ_{j∈N(u)} y_j
    seen = planted.seen_mask()[3]
    want = model.user_emb[3] + model.pooled_emb[seen].sum(0) / seen.sum().sqrt()
    assert torch.allclose(model.user_vectors(torch.tensor([3]))[0], want, atol=1e-5)
    assert rating_metrics(model, planted)["rmse"] < 0.6
    assert not any(b.shape == (planted.n_users, planted.n_items) for b in model.buffers())  # no dense pool


def test_pooling_gather_equals_the_dense_pool_matrix(planted):
    # users in any order, repeated, and one with no training item (its bag is empty: zero vector)
    from dataclasses import replace

    emptied = replace(planted, train=planted.train[planted.train["user_idx"] != 5])
    model = _mf(implicit_pooling=True, max_epochs=1).fit(emptied)
    n = emptied.train_matrix("binary")
    pool = n / n.sum(dim=1, keepdim=True).clamp(min=1).sqrt()  # the former dense (n_users, n_items) buffer
    users = torch.tensor([7, 5, 0, 7, 119, 3])
    with torch.no_grad():
        np.testing.assert_allclose(model.pooled(users).numpy(), (pool[users] @ model.pooled_emb).numpy(), atol=1e-6)
        assert torch.equal(model.pooled(torch.tensor([5])), torch.zeros(1, 4))
    # gradients reach exactly the pooled items of the batch's users
    model.pooled_emb.grad = None
    model.pooled(torch.tensor([0])).sum().backward()
    touched = model.pooled_emb.grad.abs().sum(dim=1) > 0
    assert torch.equal(touched, n[0] > 0)


@pytest.mark.parametrize("seed", [1.5, "1", None])
def test_non_integer_seed_is_named(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        BiasedMF(seed=seed)


def test_needs_ratings_and_valid_parameters(planted):
    with pytest.raises(ValueError, match="dim"):
        BiasedMF(embedding_dim=0)
    no_ratings = Split(planted.train.assign(rating=np.nan), planted.test, planted.users, planted.items, planted.items_frame)
    with pytest.raises(ValueError, match="no training ratings"):
        _mf().fit(no_ratings)


def test_global_mean_predicts_the_mean_training_rating(planted):
    model = GlobalMean().fit(planted)
    mu = planted.train["rating"].mean()
    assert model.mu_ == pytest.approx(mu)
    pairs = planted.test.iloc[:7]
    pred = model.predict(torch.tensor(pairs.user_idx.to_numpy()), torch.tensor(pairs.item_idx.to_numpy()))
    assert pred.shape == (7,) and torch.allclose(pred, torch.full((7,), mu, dtype=torch.float32))
    scores = model.score([0, 5])
    assert scores.shape == (2, planted.n_items) and torch.all(scores == pred[0])
    # rating_metrics reads it through predict: RMSE/MAE against the numpy formulas
    got = rating_metrics(model, planted)
    err = planted.test["rating"].to_numpy() - mu
    assert got["rmse"] == pytest.approx(np.sqrt((err**2).mean()), abs=1e-5)
    assert got["mae"] == pytest.approx(np.abs(err).mean(), abs=1e-5)
    with pytest.raises(ValueError, match="pair up"):
        model.predict(torch.tensor([0, 1]), torch.tensor([0]))
    no_ratings = Split(planted.train.assign(rating=np.nan), planted.test, planted.users, planted.items, planted.items_frame)
    with pytest.raises(ValueError, match="no training ratings"):
        GlobalMean().fit(no_ratings)
    with pytest.raises(RuntimeError, match="not fitted"):
        GlobalMean().score()
