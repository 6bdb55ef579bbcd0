"""Bootstrap intervals and paired tests against a loop and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recnb import uncertainty as U


def _loop_means(x, n_resamples, seed):
    rng = np.random.default_rng(seed)
    return np.array([x[rng.integers(0, len(x), len(x))].mean() for _ in range(n_resamples)])


def test_bootstrap_ci_equals_a_loop_with_the_same_draws():
    x = np.random.default_rng(1).random(57)
    got = U.bootstrap_ci(x, n_resamples=700, confidence=0.9, seed=4)  # > one chunk of 256
    means = _loop_means(x, 700, 4)
    assert got.mean == pytest.approx(x.mean())
    assert got.low == pytest.approx(np.quantile(means, 0.05))
    assert got.high == pytest.approx(np.quantile(means, 0.95))
    assert U.bootstrap_ci(x, n_resamples=700, confidence=0.9, seed=4) == got  # seeded


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(0).exponential(size=200)
    ours = U.bootstrap_ci(x, n_resamples=20_000, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", random_state=1).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.01)
    assert ours.high == pytest.approx(ref.high, abs=0.01)
    assert ours.low < x.mean() < ours.high


def test_nan_users_are_left_out_and_bad_input_is_named():
    x = np.array([1.0, np.nan, 0.0, 1.0])
    assert U.bootstrap_ci(x, n_resamples=50).mean == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="confidence"):
        U.bootstrap_ci(x, confidence=95)
    with pytest.raises(ValueError, match="no defined"):
        U.bootstrap_ci([np.nan])
    with pytest.raises(ValueError, match="same users"):
        U.paired_bootstrap([1.0, 2.0], [1.0])


def test_bootstrap_table_resamples_columns_with_the_same_users():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"ndcg@10": rng.random(40), "recall@10": rng.random(40)})
    frame.loc[3, "recall@10"] = np.nan
    table = U.bootstrap_table(frame, n_resamples=300, seed=5)
    kept = frame.dropna().to_numpy()
    rng = np.random.default_rng(5)
    means = np.array([kept[rng.integers(0, len(kept), len(kept))].mean(axis=0) for _ in range(300)])
    assert list(table.index) == ["ndcg@10", "recall@10"]
    np.testing.assert_allclose(table["mean"], kept.mean(axis=0))
    np.testing.assert_allclose(table["low"], np.quantile(means, 0.025, axis=0))
    np.testing.assert_allclose(table["high"], np.quantile(means, 0.975, axis=0))


def test_paired_bootstrap_against_a_loop():
    rng = np.random.default_rng(3)
    base = rng.random(80)  # shared user difficulty
    a, b = base + 0.05 + 0.02 * rng.standard_normal(80), base
    a[7] = np.nan
    got = U.paired_bootstrap(a, b, n_resamples=500, seed=9)
    d = (a - b)[~np.isnan(a - b)]
    means = _loop_means(d, 500, 9)
    assert got.n == 79
    assert got.mean_diff == pytest.approx(d.mean())
    assert (got.low, got.high) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)))
    expected_p = (1 + np.sum(np.abs(means - d.mean()) >= abs(d.mean()))) / 501
    assert got.p_value == pytest.approx(expected_p)
    assert got.p_value < 0.01  # a clear, consistent difference
    # no difference at all: the p-value is large
    same = U.paired_bootstrap(base, base + 0.01 * rng.standard_normal(80), n_resamples=500, seed=9)
    assert same.p_value > 0.05
    assert same.low < 0 < same.high


def test_wilcoxon_wraps_scipy_on_the_defined_pairs():
    rng = np.random.default_rng(4)
    a, b = rng.random(30), rng.random(30)
    a[[2, 5]] = np.nan
    ref = stats.wilcoxon(np.delete(a - b, [2, 5]))
    got = U.wilcoxon(a, b)
    assert got == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 28)
    assert U.wilcoxon([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0, 2)
