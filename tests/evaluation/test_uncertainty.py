"""Bootstrap intervals and paired tests: against scipy, BCa and Benjamini–Hochberg by hand, pairing by
user index, and the coverage of the intervals on a distribution whose mean is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recnb.evaluation import uncertainty as U


def _scipy(x, n_resamples, seed, confidence=0.95, method="percentile"):
    """scipy.stats.bootstrap of the mean, drawn as the module draws (same generator, same batches)."""
    return stats.bootstrap((np.asarray(x, dtype=np.float64),), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                           method=method, batch=U._CHUNK, rng=np.random.default_rng(seed))


def test_bootstrap_ci_is_scipys_bootstrap_with_the_same_draws():
    x = np.random.default_rng(1).random(57)
    for method in ("percentile", "BCa", "basic"):
        got = U.bootstrap_ci(x, n_resamples=700, confidence=0.9, seed=4, method=method)
        ref = _scipy(x, 700, 4, confidence=0.9, method=method).confidence_interval
        assert got.mean == pytest.approx(x.mean())
        assert (got.low, got.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert U.bootstrap_ci(x, n_resamples=700, seed=4) == U.bootstrap_ci(x, n_resamples=700, seed=4)  # seeded
    assert U.bootstrap_ci(x, n_resamples=700, seed=4) != U.bootstrap_ci(x, n_resamples=700, seed=5)


def test_bca_interval_by_hand():
    """BCa (Efron 1987) from the bootstrap means: bias correction z0 from the share of resample means
    below the estimate, acceleration a from the jackknife, then shifted percentile levels."""
    x = np.random.default_rng(2).exponential(size=80)
    dist = _scipy(x, 3000, 7).bootstrap_distribution
    theta = x.mean()
    z0 = stats.norm.ppf(np.mean(dist < theta))
    jack = (x.sum() - x) / (len(x) - 1)
    dev = jack.mean() - jack
    a = (dev**3).sum() / (6 * ((dev**2).sum()) ** 1.5)
    levels = [stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in stats.norm.ppf([0.025, 0.975])]
    got = U.bootstrap_ci(x, n_resamples=3000, seed=7)  # BCa is the default
    assert (got.low, got.high) == pytest.approx(tuple(np.percentile(dist, 100 * np.array(levels))), rel=1e-3)
    # the skew of the exponential moves the interval up compared with the percentile one
    plain = U.bootstrap_ci(x, n_resamples=3000, seed=7, method="percentile")
    assert got.low > plain.low and got.high > plain.high


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_intervals_cover_the_true_mean_at_their_nominal_rate(method):
    """400 samples of n = 60 from Exponential(1), whose mean is 1: a 95 % interval must contain 1 in
    about 95 % of them. Tolerance: three binomial standard deviations of 400 trials (±0.033)."""
    rng = np.random.default_rng(2024)
    reps, n = 400, 60
    covered = 0
    for r in range(reps):
        ci = U.bootstrap_ci(rng.exponential(1.0, size=n), n_resamples=1000, seed=r, method=method)
        covered += ci.low <= 1.0 <= ci.high
    tolerance = 3 * np.sqrt(0.95 * 0.05 / reps)
    assert abs(covered / reps - 0.95) <= tolerance, (method, covered / reps)


def test_nan_users_are_left_out_and_bad_input_is_named():
    x = np.array([1.0, np.nan, 0.0, 1.0])
    assert U.bootstrap_ci(x, n_resamples=50).mean == pytest.approx(2 / 3)
    assert U.bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)  # no spread, no interval width (BCa undefined)
    assert U.bootstrap_ci([0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        U.bootstrap_ci(x, confidence=95)
    with pytest.raises(ValueError, match="method must be"):
        U.bootstrap_ci(x, method="studentized")
    with pytest.raises(ValueError, match="no defined"):
        U.bootstrap_ci([np.nan])
    with pytest.raises(ValueError, match="same users"):
        U.paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match="pick a column"):
        U.bootstrap_ci(pd.DataFrame({"a": [1.0, 2.0]}))


def test_bootstrap_table_resamples_columns_with_the_same_users():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"ndcg@10": rng.random(40), "recall@10": rng.random(40)})
    frame.loc[3, "recall@10"] = np.nan
    table = U.bootstrap_table(frame, n_resamples=300, seed=5, method="percentile")
    kept = frame.dropna()
    assert list(table.index) == ["ndcg@10", "recall@10"]
    np.testing.assert_allclose(table["mean"], kept.mean())
    ref = stats.bootstrap((kept["ndcg@10"].to_numpy(), kept["recall@10"].to_numpy()),
                          lambda a, b, axis: np.stack([a.mean(axis=axis), b.mean(axis=axis)]), paired=True,
                          n_resamples=300, method="percentile", batch=U._CHUNK, rng=np.random.default_rng(5))
    np.testing.assert_allclose(table["low"], ref.confidence_interval.low)
    np.testing.assert_allclose(table["high"], ref.confidence_interval.high)
    # the same users in both columns: each column's interval is the one-column bootstrap with the same draws
    alone = U.bootstrap_ci(kept["ndcg@10"].to_numpy(), n_resamples=300, seed=5, method="percentile")
    assert (table.loc["ndcg@10", "low"], table.loc["ndcg@10", "high"]) == pytest.approx((alone.low, alone.high))
    shuffled = U.bootstrap_table(frame.sample(frac=1.0, random_state=0), n_resamples=300, seed=5, method="percentile")
    pd.testing.assert_frame_equal(shuffled, table)  # rows are taken in index order


def test_paired_bootstrap_by_hand():
    rng = np.random.default_rng(3)
    base = rng.random(80)  # shared user difficulty
    a, b = base + 0.05 + 0.02 * rng.standard_normal(80), base
    a[7] = np.nan
    got = U.paired_bootstrap(a, b, n_resamples=500, seed=9)
    d = (a - b)[~np.isnan(a - b)]
    res = _scipy(d, 500, 9, method="BCa")
    assert got.n == 79
    assert got.mean_diff == pytest.approx(d.mean())
    assert (got.low, got.high) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high))
    means = res.bootstrap_distribution
    expected_p = (1 + np.sum(np.abs(means - d.mean()) >= abs(d.mean()))) / 501
    assert got.p_value == pytest.approx(expected_p)
    assert got.p_value < 0.01  # a clear, consistent difference
    # no difference at all: the p-value is large
    same = U.paired_bootstrap(base, base + 0.01 * rng.standard_normal(80), n_resamples=500, seed=9)
    assert same.p_value > 0.05
    assert same.low < 0 < same.high


def _users(values, users):
    return pd.Series(values, index=pd.Index(users, name="user_idx"))


def test_paired_comparisons_pair_users_by_index_not_position():
    rng = np.random.default_rng(8)
    users = np.arange(100, 160)
    a = _users(rng.random(60), users)
    b = _users(a.to_numpy() - 0.03 + 0.05 * rng.standard_normal(60), users)
    order = rng.permutation(60)
    a_shuffled, b_shuffled = a.iloc[order], b.iloc[order[::-1]]  # two different row orders
    assert U.paired_bootstrap(a_shuffled, b_shuffled, n_resamples=400, seed=1) == U.paired_bootstrap(a, b, n_resamples=400, seed=1)
    assert U.wilcoxon(a_shuffled, b_shuffled) == U.wilcoxon(a, b)
    assert U.wilcoxon(a, b) == (pytest.approx(stats.wilcoxon(a.to_numpy() - b.to_numpy()).statistic),
                                pytest.approx(stats.wilcoxon(a.to_numpy() - b.to_numpy()).pvalue), 60)
    # by position the shuffled rows would pair strangers: the same mean difference, but the shared
    # user difficulty no longer cancels, and the interval widens to include 0
    right = U.paired_bootstrap(a, b, n_resamples=400, seed=1)
    wrong = U.paired_bootstrap(a_shuffled.to_numpy(), b_shuffled.to_numpy(), n_resamples=400, seed=1)
    assert right.low > 0 and wrong.low < 0 < wrong.high
    with pytest.raises(ValueError, match=r"same users \(paired by index\): 1 user\(s\) only in a \[100\], 1 only in b \[999\]"):
        U.paired_bootstrap(a, b.rename(index={100: 999}))
    with pytest.raises(ValueError, match="more than once"):
        U.wilcoxon(a, pd.concat([b.iloc[:59], b.iloc[:1]]))
    with pytest.raises(TypeError, match="both be pandas Series"):
        U.paired_bootstrap(a, b.to_numpy())


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
    users = pd.Index(np.arange(60) * 3, name="user_idx")
    per_user = {
        "low": pd.DataFrame({"ndcg@10": base - 0.5 + noise(0.02)}, index=users),  # far below the rest
        "mid": pd.DataFrame({"ndcg@10": base + noise(0.05)}, index=users),
        "mid+": pd.DataFrame({"ndcg@10": base + 0.04 + noise(0.02)}, index=users),  # consistently above mid
        "twin": pd.DataFrame({"ndcg@10": base + noise(0.05)}, index=users),  # mid again
    }
    return per_user


def _bh_by_hand(p):
    """Benjamini–Hochberg: sort, p_(i) m / i, running minimum from the largest down, capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    m, order = len(p), np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def test_compare_overlapping_equals_the_loop_with_scipy_and_bh_by_hand():
    per_user = _four_models()
    intervals = pd.DataFrame({n: U.bootstrap_ci(f["ndcg@10"], 300, seed=2)._asdict() for n, f in per_user.items()}).T
    got = U.compare_overlapping(per_user, intervals, "ndcg@10", n_resamples=300, seed=2)
    assert list(got.columns) == U.COMPARISON_COLUMNS
    names, expected = list(per_user), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ia, ib = intervals.loc[a], intervals.loc[b]
            if ia["low"] <= ib["high"] and ib["low"] <= ia["high"]:
                hi, lo = (a, b) if ia["mean"] >= ib["mean"] else (b, a)
                d = per_user[hi]["ndcg@10"] - per_user[lo]["ndcg@10"]
                pb = U.paired_bootstrap(d.to_numpy(), np.zeros(len(d)), n_resamples=300, seed=2)
                expected.append([hi, lo, pb.mean_diff, pb.low, pb.high, pb.p_value, stats.wilcoxon(d).pvalue])
    expected = pd.DataFrame(expected, columns=U.COMPARISON_COLUMNS[:7])
    expected["p bootstrap BH"] = _bh_by_hand(expected["p bootstrap"])
    expected["p Wilcoxon BH"] = _bh_by_hand(expected["p Wilcoxon"])
    expected["separated"] = (expected["p bootstrap BH"] < 0.05) & (expected["p Wilcoxon BH"] < 0.05)
    pd.testing.assert_frame_equal(got, expected)
    np.testing.assert_allclose(got["p Wilcoxon BH"], stats.false_discovery_control(got["p Wilcoxon"]))
    assert (got["p Wilcoxon BH"] >= got["p Wilcoxon"]).all()
    # what the data were built to show: "low" overlaps nobody; mid+ is told apart from its neighbours
    assert "low" not in set(got["better"]) | set(got["worse"])
    assert {("mid+", "mid"), ("mid+", "twin")} <= set(zip(got["better"], got["worse"]))
    assert got.set_index(["better", "worse"]).loc[("mid+", "mid"), "separated"]
    mid_twin = got[got["better"].isin(["mid", "twin"]) & got["worse"].isin(["mid", "twin"])]
    assert len(mid_twin) == 1 and not mid_twin["separated"].item()


def test_compare_overlapping_pairs_models_by_user_index():
    per_user = _four_models()
    intervals = pd.DataFrame({n: U.bootstrap_ci(f["ndcg@10"], 300, seed=2)._asdict() for n, f in per_user.items()}).T
    got = U.compare_overlapping(per_user, intervals, "ndcg@10", n_resamples=300, seed=2)
    shuffled = {n: f.sample(frac=1.0, random_state=i) for i, (n, f) in enumerate(per_user.items())}
    pd.testing.assert_frame_equal(U.compare_overlapping(shuffled, intervals, "ndcg@10", n_resamples=300, seed=2), got)
    fewer = {**per_user, "twin": per_user["twin"].iloc[1:]}
    with pytest.raises(ValueError, match=r"models '(mid|twin)' and '(mid|twin)': a and b must hold the same users"):
        U.compare_overlapping(fewer, intervals, "ndcg@10", n_resamples=50)


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


def test_describe_comparison_says_no_more_than_the_numbers():
    base = {"difference": 0.05, "low": 0.01, "high": 0.09, "wins": 5.0, "seeds": 5.0}
    assert U.describe_comparison(base, "coverage").startswith("coverage higher at every seed")
    assert "not at every seed" in U.describe_comparison({**base, "wins": 4.0}, "coverage")
    assert U.describe_comparison({**base, "low": -0.01}, "coverage").startswith("no difference in coverage")
    lower = {"difference": -0.05, "low": -0.09, "high": -0.01, "wins": 0.0, "seeds": 5.0}
    assert U.describe_comparison(lower, "share").startswith("share lower at every seed")


@pytest.mark.parametrize("n", [2, 3, 5, 20])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_t_interval_is_scipys_t_interval(n, confidence):
    x = np.random.default_rng(n).normal(0.3, 0.05, size=n)
    got = U.t_interval(x, confidence)
    low, high = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=stats.sem(x))
    np.testing.assert_allclose([got.mean, got.low, got.high], [x.mean(), low, high], rtol=0, atol=1e-12)


def test_t_interval_by_hand_and_bad_input():
    x = pd.Series([0.01, 0.02, 0.0, 0.03, -0.01], index=[4, 0, 3, 1, 2])  # mean 0.01, s = 0.0158114
    got = U.t_interval(x)
    half = 2.7764451051977987 * np.sqrt(0.001 / 4) / np.sqrt(5)  # t_{4, 0.975}; Σ (x - x̄)² = 0.001
    np.testing.assert_allclose([got.mean, got.low, got.high], [0.01, 0.01 - half, 0.01 + half], rtol=0, atol=1e-12)
    assert U.t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="at least 2 runs.*got 1"):
        U.t_interval([0.4])
    with pytest.raises(ValueError, match="finite, got nan at position 1"):
        U.t_interval([0.4, np.nan, 0.5])
    with pytest.raises(ValueError, match="finite, got inf at position 2"):
        U.t_interval([0.4, 0.5, np.inf])
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        U.t_interval([0.4, 0.5], confidence=95)
    with pytest.raises(ValueError, match="1-D"):
        U.t_interval(np.zeros((2, 2)))
