"""Explanations: every decomposition sums to the model's score; a hand case; the table and sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recnb.data.schema import IdIndex, Split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.policies.explain import contributions, explain, max_residual, sentences
from recnb.models.content import ContentRecommender
from recnb.models.hybrid import HybridRecommender
from recnb.models.knn import ItemKNN, UserKNN
from recnb.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def shop() -> Split:
    data = make_shop(n_users=40, n_items=30, n_categories=4, n_interactions=900, seed=3)
    return random_holdout(data, test_ratio=0.2, seed=3)


def _rating_split(seed: int, n_users: int = 9, n_items: int = 11) -> Split:
    rng = np.random.default_rng(seed)
    r = rng.integers(1, 6, size=(n_users, n_items)) * (rng.random((n_users, n_items)) < 0.5)
    u, i = np.nonzero(r)
    train = pd.DataFrame({"user_idx": u, "item_idx": i, "rating": r[u, i].astype(float), "user_id": u, "item_id": i})
    items = pd.DataFrame({"item_id": np.arange(n_items), "title": [f"item {j}" for j in range(n_items)]})
    return Split(train, train.iloc[:0], IdIndex.from_ids(np.arange(n_users)), IdIndex.from_ids(np.arange(n_items)), items)


def _assert_sums_to_score(model, split, users) -> int:
    checked = 0
    for user in users:
        items = torch.arange(split.n_items)
        frame = contributions(model, user, items)
        total = torch.zeros(split.n_items, dtype=torch.float64)
        total.index_add_(0, torch.as_tensor(frame["item"].to_numpy()), torch.as_tensor(frame["contribution"].to_numpy()))
        score = model.score([user])[0].double()
        assert torch.allclose(total, score, atol=1e-5, rtol=1e-5)
        assert np.allclose(frame["score"].to_numpy(), score[frame["item"].to_numpy()].numpy())
        checked += int((frame["contribution"] != 0).sum())
    return checked


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("neighbours", [None, 3])
def test_knn_binary_contributions_sum_to_score(shop, cls, neighbours):
    model = cls(neighbours=neighbours).fit(shop)
    assert _assert_sums_to_score(model, shop, range(0, 40, 7)) > 20


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("seed", range(2))
def test_knn_rating_contributions_sum_to_score(cls, seed):
    split = _rating_split(seed)
    model = cls(similarity="pearson", values="rating", neighbours=4, shrinkage=1.0).fit(split)
    assert _assert_sums_to_score(model, split, range(split.n_users)) > 20


@pytest.mark.parametrize("normalise", ["none", "count", "similarity"])
def test_content_contributions_sum_to_score(shop, normalise):
    model = ContentRecommender("tfidf", normalise=normalise, neighbours=5).fit(shop)
    assert _assert_sums_to_score(model, shop, [0, 5, 11]) > 10


def test_hybrid_parts_sum_to_score(shop):
    cf, cb = ItemKNN(neighbours=5).fit(shop), ContentRecommender("tfidf").fit(shop)
    hybrid = HybridRecommender(cf, cb, alpha=0.7, cold_alpha=0.2, cold_threshold=8).fit(shop, fit_components=False)
    cold = hybrid.is_cold(torch.arange(shop.n_users))
    assert cold.any() and (~cold).any()
    users = [int(torch.nonzero(cold)[0]), int(torch.nonzero(~cold)[0])]
    _assert_sums_to_score(hybrid, shop, users)
    frame = contributions(hybrid, users[0], [3])
    assert frame["source"].tolist() == ["cf", "content"] or frame["source"].tolist() == ["content", "cf"]
    parts = frame.set_index("source")
    assert parts.loc["cf", "contribution"] == pytest.approx(0.2 * parts.loc["cf", "value"])  # cold: cold_alpha


def test_item_knn_by_hand():
    # 3 users x 3 items; cosine of item columns: items 0 and 1 share user 0; item 2 alone
    train = pd.DataFrame({"user_idx": [0, 0, 1, 2, 2], "item_idx": [0, 1, 1, 0, 2], "rating": np.nan})
    split = Split(train, train.iloc[:0], IdIndex(np.arange(3)), IdIndex(np.arange(3)), pd.DataFrame({"item_id": range(3)}))
    model = ItemKNN(neighbours=None).fit(split)
    # item columns: 0 = (1,0,1), 1 = (1,1,0), 2 = (0,0,1): cos(0,1) = 1/2, cos(0,2) = 1/sqrt(2), cos(1,2) = 0
    frame = contributions(model, 1, [0, 2])  # user 1 has item 1 only
    assert frame[["item", "contributor"]].values.tolist() == [[0, 1]]
    assert frame["contribution"].iloc[0] == pytest.approx(0.5)
    frame = contributions(model, 2, [1])  # user 2 has items 0 and 2: 1/2 + 0
    assert frame["contributor"].tolist() == [0] and frame["similarity"].iloc[0] == pytest.approx(0.5)


def test_explain_table_and_sentences(shop):
    model = ItemKNN(neighbours=10).fit(shop)
    table = explain(model, [0, 1], k=4, top=2)
    assert set(table["user"]) == {0, 1}
    lists = model.recommend([0, 1], k=4).indices
    for (user, rank_), group in table.groupby(["user", "rank"]):
        assert group["item"].nunique() == 1
        assert group["item"].iloc[0] == lists[[0, 1].index(user), rank_ - 1]
        assert group["contribution"].sum() == pytest.approx(group["score"].iloc[0], abs=1e-5)
        assert (group["source"] == "item").sum() <= 2
        assert group["share"].sum() == pytest.approx(1.0, abs=1e-5)
    text = sentences(table[table["user"] == 0], shop.items_frame, verb="bought")
    assert len(text) == 4
    first = table[(table["user"] == 0) & (table["rank"] == 1)]
    top_item = int(first.loc[first["source"] == "item", "contributor"].iloc[0])
    assert text[0].startswith("1. We recommend “" + shop.items_frame["title"].iloc[int(first["item"].iloc[0])])
    assert "because you bought “" + shop.items_frame["title"].iloc[top_item] in text[0]


def test_explain_user_knn_and_hybrid_sentences(shop):
    table = explain(UserKNN(neighbours=5).fit(shop), [2], k=2, top=1)
    assert "shoppers with histories like yours chose it: user" in sentences(table, shop.items_frame)[0]
    hybrid = HybridRecommender(ItemKNN(neighbours=5), ContentRecommender("tfidf"), alpha=0.5).fit(shop)
    line = sentences(explain(hybrid, [2], k=1), shop.items_frame)[0]
    assert "because of what shoppers like you chose (CF, " in line and "its description (content, " in line


def test_unsupported_models_are_refused(shop):
    with pytest.raises(TypeError, match="PopularityRecommender"):
        contributions(PopularityRecommender().fit(shop), 0, [1])
    with pytest.raises(ValueError, match="profile"):
        contributions(ContentRecommender("tfidf", method="profile").fit(shop), 0, [1])
    with pytest.raises(IndexError):
        contributions(ItemKNN().fit(shop), 0, [99])


def test_max_residual_by_hand_and_on_explain_tables(shop):
    table = pd.DataFrame({"user": [0, 0, 0, 1], "item": [4, 4, 5, 4], "score": [1.0, 1.0, 2.0, 0.5],
                          "contribution": [0.75, 0.25, 1.5, 0.5]})
    assert max_residual(table) == pytest.approx(0.5)  # user 0, item 5: 1.5 against 2.0
    assert np.isnan(max_residual(table.iloc[:0]))
    model = UserKNN(neighbours=5).fit(shop)
    assert max_residual(explain(model, [0, 1, 2], k=5, top=1)) < 1e-5
    assert max_residual(contributions(model, 3, range(shop.n_items))) < 1e-5


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), neighbours=st.integers(1, 6))
def test_property_item_knn_contributions_sum_to_score(seed, neighbours):
    rng = np.random.default_rng(seed)
    n_users, n_items = 6, 8
    mask = rng.random((n_users, n_items)) < 0.4
    u, i = np.nonzero(mask)
    train = pd.DataFrame({"user_idx": u, "item_idx": i, "rating": np.nan})
    split = Split(train, train.iloc[:0], IdIndex(np.arange(n_users)), IdIndex(np.arange(n_items)),
                  pd.DataFrame({"item_id": range(n_items)}))
    model = ItemKNN(neighbours=neighbours).fit(split)
    _assert_sums_to_score(model, split, range(n_users))
    # only the user's own items ever contribute
    frame = contributions(model, 0, range(n_items))
    assert set(frame["contributor"]) <= set(np.flatnonzero(mask[0]))
