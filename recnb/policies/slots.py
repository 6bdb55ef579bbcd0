"""Reserved slots for new items: ``k − r`` places from one model, ``r`` from another among new items.

A single blend weight cannot give new items a place (CF scores them 0), so a shop often reserves
some: of a list of ``k``, the first ``k − r`` come from the main model (CF or a blend) and the last
``r`` from a model that can see new items (content), chosen only among the *pool* of new items
(those with fewer than ``support`` training interactions)::

    list(u) = main(u)[: k − r]  ++  reserve(u) ∩ pool [: r]

:func:`reserve_slots` does the arithmetic on two rankings; :class:`ReservedSlots` wraps two
fitted recommenders so that :func:`recnb.evaluation.evaluate` scores the policy like a model.
"""

from __future__ import annotations

import numpy as np
import torch

from recnb.math.ranking import PAD, Ranking, item_indices
from recnb.models.base import Items, Recommender, Users, as_user_tensor


def reserve_slots(main: Ranking, reserved: Ranking, k: int, slots: int) -> Ranking:
    """Merge two rankings of the same users into one list of ``k``: ``k − slots`` from ``main``, then ``slots`` from ``reserved``.

    ``main``: ``(U, ≥ k)`` ranking (``PAD`` allowed); ``reserved``: ``(U, ·)`` ranking of the
    pool's items (fewer than ``slots`` columns where the pool is small). Each row takes the first ``slots`` items of ``reserved`` (fewer where it has
    ``PAD``), and fills the ``k − (that number)`` places before them with ``main``'s items in order,
    skipping those already taken from ``reserved``; ``PAD`` where ``main`` runs out. The scores are
    those of each item's own source (two scales: read the order, not the numbers).
    Returns a ``(U, k)`` :class:`~recnb.math.ranking.Ranking`.
    """
    if not 0 <= slots <= k:
        raise ValueError(f"slots must lie in 0..k = 0..{k}, got {slots}")
    if main.indices.shape[0] != reserved.indices.shape[0]:
        raise ValueError(f"main and reserved must rank the same users: {main.indices.shape[0]} vs {reserved.indices.shape[0]} rows")
    if main.indices.shape[1] < k:
        raise ValueError(f"main needs >= k = {k} columns, got {main.indices.shape[1]}")
    n = main.indices.shape[0]
    out = torch.full((n, k), PAD, dtype=torch.long)
    scores = torch.full((n, k), -torch.inf, dtype=main.scores.dtype)
    m_idx, m_sc = main.indices.numpy(), main.scores.numpy()
    r_idx, r_sc = reserved.indices[:, :slots].numpy(), reserved.scores[:, :slots].numpy()
    for row in range(n):
        keep = r_idx[row] != PAD
        picked, picked_scores = r_idx[row][keep], r_sc[row][keep]
        taken = np.isin(m_idx[row], picked) | (m_idx[row] == PAD)
        head = np.flatnonzero(~taken)[: k - len(picked)]
        merged = np.concatenate([m_idx[row][head], picked])
        out[row, : len(merged)] = torch.from_numpy(merged)
        scores[row, : len(merged)] = torch.from_numpy(np.concatenate([m_sc[row][head], picked_scores]).astype(m_sc.dtype))
    return Ranking(out, scores)


class ReservedSlots:
    """A re-ranking policy: ``k − slots`` places from ``main``, the last ``slots`` from ``reserve`` among new items.

    ``main`` and ``reserve``: recommenders fitted on the same split. The *pool* is the items with
    fewer than ``support`` training interactions (``support=1``: items nobody has bought), found
    from ``main``'s seen matrix. :meth:`recommend` gives ``main.recommend(users, k)`` with the pool
    filtered out, then :func:`reserve_slots` with ``reserve.recommend(users, slots, items=pool)``;
    seen items are excluded by both. It has ``recommend`` like a model, so
    :func:`recnb.evaluation.evaluate` scores it on the one path (a shelf included).
    """

    def __init__(self, main: Recommender, reserve: Recommender, slots: int = 1, support: int = 1) -> None:
        if int(slots) < 0:
            raise ValueError(f"slots must be >= 0, got {slots}")
        if int(support) < 1:
            raise ValueError(f"support must be >= 1 (the pool is items with fewer interactions), got {support}")
        for name, model in (("main", main), ("reserve", reserve)):
            if model.seen_ is None:
                raise RuntimeError(f"ReservedSlots needs fitted models: fit {name} ({model!r}) first")
        if main.seen_.shape != reserve.seen_.shape:
            raise ValueError(f"main and reserve were fitted on splits of different sizes: {main.seen_.shape} vs {reserve.seen_.shape}")
        self.main, self.reserve, self.slots, self.support = main, reserve, int(slots), int(support)

    def pool(self, items: Items | None = None) -> np.ndarray:
        """Item indices with fewer than ``support`` training interactions (sorted), among ``items`` if given."""
        pool = np.flatnonzero(self.main.seen_.getnnz(axis=0) < self.support)
        return pool if items is None else np.intersect1d(pool, item_indices(items, self.main.n_items_, "items").numpy())

    def recommend(self, users: Users = None, k: int = 10, *, items: Items | None = None) -> Ranking:
        """``(U, k)`` lists of global item indices (see the class docstring); ``items``: a shelf,
        the only candidates of both sources (as in :meth:`Recommender.recommend`)."""
        if self.slots > k:
            raise ValueError(f"slots ({self.slots}) must not exceed k ({k})")
        u = as_user_tensor(users, self.main.n_users_)
        pool = self.pool(items)
        main = self.main.recommend(u, k, items=items, filter_items=pool if len(pool) else None)
        if self.slots == 0 or len(pool) == 0:
            return main
        return reserve_slots(main, self.reserve.recommend(u, self.slots, items=pool), k, self.slots)

    def __repr__(self) -> str:
        return f"ReservedSlots({self.main!r}, {self.reserve!r}, slots={self.slots}, support={self.support})"
