"""Implicit ALS: half-steps against a dense solve of the normal equations, the objective by hand, implicit's ALS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recnb.data.schema import IdIndex, Split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate
from recnb.models import als
from recnb.models.als import (
    ALSRecommender,
    als_objective,
    als_solve_cg,
    als_solve_cholesky,
    row_batches,
)

ALPHA, L2 = 2.5, 0.7


def _counts(n_rows: int = 30, n_cols: int = 20, seed: int = 0) -> np.ndarray:
    """A small random count matrix ``r_ui`` in {0, 1, 2, 3}, about 30% filled, row 4 empty."""
    rng = np.random.default_rng(seed)
    r = (rng.random((n_rows, n_cols)) < 0.3) * rng.integers(1, 4, (n_rows, n_cols))
    r[4] = 0
    return r.astype(float)


def _binary_split(r: np.ndarray) -> Split:
    u, i = np.nonzero(r)
    train = pd.DataFrame({"user_idx": u, "item_idx": i, "user_id": u, "item_id": i, "rating": np.nan})
    items = pd.DataFrame({"item_id": np.arange(r.shape[1])})
    return Split(train, train.iloc[:0], IdIndex.from_ids(np.arange(r.shape[0])),
                 IdIndex.from_ids(np.arange(r.shape[1])), items)


def _dense_solve(y: np.ndarray, r: np.ndarray, alpha: float, l2: float) -> np.ndarray:
    """Row by row: ``x_u = solve(YᵀC_uY + λI, YᵀC_u p_u)``, ``C_u = diag(1 + α r_u)``, ``p_u = 1[r_u > 0]``."""
    d = y.shape[1]
    out = np.empty((r.shape[0], d))
    for u in range(r.shape[0]):
        c = np.diag(1.0 + alpha * r[u])
        out[u] = np.linalg.solve(y.T @ c @ y + l2 * np.eye(d), y.T @ c @ (r[u] > 0))
    return out


def _dense_objective(r: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float, l2: float) -> float:
    """``Σ_ui c_ui (p_ui − x_uᵀy_i)² + λ(‖X‖² + ‖Y‖²)`` over every cell of the dense matrix."""
    c, p = 1.0 + alpha * r, (r > 0).astype(float)
    return float((c * (p - x @ y.T) ** 2).sum() + l2 * ((x**2).sum() + (y**2).sum()))


def test_row_batches_cover_every_non_empty_row_once_with_its_entries():
    r = _counts(60, 40)
    csr = sp.csr_matrix(r)
    batches = row_batches(csr, ALPHA, d=4, dtype=torch.float64, batch_floats=400, spread=1.25)
    assert len(batches) > 3  # several batches: the padding and the cuts are exercised
    rows = torch.cat([b.rows for b in batches]).numpy()
    assert sorted(rows) == [u for u in range(60) if r[u].any()]
    for b in batches:
        lengths = (r[b.rows.numpy()] > 0).sum(1)
        assert b.cols.shape[1] == lengths.max() <= 1.25 * lengths.min()
        assert len(b.rows) * max(b.cols.shape[1], 4) * 4 <= 400 or len(b.rows) == 1
        for row, cols, weight, target in zip(b.rows.numpy(), b.cols.numpy(), b.weight.numpy(), b.target.numpy()):
            n = (r[row] > 0).sum()
            np.testing.assert_array_equal(cols[:n], np.flatnonzero(r[row]))
            np.testing.assert_allclose(weight, np.r_[ALPHA * r[row, cols[:n]], np.zeros(len(cols) - n)])
            np.testing.assert_allclose(target, np.r_[1 + ALPHA * r[row, cols[:n]], np.zeros(len(cols) - n)])


@pytest.mark.parametrize("d", [1, 5])
def test_cholesky_half_steps_equal_a_dense_solve_of_the_normal_equations(d):
    r = _counts()
    rng = np.random.default_rng(1)
    y = rng.normal(size=(r.shape[1], d))
    assert len(row_batches(sp.csr_matrix(r), ALPHA, d)) > 1  # rows of different lengths: several batches
    x = als_solve_cholesky(torch.from_numpy(y), sp.csr_matrix(r), ALPHA, L2)
    expected = _dense_solve(y, r, ALPHA, L2)
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5, rtol=0)
    assert np.all(x.numpy()[4] == 0)  # no entry: b_u = 0, so x_u = 0
    # the item half-step is the same solver on the transposed matrix
    y_new = als_solve_cholesky(x, sp.csr_matrix(r.T), ALPHA, L2)
    np.testing.assert_allclose(y_new.numpy(), _dense_solve(expected, r.T, ALPHA, L2), atol=1e-5, rtol=0)


def test_cholesky_in_float32_is_close_to_the_float64_solve():
    r = _counts()
    y = np.random.default_rng(2).normal(size=(r.shape[1], 8))
    x = als_solve_cholesky(torch.from_numpy(y).float(), sp.csr_matrix(r, dtype=np.float32), ALPHA, L2)
    assert x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), _dense_solve(y, r, ALPHA, L2), atol=1e-4, rtol=1e-4)


def test_cg_converges_to_the_exact_solution_and_leaves_its_start_alone():
    r = _counts()
    rng = np.random.default_rng(3)
    y = torch.from_numpy(rng.normal(size=(r.shape[1], 6)))
    start = torch.from_numpy(rng.normal(size=(r.shape[0], 6)))
    before = start.clone()
    exact = _dense_solve(y.numpy(), r, ALPHA, L2)
    # d steps reach the solution in exact arithmetic; a few more absorb rounding
    x = als_solve_cg(y, sp.csr_matrix(r), start, ALPHA, L2, steps=12)
    np.testing.assert_allclose(x.numpy(), exact, atol=1e-8, rtol=0)
    assert torch.equal(start, before)
    # one step: not there yet, but closer than the start in every row (CG lowers the error's A-norm)
    one = als_solve_cg(y, sp.csr_matrix(r), start, ALPHA, L2, steps=1).numpy()
    busy = r.any(axis=1)
    assert np.abs(one[busy] - exact[busy]).max() > 1e-3
    yn = y.numpy()
    for u in np.flatnonzero(busy):
        a = yn.T @ np.diag(1 + ALPHA * r[u]) @ yn + L2 * np.eye(6)
        e0, e1 = start.numpy()[u] - exact[u], one[u] - exact[u]
        assert e1 @ a @ e1 < e0 @ a @ e0
    # a start at the solution stays there
    np.testing.assert_allclose(als_solve_cg(y, sp.csr_matrix(r), torch.from_numpy(exact), ALPHA, L2).numpy(),
                               exact, atol=1e-10, rtol=0)


def test_objective_without_a_dense_matrix_equals_the_dense_sum():
    r = _counts()
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(r.shape[0], 3)), rng.normal(size=(r.shape[1], 3))
    got = als_objective(sp.csr_matrix(r), torch.from_numpy(x), torch.from_numpy(y), ALPHA, L2)
    assert got == pytest.approx(_dense_objective(r, x, y, ALPHA, L2), rel=1e-12)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_no_half_step_increases_the_objective(solver):
    r = _counts()
    csr, csr_t = sp.csr_matrix(r), sp.csr_matrix(r.T)
    rng = np.random.default_rng(5)
    x, y = torch.from_numpy(rng.random((r.shape[0], 4))), torch.from_numpy(rng.random((r.shape[1], 4)))
    values = [_dense_objective(r, x.numpy(), y.numpy(), ALPHA, L2)]
    for _ in range(4):
        if solver == "cholesky":
            x = als_solve_cholesky(y, csr, ALPHA, L2)
            values.append(_dense_objective(r, x.numpy(), y.numpy(), ALPHA, L2))
            y = als_solve_cholesky(x, csr_t, ALPHA, L2)
        else:
            x = als_solve_cg(y, csr, x, ALPHA, L2, steps=2)
            values.append(_dense_objective(r, x.numpy(), y.numpy(), ALPHA, L2))
            y = als_solve_cg(x, csr_t, y, ALPHA, L2, steps=2)
        values.append(_dense_objective(r, x.numpy(), y.numpy(), ALPHA, L2))
    assert np.all(np.diff(values) <= 1e-9 * values[0]), values
    assert values[-1] < 0.5 * values[0]


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_fit_is_alternating_least_squares_from_the_seeded_start(solver):
    r = (_counts(25, 15, seed=6) > 0).astype(float)
    split = _binary_split(r)
    alpha, l2, d = 4.0, 0.5, 3
    model = ALSRecommender(embedding_dim=d, l2=l2, alpha=alpha, iterations=1, solver=solver, cg_steps=50, seed=7)
    model.fit(split)
    # the documented start: uniform [0, 0.01) from a torch.Generator seeded by seed, users then items
    generator = torch.Generator().manual_seed(7)
    torch.rand(25, d, generator=generator)
    y0 = (torch.rand(15, d, generator=generator) * 0.01).double().numpy()
    x1 = _dense_solve(y0, r, alpha, l2)
    y1 = _dense_solve(x1, r.T, alpha, l2)
    assert model.user_factors_.dtype == model.item_factors_.dtype == torch.float32
    np.testing.assert_allclose(model.user_factors_.numpy(), x1, atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(model.item_factors_.numpy(), y1, atol=1e-4, rtol=1e-3)
    # the objective falls over iterations (same seed: iterations=k continues iterations=k-1)
    values = []
    for iterations in range(1, 6):
        m = ALSRecommender(embedding_dim=d, l2=l2, alpha=alpha, iterations=iterations, solver=solver, seed=7).fit(split)
        values.append(als_objective(split.train_csr(), m.user_factors_, m.item_factors_, alpha, l2))
    assert np.all(np.diff(values) < 0), values


def test_same_seed_same_factors_other_seed_other_factors():
    split = _binary_split(_counts(40, 25, seed=8))
    a, b, c = (ALSRecommender(embedding_dim=4, iterations=3, seed=seed).fit(split) for seed in (3, 3, 4))
    assert torch.equal(a.user_factors_, b.user_factors_) and torch.equal(a.item_factors_, b.item_factors_)
    assert not torch.allclose(a.item_factors_, c.item_factors_, atol=1e-4)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_worker_threads_give_the_same_factors(solver):
    split = _binary_split(_counts(300, 120, seed=11))
    fits = [ALSRecommender(embedding_dim=8, iterations=2, solver=solver, threads=t).fit(split) for t in (1, 2)]
    assert len(row_batches(split.train_csr(), 3.0, 8)) > 2  # several batches to share out
    assert torch.equal(fits[0].user_factors_, fits[1].user_factors_)
    assert torch.equal(fits[0].item_factors_, fits[1].item_factors_)


def test_fit_restores_torch_threads_and_global_generators(monkeypatch):
    split = _binary_split(_counts(40, 25, seed=9))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a count other than the model's, so that a leak would show
    try:
        state = torch.random.get_rng_state()
        ALSRecommender(embedding_dim=4, iterations=2, threads=1).fit(split)
        assert torch.get_num_threads() == 2
        assert torch.equal(torch.random.get_rng_state(), state)

        def fail(*args: object) -> None:
            assert torch.get_num_threads() == 1  # held while fitting
            raise RuntimeError("solver failed")

        monkeypatch.setattr(als, "_solve_cg", fail)
        with pytest.raises(RuntimeError, match="solver failed"):
            ALSRecommender(embedding_dim=4, iterations=2, threads=1).fit(split)
        assert torch.get_num_threads() == 2  # restored on the error path too
    finally:
        torch.set_num_threads(before)


def test_score_is_x_y_transposed_owned_by_the_caller_and_recommend_skips_seen():
    r = (_counts(40, 25, seed=10) > 0).astype(float)
    model = ALSRecommender(embedding_dim=4, iterations=3).fit(_binary_split(r))
    users = [5, 0, 39]
    scores = model.score(users)
    assert scores.dtype == torch.float32 and scores.shape == (3, 25)
    np.testing.assert_allclose(scores.numpy(), model.user_factors_.numpy()[users] @ model.item_factors_.numpy().T,
                               rtol=1e-5, atol=1e-6)
    factors = model.item_factors_.clone(), model.user_factors_.clone()
    scores.fill_(-1.0)  # the caller's: writing into it changes nothing the model keeps
    assert torch.equal(model.item_factors_, factors[0]) and torch.equal(model.user_factors_, factors[1])
    ranking = model.recommend(users, k=5)
    for row, u in zip(ranking.indices.numpy(), users):
        assert not set(row[row >= 0]) & set(np.flatnonzero(r[u]))
    with pytest.raises(RuntimeError, match="not fitted"):
        ALSRecommender().score([0])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"l2": -1}, "l2 must be > 0, got -1"),
    ({"l2": 0}, "l2 must be > 0, got 0"),
    ({"alpha": -0.5}, "alpha must be >= 0, got -0.5"),
    ({"embedding_dim": 0}, "embedding_dim must be a positive integer, got 0"),
    ({"embedding_dim": 2.5}, "embedding_dim must be a positive integer, got 2.5"),
    ({"iterations": 0}, "iterations must be a positive integer, got 0"),
    ({"cg_steps": -3}, "cg_steps must be a positive integer, got -3"),
    ({"solver": "lu"}, r"solver must be one of \('cholesky', 'cg'\), got 'lu'"),
    ({"threads": 0}, "threads must be a positive integer, got 0"),
])
def test_bad_hyper_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ALSRecommender(**kwargs)


def test_a_seed_that_is_no_integer_is_a_type_error():
    with pytest.raises(TypeError, match="seed must be an integer, got 'a'"):
        ALSRecommender(seed="a")


def test_solvers_reject_mismatched_shapes_and_negative_values():
    r = sp.csr_matrix(_counts())
    with pytest.raises(ValueError, match=r"fixed factors must be \(n_cols, d\) = \(20, d\)"):
        als_solve_cholesky(torch.zeros(19, 3), r, ALPHA, L2)
    with pytest.raises(ValueError, match=r"start must be \(n_rows, d\) = \(30, 3\), got \(30, 4\)"):
        als_solve_cg(torch.zeros(20, 3), r, torch.zeros(30, 4), ALPHA, L2)
    with pytest.raises(ValueError, match="r_ui >= 0"):
        als_solve_cholesky(torch.zeros(20, 3), -r, ALPHA, L2)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_quality_matches_implicits_als_on_the_shop(solver):
    pytest.importorskip("implicit", reason='implicit not installed: pip install -e ".[bench]"')
    from recnb.studies.bench import ImplicitALS

    split = random_holdout(make_shop(seed=0), seed=0)
    params = {"iterations": 15, "seed": 0, "threads": 1}
    ours = ALSRecommender(embedding_dim=32, l2=30.0, alpha=3.0, solver=solver, **params).fit(split)
    # implicit's confidence is alpha_implicit · r on observed cells: 1 + α r when alpha_implicit = 1 + α
    peer = ImplicitALS(factors=32, regularization=30.0, alpha=4.0, **params).fit(split)
    ndcg = evaluate(ours, split, k=10)["ndcg@10"]
    peer_ndcg = evaluate(peer, split, k=10)["ndcg@10"]
    assert peer_ndcg > 0.15  # a real model, far above popularity on the shop
    assert abs(ndcg - peer_ndcg) <= 0.01, (ndcg, peer_ndcg)
