"""How sure is a metric? Per-user bootstrap intervals and paired tests between two models.

A mean metric over test users (NDCG@10 of 943 MovieLens users, say) is an *estimate*: another
draw of users would give another value. The per-user values (:func:`recnb.evaluation.evaluate_per_user`)
are the sample; this module resamples them with ``scipy.stats.bootstrap``.

- :func:`bootstrap_ci`: draw ``n`` users with replacement from the ``n`` observed ones, ``B`` times;
  the ``B`` means of the resamples approximate the sampling distribution of the mean. The interval
  is scipy's **BCa** interval by default (bias-corrected and accelerated: the percentile interval
  with its quantiles moved to correct for the bias and skew of that distribution; per-user metrics
  are skewed, many users score 0); ``method="percentile"`` gives the plain ``α/2`` and
  ``1 − α/2`` quantiles.
- :func:`t_interval`: the Student-t interval ``x̄ ± t_{n−1} s/√n`` of a mean over a few independent
  runs (five seeds, five shops), where a bootstrap of so few values runs narrow.
- :func:`paired_bootstrap`: two models scored on the **same** users. Their per-user differences
  ``d_u = a_u − b_u`` are resampled, not the two means separately: most of the user-to-user
  variation (easy users, hard users) is shared by both models and cancels in ``d_u``, so two models
  whose separate intervals overlap can still differ clearly.
- :func:`wilcoxon`: the Wilcoxon signed-rank test of ``d_u`` (``scipy.stats.wilcoxon``), a paired
  test on ranks that assumes no distribution.
- :func:`compare_overlapping`: both paired tests for every pair of models whose separate intervals
  overlap (:func:`overlap`), the pairs a table of means and intervals leaves undecided, with the
  p-values adjusted for testing many pairs at once (Benjamini–Hochberg).
- :func:`order_flips`: the pairs of models that two evaluation protocols order differently.

**Pairing is by user.** Per-user values given as pandas Series are paired by their index (the
user index of :func:`~recnb.evaluation.evaluate_per_user`'s frames), whatever their row order; users
that only one side holds are an error. Plain arrays are paired by position. Users whose value is
``NaN`` (a metric undefined for them) are left out (pairwise for the paired tests). One ``seed``
fixes every resample (a local ``numpy.random.Generator``), and a Series' rows are taken in index
order, so shuffling its rows changes nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

#: resamples per batch: memory is ``batch * n`` values per column (and the BCa jackknife ``batch * n``)
_CHUNK = 256

#: the interval methods of ``scipy.stats.bootstrap`` this module offers
Method = Literal["BCa", "percentile", "basic"]


class Interval(NamedTuple):
    """A point estimate and its confidence interval ``[low, high]``."""

    mean: float
    low: float
    high: float


class PairedResult(NamedTuple):
    """Mean difference ``a − b``, its bootstrap interval, the two-sided p-value and the pairs used."""

    mean_diff: float
    low: float
    high: float
    p_value: float
    n: int


class WilcoxonResult(NamedTuple):
    """Signed-rank statistic, two-sided p-value and the number of pairs used."""

    statistic: float
    p_value: float
    n: int


def _values(values: Any, name: str = "values") -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        raise TypeError(f"{name} must be 1-D per-user values (a Series or an array), got a DataFrame: pick a column")
    if isinstance(values, pd.Series):
        values = _by_index(values)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D per-user values, got shape {x.shape}")
    return x


def _by_index(s: pd.Series | pd.DataFrame) -> Any:
    """Rows in index order (stable), so a shuffled frame gives the same resamples."""
    try:
        return s.sort_index(kind="stable")
    except TypeError:  # an index of mixed, unorderable labels: keep the given order
        return s


def _check(n_resamples: int, confidence: float, method: str = "BCa") -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if method not in ("BCa", "percentile", "basic"):
        raise ValueError(f"method must be 'BCa', 'percentile' or 'basic', got {method!r}")


def _mean_ci(columns: np.ndarray, n_resamples: int, confidence: float, seed: int,
             method: Method) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Means of the ``(n, m)`` columns, their ``scipy.stats.bootstrap`` interval (rows resampled
    together: ``paired=True``) and the ``(m, n_resamples)`` bootstrap means.

    A column whose values are all equal has the interval ``[value, value]`` (every resample has the
    same mean; BCa is undefined there). Where BCa still cannot be computed (scipy returns ``NaN``
    for a degenerate bootstrap distribution), the percentile interval of the same resamples is used.
    """
    means = columns.mean(axis=0)
    if len(columns) < 2:  # one user: nothing to resample
        return means, means.copy(), means.copy(), np.repeat(means[:, None], n_resamples, axis=1)
    res = stats.bootstrap(tuple(columns.T), lambda *c, axis: np.stack([x.mean(axis=axis) for x in c]),
                          n_resamples=n_resamples, paired=True, vectorized=True, confidence_level=confidence,
                          method=method, batch=_CHUNK, rng=np.random.default_rng(seed))
    low = np.asarray(res.confidence_interval.low, dtype=np.float64).reshape(-1)
    high = np.asarray(res.confidence_interval.high, dtype=np.float64).reshape(-1)
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64).reshape(len(means), -1)
    alpha = 1.0 - confidence
    for j in np.flatnonzero(~(np.isfinite(low) & np.isfinite(high))):
        low[j], high[j] = np.quantile(dist[j], [alpha / 2, 1 - alpha / 2])
    constant = np.ptp(columns, axis=0) == 0
    low[constant], high[constant] = means[constant], means[constant]
    return means, low, high, dist


def _bootstrap(columns: np.ndarray, n_resamples: int, confidence: float, seed: int, method: Method):
    with warnings.catch_warnings():  # BCa's note on degenerate data: handled in _mean_ci
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
        return _mean_ci(columns, n_resamples, confidence, seed, method)


def bootstrap_ci(values: Any, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                 method: Method = "BCa") -> Interval:
    """Mean of the per-user ``values`` and its bootstrap confidence interval (``scipy.stats.bootstrap``).

    ``values``: ``(n,)`` per-user metric values (a Series is read in index order); ``NaN`` entries
    (undefined users) are left out. ``method``: ``"BCa"`` (default: the percentile interval
    corrected for the bias and skew of the bootstrap distribution), ``"percentile"`` (the
    ``(1 − confidence)/2`` and ``(1 + confidence)/2`` quantiles of the ``n_resamples`` resample
    means) or ``"basic"``. All-equal values give ``[value, value]``.
    """
    _check(n_resamples, confidence, method)
    x = _values(values)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError("values hold no defined (non-NaN) user value")
    means, low, high, _ = _bootstrap(x[:, None], n_resamples, confidence, seed, method)
    return Interval(float(means[0]), float(low[0]), float(high[0]))


def bootstrap_table(per_user: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                    method: Method = "BCa") -> pd.DataFrame:
    """:func:`bootstrap_ci` of every column of a per-user frame: index = column, columns ``mean, low, high``.

    ``per_user``: one row per user, one column per metric (as
    :func:`recnb.evaluation.evaluate_per_user` returns it). Users with a ``NaN`` in any column are
    left out, and all columns are resampled with the same users (rows in index order).
    """
    _check(n_resamples, confidence, method)
    x = _by_index(per_user.dropna())
    if x.empty:
        raise ValueError("per_user has no row without NaN")
    means, low, high, _ = _bootstrap(x.to_numpy(dtype=np.float64), n_resamples, confidence, seed, method)
    return pd.DataFrame({"mean": means, "low": low, "high": high}, index=per_user.columns)


def t_interval(values: Any, confidence: float = 0.95) -> Interval:
    """Mean of a few independent runs (seeds, shops, splits) and its Student-t confidence interval.

    With ``n`` values ``x_1..x_n``, their mean ``x̄`` and sample standard deviation
    ``s = sqrt(Σ (x_j − x̄)² / (n − 1))``::

        x̄ ± t_{n−1, (1 + confidence)/2} · s / √n

    ``t_{n−1, q}`` being the ``q``-quantile of Student's t with ``n − 1`` degrees of freedom (2.776
    for five values at 95 %, against the normal's 1.960): the interval for a mean whose spread is
    itself estimated from the ``n`` values, exact when they are independent draws from a normal
    distribution. With five seeds a percentile bootstrap of the five values runs narrow (it only
    reshuffles what was seen); this interval pays for the unknown spread. For a paired comparison
    pass the per-run differences ``a_j − b_j``. ``values``: 1-D, at least 2, all finite (a Series
    is read as its values). Equal values give ``[x̄, x̄]``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    x = _values(values)
    if x.size < 2:
        raise ValueError(f"values must hold at least 2 runs for a t interval (the spread is estimated from "
                         f"them), got {x.size}")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(f"values must all be finite, got {x[bad[0]]} at position {bad[0]}")
    mean = float(x.mean())
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean, mean - half, mean + half)


def _paired(a: Any, b: Any) -> np.ndarray:
    """The per-user differences ``a_u − b_u`` defined on both sides.

    Two Series are paired by index (every user on both sides, once each; rows in index order);
    two arrays by position (the same length). A Series with an array is refused: the pairing would
    silently depend on the Series' row order.
    """
    if isinstance(a, pd.Series) != isinstance(b, pd.Series):
        raise TypeError(f"a and b must both be pandas Series (paired by their index, the user index) or both "
                        f"arrays (paired by position); got {type(a).__name__} and {type(b).__name__}")
    if isinstance(a, pd.Series):
        for name, s in (("a", a), ("b", b)):
            if s.index.has_duplicates:
                dup = s.index[s.index.duplicated()].unique()
                raise ValueError(f"{name} holds user(s) {list(dup[:5])} more than once; per-user values need "
                                 f"one row per user")
        only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
        if len(only_a) or len(only_b):
            raise ValueError(f"a and b must hold the same users (paired by index): {len(only_a)} user(s) only in a "
                             f"{list(only_a[:5])}, {len(only_b)} only in b {list(only_b[:5])}")
        a = _by_index(a)
        b = b.reindex(a.index)
    x, y = _values(np.asarray(a), "a"), _values(np.asarray(b), "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must hold the same users in the same order; got {x.size} and {y.size} values")
    d = x - y
    d = d[~np.isnan(d)]
    if d.size == 0:
        raise ValueError("a and b share no user with both values defined")
    return d


def paired_bootstrap(a: Any, b: Any, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                     method: Method = "BCa") -> PairedResult:
    """Paired bootstrap of the mean difference ``mean(a_u − b_u)`` over users defined in both.

    ``a``, ``b``: per-user values of two models: two Series (paired by index, the user index) or two
    arrays (paired by position). The interval is :func:`bootstrap_ci`'s (``method``) of the
    differences ``d_u``. The p-value tests ``H0: E[d] = 0`` by shifting the bootstrap distribution of
    the resampled mean differences ``d̄*`` to the null (``d̄* − d̄``)::

        p = (1 + #{b : |d̄*_b − d̄| >= |d̄|}) / (1 + B)

    (the ``+1`` keeps it above 0 with finitely many resamples).
    """
    _check(n_resamples, confidence, method)
    d = _paired(a, b)
    means, low, high, dist = _bootstrap(d[:, None], n_resamples, confidence, seed, method)
    dbar = float(means[0])
    extreme = np.count_nonzero(np.abs(dist[0] - dbar) >= abs(dbar))
    return PairedResult(dbar, float(low[0]), float(high[0]), float((1 + extreme) / (1 + n_resamples)), int(d.size))


def wilcoxon(a: Any, b: Any, **kwargs: Any) -> WilcoxonResult:
    """Wilcoxon signed-rank test of the per-user differences ``a_u − b_u`` (two-sided).

    ``a``, ``b`` are paired as in :func:`paired_bootstrap` (Series by index, arrays by position);
    pairs with a ``NaN`` on either side are dropped; ``kwargs`` go to ``scipy.stats.wilcoxon`` (its
    default ``zero_method="wilcox"`` drops zero differences). When every difference is 0 the two
    models are indistinguishable on these users: ``statistic = 0``, ``p_value = 1``.
    """
    d = _paired(a, b)
    if not np.any(d != 0):
        return WilcoxonResult(0.0, 1.0, int(d.size))
    res = stats.wilcoxon(d, **kwargs)
    return WilcoxonResult(float(res.statistic), float(res.pvalue), int(d.size))


def overlap(a: Any, b: Any) -> bool:
    """Whether the intervals ``a`` and ``b`` (anything with ``low`` and ``high``) share a point.

    ``[a.low, a.high] ∩ [b.low, b.high] ≠ ∅  ⇔  a.low <= b.high and b.low <= a.high`` (closed
    intervals: touching ends overlap).
    """
    return bool(a.low <= b.high and b.low <= a.high)


#: columns of :func:`compare_overlapping`'s frame
COMPARISON_COLUMNS = ["better", "worse", "mean diff", "diff low", "diff high", "p bootstrap", "p Wilcoxon",
                      "p bootstrap BH", "p Wilcoxon BH", "separated"]


def compare_overlapping(
    per_user: Mapping[str, pd.DataFrame],
    intervals: pd.DataFrame,
    column: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: Method = "BCa",
) -> pd.DataFrame:
    """Paired tests for every pair of models whose intervals overlap, with a false-discovery correction.

    ``per_user``: model name -> per-user frame (:func:`recnb.evaluation.evaluate_per_user`), the same
    users for every model (paired by the frames' index, the user index); ``column`` is the metric
    compared (``"ndcg@10"``). ``intervals``: one row per model name with columns ``mean, low, high``
    (e.g. the :func:`bootstrap_ci` of ``per_user[name][column]``). For each pair ``a, b`` taken in
    the order of ``per_user`` (``a`` first) with :func:`overlap`, the model with the higher ``mean``
    is ``better`` (``a`` on a tie), and the differences ``better_u − worse_u`` go through
    :func:`paired_bootstrap` (``n_resamples``, ``confidence``, ``seed``, ``method``) and
    :func:`wilcoxon`.

    Testing many pairs at once, some small p-values come by chance: ``p bootstrap BH`` and
    ``p Wilcoxon BH`` are the two p-value columns adjusted by Benjamini–Hochberg over the pairs
    tested (``scipy.stats.false_discovery_control``), which keeps the expected share of false
    "differences" among those declared at most ``1 − confidence``. ``separated`` is true when
    *both adjusted* p-values are below ``1 − confidence``: both tests tell the two models apart
    after the correction. The interval columns are per pair, not adjusted.

    Returns a frame with one row per overlapping pair and the columns :data:`COMPARISON_COLUMNS`
    (``mean diff, diff low, diff high`` from the bootstrap); empty, with those columns, when no two
    intervals overlap.
    """
    _check(n_resamples, confidence, method)
    missing = [name for name in per_user if name not in intervals.index]
    if missing:
        raise ValueError(f"intervals has no row for the model(s) {missing}; its index is {list(intervals.index)}")
    absent = [c for c in ("mean", "low", "high") if c not in intervals.columns]
    if absent:
        raise ValueError(f"intervals must have the columns mean, low, high; missing {absent}")
    for name, frame in per_user.items():
        if column not in frame.columns:
            raise ValueError(f"per_user[{name!r}] has no column {column!r}; its columns are {list(frame.columns)}")
    names = list(per_user)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ia, ib = intervals.loc[a], intervals.loc[b]
            if not overlap(ia, ib):
                continue
            hi, lo = (a, b) if ia["mean"] >= ib["mean"] else (b, a)
            x, y = per_user[hi][column], per_user[lo][column]
            try:
                pb = paired_bootstrap(x, y, n_resamples=n_resamples, confidence=confidence, seed=seed, method=method)
            except ValueError as err:
                raise ValueError(f"models {hi!r} and {lo!r}: {err}") from None
            wx = wilcoxon(x, y)
            rows.append([hi, lo, pb.mean_diff, pb.low, pb.high, pb.p_value, wx.p_value])
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:7])
    alpha = 1.0 - confidence
    if rows:
        frame["p bootstrap BH"] = stats.false_discovery_control(frame["p bootstrap"].to_numpy(), method="bh")
        frame["p Wilcoxon BH"] = stats.false_discovery_control(frame["p Wilcoxon"].to_numpy(), method="bh")
    else:
        frame["p bootstrap BH"] = frame["p Wilcoxon BH"] = pd.Series(dtype=np.float64)
    frame["separated"] = (frame["p bootstrap BH"] < alpha) & (frame["p Wilcoxon BH"] < alpha)
    return frame[COMPARISON_COLUMNS]


def order_flips(full: pd.Series, sampled: pd.Series) -> list[tuple[str, str]]:
    """The pairs of models that two protocols order differently, as ``(winner, loser)`` on ``full``.

    ``full``, ``sampled``: one value per model (index = model names, the same set; ``sampled`` is
    aligned to ``full``'s order), e.g. NDCG@10 under full ranking and under sampled negatives.
    A pair ``a, b`` flips when ``(full_a − full_b)(sampled_a − sampled_b) < 0``: both protocols
    separate the two and disagree on which is better. A tie under either protocol is no flip.
    Pairs are listed in ``full``'s index order of their first model, then of their second.
    """
    if set(full.index) != set(sampled.index) or full.index.has_duplicates:
        raise ValueError(f"full and sampled must hold the same models once each; got {list(full.index)} "
                         f"and {list(sampled.index)}")
    f = full.to_numpy(dtype=np.float64)
    s = sampled.reindex(full.index).to_numpy(dtype=np.float64)
    if np.isnan(f).any() or np.isnan(s).any():
        raise ValueError("full and sampled must hold a value (not NaN) for every model")
    names = list(full.index)
    i, j = np.triu_indices(len(names), k=1)
    flip = (f[i] - f[j]) * (s[i] - s[j]) < 0
    return [(names[a], names[b]) if f[a] > f[b] else (names[b], names[a]) for a, b in zip(i[flip], j[flip])]


def describe_comparison(comparison: dict[str, float], column: str) -> str:
    """A comparison over seeds in words, saying no more than it shows.

    ``comparison``: ``difference`` (mean of ``a − b`` over seeds), its interval ``low`` / ``high``,
    ``wins`` (seeds where ``a > b``) and ``seeds`` -- what
    :func:`recnb.studies.simulate.compare_loops` returns.

    "higher at every seed" only when the interval excludes 0 *and* every seed agrees; "no
    difference beyond the seed-to-seed spread" when the interval contains 0; otherwise "higher on
    average, but not at every seed". The numbers follow in brackets.
    """
    d, low, high, wins, n = (comparison[key] for key in ("difference", "low", "high", "wins", "seeds"))
    numbers = f"{column} {d:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}], higher at {wins:.0f} of {n:.0f} seeds"
    if low <= 0 <= high:
        return f"no difference in {column} beyond the seed-to-seed spread ({numbers})"
    direction = "higher" if d > 0 else "lower"
    agree = wins == n if d > 0 else wins == 0
    if agree:
        return f"{column} {direction} at every seed ({numbers})"
    return f"{column} {direction} on average, but not at every seed ({numbers})"
