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

**Computation at scale.** The models never hold a dense ``(n_users, n_items)`` or ``(n, n)``
matrix. :func:`sparse_similarity` computes the similarity a block of rows at a time from sparse
products (``X_block X^T``; the co-rated Pearson from the five products of the dense formula
restricted to co-rated pairs) and prunes each block at once to its ``k`` neighbours per row
(:func:`keep_top_k_sparse`, the exact rule of ``keep_top_k_per_row``: pairs with nothing in
common have similarity 0 and rank after every positive and before every negative one), so
``weights_`` is a ``scipy.sparse`` CSR matrix with at most ``k`` entries per row. Scores of a
batch of users are sparse x sparse products (``R_batch W^T``), densified one batch at a time.
Full-row Pearson on binary data is dense by nature (every pair has a correlation); it is
computed in dense row blocks, ``O(n^2)`` time but ``O(block x n)`` memory.
The dense functions :func:`cosine_similarity_matrix`, :func:`pearson_similarity_matrix`,
:func:`corated_pearson_matrix` and :func:`shrink` state the formulas for small examples.
"""

from __future__ import annotations

from typing import Self, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.data.schema import Split, SplitLike, as_split
from recnb.math.ranking import PAD, item_indices
from recnb.math.similarity import all_vs_all
from recnb.models.base import Recommender, SimilarItems, Users, as_user_tensor

SIMILARITIES = ("cosine", "pearson")
VALUES = ("binary", "rating")
#: about how many similarity entries one block of rows may produce before pruning (memory bound)
BLOCK_ENTRIES = 4_000_000
#: similarities are rounded to this many decimals, so that equal similarities computed in a
#: different order (a last-bit difference) still tie, and the tie goes to the lower index
DECIMALS = 12


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
    return _corated_from_sums(n, sx, sy, sxx, syy, sxy)


def _corated_from_sums(n, sx, sy, sxx, syy, sxy):
    """The co-rated Pearson from its sums (torch tensors or numpy arrays of one shape)."""
    lib = torch if isinstance(n, torch.Tensor) else np
    safe_n = lib.maximum(n, lib.ones_like(n))
    cov = sxy - sx * sy / safe_n
    var_a = lib.maximum(sxx - sx**2 / safe_n, lib.zeros_like(sxx))
    var_b = lib.maximum(syy - sy**2 / safe_n, lib.zeros_like(syy))
    denom = lib.sqrt(var_a * var_b)
    ok = (n >= 2) & (denom > 1e-12 * (1 + abs(sxx) + abs(syy)))
    out = lib.where(ok, cov / lib.where(ok, denom, lib.ones_like(denom)), lib.zeros_like(cov))
    return lib.clip(out, -1, 1)


def shrink(sim: torch.Tensor, n_common: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """``s' = s · n_common / (n_common + λ)``; ``λ = 0`` leaves ``s`` unchanged."""
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    if shrinkage == 0:
        return sim
    return sim * n_common / (n_common + shrinkage)


def keep_top_k_sparse(sim: sp.spmatrix, k: int | None, row_offset: int = 0, exclude_diagonal: bool = True) -> sp.csr_matrix:
    """Each row's ``k`` largest entries of ``sim``, exactly as :func:`recnb.math.ranking.keep_top_k_per_row`.

    ``sim``: a sparse ``(b, n)`` block of rows ``row_offset .. row_offset + b - 1`` of an ``(n, n)``
    similarity; entries not stored are 0. Ranking each row densely (largest first, ties to the
    lower column) puts the ``p`` positive entries first, then the ``z`` zeros (stored or not), then
    the negative ones; so a positive entry is kept when its rank among the positives is ``< k``
    and a negative one when ``p + z +`` its rank among the negatives is ``< k``. Kept zeros change
    nothing and are dropped. With ``exclude_diagonal`` entry ``(r, row_offset + r)`` is never kept
    (a row is not its own neighbour). ``k=None`` keeps every non-zero off-diagonal entry. Returns a
    canonical float64 CSR ``(b, n)``.
    """
    if k is not None and k < 0:
        raise ValueError(f"k must be None or >= 0, got {k}")
    coo = sp.coo_matrix(sim)
    b, n = coo.shape
    rows, cols, vals = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)
    keep = vals != 0
    if exclude_diagonal:
        keep &= cols != rows + row_offset
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if k is not None and len(vals):
        order = np.lexsort((cols, -vals, rows))  # per row: value descending, then column ascending
        rows, cols, vals = rows[order], cols[order], vals[order]
        count = np.bincount(rows, minlength=b)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        position = np.arange(len(rows)) - start[rows]
        n_candidates = n - 1 if exclude_diagonal else n
        zeros = n_candidates - count  # zero entries of each row (implicit or stored)
        effective = np.where(vals > 0, position, position + zeros[rows])
        keep = effective < k
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    out = sp.csr_matrix((vals, (rows, cols)), shape=(b, n), dtype=np.float64)
    out.sort_indices()
    return out


def neighbour_category_share(
    sim: torch.Tensor | np.ndarray | sp.spmatrix,
    labels: torch.Tensor | np.ndarray,
    k: int,
    complement: torch.Tensor | np.ndarray | None = None,
) -> float:
    """Mean share of each row's ``k`` nearest neighbours that carry the row's label.

    ``sim``: ``(n, n)`` similarities, dense or scipy-sparse (e.g. a fitted ``ItemKNN().weights_``);
    ``labels``: ``(n,)`` integer labels (an item's category). A row's neighbours are its ``k`` most
    similar *other* rows, ranked by :func:`recnb.math.ranking.rank` (descending, ties to the lower
    index, the row itself excluded). With ``complement`` (``(n_labels,)``, label -> its
    complementary label) the share counts neighbours labelled ``complement[labels[row]]`` instead.

    Only rows with at least ``k`` neighbours of positive similarity count: for the others the list
    would be filled with zero-similarity rows in index order, which says nothing. Returns the mean
    over the counted rows of ``hits / k``; NaN when no row counts.
    """
    if not sp.issparse(sim):
        sim = np.asarray(sim.detach() if isinstance(sim, torch.Tensor) else sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be a square (n, n) matrix, got shape {tuple(sim.shape)}")
    n = sim.shape[0]
    lab = np.asarray(labels).astype(np.int64).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries, sim has {n} rows")
    if not 1 <= k < n:
        raise ValueError(f"k must lie in 1..{n - 1} (neighbours other than the row itself), got {k}")
    target = lab
    if complement is not None:
        comp = np.asarray(complement).astype(np.int64).reshape(-1)
        if lab.min() < 0 or lab.max() >= comp.shape[0]:
            raise ValueError(f"complement maps {comp.shape[0]} labels, labels run {lab.min()}..{lab.max()}")
        target = comp[lab]
    # a counted row has >= k positive neighbours, so its k nearest are its k largest positive entries
    top = keep_top_k_sparse(sp.csr_matrix(sim) if not sp.issparse(sim) else sim, k)
    row = np.repeat(np.arange(n), np.diff(top.indptr))
    positive = top.data > 0
    counted = np.bincount(row[positive], minlength=n) >= k
    if not counted.any():
        return float("nan")
    hit = (lab[top.indices] == target[row]) & counted[row]
    return float(hit.sum() / (k * counted.sum()))


def sparse_similarity(
    x: sp.spmatrix,
    method: str = "cosine",
    values: str = "binary",
    shrinkage: float = 0.0,
    neighbours: int | None = None,
    block_entries: int = BLOCK_ENTRIES,
) -> sp.csr_matrix:
    """Row-row similarity of a sparse ``x`` ``(n, d)``, shrunk and pruned to ``neighbours`` per row.

    Observed entries are the stored non-zero ones. ``method``: ``"cosine"`` or ``"pearson"``;
    ``values``: ``"binary"`` (pearson over full rows, like ``numpy.corrcoef``) or ``"rating"``
    (pearson over co-rated columns). Equal to ``keep_top_k_per_row(shrink(sim, M M^T, λ), k)`` of
    the dense functions of this module (``M`` the observed mask), computed a block of rows at a
    time (about ``block_entries`` products per block) and pruned block by block: memory is the
    result (``<= n * neighbours`` entries) plus one block. Similarities are rounded to
    :data:`DECIMALS` decimals before pruning, so that mathematically equal ones tie exactly
    whatever the summation order, and ties go to the lower index. Returns a float64 CSR ``(n, n)``.
    """
    if method not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {method!r}")
    if values not in VALUES:
        raise ValueError(f"values must be one of {VALUES}, got {values!r}")
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    x = sp.csr_matrix(x, dtype=np.float64)
    x.eliminate_zeros()
    x.sort_indices()
    n, d = x.shape
    m = x.copy()
    m.data[:] = 1.0  # the observed mask M
    mt = m.T.tocsr()
    dense_rows = method == "pearson" and values == "binary"
    if method == "cosine":
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        xn = sp.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)) @ x
        right = {"s": xn.T.tocsr()}
    elif dense_rows:
        mu = np.asarray(x.sum(axis=1)).ravel() / d
        centred_norm = np.sqrt(np.maximum(np.asarray(x.multiply(x).sum(axis=1)).ravel() - d * mu**2, 0.0))
        right = {"s": x.T.tocsr()}
    else:
        x2 = x.multiply(x).tocsr()
        right = {"m": mt, "v": x.T.tocsr(), "v2": x2.T.tocsr()}
    # rows per block: about block_entries products (each row of M M^T costs Σ_{c in row} |column c|)
    cost = (m @ np.asarray(m.sum(axis=0)).ravel()) if not dense_rows else np.full(n, float(n))
    bounds = _blocks(cost, block_entries)
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        common = m[lo:hi] @ mt if not dense_rows or shrinkage > 0 else None  # n_ab: co-observed columns, (b, n)
        if common is not None:
            common.sort_indices()
        if method == "cosine":
            sim = _same_pattern(xn[lo:hi] @ right["s"], common)
            sim.data = np.clip(sim.data, -1.0, 1.0)
        elif dense_rows:
            dot = (x[lo:hi] @ right["s"]).toarray()
            centred = dot - d * mu[lo:hi, None] * mu[None, :]
            denom = centred_norm[lo:hi, None] * centred_norm[None, :]
            full = np.where(denom > 0, centred / np.where(denom > 0, denom, 1.0), 0.0).clip(-1.0, 1.0)
            if shrinkage > 0:
                c = common.toarray()
                full = full * c / (c + shrinkage)
            full = np.round(full, DECIMALS)
            parts.append(keep_top_k_sparse(sp.csr_matrix(full), neighbours, row_offset=lo))
            continue
        else:
            xb, x2b, mb = x[lo:hi], x2[lo:hi], m[lo:hi]
            sums = [_same_pattern(a @ b_, common).data for a, b_ in
                    ((xb, right["m"]), (mb, right["v"]), (x2b, right["m"]), (mb, right["v2"]), (xb, right["v"]))]
            sim = common.copy()
            sim.data = _corated_from_sums(common.data, *sums)
        if shrinkage > 0:
            sim.data = sim.data * common.data / (common.data + shrinkage)
        sim.data = np.round(sim.data, DECIMALS)
        parts.append(keep_top_k_sparse(sim, neighbours, row_offset=lo))
    out = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((n, n), dtype=np.float64)
    out.sort_indices()
    return out


def _blocks(cost: np.ndarray, budget: int) -> np.ndarray:
    """Row boundaries ``[0, ..., n]`` cutting rows into blocks of about ``budget`` total ``cost``."""
    n = len(cost)
    if n == 0:
        return np.array([0])
    cum = np.cumsum(np.maximum(cost, 1.0))
    cuts = np.searchsorted(cum, np.arange(budget, cum[-1], budget), side="right")
    return np.unique(np.concatenate([[0], cuts, [n]]))


def _same_pattern(product: sp.spmatrix, pattern: sp.csr_matrix) -> sp.csr_matrix:
    """``product`` on the sparsity pattern of ``pattern`` (products of positive operands share it)."""
    product = sp.csr_matrix(product)
    product.sort_indices()
    if product.nnz == pattern.nnz and np.array_equal(product.indptr, pattern.indptr) and np.array_equal(product.indices, pattern.indices):
        return product
    out = pattern.copy()  # some entry cancelled to 0 or a zero was stored: align entry by entry
    out.data = np.asarray(product[np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr)), pattern.indices]).ravel()
    return out


class _NeighbourhoodCF(Recommender):
    """Shared parameters and fitting of :class:`UserKNN` and :class:`ItemKNN`.

    After ``fit``: ``ratings_`` the training matrix ``R`` (float64 CSR ``(n_users, n_items)``, 1 per
    interaction or the rating), ``observed_`` its observed entries (CSR of ones), ``weights_`` the
    pruned similarity (float64 CSR), and with ratings ``means_`` (float64 tensor) and
    ``deviations_`` (CSR, ``r - r̄`` on the observed entries). Each subclass names the pairs its
    score sums over (``_pairs``), the mean a rating prediction starts from (``_base``) and their
    ``TERM_SOURCE`` / ``MEAN_SOURCE`` labels, from which :meth:`contributions` decomposes a score.
    """

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
        if neighbours is not None and (isinstance(neighbours, bool) or not isinstance(neighbours, int | np.integer)
                                       or neighbours <= 0):
            raise ValueError(f"neighbours must be a positive integer or None, got {neighbours!r}")
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
        self.similarity, self.neighbours, self.shrinkage, self.values = similarity, neighbours, shrinkage, values

    def _fit_matrices(self, split: Split) -> None:
        if len(split.train) == 0:
            raise ValueError(f"split {split.name!r} has no training rows: {type(self).__name__} has nothing to learn from")
        self.remember_split(split)
        r = split.train_csr(self.values).astype(np.float64)
        if self.values == "rating":
            r.data[r.data < 0] = 0.0  # observed = rated > 0, as a rating of 1..5 always is
            r.eliminate_zeros()
            if r.nnz == 0:
                raise ValueError(f"split {split.name!r} has no explicit ratings: use values='binary'")
        r.sort_indices()
        self.ratings_ = r  # R (n_users, n_items)
        self.observed_ = r.copy()
        self.observed_.data[:] = 1.0

    def _means_and_deviations(self, axis: int) -> None:
        """Mean rating per user (``axis=1``) or item (``axis=0``), the global mean where there is none;
        deviations ``r - r̄`` on the observed entries."""
        r = self.ratings_
        total = np.asarray(r.sum(axis=axis)).ravel()
        count = np.asarray(self.observed_.sum(axis=axis)).ravel()
        mu = r.data.sum() / r.nnz
        means = np.where(count > 0, total / np.maximum(count, 1), mu)
        self.means_ = torch.from_numpy(means)
        dev = r.copy()
        own = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr)) if axis == 1 else r.indices
        dev.data = r.data - means[own]
        self.deviations_ = dev

    def contributions(self, user: int, items: Sequence[int] | np.ndarray | torch.Tensor) -> pd.DataFrame:
        """The terms of ``score(user)[i]`` for each ``i`` in ``items``: they add up to the score exactly.

        Binary: ``score(u, i) = Σ_x W · r`` over the neighbour pairs ``x`` (training items ``j`` of
        the user for :class:`ItemKNN`: ``W_ij r_uj``; neighbours ``v`` who have ``i`` for
        :class:`UserKNN`: ``W_uv r_vi``), one term per pair. Ratings: a mean row (``r̄_i``, or
        ``r̄_u``) plus ``W (r − r̄_x) / Σ_{pairs of i} |W|`` per pair (the mean alone without pairs).

        Returns a frame with one row per non-zero term: ``item``, ``source`` (``"item"`` /
        ``"neighbour"`` for a pair, ``"item_mean"`` / ``"user_mean"`` for the mean), ``contributor``
        (the training item or neighbour; ``PAD`` for the mean), ``similarity`` (``W``; NaN for the
        mean), ``value`` (``r``, or the deviation ``r − r̄_x``, or the mean) and ``contribution``.
        """
        self._check_fitted()
        user = int(as_user_tensor([user], self.n_users_)[0])
        idx = item_indices(items, self.n_items_, "items").numpy()
        # the subclass's pairs: items[slot[p]] gets sim[p] · value[p]; _base: the rating means
        slot, who, sim, value = self._pairs(user, idx)
        terms = pd.DataFrame({"item": idx[slot], "source": self.TERM_SOURCE, "contributor": who, "similarity": sim})
        if self.values == "binary":
            return terms.assign(value=value, contribution=sim * value)
        deviation = value - self.means_.numpy()[who]
        den = np.bincount(slot, weights=np.abs(sim), minlength=len(idx))  # > 0 wherever a pair exists
        terms = terms.assign(value=deviation, contribution=sim * deviation / den[slot])
        mean = self._base(user, idx)
        means = pd.DataFrame({"item": idx, "source": self.MEAN_SOURCE, "contributor": PAD, "similarity": np.nan,
                              "value": mean, "contribution": mean})
        return pd.concat([means, terms], ignore_index=True)

    def _batch(self, users: Users) -> np.ndarray:
        self._check_fitted()
        return as_user_tensor(users, self.n_users_).numpy()

    def _user_means(self, u: np.ndarray) -> torch.Tensor:
        return self.means_[torch.from_numpy(u)][:, None]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(similarity={self.similarity!r}, neighbours={self.neighbours}, "
            f"shrinkage={self.shrinkage}, values={self.values!r})"
        )


def _dense(m: sp.spmatrix) -> torch.Tensor:
    return torch.from_numpy(np.asarray(m.toarray()))


def _dense32(m: sp.spmatrix) -> torch.Tensor:
    """A float64 sparse block as a dense float32 tensor (each entry rounded once, as ``.float()`` does)."""
    return torch.from_numpy(m.astype(np.float32).toarray())


def _predict(mean: torch.Tensor, num: sp.spmatrix, den: sp.spmatrix) -> torch.Tensor:
    """``mean + num / den`` where ``den > 0``, else ``mean``; float32 ``(U, n_items)``."""
    num, den = _dense(num), _dense(den)
    mean = mean.expand_as(num)
    return torch.where(den > 0, mean + num / den.where(den > 0, torch.ones_like(den)), mean).float()


class UserKNN(_NeighbourhoodCF):
    """User-based CF: recommend what the most similar users have (see the module docstring)."""

    TERM_SOURCE, MEAN_SOURCE = "neighbour", "user_mean"  # the sources of :meth:`contributions`

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self._fit_matrices(split)
        self.weights_ = sparse_similarity(self.ratings_, self.similarity, self.values, self.shrinkage, self.neighbours)
        if self.values == "rating":
            self._means_and_deviations(axis=1)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        u = self._batch(users)
        w = self.weights_[u]  # (U, n_users), W[u, v]
        if self.values == "binary":
            return _dense32(w @ self.ratings_)
        return _predict(self._user_means(u), w @ self.deviations_, abs(w) @ self.observed_)

    def _pairs(self, user: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Neighbours ``v`` of ``user`` who have ``items[slot]``: ``(slot, v, W_uv, r_vi)``."""
        w = self.weights_[user].toarray().ravel()  # W_uv
        r = sp.csr_matrix(self.ratings_[:, items].T)  # (len(items), n_users): r_vi
        r.sort_indices()
        r = r.tocoo()
        keep = (r.data != 0) & (w[r.col] != 0)
        return r.row[keep], r.col[keep], w[r.col[keep]], r.data[keep]

    def _base(self, user: int, items: np.ndarray) -> np.ndarray:
        return np.full(len(items), float(self.means_[user]))


class ItemKNN(SimilarItems, _NeighbourhoodCF):
    """Item-based CF: recommend items similar to the user's items (see the module docstring)."""

    TERM_SOURCE, MEAN_SOURCE = "item", "item_mean"  # the sources of :meth:`contributions`

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self._fit_matrices(split)
        self.weights_ = sparse_similarity(self.ratings_.T, self.similarity, self.values, self.shrinkage, self.neighbours)
        if self.values == "rating":
            self._means_and_deviations(axis=0)
        self._after_load()
        return self

    def _after_load(self) -> None:
        """``W^T`` (and ``|W|^T`` with ratings) as CSR, which the scores multiply by: derived from ``weights_``."""
        self._weights_t = self.weights_.T.tocsr()  # W^T (n_items, n_items): scores are R_batch W^T
        if self.values == "rating":
            self._abs_weights_t = abs(self._weights_t)

    def score(self, users: Users = None) -> torch.Tensor:
        u = self._batch(users)
        if self.values == "binary":
            return _dense32(self.ratings_[u] @ self._weights_t)
        return _predict(self.means_[None, :], self.deviations_[u] @ self._weights_t,
                        self.observed_[u] @ self._abs_weights_t)

    def _pairs(self, user: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The user's training items ``j`` near ``items[slot]``: ``(slot, j, W_ij, r_uj)``."""
        w = self.weights_[items].tocoo()  # (len(items), n_items): W_ij, rows in order, columns sorted
        r = self.ratings_[user].toarray().ravel()  # r_uj
        keep = (w.data != 0) & (r[w.col] != 0)
        return w.row[keep], w.col[keep], w.data[keep], r[w.col[keep]]

    def _base(self, user: int, items: np.ndarray) -> np.ndarray:
        return self.means_.numpy()[items]

    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        """Rows ``W[items]`` of the pruned similarity, float64 ``(len(items), n_items)``: item ``i``'s
        ``neighbours`` nearest items (the similarity is symmetric before the cut, so a row's top
        entries are the item's own nearest); ``-inf`` off the stored entries, so an item with fewer
        neighbours than ``k`` gets ``PAD`` rather than arbitrary zero-similarity items."""
        rows = self.weights_[items.numpy()].tocoo()
        out = torch.full(rows.shape, -torch.inf, dtype=torch.float64)
        out[torch.from_numpy(rows.row.astype(np.int64)), torch.from_numpy(rows.col.astype(np.int64))] = torch.from_numpy(rows.data)
        return out
