"""Implicit-feedback ALS: confidence-weighted matrix factorisation (Hu, Koren & Volinsky 2008).

**Model.** From the training matrix ``R`` ``(n_users, n_items)`` (here the binary one, ``r_ui = 1``
for a training pair), every cell is a target with a confidence::

    p_ui = 1[r_ui > 0]          (preference: 1 on the observed cells, 0 everywhere else)
    c_ui = 1 + α r_ui           (confidence: 1 + α on the observed cells, 1 elsewhere)

and the factors ``X`` ``(n_users, d)`` (rows ``x_u``) and ``Y`` ``(n_items, d)`` (rows ``y_i``)
minimise, over *all* ``n_users × n_items`` cells::

    L(X, Y) = Σ_ui c_ui (p_ui − x_uᵀ y_i)²  +  λ (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)

The score of user ``u`` for item ``i`` is ``x_uᵀ y_i``.

**Alternating least squares.** With ``Y`` fixed, ``L`` is a sum of independent ridge regressions,
one per user; setting the gradient in ``x_u`` to zero gives the normal equations (``C_u =
diag(c_u·)`` ``(n_items, n_items)``, ``p_u`` ``(n_items,)``)::

    (Yᵀ C_u Y + λ I) x_u = Yᵀ C_u p_u

and symmetrically ``(Xᵀ C_i X + λ I) y_i = Xᵀ C_i p_i`` for the items given the users (the same
solver on the transposed matrix). One *iteration* solves every user, then every item; each
half-step minimises ``L`` exactly in one block, so ``L`` never increases.

**The Gram trick.** ``Yᵀ C_u Y`` looks like ``O(n_items d²)`` per user, but ``C_u − I`` is zero off
the user's ``n_u`` observed items, so::

    Yᵀ C_u Y = YᵀY + Yᵀ (C_u − I) Y = YᵀY + Σ_{i ∈ I_u} α r_ui y_i y_iᵀ
    Yᵀ C_u p_u = Σ_{i ∈ I_u} (1 + α r_ui) y_i

``YᵀY`` ``(d, d)`` is computed once per half-step (``O(n_items d²)``), each user adds ``O(n_u d²)``
and a ``d × d`` Cholesky solve ``O(d³)``: a sweep costs ``O(nnz d² + (n_users + n_items) d³)``
(:func:`als_solve_cholesky`).

**Conjugate gradient** (Takács, Pilászy & Tikk 2011, "Applications of the conjugate gradient method
for implicit feedback collaborative filtering"; ``implicit``'s ``use_cg``): the system matrix
``A_u = YᵀY + λI + Yᵀ(C_u − I)Y`` is never formed; CG needs only products ``A_u v = (YᵀY + λI) v +
Σ_{i∈I_u} α r_ui (y_iᵀ v) y_i``, ``O(n_u d + d²)`` each. Warm-started from the previous factors, a
few CG steps per row (3 by default) are enough, so a sweep costs ``O(steps · (nnz d + n d²))``
(:func:`als_solve_cg`). Each CG step from any start lowers the row's quadratic, so ``L`` still
never increases.

**Batching.** Rows are sorted by their number of observed entries and cut into batches of similar
length; each batch's entries are padded to a dense ``(B, L)`` block of column indices and
weights, gathered as ``Y[cols]`` ``(B, L, d)``, and solved with batched matrix products
(``torch.bmm``) and a batched Cholesky: no Python loop over users.

**Against ``implicit``'s ALS** (0.7, ``implicit.cpu.als``; :class:`recnb.studies.bench.ImplicitALS`):
the same objective, normal equations and solvers (Cholesky, or 3 warm-started CG steps per row);
where the conventions differ:

- *Confidence*: implicit multiplies the matrix by its ``alpha`` and takes the result as the
  confidence itself (``c_ui = alpha_implicit · r_ui`` on observed cells, 1 elsewhere), not
  ``1 + α r_ui``. On a binary matrix the two agree when ``alpha_implicit = 1 + α``: implicit's
  default ``alpha=1`` is recnb's ``alpha=0`` (no extra weight on the observed cells).
- *Regularisation*: both use the plain ``λ (Σ‖x_u‖² + Σ‖y_i‖²)`` (not scaled by the rows'
  counts); the same ``l2`` is implicit's ``regularization``.
- *Initialisation*: both draw every factor uniformly from ``[0, 0.01)``, recnb from a
  ``torch.Generator`` seeded by ``seed``, implicit from ``numpy.random.default_rng(random_state)``:
  the same distribution, different draws. A user or item with no training entry gets the zero
  vector in both (the exact solution, since then ``Yᵀ C_u p_u = 0``).
- *Negative entries*: implicit reads ``r_ui < 0`` as a disliked item (``p_ui = 0`` with confidence
  ``|c_ui|``); recnb requires ``r_ui >= 0``.
- *Stopping*: implicit's CG stops a row once ``‖r‖² < 1e-20``; recnb's takes every step (further
  steps on a solved row move it by rounding only).
- *Threads*: implicit spreads rows over OpenMP threads; recnb spreads row batches over
  ``threads`` Python worker threads, torch running on one thread in each (:meth:`ALSRecommender.fit`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch
from tqdm import tqdm

from recnb.data.schema import SplitLike, as_split
from recnb.models.base import ItemVectors, Users, as_user_tensor
from recnb.training import check_threads, torch_threads

SOLVERS = ("cholesky", "cg")
#: floats gathered per batch of rows (``B · max(L, d) · d``, 4 MB of float32): large enough that
#: per-operation overhead is small, small enough to stay in cache over the CG steps
BATCH_FLOATS = 1 << 20
#: a batch's longest row is at most this many times its shortest (bounds the padding)
BATCH_SPREAD = 1.25


@dataclass(frozen=True)
class RowBatch:
    """One batch of rows of a sparse matrix, padded to the batch's longest row.

    ``rows`` ``(B,)`` int64: the rows solved; ``cols`` ``(B, L)`` int64: their column indices
    (padding: column 0); ``weight`` ``(B, L)``: ``c_ui − 1 = α r_ui`` (padding: 0); ``target``
    ``(B, L)``: ``c_ui p_ui = (1 + α r_ui) 1[r_ui > 0]`` (padding: 0).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    weight: torch.Tensor
    target: torch.Tensor


def row_batches(csr: sp.spmatrix, alpha: float, d: int, dtype: torch.dtype = torch.float32,
                batch_floats: int = BATCH_FLOATS, spread: float = BATCH_SPREAD) -> list[RowBatch]:
    """The non-empty rows of ``csr`` ``(n_rows, n_cols)`` in padded batches of similar length.

    Rows are sorted by their number of stored entries ``n_u`` (ascending, ties by row index) and
    cut so that ``B · max(L, d) · d <= batch_floats`` (``L`` the batch's longest row) and ``L <=
    spread · n_first`` (its shortest), at least one row per batch: at most a fraction ``spread − 1``
    of a batch's block is padding, and the block stays in cache for the CG steps. Entries ``r_ui``
    must be ``>= 0``; they give ``weight = α r_ui`` and ``target = (1 + α r_ui) 1[r_ui > 0]`` in
    ``dtype``. Empty rows are left out (their solution is 0).
    """
    csr = sp.csr_matrix(csr)
    if csr.nnz and csr.data.min() < 0:
        raise ValueError(f"the matrix must hold values r_ui >= 0, got a minimum of {csr.data.min()}")
    lengths = np.diff(csr.indptr)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    if len(order) == 0:
        return []
    longest = np.maximum(lengths[order], d)  # cost of a batch ending at each row, per row
    out = []
    start = 0
    while start < len(order):
        # the batch's longest row is its last: B rows cost B · longest[last] · d floats
        # every row costs at least d · d floats: no batch holds more than batch_floats // d² rows
        ends = np.arange(start + 1, min(len(order), start + batch_floats // (d * d)) + 1)
        fits = ((ends - start) * longest[ends - 1] * d <= batch_floats) & (
            lengths[order[ends - 1]] <= spread * lengths[order[start]])
        stop = start + max(1, int(np.count_nonzero(fits)))  # fits is True then False (lengths ascend)
        rows = order[start:stop]
        width = int(lengths[rows].max())
        offset = np.arange(width)[None, :]
        valid = offset < lengths[rows][:, None]
        where = np.where(valid, csr.indptr[rows][:, None] + offset, 0)
        r = np.where(valid, csr.data[where], 0.0)
        out.append(RowBatch(
            rows=torch.from_numpy(rows.astype(np.int64)),
            cols=torch.from_numpy(np.where(valid, csr.indices[where], 0).astype(np.int64)),
            weight=torch.from_numpy(alpha * r).to(dtype),
            target=torch.from_numpy((1.0 + alpha * r) * (r > 0)).to(dtype),
        ))
        start = stop
    return out


def _check_solver_inputs(factors: torch.Tensor, csr: sp.spmatrix, alpha: float, l2: float) -> None:
    if factors.ndim != 2 or factors.shape[0] != csr.shape[1]:
        raise ValueError(f"the fixed factors must be (n_cols, d) = ({csr.shape[1]}, d) for a matrix of shape "
                         f"{csr.shape}, got {tuple(factors.shape)}")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")


def _gram(factors: torch.Tensor, l2: float) -> torch.Tensor:
    """``YᵀY + λI`` ``(d, d)``: the part of every row's system matrix that the rows share."""
    d = factors.shape[1]
    return factors.T @ factors + l2 * torch.eye(d, dtype=factors.dtype)


def _gather(factors: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``factors[cols]`` ``(B, L, d)`` for ``cols`` ``(B, L)`` (``index_select``: several times faster than
    advanced indexing on the CPU)."""
    return torch.index_select(factors, 0, cols.reshape(-1)).reshape(*cols.shape, factors.shape[1])


def _rhs(batch: RowBatch, gathered: torch.Tensor) -> torch.Tensor:
    """``Yᵀ C_u p_u = Σ_i c_ui p_ui y_i`` for every row of the batch: ``(B, d)``."""
    return torch.bmm(batch.target[:, None, :], gathered)[:, 0]


def _each(batches: list[RowBatch], work: Callable[[RowBatch], None], pool: Executor | None) -> None:
    """``work(batch)`` for every batch: in this thread, or spread over ``pool``'s worker threads."""
    if pool is None:
        for batch in batches:
            work(batch)
    else:
        for _ in pool.map(work, batches):  # re-raises a worker's exception here
            pass


def _solve_cholesky(factors: torch.Tensor, batches: list[RowBatch], n_rows: int, l2: float,
                    pool: Executor | None = None) -> torch.Tensor:
    gram = _gram(factors, l2)
    out = torch.zeros(n_rows, factors.shape[1], dtype=factors.dtype)

    def work(batch: RowBatch) -> None:
        y = _gather(factors, batch.cols)  # (B, L, d)
        a = torch.baddbmm(gram.expand(len(batch.rows), -1, -1), y.transpose(1, 2), y * batch.weight[:, :, None])
        chol = torch.linalg.cholesky(a)  # (B, d, d), lower
        out[batch.rows] = torch.cholesky_solve(_rhs(batch, y)[:, :, None], chol)[:, :, 0]

    _each(batches, work, pool)
    return out


def _cg_product(v: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """``A_u v = (YᵀY + λI) v + Σ_i α r_ui (y_iᵀ v) y_i`` for every row of a batch: ``(B, d)``.

    ``v`` ``(B, d)``; ``y`` ``(B, L, d)`` the rows' gathered item factors; ``weight`` ``(B, 1, L)``
    ``α r_ui``; ``gram`` ``(d, d)`` ``YᵀY + λI``. ``y_iᵀ v`` is taken as the row vector ``vᵀ y_t``
    (``y_t`` a transposed view), about twice as fast in ``bmm`` as the column ``y v``.
    """
    along = torch.bmm(v[:, None, :], y.transpose(1, 2))  # (B, 1, L): y_iᵀ v
    return torch.addmm(torch.bmm(weight * along, y)[:, 0], v, gram)


def _solve_cg(factors: torch.Tensor, batches: list[RowBatch], start: torch.Tensor, l2: float, steps: int,
              pool: Executor | None = None) -> torch.Tensor:
    gram = _gram(factors, l2)
    tiny = torch.finfo(factors.dtype).tiny  # a converged row (‖r‖² = 0) takes steps of 0, not 0/0
    out = torch.zeros_like(start)  # empty rows: the exact solution 0

    def work(batch: RowBatch) -> None:
        y = _gather(factors, batch.cols)  # (B, L, d)
        weight = batch.weight[:, None, :]  # (B, 1, L)
        x = start[batch.rows]  # a copy (advanced indexing)
        r = _rhs(batch, y) - _cg_product(x, y, weight, gram)  # residual b − A x
        p = r
        rs = torch.linalg.vecdot(r, r)
        for _ in range(steps):
            ap = _cg_product(p, y, weight, gram)
            step = (rs / torch.linalg.vecdot(p, ap).clamp_min(tiny))[:, None]
            x.addcmul_(step, p)
            r = torch.addcmul(r, step, ap, value=-1.0)
            rs_new = torch.linalg.vecdot(r, r)
            p = torch.addcmul(r, (rs_new / rs.clamp_min(tiny))[:, None], p)
            rs = rs_new
        out[batch.rows] = x

    _each(batches, work, pool)
    return out


def als_solve_cholesky(factors: torch.Tensor, csr: sp.spmatrix, alpha: float, l2: float) -> torch.Tensor:
    """Exact ALS half-step: every row's ``x_u = (YᵀC_uY + λI)⁻¹ YᵀC_u p_u`` by Cholesky.

    ``factors``: the fixed side ``Y`` ``(n_cols, d)``; ``csr``: ``R`` ``(n_rows, n_cols)`` with
    ``r_ui >= 0`` (``c_ui = 1 + α r_ui``, ``p_ui = 1[r_ui > 0]``). Users given items: ``(Y,
    R)``; items given users: ``(X, R.T.tocsr())``. The system matrix is built with the Gram
    trick ``YᵀY + λI + Σ_{i∈I_u} α r_ui y_i y_iᵀ``, ``O(nnz d² + n_rows d³)``. Computes in the
    dtype of ``factors``; returns the new factors ``(n_rows, d)`` (rows with no entry: 0).
    """
    _check_solver_inputs(factors, csr, alpha, l2)
    return _solve_cholesky(factors, row_batches(csr, alpha, factors.shape[1], factors.dtype), csr.shape[0], l2)


def als_solve_cg(factors: torch.Tensor, csr: sp.spmatrix, start: torch.Tensor, alpha: float, l2: float,
                 steps: int = 3) -> torch.Tensor:
    """Approximate ALS half-step: ``steps`` conjugate-gradient steps per row from ``start``.

    Solves the same systems ``A_u x_u = b_u`` as :func:`als_solve_cholesky` (``A_u = YᵀC_uY + λI``,
    ``b_u = YᵀC_u p_u``) without forming ``A_u``: from ``x⁰ = start[u]``, ``r⁰ = p⁰ = b_u − A_u x⁰``,
    each step takes ``a = ‖r‖² / pᵀA_u p``, ``x += a p``, ``r −= a A_u p``, ``p = r + (‖r_new‖² /
    ‖r‖²) p`` (every row takes every step, see the module docstring). ``A_u p = (YᵀY + λI) p + Σ_{i∈I_u} α r_ui (y_iᵀ p)
    y_i`` costs ``O(n_u d + d²)``. In exact arithmetic ``d`` steps reach the exact solution.

    ``factors``: ``Y`` ``(n_cols, d)``; ``csr``: ``R`` ``(n_rows, n_cols)``; ``start``: the warm
    start ``(n_rows, d)`` (the previous factors), not modified. Returns ``(n_rows, d)`` in the dtype
    of ``factors`` (rows with no entry: 0, their exact solution).
    """
    _check_solver_inputs(factors, csr, alpha, l2)
    if tuple(start.shape) != (csr.shape[0], factors.shape[1]):
        raise ValueError(f"start must be (n_rows, d) = ({csr.shape[0]}, {factors.shape[1]}), "
                         f"got {tuple(start.shape)}")
    _check_positive_int("steps", steps)
    batches = row_batches(csr, alpha, factors.shape[1], factors.dtype)
    return _solve_cg(factors, batches, start.to(factors.dtype), l2, steps)


def als_objective(csr: sp.spmatrix, user_factors: torch.Tensor, item_factors: torch.Tensor, alpha: float,
                  l2: float) -> float:
    """``L = Σ_ui c_ui (p_ui − x_uᵀy_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²)`` over all cells, no dense matrix.

    Split into the all-cells part with ``c = 1, p = 0`` and a correction on the stored entries::

        Σ_ui (x_uᵀy_i)² = Σ_u x_uᵀ (YᵀY) x_u = 1ᵀ((X YᵀY) ⊙ X)1,
        + Σ_{(u,i) stored} [c_ui (p_ui − s_ui)² − s_ui²],   s_ui = x_uᵀ y_i

    ``csr``: ``R`` ``(n_users, n_items)``, ``r_ui >= 0``; ``user_factors`` ``(n_users, d)``,
    ``item_factors`` ``(n_items, d)``. ``O(nnz d + (n_users + n_items) d²)``, in float64.
    """
    coo = sp.coo_matrix(csr)
    x, y = user_factors.double(), item_factors.double()
    r = torch.from_numpy(coo.data.astype(np.float64))
    s = (x[torch.from_numpy(coo.row.astype(np.int64))] * y[torch.from_numpy(coo.col.astype(np.int64))]).sum(1)
    c, p = 1.0 + alpha * r, (r > 0).double()
    loss = ((x @ (y.T @ y)) * x).sum() + (c * (p - s) ** 2 - s**2).sum()
    return float(loss + l2 * ((x * x).sum() + (y * y).sum()))


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ALSRecommender(ItemVectors):
    """Implicit-feedback ALS (see the module docstring): ``score(u, i) = x_uᵀ y_i``.

    ``embedding_dim``: ``d``; ``l2``: ``λ`` (> 0); ``alpha``: ``α`` in ``c_ui = 1 + α r_ui``
    (>= 0); ``iterations``: sweeps (users then items); ``solver``: ``"cholesky"`` (exact
    half-steps) or ``"cg"`` (``cg_steps`` warm-started conjugate-gradient steps per row, as
    implicit); ``seed``: the ``torch.Generator`` seed of the initial factors (uniform on ``[0,
    0.01)``); ``threads``: worker threads over the row batches while fitting (``None``: torch's
    current count; torch itself held at one thread meanwhile and restored afterwards, see
    :meth:`fit`); ``progress``: a tqdm bar over iterations.

    Defaults chosen on validation splits (``holdout_validation(random_holdout(data, ratio,
    seed=0), 0.25, seed=0)``, NDCG@10) of MovieLens-100k (0.269) and the synthetic shop (0.218)
    from ``embedding_dim`` {32, 64} × ``l2`` {3, 10, 30, 100, 300} × ``alpha`` {0, 1, 3, 10, 30}
    (not every combination): a larger ``α`` wants a larger ``λ``; ``l2=10, alpha=0`` (implicit's
    ``alpha=1``, the :class:`~recnb.studies.bench.ImplicitALS` adapter's choice) gave 0.259 and 0.210.
    ``fit`` uses ``split.train_csr("binary")``; afterwards ``user_factors_`` ``(n_users, d)`` and
    ``item_factors_`` ``(n_items, d)`` are float32 tensors (:func:`als_objective` gives their ``L``).
    """

    def __init__(
        self,
        embedding_dim: int = 32,
        l2: float = 30.0,
        alpha: float = 3.0,
        iterations: int = 15,
        solver: str = "cg",
        cg_steps: int = 3,
        seed: int = 0,
        threads: int | None = None,
        progress: bool = False,
    ) -> None:
        _check_positive_int("embedding_dim", embedding_dim)
        _check_positive_int("iterations", iterations)
        _check_positive_int("cg_steps", cg_steps)
        if isinstance(l2, bool) or not isinstance(l2, int | float | np.number) or not l2 > 0:
            raise ValueError(f"l2 must be > 0, got {l2!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.number) or not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        if threads is not None:
            check_threads(threads)
        self.embedding_dim, self.l2, self.alpha, self.iterations = embedding_dim, l2, alpha, iterations
        self.solver, self.cg_steps, self.seed, self.threads = solver, cg_steps, seed, threads
        self.progress = progress
        self.user_factors_: torch.Tensor | None = None
        self.item_factors_: torch.Tensor | None = None

    def fit(self, split: SplitLike) -> Self:
        """Alternate ``iterations`` times: every user from the items, then every item from the users.

        Row batches are spread over ``threads`` worker threads (default: torch's current count),
        each running torch on one thread (held at 1 while fitting, restored afterwards), as
        implicit spreads rows over its OpenMP threads: thousands of small batched operations
        would each wait on every thread of torch's own pool, which stalls whenever another process
        holds a core.
        """
        workers = torch.get_num_threads() if self.threads is None else self.threads
        split = as_split(split)
        self.remember_split(split)
        r = split.train_csr("binary")  # (n_users, n_items) float32, r_ui = 1 on training pairs
        rt = r.T.tocsr()
        d, alpha, l2 = self.embedding_dim, float(self.alpha), float(self.l2)
        with ExitStack() as stack:
            stack.enter_context(torch_threads(1))
            pool = stack.enter_context(ThreadPoolExecutor(workers)) if workers > 1 else None
            generator = torch.Generator().manual_seed(int(self.seed))
            x = torch.rand(r.shape[0], d, generator=generator) * 0.01
            y = torch.rand(r.shape[1], d, generator=generator) * 0.01
            users, items = row_batches(r, alpha, d), row_batches(rt, alpha, d)
            for _ in tqdm(range(self.iterations), desc="ALS", unit="it", disable=not self.progress):
                if self.solver == "cholesky":
                    x = _solve_cholesky(y, users, r.shape[0], l2, pool)
                    y = _solve_cholesky(x, items, r.shape[1], l2, pool)
                else:
                    x = _solve_cg(y, users, x, l2, self.cg_steps, pool)
                    y = _solve_cg(x, items, y, l2, self.cg_steps, pool)
        self.user_factors_, self.item_factors_ = x, y
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        """``X[users] Yᵀ`` ``(U, n_items)`` float32, a new tensor."""
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return self.user_factors_[u] @ self.item_factors_.T

    def item_vectors(self) -> torch.Tensor:
        """The item factors ``y_i``: ``item_factors_`` ``(n_items, d)``."""
        return self.item_factors_

    def __repr__(self) -> str:
        return (f"ALSRecommender(embedding_dim={self.embedding_dim}, l2={self.l2:g}, alpha={self.alpha:g}, "
                f"iterations={self.iterations}, solver={self.solver!r})")
