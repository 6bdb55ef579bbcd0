"""Negative sampling: items a user has *not* interacted with, drawn by rejection.

For a user ``u`` with positive set ``P_u``, a negative is an item ``j ∉ P_u`` drawn from

- ``uniform``:    ``P(j) ∝ 1``                     over all items,
- ``popularity``: ``P(j) ∝ count_j ** power``      (``count_j`` = training users of ``j``),

conditioned on ``j ∉ P_u``. Rejection sampling does the conditioning exactly and vectorised:
draw all ``(B, n_negatives)`` candidates at once, find those that are positives of their row's user,
redraw only those, repeat until none is left. The expected number of rounds is small unless a
user owns most of the probability mass; a user for whom no item is left raises ``ValueError``.
Membership is tested on sorted pair keys ``u * n_items + i``, by a binary search in the user's own
run of keys (a compiled loop, ``O(log |P_u|)`` per query), so no dense ``(n_users, n_items)``
matrix is needed.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
import torch


@numba.njit(cache=True, nogil=True)
def _member(keys: np.ndarray, starts: np.ndarray, queries: np.ndarray, n_items: int,
            found: np.ndarray) -> None:  # pragma: no cover - compiled
    """``found[q] = queries[q] ∈ keys``, searching only user ``queries[q] // n_items``'s run
    ``keys[starts[u]:starts[u + 1]]`` (sorted)."""
    for q in range(queries.shape[0]):
        key = queries[q]
        u = key // n_items
        lo, end = starts[u], starts[u + 1]
        hi = end
        while lo < hi:
            mid = (lo + hi) // 2
            if keys[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        found[q] = lo < end and keys[lo] == key


class PositiveSet:
    """The set of ``(user, item)`` index pairs a user must never get as a negative.

    Held as the sorted keys ``u * n_items + i``: a canonical CSR matrix already *is* such a set
    (rows in order, sorted column indices within a row), so :meth:`from_csr` takes
    ``split.seen_csr()`` as it is, with no sort.
    """

    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> None:
        self.n_users, self.n_items = n_users, n_items
        self.keys = torch.unique(torch.as_tensor(users, dtype=torch.long) * n_items + torch.as_tensor(items, dtype=torch.long))
        self.counts = torch.bincount(self.keys // n_items, minlength=n_users)
        self.starts = np.concatenate([[0], np.cumsum(self.counts.numpy())])

    @classmethod
    def from_csr(cls, matrix: sp.spmatrix) -> PositiveSet:
        """The stored entries of a ``(n_users, n_items)`` sparse matrix (e.g. ``split.seen_csr()``)."""
        csr = sp.csr_matrix(matrix)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()  # sorts the indices too
        n_users, n_items = csr.shape
        out = cls.__new__(cls)
        out.n_users, out.n_items = n_users, n_items
        counts = np.diff(csr.indptr).astype(np.int64)
        out.keys = torch.from_numpy(np.repeat(np.arange(n_users, dtype=np.int64), counts) * n_items
                                    + csr.indices.astype(np.int64))
        out.counts = torch.from_numpy(counts)
        out.starts = csr.indptr.astype(np.int64)
        return out

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Bool tensor, same shape as ``items`` (``users`` broadcast against it)."""
        users, items = torch.as_tensor(users, dtype=torch.long), torch.as_tensor(items, dtype=torch.long)
        for name, index, n in (("users", users, self.n_users), ("items", items, self.n_items)):
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
                raise ValueError(f"{name} must lie in [0, {n}), got values in [{int(index.min())}, {int(index.max())}]")
        keys = (users * self.n_items + items).numpy()
        found = np.empty(keys.size, dtype=bool)
        _member(self.keys.numpy(), self.starts, np.ascontiguousarray(keys.ravel()), self.n_items, found)
        return torch.from_numpy(found.reshape(keys.shape))


def sample_negatives(
    users: torch.Tensor,
    n_negatives: int,
    positives: PositiveSet,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    max_rounds: int = 1000,
    check: bool = True,
) -> torch.Tensor:
    """``(B, n_negatives)`` int64 negatives for ``users`` ``(B,)``, never a positive of the row's user.

    ``weights`` ``(n_items,)`` non-negative: sample ``∝ weights`` (``None``: uniformly). Items
    with weight 0 are never drawn. ``check=False`` skips the test that every user has an item
    left to draw (callers that ran :func:`check_feasible` once for all users).
    """
    users = torch.as_tensor(users, dtype=torch.long).reshape(-1)
    n_items = positives.n_items
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (n_items,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be a non-negative ({n_items},) tensor with a positive sum")
    if check:
        check_feasible(users, positives, weights)

    def draw(k: int) -> torch.Tensor:
        if weights is None:
            return torch.randint(n_items, (k,), generator=generator)
        return torch.multinomial(weights, k, replacement=True, generator=generator)

    out = draw(len(users) * n_negatives).reshape(len(users), n_negatives)
    rows = users[:, None].expand_as(out)
    bad = positives.contains(rows, out)
    for _ in range(max_rounds):
        k = int(bad.sum())
        if k == 0:
            return out
        out[bad] = draw(k)
        bad[bad.clone()] = positives.contains(rows[bad], out[bad])
    raise RuntimeError(f"rejection sampling did not finish in {max_rounds} rounds")


def check_feasible(users: torch.Tensor, positives: PositiveSet, weights: torch.Tensor | None) -> None:
    """Raise if some user has no item left to draw (all items, or all weighted items, positive)."""
    if weights is None:
        owned, n_drawable = positives.counts, positives.n_items
    else:
        drawable = weights > 0
        keys = positives.keys[drawable[positives.keys % positives.n_items]]
        owned, n_drawable = torch.bincount(keys // positives.n_items, minlength=positives.n_users), int(drawable.sum())
    u = torch.unique(users)
    full = u[owned[u] >= n_drawable]
    if full.numel():
        raise ValueError(f"user index {int(full[0])} has no item left to sample as a negative "
                         f"({full.numel()} such users): every drawable item is one of their positives")
