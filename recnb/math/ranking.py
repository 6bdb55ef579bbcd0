"""Ranking items by score: full argsort and top-k, with a deterministic tie-break.

The documents write ranking as ``argsort(similarity)`` (ascending!) and, elsewhere, as
``argsort()[-top_n:][::-1]``. Here ranking is always *descending* by score, and ties are broken
by the lower item index first, so the same scores always give the same list.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import scipy.sparse as sp
import torch

PAD = -1  # index used where fewer than k items remain after exclusion and thresholding


class Ranking(NamedTuple):
    """Ranked item indices and their scores, best first.

    ``indices``: ``(n_users, k)`` int64; ``scores``: ``(n_users, k)``. Where a user has fewer
    than ``k`` rankable items, the tail is padded with index ``PAD`` (-1) and score ``-inf``.
    """

    indices: torch.Tensor
    scores: torch.Tensor


Exclusion = torch.Tensor | np.ndarray | sp.sparray | sp.spmatrix | Sequence[Sequence[int]]


def _sparse_positions(exclude: sp.sparray | sp.spmatrix, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the stored entries of a sparse ``(n_rows, n_items)`` exclusion, as int64 tensors."""
    if tuple(exclude.shape) != tuple(shape):
        raise ValueError(f"exclude matrix has shape {tuple(exclude.shape)}, scores have {tuple(shape)}")
    csr = sp.csr_matrix(exclude)
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return torch.from_numpy(rows), torch.from_numpy(csr.indices.astype(np.int64))


def _as_mask(exclude: torch.Tensor | Sequence[Sequence[int]] | None, shape: torch.Size) -> torch.Tensor | None:
    """Turn an exclusion given as a bool mask or as per-row index lists into a bool mask.

    In index lists, ``PAD`` entries are skipped (so a :class:`Ranking`'s indices can be passed
    back as an exclusion); any other index outside ``0..n_items-1`` raises ``IndexError``.
    """
    if exclude is None:
        return None
    if isinstance(exclude, torch.Tensor) and exclude.dtype == torch.bool:
        if exclude.shape != shape:
            raise ValueError(f"exclude mask has shape {tuple(exclude.shape)}, scores have {tuple(shape)}")
        return exclude
    if len(exclude) != shape[0]:
        raise ValueError(f"exclude has {len(exclude)} index lists, scores have {shape[0]} rows")
    mask = torch.zeros(shape, dtype=torch.bool)
    for row, items in enumerate(exclude):
        idx = torch.as_tensor(list(items), dtype=torch.long).reshape(-1)
        idx = idx[idx != PAD]
        if idx.numel() and (idx.min() < 0 or idx.max() >= shape[1]):
            bad = idx[(idx < 0) | (idx >= shape[1])][0].item()
            raise IndexError(f"exclude row {row} holds item index {bad}, outside 0..{shape[1] - 1}")
        mask[row, idx] = True
    return mask


def rank(
    scores: torch.Tensor,
    k: int | None = None,
    exclude: Exclusion | None = None,
    threshold: float | None = None,
    in_place: bool = False,
) -> Ranking:
    """Rank items by descending score for each row of ``scores``.

    ``scores``: ``(n_items,)`` or ``(n_users, n_items)``; a 1-D input gives 1-D outputs.
    ``k``: how many to return (``None`` = all, a full argsort); ``torch.topk`` is used when
    ``k < n_items``, which costs ``O(n log k)`` per row instead of ``O(n log n)``.
    ``exclude``: items never returned -- a bool mask (torch or numpy) shaped like ``scores``; a
    scipy sparse matrix shaped like ``scores`` whose stored entries are excluded (e.g. a batch's
    rows of the CSR seen matrix: only its ``nnz`` positions are touched, no dense mask is built);
    or one index list per row (a 1-D ``scores`` takes one flat list; ``PAD`` entries are skipped).
    ``threshold``: items scoring strictly below it are not returned.
    ``in_place``: write ``-inf`` over the excluded entries of ``scores`` itself instead of a copy
    (for a caller that owns ``scores``, as :meth:`~recnb.models.base.Recommender.recommend` does:
    at 1024 × 50,000 scores the copy costs as much as the top-k).

    Ties are broken by the lower item index first. Items scoring ``-inf`` count as excluded.
    Integer scores are ranked as float64. A NaN among the rankable scores raises ``ValueError``
    (it is found among the selected values: ``topk`` and ``sort`` put NaN first). Returns a
    :class:`Ranking`.
    """
    if scores.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D (n_items,) or 2-D (n_users, n_items), got shape {tuple(scores.shape)}")
    squeeze = scores.ndim == 1
    s = scores.unsqueeze(0) if squeeze else scores
    n_items = s.shape[1]
    k = n_items if k is None else k
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    k = min(k, n_items)
    if not torch.is_floating_point(s):
        s, in_place = s.double(), True  # already a copy
    if sp.issparse(exclude):
        if squeeze:
            exclude = sp.csr_matrix(exclude).reshape(1, -1)
        rows, cols = _sparse_positions(exclude, s.shape)
        s = s if in_place else s.clone()
        s[rows, cols] = -torch.inf
        exclude, in_place = None, True
    if isinstance(exclude, np.ndarray) and exclude.dtype == np.bool_:
        exclude = torch.from_numpy(exclude)
    if squeeze and exclude is not None:
        exclude = exclude.unsqueeze(0) if isinstance(exclude, torch.Tensor) and exclude.dtype == torch.bool else [exclude]
    mask = _as_mask(exclude, s.shape)
    if threshold is not None:
        mask = s < threshold if mask is None else mask | (s < threshold)
    if mask is not None:
        s = s.masked_fill_(mask, -torch.inf) if in_place else s.masked_fill(mask, -torch.inf)

    if k == n_items:
        values, indices = torch.sort(s, dim=1, descending=True, stable=True)
        _refuse_nan(values)
    else:
        values, indices = _topk_stable(s, k)
    indices = indices.masked_fill(values == -torch.inf, PAD)
    if squeeze:
        return Ranking(indices[0], values[0])
    return Ranking(indices, values)


def _refuse_nan(selected: torch.Tensor) -> None:
    """Raise if a row's selection starts with NaN: ``sort`` and ``topk`` order NaN above every
    number, so a rankable NaN anywhere in a row is its first selected value (checked on ``(U, k)``
    instead of the whole ``(U, n_items)`` score matrix)."""
    if selected.numel() and torch.isnan(selected[:, 0]).any():
        raise ValueError("scores contain NaN; rank needs comparable numbers")


def _topk_stable(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk`` with ties broken by the lower index (topk itself makes no such promise).

    Fast path: take ``torch.topk``'s k items and order them by (score desc, index asc). That is the
    answer unless a tie at the k-th score is cut by the boundary (the (k+1)-th score equals the
    k-th); only those rows are redone, keeping the lowest-indexed of the tied items.
    """
    if k == 0:
        empty = s[:, :0]
        return empty, empty.long()
    vals, cols = torch.topk(s, k + 1, dim=1)  # called with k < n_items, so k + 1 items exist
    _refuse_nan(vals)
    cut = vals[:, k] == vals[:, k - 1]  # an item left out ties with the k-th: the boundary cuts a tie
    vals, cols, kth = vals[:, :k], cols[:, :k], vals[:, k - 1 : k]
    if cut.any():
        rows = s[cut]
        above, tied = rows > kth[cut], rows == kth[cut]
        need = k - above.sum(dim=1, keepdim=True)  # how many of the tied items fit in the top k
        take = above | (tied & (torch.cumsum(tied, dim=1) <= need))
        cols = cols.clone()
        cols[cut] = take.nonzero()[:, 1].reshape(-1, k)
    cols = torch.sort(cols, dim=1).values  # ascending index, then a stable sort by score
    vals = torch.gather(s, 1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return torch.gather(vals, 1, order), torch.gather(cols, 1, order)


def partition_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` column indices per row, best first, by selection then a sort of the ``k``: ``(U, k)``.

    ``np.argpartition`` puts the ``k`` largest of each row first in ``O(n)`` (in no order), and
    only those ``k`` are then sorted: ``O(n + k log k)`` per row instead of a full sort's
    ``O(n log n)``. ``scores``: ``(U, n)`` with ``1 <= k < n``. Ties among the selected items keep a
    stable order; which of several tied items at the cut is selected is up to ``argpartition``
    (:func:`rank` breaks such ties by the lower index).
    """
    s = np.asarray(scores)
    if s.ndim != 2 or not 1 <= k < s.shape[1]:
        raise ValueError(f"scores must be (U, n) and k must lie in 1..n-1; got shape {s.shape} and k={k}")
    part = np.argpartition(-s, k, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable"), axis=1)


def keep_top_k_per_row(sim: torch.Tensor, k: int | None, exclude_diagonal: bool = True) -> torch.Tensor:
    """Keep each row's ``k`` largest off-diagonal entries of ``sim``; every other entry is set to 0.

    ``sim``: ``(n, m)`` (square when ``exclude_diagonal``); ``k``: how many to keep per row
    (``None``: all of them; ``k`` larger than the row keeps the whole row). The entries are chosen
    by :func:`rank`: largest first, ties to the lower column index, so a negative entry is kept
    when the row has fewer than ``k`` larger ones. With ``exclude_diagonal`` (a row is never its
    own neighbour) the diagonal is never kept and is 0 in the result. Returns a new tensor of
    ``sim``'s shape and dtype, no longer symmetric in general.
    """
    if sim.ndim != 2:
        raise ValueError(f"sim must be a 2-D (n, m) matrix, got shape {tuple(sim.shape)}")
    if k is not None and k < 0:
        raise ValueError(f"k must be None or >= 0, got {k}")
    n, m = sim.shape
    if exclude_diagonal and n != m:
        raise ValueError(f"exclude_diagonal needs a square matrix, got shape {tuple(sim.shape)}")
    exclude = torch.eye(n, dtype=torch.bool) if exclude_diagonal else None
    top = rank(sim, k=k, exclude=exclude)  # k=None or k > m: the whole row, diagonal excluded
    kept = top.indices != PAD
    rows = torch.arange(n).unsqueeze(1).expand_as(top.indices)
    out = torch.zeros_like(sim)
    out[rows[kept], top.indices[kept]] = top.scores[kept].to(sim.dtype)
    return out


def indices(
    values: Sequence[int] | np.ndarray | torch.Tensor,
    n: int,
    name: str,
    noun: str = "item",
    distinct: bool = False,
    hint: str = "",
) -> torch.Tensor:
    """``values`` as a 1-D int64 tensor of ``noun`` indices in ``0..n-1``; raises naming ``name`` otherwise.

    The one check of index arguments (item indices here, user indices in
    :func:`recnb.models.base.as_user_tensor`). Any shape is flattened. Negative indices are refused
    rather than counted from the end (``-1`` is ``PAD`` here, never "the last item").
    ``TypeError`` for anything but integers (booleans -- a mask is not a list of indices --, floats,
    strings; ``hint`` is appended to that message), ``IndexError`` for an index out of range,
    ``ValueError`` for a repeated index when ``distinct``.
    """
    flat = values.reshape(-1) if isinstance(values, torch.Tensor) else np.asarray(values).reshape(-1)
    if isinstance(flat, torch.Tensor):
        integer = not (flat.dtype == torch.bool or torch.is_floating_point(flat) or torch.is_complex(flat))
    else:
        integer = flat.dtype.kind in "iu"
    if len(flat) == 0:  # no index at all, whatever dtype np.asarray([]) gives it
        return torch.zeros(0, dtype=torch.long)
    if not integer:
        raise TypeError(f"{name} must hold integer {noun} indices in 0..{n - 1}, got dtype {flat.dtype} "
                        f"(first value {flat[:1].tolist()[0]!r}){hint}")
    idx = flat.long() if isinstance(flat, torch.Tensor) else torch.from_numpy(flat.astype(np.int64))
    if idx.min() < 0 or idx.max() >= n:
        bad = idx[(idx < 0) | (idx >= n)][0].item()
        raise IndexError(f"{name} holds {noun} index {bad}, outside 0..{n - 1}")
    if distinct:
        uniq, counts = torch.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{name} holds {noun} index {uniq[counts > 1][0].item()} more than once; list each {noun} once")
    return idx


def item_indices(
    values: Sequence[int] | np.ndarray | torch.Tensor, n_items: int, name: str = "items", distinct: bool = False
) -> torch.Tensor:
    """``values`` as a 1-D int64 tensor of item indices in ``0..n_items-1``: :func:`indices` with ``noun="item"``."""
    return indices(values, n_items, name, "item", distinct)
