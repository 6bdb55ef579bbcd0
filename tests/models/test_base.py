"""The Recommender interface (base.py) through the popularity baseline, on a hand-made Split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnb.data.schema import IdIndex, Split
from recnb.math.ranking import PAD
from recnb.models.base import as_user_tensor
from recnb.models.popularity import PopularityRecommender


def hand_split() -> Split:
    """4 users x 5 items. Train: u0 {0, 1}, u1 {0, 2}, u2 {0, 1, 3}, u3 {}; test: u0 {2}, u3 {4}."""
    train = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2, 2, 2], "item_idx": [0, 1, 0, 2, 0, 1, 3]})
    test = pd.DataFrame({"user_idx": [0, 3], "item_idx": [2, 4]})
    for f in (train, test):
        f["user_id"], f["item_id"], f["rating"] = f.user_idx + 100, f.item_idx + 10, np.nan
    items = IdIndex.from_ids(np.arange(10, 15))
    frame = pd.DataFrame({"item_id": items.ids, "title": list("abcde"), "category": "x", "text": ""})
    return Split(train, test, IdIndex.from_ids(np.arange(100, 104)), items, frame, name="hand")


def test_as_user_tensor():
    assert as_user_tensor(None, 3).tolist() == [0, 1, 2]
    assert as_user_tensor([2, 0], 3).tolist() == [2, 0]
    assert as_user_tensor(np.array([[1]]), 3).dtype == torch.long
    with pytest.raises(IndexError, match=r"0\.\.2, got 1\.\.3"):
        as_user_tensor([1, 3], 3)


def test_unfitted_model_says_so():
    model = PopularityRecommender()
    with pytest.raises(RuntimeError, match=r"PopularityRecommender is not fitted yet: call \.fit\(split\) first"):
        model.recommend([0])
    with pytest.raises(RuntimeError, match="not fitted"):
        model.score()


def test_popularity_scores_are_training_user_counts():
    model = PopularityRecommender().fit(hand_split())
    assert model.n_users_ == 4 and model.n_items_ == 5
    scores = model.score()
    assert scores.shape == (4, 5) and scores.dtype == torch.float32
    assert scores[0].tolist() == [3.0, 2.0, 1.0, 1.0, 0.0]  # item 0: 3 users, item 1: 2, ...
    assert torch.equal(scores[3], scores[0])  # the same for everyone
    assert model.score([1]).shape == (1, 5)


def test_recommend_excludes_seen_and_breaks_ties_by_index():
    model = PopularityRecommender().fit(hand_split())
    r = model.recommend(k=3)
    assert r.indices.tolist() == [
        [2, 3, 4],  # u0 has 0, 1; items 2 and 3 tie at 1 user: index 2 first
        [1, 3, 4],
        [2, 4, PAD],  # u2 has 0, 1, 3: only two items remain
        [0, 1, 2],  # u3 has nothing: plain popularity order
    ]
    assert model.recommend([3], k=2, exclude_seen=False).indices.tolist() == [[0, 1]]
    with_seen = model.recommend([0], k=5, exclude_seen=False)
    assert with_seen.indices.tolist() == [[0, 1, 2, 3, 4]]


def test_recommend_threshold():
    model = PopularityRecommender().fit(hand_split())
    r = model.recommend([3], k=5, threshold=2.0)
    assert r.indices.tolist() == [[0, 1, PAD, PAD, PAD]]
    assert r.scores[0, :2].tolist() == [3.0, 2.0]
