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
from typing import Self

import numpy as np
import pandas as pd
import torch

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
    ``advanced δ`` (:func:`advanced_composition` at ``δ'`` = ``delta_prime``)."""
    if len(releases) == 0:
        raise ValueError("releases must list at least one number of releases")
    rows = []
    for k in releases:
        adv, adv_delta = advanced_composition(epsilon, k, delta_prime)
        rows.append({"releases": k, "basic ε": basic_composition([epsilon] * k)[0], "advanced ε": adv,
                     "advanced δ": adv_delta})
    return pd.DataFrame(rows).set_index("releases")


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
