"""The canonical form of recommendation data, and the train/test split every model consumes.

Frames (pandas), one row per record:

``interactions``
    ``user_id`` (int64), ``item_id`` (int64), ``timestamp`` (datetime64[ns]), ``event`` (str:
    ``view``/``click``/``cart``/``purchase`` for the shop, ``rating`` for MovieLens), ``rating``
    (float64, an explicit 1..5 rating, NaN where the event carries none), ``session_id`` (int64,
    optional).
``items``
    ``item_id`` (int64, unique), ``title`` (str), ``category`` (str), ``text`` (str: the text a
    content model reads), plus whatever else the source has (``brand``, ``price``, ``genres``...).
``users``
    ``user_id`` (int64, unique), plus whatever else the source has.

Models never see raw ids: :class:`IdIndex` maps them to contiguous indices ``0..n-1`` and back,
and :class:`Split` carries ``user_idx`` / ``item_idx`` columns next to the ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

USER, ITEM, TIME, EVENT, RATING, SESSION = "user_id", "item_id", "timestamp", "event", "rating", "session_id"
USER_IDX, ITEM_IDX = "user_idx", "item_idx"
INTERACTION_COLUMNS = (USER, ITEM, TIME, EVENT, RATING)
ITEM_COLUMNS = (ITEM, "title", "category", "text")


@dataclass(frozen=True)
class RecData:
    """One data set in canonical form (see the module docstring for the columns).

    ``truth`` holds what generated the data when it is synthetic (e.g. ``user_taste``, an
    ``(n_users, n_categories)`` array in ``users`` row order), so notebooks can compare what a
    model learned with the truth; it is empty for real data.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdIndex:
    """A bijection between raw ids and contiguous indices ``0..n-1`` (sorted by id)."""

    ids: np.ndarray

    @classmethod
    def from_ids(cls, ids: Any) -> IdIndex:
        return cls(np.unique(np.asarray(ids)))

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: Any) -> np.ndarray:
        """Indices of ``ids``; raises ``KeyError`` naming the first unknown id."""
        ids = np.asarray(ids)
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        known = self.ids[pos] == ids if len(self.ids) else np.zeros(ids.shape, bool)
        if not np.all(known):
            raise KeyError(f"unknown id {ids[~known].flat[0]!r}: not among the {len(self.ids)} known ids")
        return pos

    def id(self, indices: Any) -> np.ndarray:
        """Raw ids of ``indices``."""
        return self.ids[np.asarray(indices)]


@dataclass(frozen=True)
class Split:
    """A train/test split in index space: what every recommender's ``fit`` takes.

    ``train`` and ``test`` are interaction frames with ``user_idx`` and ``item_idx`` columns added.
    ``users`` and ``items`` index every user and item of the data set (items with no interaction
    included, so content models can recommend them); ``items_frame`` holds the item rows in
    index order.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    users: IdIndex
    items: IdIndex
    items_frame: pd.DataFrame
    name: str = ""

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def train_matrix(self, values: str = "binary") -> torch.Tensor:
        """Dense ``(n_users, n_items)`` float32 matrix of the training interactions.

        ``values="binary"``: 1 where the user interacted with the item, else 0.
        ``values="rating"``: the mean explicit rating of the pair, 0 where there is none.
        """
        return _matrix(self.train, self.n_users, self.n_items, values)

    def test_matrix(self) -> torch.Tensor:
        """Dense ``(n_users, n_items)`` bool matrix: the held-out items of each user (relevance)."""
        return _matrix(self.test, self.n_users, self.n_items, "binary").bool()

    def seen_mask(self) -> torch.Tensor:
        """Dense ``(n_users, n_items)`` bool matrix of training items: what recommend() excludes."""
        return self.train_matrix("binary").bool()

    @property
    def test_users(self) -> np.ndarray:
        """Indices of users with at least one held-out item, sorted."""
        return np.unique(self.test[USER_IDX].to_numpy())

    @property
    def cold_users(self) -> np.ndarray:
        """Test users with no training interaction."""
        return np.setdiff1d(self.test_users, np.unique(self.train[USER_IDX].to_numpy()))

    @property
    def cold_items(self) -> np.ndarray:
        """Items that appear in test but never in train."""
        return np.setdiff1d(np.unique(self.test[ITEM_IDX].to_numpy()), np.unique(self.train[ITEM_IDX].to_numpy()))


def _matrix(frame: pd.DataFrame, n_users: int, n_items: int, values: str) -> torch.Tensor:
    out = torch.zeros(n_users, n_items, dtype=torch.float32)
    if frame.empty:
        return out
    u = torch.as_tensor(frame[USER_IDX].to_numpy(), dtype=torch.long)
    i = torch.as_tensor(frame[ITEM_IDX].to_numpy(), dtype=torch.long)
    if values == "binary":
        out[u, i] = 1.0
    elif values == "rating":
        rated = frame[RATING].notna().to_numpy()
        r = frame.loc[rated].groupby([USER_IDX, ITEM_IDX])[RATING].mean()
        uu = torch.as_tensor(r.index.get_level_values(0).to_numpy(), dtype=torch.long)
        ii = torch.as_tensor(r.index.get_level_values(1).to_numpy(), dtype=torch.long)
        out[uu, ii] = torch.as_tensor(r.to_numpy(), dtype=torch.float32)
    else:
        raise ValueError(f"values must be 'binary' or 'rating', got {values!r}")
    return out
