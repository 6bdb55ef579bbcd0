"""How sure is a metric? Per-user bootstrap intervals and paired tests between two models.

A mean metric over test users (NDCG@10 of 943 MovieLens users, say) is an *estimate*: another
draw of users would give another value. The per-user values (:func:`recnb.evaluation.evaluate_per_user`)
are the sample; this module resamples them.

- :func:`bootstrap_ci`: draw ``n`` users with replacement from the ``n`` observed ones, ``B`` times;
  the ``B`` means of the resamples approximate the sampling distribution of the mean, and its
  ``α/2`` and ``1 − α/2`` quantiles are the *percentile* confidence interval.
- :func:`paired_bootstrap`: two models scored on the **same** users. Their per-user differences
  ``d_u = a_u − b_u`` are resampled, not the two means separately: most of the user-to-user
  variation (easy users, hard users) is shared by both models and cancels in ``d_u``, so two models
  whose separate intervals overlap can still differ clearly.
- :func:`wilcoxon`: the Wilcoxon signed-rank test of ``d_u`` (``scipy.stats.wilcoxon``), a paired
  test on ranks that assumes no distribution.
- :func:`compare_overlapping`: both paired tests for every pair of models whose separate intervals
  overlap (:func:`overlap`), the pairs a table of means and intervals leaves undecided.
- :func:`order_flips`: the pairs of models that two evaluation protocols order differently.

Users whose value is ``NaN`` (a metric undefined for them) are left out (pairwise for the paired
tests). One ``seed`` fixes every resample (a local ``numpy.random.Generator``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

#: resamples per chunk: memory is ``chunk * n`` indices
_CHUNK = 256


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
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D per-user values, got shape {x.shape}")
    return x


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def bootstrap_means(values: Any, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """``(n_resamples, m)`` means of bootstrap resamples of the rows of ``values`` ``(n, m)``.

    Resample ``b`` draws ``n`` row indices uniformly with replacement
    (``numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))``, drawn in chunks) and
    averages the chosen rows; every column is resampled with the same rows, so per-user values of
    several metrics (or of two models) stay paired. Vectorised: one gather and one mean per chunk.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"values must be a non-empty (n,) or (n, m) array, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("values contain NaN: drop the users whose metric is undefined first")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    out = np.empty((n_resamples, x.shape[1]))
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def _percentiles(means: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - confidence
    return np.quantile(means, alpha / 2, axis=0), np.quantile(means, 1 - alpha / 2, axis=0)


def bootstrap_ci(values: Any, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean of the per-user ``values`` and its percentile bootstrap interval.

    ``values``: ``(n,)`` per-user metric values; ``NaN`` entries (undefined users) are left out.
    ``low``/``high`` are the ``(1 − confidence)/2`` and ``(1 + confidence)/2`` quantiles (numpy's
    linear interpolation) of the ``n_resamples`` resample means (:func:`bootstrap_means`); this is
    ``scipy.stats.bootstrap(..., method="percentile")`` up to the random draws.
    """
    _check(n_resamples, confidence)
    x = _values(values)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError("values hold no defined (non-NaN) user value")
    low, high = _percentiles(bootstrap_means(x, n_resamples, seed)[:, 0], confidence)
    return Interval(float(x.mean()), float(low), float(high))


def bootstrap_table(per_user: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """:func:`bootstrap_ci` of every column of a per-user frame: index = column, columns ``mean, low, high``.

    ``per_user``: one row per user, one column per metric (as
    :func:`recnb.evaluation.evaluate_per_user` returns it). Users with a ``NaN`` in any column are
    left out, and all columns are resampled with the same users.
    """
    _check(n_resamples, confidence)
    x = per_user.dropna()
    if x.empty:
        raise ValueError("per_user has no row without NaN")
    means = bootstrap_means(x.to_numpy(dtype=np.float64), n_resamples, seed)
    low, high = _percentiles(means, confidence)
    return pd.DataFrame({"mean": x.mean().to_numpy(), "low": low, "high": high}, index=per_user.columns)


def _paired(a: Any, b: Any) -> np.ndarray:
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must hold the same users in the same order; got {x.size} and {y.size} values")
    d = x - y
    d = d[~np.isnan(d)]
    if d.size == 0:
        raise ValueError("a and b share no user with both values defined")
    return d


def paired_bootstrap(a: Any, b: Any, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> PairedResult:
    """Paired bootstrap of the mean difference ``mean(a_u − b_u)`` over users defined in both.

    ``a``, ``b``: ``(n,)`` per-user values of two models on the same users, in the same order.
    The interval is the percentile interval of the resampled mean differences ``d̄*``. The p-value
    tests ``H0: E[d] = 0`` by shifting the bootstrap distribution to the null (``d̄* − d̄``)::

        p = (1 + #{b : |d̄*_b − d̄| >= |d̄|}) / (1 + B)

    (the ``+1`` keeps it above 0 with finitely many resamples).
    """
    _check(n_resamples, confidence)
    d = _paired(a, b)
    means = bootstrap_means(d, n_resamples, seed)[:, 0]
    low, high = _percentiles(means, confidence)
    dbar = float(d.mean())
    extreme = np.count_nonzero(np.abs(means - dbar) >= abs(dbar))
    return PairedResult(dbar, float(low), float(high), float((1 + extreme) / (1 + n_resamples)), int(d.size))


def wilcoxon(a: Any, b: Any, **kwargs: Any) -> WilcoxonResult:
    """Wilcoxon signed-rank test of the per-user differences ``a_u − b_u`` (two-sided).

    Pairs with a ``NaN`` on either side are dropped; ``kwargs`` go to ``scipy.stats.wilcoxon``
    (its default ``zero_method="wilcox"`` drops zero differences). When every difference is 0 the
    two models are indistinguishable on these users: ``statistic = 0``, ``p_value = 1``.
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
COMPARISON_COLUMNS = ["better", "worse", "mean diff", "diff low", "diff high", "p bootstrap", "p Wilcoxon", "separated"]


def compare_overlapping(
    per_user: Mapping[str, pd.DataFrame],
    intervals: pd.DataFrame,
    column: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired tests for every pair of models whose intervals overlap.

    ``per_user``: model name -> per-user frame (:func:`recnb.evaluation.evaluate_per_user`), the same
    users in the same order for every model; ``column`` is the metric compared (``"ndcg@10"``).
    ``intervals``: one row per model name with columns ``mean, low, high`` (e.g. the
    :func:`bootstrap_ci` of ``per_user[name][column]``). For each pair ``a, b`` taken in the order of
    ``per_user`` (``a`` first) with :func:`overlap`, the model with the higher ``mean`` is ``better``
    (``a`` on a tie), and the differences ``better_u − worse_u`` go through
    :func:`paired_bootstrap` (``n_resamples``, ``confidence``, ``seed``) and :func:`wilcoxon`.
    ``separated`` is true when the paired interval excludes 0 and the Wilcoxon p-value is below
    ``1 − confidence``: both tests tell the two models apart.

    Returns a frame with one row per overlapping pair and the columns :data:`COMPARISON_COLUMNS`
    (``mean diff, diff low, diff high`` from the bootstrap); empty, with those columns, when no two
    intervals overlap.
    """
    _check(n_resamples, confidence)
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
            pb = paired_bootstrap(x, y, n_resamples=n_resamples, confidence=confidence, seed=seed)
            wx = wilcoxon(x, y)
            rows.append([hi, lo, pb.mean_diff, pb.low, pb.high, pb.p_value, wx.p_value,
                         bool((pb.low > 0 or pb.high < 0) and wx.p_value < 1 - confidence)])
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


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
