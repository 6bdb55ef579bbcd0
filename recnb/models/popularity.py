"""The two baselines every model is measured against: popularity and chance.

- :class:`PopularityRecommender`: ``score(u, i) = |{v : (v, i) in train}|`` -- the number of
  training users of item ``i``, the same for every user. Any personalised model must beat it to be
  worth its cost.
- :class:`RandomRecommender`: ``score(u, i) ~ U(0, 1)`` independently, drawn once from a seeded
  generator -- the chance level of a metric (a random list of the user's unseen items).
"""

from __future__ import annotations

from typing import Self

import torch

from recnb.data.schema import SplitLike, as_split
from recnb.models.base import Recommender, Users, as_user_tensor


class PopularityRecommender(Recommender):
    """Scores each item by its number of distinct training users."""

    counts_: torch.Tensor | None = None

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        self.counts_ = torch.from_numpy(split.item_counts()).to(torch.float32)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return self.counts_.expand(len(u), -1).clone()


class RandomRecommender(Recommender):
    """Uniform random scores: the chance baseline.

    ``fit`` draws one ``(n_users, n_items)`` table ``U(0, 1)`` from a generator seeded with
    ``seed``; ``score`` reads rows of it, so repeated calls (and the same seed) give the same
    scores and the same lists. After excluding a user's ``N_u`` training items, each of their
    remaining items is equally likely at every rank, so the expected NDCG@k of a user with ``R_u``
    relevant items among the ``M_u`` rankable ones is
    ``(R_u / M_u) * sum_{j <= min(k, M_u)} 1/log2(j + 1) / IDCG@k``.
    """

    table_: torch.Tensor | None = None

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        g = torch.Generator().manual_seed(self.seed)
        self.table_ = torch.rand(split.n_users, split.n_items, generator=g)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return self.table_[u].clone()

    def __repr__(self) -> str:
        return f"RandomRecommender(seed={self.seed})"
