"""Bootstrap intervals and paired tests against a loop and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recnb.evaluation import uncertainty as U


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


def test_overlap_of_closed_intervals():
    assert U.overlap(U.Interval(0.5, 0.4, 0.6), U.Interval(0.7, 0.6, 0.8))  # touching ends
    assert not U.overlap(U.Interval(0.5, 0.4, 0.6), U.Interval(0.7, 0.61, 0.8))
    assert U.overlap(U.Interval(0.5, 0.0, 1.0), U.Interval(0.5, 0.4, 0.6))  # one inside the other


def _four_models():
    rng = np.random.default_rng(6)
    base = rng.random(60)  # shared user difficulty
    noise = lambda s: s * rng.standard_normal(60)  # noqa: E731
    per_user = {
        "low": pd.DataFrame({"ndcg@10": base - 0.5 + noise(0.02)}),  # far below the rest
        "mid": pd.DataFrame({"ndcg@10": base + noise(0.05)}),
        "mid+": pd.DataFrame({"ndcg@10": base + 0.04 + noise(0.02)}),  # consistently above mid
        "twin": pd.DataFrame({"ndcg@10": base + noise(0.05)}),  # mid again
    }
    return per_user


def test_compare_overlapping_equals_the_loop_with_scipy():
    per_user = _four_models()
    intervals = pd.DataFrame({n: U.bootstrap_ci(f["ndcg@10"], 300, seed=2)._asdict() for n, f in per_user.items()}).T
    got = U.compare_overlapping(per_user, intervals, "ndcg@10", n_resamples=300, seed=2)
    assert list(got.columns) == U.COMPARISON_COLUMNS
    # the loop the notebook used to hold, with scipy's test and the bootstrap loop above
    names, expected = list(per_user), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ia, ib = intervals.loc[a], intervals.loc[b]
            if ia["low"] <= ib["high"] and ib["low"] <= ia["high"]:
                hi, lo = (a, b) if ia["mean"] >= ib["mean"] else (b, a)
                d = per_user[hi]["ndcg@10"].to_numpy() - per_user[lo]["ndcg@10"].to_numpy()
                means = _loop_means(d, 300, 2)
                p_boot = (1 + np.sum(np.abs(means - d.mean()) >= abs(d.mean()))) / 301
                low, high = np.quantile(means, [0.025, 0.975])
                p_wx = stats.wilcoxon(d).pvalue
                expected.append([hi, lo, d.mean(), low, high, p_boot, p_wx, bool(low > 0 and p_wx < 0.05)])
    expected = pd.DataFrame(expected, columns=U.COMPARISON_COLUMNS)
    pd.testing.assert_frame_equal(got, expected)
    # what the data were built to show: "low" overlaps nobody; mid+ is told apart from its neighbours
    assert "low" not in set(got["better"]) | set(got["worse"])
    assert {("mid+", "mid"), ("mid+", "twin")} <= set(zip(got["better"], got["worse"]))
    assert got.set_index(["better", "worse"]).loc[("mid+", "mid"), "separated"]
    mid_twin = got[got["better"].isin(["mid", "twin"]) & got["worse"].isin(["mid", "twin"])]
    assert len(mid_twin) == 1 and not mid_twin["separated"].item()


def test_compare_overlapping_without_overlap_and_with_bad_input():
    per_user = {"a": pd.DataFrame({"m": [0.1, 0.2]}), "b": pd.DataFrame({"m": [0.8, 0.9]})}
    intervals = pd.DataFrame({"mean": [0.15, 0.85], "low": [0.1, 0.8], "high": [0.2, 0.9]}, index=["a", "b"])
    empty = U.compare_overlapping(per_user, intervals, "m", n_resamples=10)
    assert empty.empty and list(empty.columns) == U.COMPARISON_COLUMNS
    with pytest.raises(ValueError, match="no row for the model"):
        U.compare_overlapping(per_user, intervals.loc[["a"]], "m")
    with pytest.raises(ValueError, match="no column 'ndcg'"):
        U.compare_overlapping(per_user, intervals, "ndcg")
    with pytest.raises(ValueError, match="mean, low, high"):
        U.compare_overlapping(per_user, intervals[["mean", "low"]], "m")


def test_order_flips_by_hand():
    full = pd.Series({"C": 0.3, "A": 0.5, "B": 0.4, "D": 0.3})
    sampled = pd.Series({"A": 0.6, "B": 0.7, "C": 0.65, "D": 0.2})  # another order: aligned by name
    # (C, A): A ahead on full, C on sampled; (A, B): A on full, B on sampled; C and D tie on full
    assert U.order_flips(full, sampled) == [("A", "C"), ("A", "B")]
    assert U.order_flips(full, full * 2) == []
    # a reversed order flips every pair but the tie, listed in full's index order
    assert U.order_flips(full, -full) == [("A", "C"), ("B", "C"), ("A", "B"), ("A", "D"), ("B", "D")]
    with pytest.raises(ValueError, match="same models"):
        U.order_flips(full, sampled.drop("D"))
    with pytest.raises(ValueError, match="NaN"):
        U.order_flips(full, sampled.where(sampled.index != "B"))
