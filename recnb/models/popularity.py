"""The popularity baseline: every user gets the items most users interacted with.

``score(u, i) = |{v : (v, i) in train}|`` -- the number of training users of item ``i``, the same
for every user. Any personalised model must beat it to be worth its cost.
"""

from __future__ import annotations

from typing import Self

import torch

from recnb.data.schema import Split
from recnb.models.base import Recommender, Users, as_user_tensor


class PopularityRecommender(Recommender):
    """Scores each item by its number of distinct training users."""

    counts_: torch.Tensor | None = None

    def fit(self, split: Split) -> Self:
        self.remember_split(split)
        self.counts_ = split.train_matrix("binary").sum(dim=0)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return self.counts_.expand(len(u), -1).clone()
