"""Ranking items by score: full argsort and top-k, with a deterministic tie-break.

The documents write ranking as ``argsort(similarity)`` (ascending!) and, elsewhere, as
``argsort()[-top_n:][::-1]``. Here ranking is always *descending* by score, and ties are broken
by the lower item index first, so the same scores always give the same list.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

PAD = -1  # index used where fewer than k items remain after exclusion and thresholding


class Ranking(NamedTuple):
    """Ranked item indices and their scores, best first.

    ``indices``: ``(n_users, k)`` int64; ``scores``: ``(n_users, k)``. Where a user has fewer
    than ``k`` rankable items, the tail is padded with index ``PAD`` (-1) and score ``-inf``.
    """

    indices: torch.Tensor
    scores: torch.Tensor


def _as_mask(exclude: torch.Tensor | Sequence[Sequence[int]] | None, shape: torch.Size) -> torch.Tensor | None:
    """Turn an exclusion given as a bool mask or as per-user index lists into a bool mask."""
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
        mask[row, torch.as_tensor(list(items), dtype=torch.long)] = True
    return mask


def rank(
    scores: torch.Tensor,
    k: int | None = None,
    exclude: torch.Tensor | Sequence[Sequence[int]] | None = None,
    threshold: float | None = None,
) -> Ranking:
    """Rank items by descending score for each row of ``scores``.

    ``scores``: ``(n_items,)`` or ``(n_users, n_items)``; a 1-D input gives 1-D outputs.
    ``k``: how many to return (``None`` = all, a full argsort); ``torch.topk`` is used when
    ``k < n_items``, which costs ``O(n log k)`` per row instead of ``O(n log n)``.
    ``exclude``: items never returned -- a bool mask shaped like ``scores`` or one index list
    per row (e.g. the items each user already has).
    ``threshold``: items scoring strictly below it are not returned.

    Ties are broken by the lower item index first. Returns a :class:`Ranking`.
    """
    if scores.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D (n_items,) or 2-D (n_users, n_items), got shape {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; rank needs comparable numbers")
    squeeze = scores.ndim == 1
    s = scores.unsqueeze(0) if squeeze else scores
    n_items = s.shape[1]
    k = n_items if k is None else k
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    k = min(k, n_items)
    s = s.clone()
    mask = _as_mask(exclude.unsqueeze(0) if squeeze and isinstance(exclude, torch.Tensor) else exclude, s.shape)
    if mask is not None:
        s[mask] = -torch.inf
    if threshold is not None:
        s[s < threshold] = -torch.inf

    if k == n_items:
        values, indices = torch.sort(s, dim=1, descending=True, stable=True)
    else:
        values, indices = _topk_stable(s, k)
    indices = indices.masked_fill(values == -torch.inf, PAD)
    if squeeze:
        return Ranking(indices[0], values[0])
    return Ranking(indices, values)


def _topk_stable(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk`` with ties broken by the lower index (topk itself makes no such promise)."""
    if k == 0:
        empty = s[:, :0]
        return empty, empty.long()
    kth = torch.topk(s, k, dim=1).values[:, -1:]  # (n_users, 1): the k-th largest score
    above = s > kth
    tied = s == kth
    need = k - above.sum(dim=1, keepdim=True)  # how many of the tied items fit in the top k
    take = above | (tied & (torch.cumsum(tied, dim=1) <= need))
    cols = take.nonzero()[:, 1].reshape(s.shape[0], k)  # ascending index within each row
    vals = torch.gather(s, 1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return torch.gather(vals, 1, order), torch.gather(cols, 1, order)
