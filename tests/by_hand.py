"""Test helpers shared across test directories: a split written pair by pair, and a model whose scores are given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recnb.data.schema import IdIndex, Split
from recnb.models.base import Recommender


def hand_split(train: list[tuple[int, int]], test: list[tuple[int, int]], n_users: int, n_items: int) -> Split:
    """A Split from (user, item) pairs given in index space (ids = indices)."""

    def frame(rows: list[tuple[int, int]]) -> pd.DataFrame:
        u = np.array([r[0] for r in rows], dtype=np.int64)
        i = np.array([r[1] for r in rows], dtype=np.int64)
        return pd.DataFrame({"user_id": u, "item_id": i, "timestamp": pd.to_datetime([0] * len(rows)),
                             "event": ["purchase"] * len(rows), "rating": np.nan, "user_idx": u, "item_idx": i})

    items = pd.DataFrame({"item_id": np.arange(n_items), "title": "", "category": "", "text": ""})
    return Split(train=frame(train), test=frame(test), users=IdIndex(np.arange(n_users)),
                 items=IdIndex(np.arange(n_items)), items_frame=items)


class FixedScores(Recommender):
    """Gives every user the same score row, so the lists built from it are known in advance."""

    def __init__(self, row: list[float]) -> None:
        self.row = row

    def fit(self, split: Split) -> "FixedScores":
        self.remember_split(split)
        return self

    def score(self, users=None) -> torch.Tensor:
        u = torch.arange(self.n_users_) if users is None else torch.as_tensor(users).reshape(-1)
        return torch.tensor(self.row).expand(len(u), -1).clone()
