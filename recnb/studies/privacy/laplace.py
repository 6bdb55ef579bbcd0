"""The Laplace mechanism, privacy budgets under composition, and differentially private popularity.

A randomised algorithm ``M`` is ``ε``-differentially private when for every pair of neighbouring
data sets ``D, D'`` and every set of outputs ``S``: ``P[M(D) ∈ S] <= e^ε P[M(D') ∈ S]``
(``(ε, δ)``-DP adds ``+ δ``). For a query ``f`` with L1 sensitivity
``Δ = max_{D~D'} ‖f(D) - f(D')‖₁``, the Laplace mechanism

.. math::  M(D) = f(D) + (Z_1, ..., Z_n), \\qquad Z_i \\sim \\mathrm{Laplace}(0, b = Δ/ε)

is ``ε``-DP; each ``Z_i`` has variance ``2 b² = 2 (Δ/ε)²``.

Which data sets are neighbours decides ``Δ``. Item popularity counts (training users per item)
change by at most 1 in one coordinate when one *interaction* is added or removed (``Δ = 1``:
interaction-level privacy); when one *user* and all their interactions are, up to
``m`` coordinates change, where ``m`` bounds the items any user contributes (``Δ = m``:
user-level privacy). :class:`DPPopularityRecommender` enforces ``m`` by keeping at most
``max_items_per_user`` random items of each user before counting.

**The noise must be secret.** Anyone who can recompute the noise subtracts it and reads the exact
counts, so the guarantee holds only for noise nobody can reproduce. By default the noise is drawn
from fresh operating-system entropy (``numpy.random.default_rng()``); a seed or generator passed
explicitly fixes it, which is for teaching and testing only: a deployment never fixes the noise
seed. (numpy's generators are not cryptographically secure either; a production mechanism draws
from a cryptographic source, as OpenDP and Opacus's secure mode do.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from scipy.special import gammaln, logsumexp

from recnb.data.schema import ITEM_IDX, USER_IDX, Split, SplitLike, as_split
from recnb.models.base import Recommender, Users, as_user_tensor


def laplace_scale(epsilon: float, sensitivity: float = 1.0) -> float:
    """The noise scale ``b = Δ / ε`` of the Laplace mechanism."""
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if not sensitivity > 0:
        raise ValueError(f"sensitivity must be > 0, got {sensitivity}")
    return sensitivity / epsilon


def noise_generator(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """The generator noise is drawn from: ``rng`` itself if it is a ``numpy.random.Generator``, one
    seeded with ``rng`` if it is an integer (teaching and tests only), or -- ``None``, the default --
    one seeded from fresh operating-system entropy, different at every call."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None (fresh entropy), an integer seed or a numpy.random.Generator, got {rng!r}")


def laplace_mechanism(values: np.ndarray | Sequence[float], epsilon: float, sensitivity: float = 1.0,
                      rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``values + Laplace(0, Δ/ε)`` noise, independently per coordinate (float64 array, same shape).

    ``rng``: ``None`` (default) draws the noise from fresh operating-system entropy; a seed or a
    ``numpy.random.Generator`` makes it reproducible, for teaching and tests only (whoever knows the
    seed can subtract the noise). The release is ``ε``-DP for a query whose L1 sensitivity is
    ``sensitivity``; rounding or clipping the result afterwards (post-processing) keeps the guarantee.
    """
    scale = laplace_scale(epsilon, sensitivity)
    values = np.asarray(values, dtype=np.float64)
    return values + noise_generator(rng).laplace(0.0, scale, size=values.shape)


def basic_composition(epsilons: Sequence[float], deltas: Sequence[float] | None = None) -> tuple[float, float]:
    """Sequential composition: releasing ``k`` mechanisms ``(ε_i, δ_i)``-DP on the same data is
    ``(Σ ε_i, Σ δ_i)``-DP. Returns ``(ε_total, δ_total)``."""
    eps = np.asarray(epsilons, dtype=np.float64)
    dlt = np.zeros_like(eps) if deltas is None else np.asarray(deltas, dtype=np.float64)
    if eps.ndim != 1 or eps.size == 0 or (eps < 0).any():
        raise ValueError(f"epsilons must be a non-empty list of values >= 0, got {list(eps)}")
    if dlt.shape != eps.shape or (dlt < 0).any():
        raise ValueError(f"deltas must list one value >= 0 per epsilon ({eps.size}), got {list(dlt)}")
    return float(eps.sum()), float(dlt.sum())


def advanced_composition(epsilon: float, k: int, delta_prime: float, delta: float = 0.0) -> tuple[float, float]:
    """Advanced composition (Dwork, Rothblum & Vadhan 2010): ``k`` mechanisms, each ``(ε, δ)``-DP,
    are together ``(ε', kδ + δ')``-DP for any ``δ' > 0`` with

    .. math::  ε' = \\sqrt{2k \\ln(1/δ')}\\, ε + k ε (e^ε - 1).

    Returns ``(ε', kδ + δ')``. It grows like ``√k ε`` instead of ``k ε``, so it beats
    :func:`basic_composition` for many small-``ε`` releases and loses for a few large ones.
    """
    if not epsilon > 0 or k < 1:
        raise ValueError(f"epsilon must be > 0 and k >= 1, got epsilon={epsilon}, k={k}")
    if not 0 < delta_prime < 1 or not 0 <= delta < 1:
        raise ValueError(f"delta_prime must lie in (0, 1) and delta in [0, 1), got {delta_prime}, {delta}")
    eps = math.sqrt(2 * k * math.log(1 / delta_prime)) * epsilon + k * epsilon * math.expm1(epsilon)
    return eps, k * delta + delta_prime


def optimal_composition_delta(epsilon: float, k: int, epsilon_total: float) -> float:
    """The smallest ``δ`` for which *every* composition of ``k`` ``ε``-DP mechanisms is
    ``(ε_total, δ)``-DP (Kairouz, Oh & Viswanath 2015, Theorem 3.3; ``k``-fold randomised response
    attains it):

    .. math::  δ = \\frac{1}{(1 + e^ε)^k} \\sum_{i=0}^{k} \\binom{k}{i}
               \\left[e^{(k-i)ε} - e^{ε_{total}} e^{iε}\\right]_+ ,

    summed in log space (``k`` in the thousands does not overflow).
    """
    if not epsilon > 0 or k < 1:
        raise ValueError(f"epsilon must be > 0 and k >= 1, got epsilon={epsilon}, k={k}")
    i = np.arange(k + 1)
    gap = (k - 2 * i) * epsilon - epsilon_total  # the term is positive where (k - 2i) ε > ε_total
    keep = gap > 0
    if not keep.any():
        return 0.0
    i, gap = i[keep], gap[keep]
    log_binom = gammaln(k + 1) - gammaln(i + 1) - gammaln(k - i + 1)
    log_terms = log_binom + (k - i) * epsilon + np.log(-np.expm1(-gap)) - k * np.logaddexp(0.0, epsilon)
    return float(np.exp(logsumexp(log_terms)))


def optimal_composition(epsilon: float, k: int, delta_prime: float, tol: float = 1e-9) -> float:
    """The smallest ``ε_total`` with :func:`optimal_composition_delta` ``<= δ'``: the exact privacy of
    ``k`` ``ε``-DP releases at ``δ'``, which every valid bound (basic, advanced) lies above. Bisection
    on ``[0, kε]`` (``δ`` falls as ``ε_total`` grows; at ``kε`` it is 0) to ``tol``."""
    if not 0 < delta_prime < 1:
        raise ValueError(f"delta_prime must lie in (0, 1), got {delta_prime}")
    low, high = 0.0, k * epsilon
    if optimal_composition_delta(epsilon, k, low) <= delta_prime:
        return low
    while high - low > tol * max(1.0, high):
        mid = (low + high) / 2
        low, high = (low, mid) if optimal_composition_delta(epsilon, k, mid) <= delta_prime else (mid, high)
    return high


def composition_crossover(epsilon: float, delta_prime: float) -> int:
    """The smallest number of releases ``k`` at which :func:`advanced_composition` of ``k``
    ``ε``-DP releases gives a smaller ``ε'`` than :func:`basic_composition`'s ``kε``.

    Dividing ``\\sqrt{2k \\ln(1/δ')}\\, ε + k ε (e^ε - 1) < k ε`` by ``kε`` gives
    ``\\sqrt{2 \\ln(1/δ') / k} < 2 - e^ε``, so for ``ε < \\ln 2``

    .. math::  k^* = \\left\\lfloor \\frac{2 \\ln(1/δ')}{(2 - e^ε)^2} \\right\\rfloor + 1;

    for ``ε >= ln 2`` the advanced bound never beats the basic one (a ``ValueError``). The
    comparison is of ``ε`` alone: the advanced bound also pays ``δ'``.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if not 0 < delta_prime < 1:
        raise ValueError(f"delta_prime must lie in (0, 1), got {delta_prime}")
    margin = 1 - math.expm1(epsilon)  # 2 - e^ε
    if margin <= 0:
        raise ValueError(f"advanced composition never beats basic composition for epsilon >= ln 2 "
                         f"({math.log(2):.4f}), got epsilon={epsilon}")
    return math.floor(2 * math.log(1 / delta_prime) / margin**2) + 1


def composition_table(epsilon: float, releases: Sequence[int], delta_prime: float) -> pd.DataFrame:
    """The total budget of ``k`` releases of ``ε`` each, for each ``k`` in ``releases``: one row per
    ``k`` (index ``releases``) with ``basic ε`` (:func:`basic_composition`), ``advanced ε`` and
    ``advanced δ`` (:func:`advanced_composition` at ``δ'`` = ``delta_prime``), ``optimal ε``
    (:func:`optimal_composition` at ``δ'``), and ``√ term only`` -- the advanced bound without its
    linear term ``kε(e^ε - 1)``, which is *not* a bound: where it falls below ``optimal ε`` some
    composition of ``k`` ``ε``-DP releases is provably less private than it claims."""
    if len(releases) == 0:
        raise ValueError("releases must list at least one number of releases")
    rows = []
    for k in releases:
        adv, adv_delta = advanced_composition(epsilon, k, delta_prime)
        rows.append({"releases": k, "basic ε": basic_composition([epsilon] * k)[0], "advanced ε": adv,
                     "advanced δ": adv_delta, "optimal ε": optimal_composition(epsilon, k, delta_prime),
                     "√ term only": math.sqrt(2 * k * math.log(1 / delta_prime)) * epsilon})
    return pd.DataFrame(rows).set_index("releases")


def group_privacy(epsilon: float, delta: float, group_size: int) -> tuple[float, float]:
    """The guarantee an ``(ε, δ)``-DP mechanism gives a group of ``n`` = ``group_size`` records
    (data sets that differ in ``n`` rows; for instance one user's ``n`` interactions under
    interaction-level DP): ``(nε, n e^{(n-1)ε} δ)``.

    Chaining ``P[M(D_0) ∈ S] <= e^ε P[M(D_1) ∈ S] + δ`` along ``D_0, ..., D_n`` gives
    ``e^{nε} P[M(D_n) ∈ S] + δ Σ_{j<n} e^{jε}``, and ``Σ_{j<n} e^{jε} <= n e^{(n-1)ε}``. The ``δ``
    term grows exponentially in ``n``: for a few dozen records and ``ε`` near 1 it exceeds 1, and the
    guarantee says nothing."""
    if epsilon < 0 or not 0 <= delta <= 1 or group_size < 1:
        raise ValueError(f"need epsilon >= 0, 0 <= delta <= 1 and group_size >= 1, got {epsilon}, {delta}, {group_size}")
    n = group_size
    return n * epsilon, n * math.exp((n - 1) * epsilon) * delta


def rating_sum_sensitivity(n_released_items: int, max_items_per_user: int | None = None,
                           max_rating: float = 5.0) -> float:
    """L1 sensitivity of the per-item rating sums of ``n_released_items`` items when one *user* is
    added or removed, ratings in ``[0, max_rating]``: each user rates an item at most once, so at most
    ``min(m, n_released_items)`` sums move, each by at most ``max_rating``:
    ``Δ = max_rating · min(m, n_released_items)`` (``m`` = ``max_items_per_user``, ``None``: no cap)."""
    if n_released_items < 1 or not max_rating > 0:
        raise ValueError(f"need n_released_items >= 1 and max_rating > 0, got {n_released_items}, {max_rating}")
    if max_items_per_user is not None and max_items_per_user < 1:
        raise ValueError(f"max_items_per_user must be >= 1 or None, got {max_items_per_user}")
    touched = n_released_items if max_items_per_user is None else min(max_items_per_user, n_released_items)
    return float(max_rating * touched)


def rating_sums(ratings: pd.DataFrame, items: Sequence[Any], max_items_per_user: int | None = None,
                seed: int | np.random.Generator | None = None) -> pd.Series:
    """Sum of the ratings of each item in ``items`` (a Series indexed by ``items``, 0 for an unrated
    one), each user contributing at most ``max_items_per_user`` of their ratings *among these items*
    (a uniform random subset from :func:`noise_generator` ``(seed)``; ``None``: no cap), so that
    :func:`rating_sum_sensitivity` bounds how far one user moves them. ``ratings``:
    ``user_id, item_id, rating``, one rating per user and item."""
    missing = [c for c in ("user_id", "item_id", "rating") if c not in ratings.columns]
    if missing:
        raise KeyError(f"ratings lacks column(s) {missing}; expected user_id, item_id, rating")
    chosen = ratings[ratings["item_id"].isin(list(items))]
    if chosen.duplicated(["user_id", "item_id"]).any():
        raise ValueError("ratings must hold at most one rating per (user_id, item_id)")
    if max_items_per_user is not None:
        if max_items_per_user < 1:
            raise ValueError(f"max_items_per_user must be >= 1 or None, got {max_items_per_user}")
        chosen = chosen.assign(_key=noise_generator(seed).random(len(chosen))).sort_values(["user_id", "_key"])
        chosen = chosen[chosen.groupby("user_id").cumcount() < max_items_per_user]
    return chosen.groupby("item_id")["rating"].sum().reindex(list(items), fill_value=0).astype(np.float64)


def bounded_item_counts(split: Split, max_items_per_user: int | None = None,
                        seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Training users per item, ``(n_items,)`` float64, each user counting at most ``max_items_per_user``
    of their distinct training items (a uniform random subset drawn from :func:`noise_generator`
    ``(seed)``: fresh entropy by default, an integer or a ``numpy.random.Generator`` to reproduce
    it); ``max_items_per_user=None`` keeps them all.

    Inside a DP mechanism the subsets must be drawn as secretly as the noise: the random keys are
    drawn over all pairs in order, so removing one user moves the keys of the users after it, and
    with a known seed the difference between neighbouring data sets would no longer be bounded by
    ``max_items_per_user`` (:class:`DPPopularityRecommender` draws them from its noise generator)."""
    pairs = np.unique(split.train[[USER_IDX, ITEM_IDX]].to_numpy(dtype=np.int64), axis=0).reshape(-1, 2)
    if max_items_per_user is not None:
        if max_items_per_user < 1:
            raise ValueError(f"max_items_per_user must be >= 1 or None, got {max_items_per_user}")
        key = noise_generator(seed).random(len(pairs))
        order = np.lexsort((key, pairs[:, 0]))  # each user's pairs in random order
        users = pairs[order, 0]
        first = np.searchsorted(users, users, side="left")
        pairs = pairs[order[np.arange(len(users)) - first < max_items_per_user]]
    return np.bincount(pairs[:, 1], minlength=split.n_items).astype(np.float64)


class DPPopularityRecommender(Recommender):
    """Popularity from ``ε``-DP item counts: bounded counts (see :func:`bounded_item_counts`) plus
    ``Laplace(0, Δ/ε)`` noise, with ``Δ = max_items_per_user`` (user-level privacy) or ``Δ = 1``
    when ``max_items_per_user is None`` (interaction-level privacy). Every user gets the same scores.

    ``noise_seed``: ``None`` (default) draws the mechanism's randomness -- the noise and the
    bounded subsets -- from fresh operating-system entropy at every ``fit``; an integer makes the
    release reproducible, for teaching and tests only (whoever knows it can subtract the noise).
    """

    counts_: torch.Tensor | None = None

    def __init__(self, epsilon: float, max_items_per_user: int | None = None, noise_seed: int | None = None) -> None:
        self.epsilon, self.max_items_per_user, self.noise_seed = epsilon, max_items_per_user, noise_seed
        laplace_scale(epsilon, self.sensitivity)  # validates both
        noise_generator(noise_seed)  # validates it

    @property
    def sensitivity(self) -> float:
        """``Δ``: ``max_items_per_user``, or 1 when it is ``None`` (follows ``set_params``)."""
        return 1.0 if self.max_items_per_user is None else float(self.max_items_per_user)

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        rng = noise_generator(self.noise_seed)  # None: fresh entropy at every fit
        counts = bounded_item_counts(split, self.max_items_per_user, seed=rng)
        noisy = laplace_mechanism(counts, self.epsilon, self.sensitivity, rng)
        self.counts_ = torch.as_tensor(noisy, dtype=torch.float32)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return self.counts_.expand(len(u), -1).clone()

    def __repr__(self) -> str:
        return (f"DPPopularityRecommender(epsilon={self.epsilon}, max_items_per_user={self.max_items_per_user}, "
                f"noise_seed={self.noise_seed})")
