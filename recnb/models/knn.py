"""Neighbourhood collaborative filtering: user-based (001 §4.2.1) and item-based (002 §3.2 step 3).

**Similarities** between the rows of a matrix ``X`` (users of ``R`` for :class:`UserKNN`, items,
i.e. rows of ``R^T``, for :class:`ItemKNN`):

- ``"cosine"``: ``sim(a, b) = <x_a, x_b> / (||x_a|| ||x_b||)`` over all columns (missing = 0).
- ``"pearson"`` on **ratings**: the Pearson correlation over the co-rated columns
  ``I_ab = {i : a and b both rated i}``, each side centred by its mean *over* ``I_ab``::

      sim(a, b) = Σ_{i∈I_ab} (r_ai - r̄_a|ab)(r_bi - r̄_b|ab)
                  / ( sqrt(Σ_{i∈I_ab} (r_ai - r̄_a|ab)^2) · sqrt(Σ_{i∈I_ab} (r_bi - r̄_b|ab)^2) )

  (exactly ``scipy.stats.pearsonr`` on the co-rated values; 0 when ``|I_ab| < 2`` or a side is
  constant there).
- ``"pearson"`` on **binary** data is the correlation of the full 0/1 rows (``numpy.corrcoef``):
  on co-rated columns every value is 1, so the co-rated form is undefined. For implicit data
  cosine is the natural default.

**Shrinkage** ``λ`` damps similarities resting on little evidence: ``s' = s · n_ab / (n_ab + λ)``
with ``n_ab = |I_ab|`` (co-interacted columns). **Neighbours** ``k``: each row keeps its ``k`` most
similar other rows (one global neighbourhood per user or item, as in most implementations), ties
to the lower index, negative similarities included when fewer than ``k`` are larger
(:func:`recnb.math.ranking.keep_top_k_per_row`); the rest are set to 0, and a row is never its own
neighbour.

**Prediction.** On binary data (``values="binary"``), the score is a similarity-weighted vote::

    UserKNN: score(u, i) = Σ_{v∈N_k(u)} sim(u, v) r_vi      ItemKNN: score(u, i) = Σ_{j∈N_k(i)} sim(i, j) r_uj

On ratings (``values="rating"``), the standard mean-centred neighbourhood prediction::

    UserKNN: r̂_ui = r̄_u + Σ_{v∈N_k(u), v rated i} sim(u, v)(r_vi - r̄_v) / Σ_{same v} |sim(u, v)|
    ItemKNN: r̂_ui = r̄_i + Σ_{j∈N_k(i), u rated j} sim(i, j)(r_uj - r̄_j) / Σ_{same j} |sim(i, j)|

with ``r̄`` the mean over *all* of a user's (item's) ratings, the global mean for a row with none;
where no neighbour rated the item the prediction is the mean itself.

**What 001 §4.2.1 prints instead.** Its user similarity is::

    sim(u, v) = (R_uv - μ_u - μ_v + δ) / ( sqrt(Σ_{i∈N_u}(R_ui - μ_u)^2) · sqrt(Σ_{i∈N_v}(R_vi - μ_v)^2) )

The numerator ``R_uv`` indexes the *user x item* matrix with two users (the text itself glosses it
as "user u's rating of item i") and subtracts two means from that one number, plus an unexplained
``δ``: it is not a correlation. The numerator must be a *sum over co-rated items of products of
deviations*, ``Σ_{i∈I_uv}(R_ui - μ_u)(R_vi - μ_v)``. Its score ``sim(u, v) · sqrt(Σ_{j∈N_i}(R_uj - μ_u)^2)``
uses one neighbour ``v`` and never ``v``'s rating of ``i``: the square root is a norm of ``u``'s
own deviations, always ``>= 0``, so a neighbour who hated ``i`` raises the score as much as one
who loved it. The standard form above averages the neighbours' deviations on ``i``.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import torch

from recnb.data.schema import Split
from recnb.math.ranking import keep_top_k_per_row, rank
from recnb.math.similarity import all_vs_all
from recnb.models.base import Recommender, Users, as_user_tensor

SIMILARITIES = ("cosine", "pearson")
VALUES = ("binary", "rating")


def cosine_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` cosine similarity between the rows of ``x`` ``(n, d)`` (zero rows give 0)."""
    x = x.double()
    return all_vs_all(x, x)


def pearson_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` Pearson correlation between the full rows of ``x`` (like ``numpy.corrcoef``).

    Constant rows give 0.
    """
    x = x.double()
    return cosine_similarity_matrix(x - x.mean(dim=1, keepdim=True))


def corated_pearson_matrix(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` Pearson correlation of rows of ``x`` over their co-observed columns.

    ``x``: ``(n, d)`` values, ``mask``: ``(n, d)`` bool, True where observed. For rows ``a, b`` with
    ``m = |I_ab|`` co-observed columns: ``cov = Σxy - ΣxΣy/m``, ``var_a = Σx² - (Σx)²/m`` (all sums
    over ``I_ab``) and ``sim = cov / sqrt(var_a var_b)``; 0 when ``m < 2`` or a variance is 0.
    Computed with five matrix products, no loop over pairs.
    """
    m = mask.double()
    v = x.double() * m
    n = m @ m.T
    sx, sy = v @ m.T, m @ v.T  # Σ_{I_ab} x_a, Σ_{I_ab} x_b
    sxx, syy = (v * v) @ m.T, m @ (v * v).T
    sxy = v @ v.T
    safe_n = n.clamp(min=1)
    cov = sxy - sx * sy / safe_n
    var_a = (sxx - sx**2 / safe_n).clamp(min=0)
    var_b = (syy - sy**2 / safe_n).clamp(min=0)
    denom = torch.sqrt(var_a * var_b)
    ok = (n >= 2) & (denom > 1e-12 * (1 + sxx.abs() + syy.abs()))
    return torch.where(ok, cov / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(cov)).clamp(-1, 1)


def shrink(sim: torch.Tensor, n_common: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """``s' = s · n_common / (n_common + λ)``; ``λ = 0`` leaves ``s`` unchanged."""
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    if shrinkage == 0:
        return sim
    return sim * n_common / (n_common + shrinkage)


def neighbour_category_share(
    sim: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    k: int,
    complement: torch.Tensor | np.ndarray | None = None,
) -> float:
    """Mean share of each row's ``k`` nearest neighbours that carry the row's label.

    ``sim``: ``(n, n)`` similarities (e.g. a fitted ``ItemKNN().weights_``); ``labels``: ``(n,)``
    integer labels (an item's category). A row's neighbours are its ``k`` most similar *other*
    rows, ranked by :func:`recnb.math.ranking.rank` (descending, ties to the lower index, the row
    itself excluded). With ``complement`` (``(n_labels,)``, label -> its complementary label) the
    share counts neighbours labelled ``complement[labels[row]]`` instead.

    Only rows with at least ``k`` neighbours of positive similarity count: for the others the list
    would be filled with zero-similarity rows in index order, which says nothing. Returns the mean
    over the counted rows of ``hits / k``; NaN when no row counts.
    """
    s = torch.as_tensor(np.asarray(sim), dtype=torch.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"sim must be a square (n, n) matrix, got shape {tuple(s.shape)}")
    n = s.shape[0]
    lab = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries, sim has {n} rows")
    if not 1 <= k < n:
        raise ValueError(f"k must lie in 1..{n - 1} (neighbours other than the row itself), got {k}")
    target = lab
    if complement is not None:
        comp = torch.as_tensor(np.asarray(complement)).long().reshape(-1)
        if lab.min() < 0 or lab.max() >= comp.shape[0]:
            raise ValueError(f"complement maps {comp.shape[0]} labels, labels run {lab.min().item()}..{lab.max().item()}")
        target = comp[lab]
    self_mask = torch.eye(n, dtype=torch.bool)
    nearest = rank(s, k=k, exclude=self_mask).indices  # (n, k), never PAD since k < n
    counted = ((s > 0) & ~self_mask).sum(dim=1) >= k
    if not counted.any():
        return float("nan")
    hits = lab[nearest] == target[:, None]
    return float(hits[counted].double().mean())


def similarity(x: torch.Tensor, mask: torch.Tensor, method: str, values: str, shrinkage: float = 0.0) -> torch.Tensor:
    """Row-row similarity of ``x`` (``(n, d)``, observed where ``mask``) with shrinkage; ``(n, n)`` float64.

    ``method``: ``"cosine"`` or ``"pearson"``; ``values``: ``"binary"`` (pearson over full rows) or
    ``"rating"`` (pearson over co-rated columns). See the module docstring.
    """
    if method not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {method!r}")
    if values not in VALUES:
        raise ValueError(f"values must be one of {VALUES}, got {values!r}")
    if method == "cosine":
        sim = cosine_similarity_matrix(x)
    elif values == "rating":
        sim = corated_pearson_matrix(x, mask)
    else:
        sim = pearson_similarity_matrix(x)
    m = mask.double()
    return shrink(sim, m @ m.T, shrinkage)


class _NeighbourhoodCF(Recommender):
    """Shared parameters and fitting of :class:`UserKNN` and :class:`ItemKNN`."""

    def __init__(
        self,
        similarity: str = "cosine",
        neighbours: int | None = 50,
        shrinkage: float = 0.0,
        values: str = "binary",
    ) -> None:
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if values not in VALUES:
            raise ValueError(f"values must be one of {VALUES}, got {values!r}")
        if neighbours is not None and neighbours <= 0:
            raise ValueError(f"neighbours must be a positive integer or None, got {neighbours}")
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
        self.similarity, self.neighbours, self.shrinkage, self.values = similarity, neighbours, shrinkage, values

    def _fit_matrices(self, split: Split) -> None:
        self.remember_split(split)
        self.ratings_ = split.train_matrix(self.values).double()  # R (n_users, n_items)
        self.observed_ = split.train_matrix("binary").bool()
        if self.values == "rating":
            rated = split.train_matrix("rating") > 0
            if not rated.any():
                raise ValueError(f"split {split.name!r} has no explicit ratings: use values='binary'")
            self.observed_ = rated

    def _row_means(self, dim: int) -> torch.Tensor:
        """Mean rating per user (``dim=1``) or item (``dim=0``); the global mean where there is none."""
        m = self.observed_.double()
        total, count = (self.ratings_ * m).sum(dim=dim), m.sum(dim=dim)
        mu = (self.ratings_ * m).sum() / m.sum()
        return torch.where(count > 0, total / count.clamp(min=1), mu)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(similarity={self.similarity!r}, neighbours={self.neighbours}, "
            f"shrinkage={self.shrinkage}, values={self.values!r})"
        )


class UserKNN(_NeighbourhoodCF):
    """User-based CF: recommend what the most similar users have (see the module docstring)."""

    def fit(self, split: Split) -> Self:
        self._fit_matrices(split)
        sim = similarity(self.ratings_, self.observed_, self.similarity, self.values, self.shrinkage)
        self.weights_ = keep_top_k_per_row(sim, self.neighbours)  # W[u, v], (n_users, n_users)
        if self.values == "rating":
            self.means_ = self._row_means(dim=1)
            self.deviations_ = (self.ratings_ - self.means_[:, None]) * self.observed_  # r_vi - r̄_v
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        w = self.weights_[u]
        if self.values == "binary":
            return (w @ self.ratings_).float()
        num = w @ self.deviations_
        den = w.abs() @ self.observed_.double()
        pred = self.means_[u, None] + num / den.where(den > 0, torch.ones_like(den))
        return torch.where(den > 0, pred, self.means_[u, None].expand_as(pred)).float()


class ItemKNN(_NeighbourhoodCF):
    """Item-based CF: recommend items similar to the user's items (see the module docstring)."""

    def fit(self, split: Split) -> Self:
        self._fit_matrices(split)
        sim = similarity(self.ratings_.T, self.observed_.T, self.similarity, self.values, self.shrinkage)
        self.weights_ = keep_top_k_per_row(sim, self.neighbours)  # W[i, j], (n_items, n_items)
        if self.values == "rating":
            self.means_ = self._row_means(dim=0)
            self.deviations_ = (self.ratings_ - self.means_[None, :]) * self.observed_  # r_uj - r̄_j
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        if self.values == "binary":
            return (self.ratings_[u] @ self.weights_.T).float()
        num = self.deviations_[u] @ self.weights_.T
        den = self.observed_[u].double() @ self.weights_.abs().T
        mean = self.means_[None, :].expand_as(num)
        return torch.where(den > 0, mean + num / den.where(den > 0, torch.ones_like(den)), mean).float()
