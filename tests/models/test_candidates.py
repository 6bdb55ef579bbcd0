"""Candidates (``recommend(items=, filter_items=)``), ``similar_items``, raw ids and ``fit`` on a
sparse matrix: checked against brute force in numpy and cosines by hand."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recnb.data.schema import IdIndex, Split, SplitLike, as_split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.ranking import PAD
from recnb.models.als import ALSRecommender
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.models.content import ContentRecommender
from recnb.models.ease import EASE
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.knn import ItemKNN
from recnb.models.mf import BiasedMF
from recnb.models.popularity import PopularityRecommender


class TableRecommender(Recommender):
    """Scores read from a fixed ``(n_users, n_items)`` table."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def fit(self, split: SplitLike) -> Self:
        self.remember_split(as_split(split))
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        return self.table[as_user_tensor(users, self.n_users_)].clone()


def brute_force(table: np.ndarray, seen: np.ndarray, users: np.ndarray, k: int, items, filter_items,
                exclude_seen: bool, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Each user's candidates sorted by (-score, index) in plain Python, padded with PAD / -inf."""
    n = table.shape[1]
    width = min(k, n if items is None else len(items))
    out_i, out_s = np.full((len(users), width), PAD), np.full((len(users), width), -np.inf)
    for row, u in enumerate(users):
        cand = set(range(n) if items is None else items) - set([] if filter_items is None else filter_items)
        if exclude_seen:
            cand -= set(np.flatnonzero(seen[u]))
        if threshold is not None:
            cand = {i for i in cand if table[u, i] >= threshold}
        best = sorted(cand, key=lambda i: (-table[u, i], i))[:width]
        out_i[row, : len(best)] = best
        out_s[row, : len(best)] = table[u, best]
    return out_i, out_s


CASES = {
    "restrict": dict(items=[7, 2, 11, 5, 0, 9, 3]),
    "filter": dict(filter_items=[1, 4, 4, 8]),
    "both": dict(items=[11, 3, 6, 0, 8, 2, 10], filter_items=[6, 1, 0]),
    "restrict, seen kept": dict(items=[7, 2, 11, 5], exclude_seen=False),
    "filter, threshold": dict(filter_items=[0, 5], threshold=2.0),
    "neither": dict(),
}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 4, 9, 20])
def test_recommend_candidates_match_brute_force(case: str, seed: int, k: int):
    """Integer scores 0..4 tie often: ties must go to the lower *global* item index, restricted or not."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 9, 12
    table = rng.integers(0, 5, size=(n_users, n_items)).astype(np.float32)
    seen = rng.random((n_users, n_items)) < 0.3
    model = TableRecommender(torch.from_numpy(table)).fit(sp.csr_matrix(seen.astype(np.float32)))
    users = np.array([4, 0, 8, 2, 2, 7, 1, 3, 5, 6])
    args = CASES[case]
    got = model.recommend(users, k=k, batch_size=3, **args)
    want_i, want_s = brute_force(table, seen, users, k, args.get("items"), args.get("filter_items"),
                                 args.get("exclude_seen", True), args.get("threshold"))
    np.testing.assert_array_equal(got.indices.numpy(), want_i)
    np.testing.assert_array_equal(got.scores.numpy(), want_s)


def test_recommend_restricted_on_a_hand_example():
    """Popularity [3, 2, 1, 1, 0] on the 4 x 5 split below; u0 has items 0 and 1."""
    train = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32))
    model = PopularityRecommender().fit(train)
    r = model.recommend([0, 3], k=3, items=[4, 0, 3], filter_items=[3])
    assert r.indices.tolist() == [[4, PAD, PAD], [0, 4, PAD]]  # u0: 0 seen, 3 filtered; u3: 0 then 4
    assert r.scores.tolist() == [[0.0, -np.inf, -np.inf], [3.0, 0.0, -np.inf]]
    assert model.recommend([3], k=9, items=[2, 3]).indices.tolist() == [[2, 3]]  # min(k, len(items)) slots, tie to 2


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(items=[0.0, 2.0]), TypeError, r"items must hold integer item indices in 0\.\.4, got dtype float64"),
    (dict(items=np.array([True, False, True, False, True])), TypeError, "items must hold integer item indices"),
    (dict(items=torch.tensor([1.0])), TypeError, "items must hold integer item indices"),
    (dict(items=[1, 5]), IndexError, r"items holds item index 5, outside 0\.\.4"),
    (dict(items=[-1, 2]), IndexError, r"items holds item index -1, outside 0\.\.4"),
    (dict(items=[2, 0, 2]), ValueError, "items holds item index 2 more than once"),
    (dict(items=[]), ValueError, "items must hold at least one item index"),
    (dict(filter_items=[0.5]), TypeError, "filter_items must hold integer item indices"),
    (dict(filter_items=[True, False]), TypeError, "filter_items must hold integer item indices"),
    (dict(filter_items=[7]), IndexError, r"filter_items holds item index 7, outside 0\.\.4"),
], ids=repr)
def test_recommend_refuses_bad_candidates(kwargs, error, message):
    model = PopularityRecommender().fit(sp.csr_matrix((3, 5), dtype=np.float32))
    with pytest.raises(error, match=message):
        model.recommend([0], k=2, **kwargs)


# -- raw ids --------------------------------------------------------------------------------------
def id_split() -> Split:
    """4 users (ids 100..103) x 5 items (ids 10..14). Train: u0 {0, 1}, u1 {0, 2}, u2 {0, 1, 3}, u3 {}."""
    train = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2, 2, 2], "item_idx": [0, 1, 0, 2, 0, 1, 3]})
    train["user_id"], train["item_id"], train["rating"] = train.user_idx + 100, train.item_idx + 10, np.nan
    items = IdIndex.from_ids(np.arange(10, 15))
    frame = pd.DataFrame({"item_id": items.ids, "title": list("abcde"), "category": "x", "text": ""})
    return Split(train, train.iloc[:0], IdIndex.from_ids(np.arange(100, 104)), items, frame, name="ids")


def test_recommend_ids_speaks_raw_ids():
    model = PopularityRecommender().fit(id_split())  # popularity [3, 2, 1, 1, 0]
    np.testing.assert_array_equal(model.user_ids_, [100, 101, 102, 103])
    np.testing.assert_array_equal(model.item_ids_, [10, 11, 12, 13, 14])
    got = model.recommend_ids([103, 100], k=2)
    want = pd.DataFrame({"user_id": [103, 103, 100, 100], "rank": [1, 2, 1, 2], "item_id": [10, 11, 12, 13],
                         "score": np.array([3, 2, 1, 1], np.float32)})
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # items / filter_items are ids too; u3 keeps 14 only; PAD slots are no rows
    got = model.recommend_ids([103], k=3, items=[13, 14], filter_items=[13])
    assert got[["user_id", "rank", "item_id"]].values.tolist() == [[103, 1, 14]]


def test_recommend_ids_names_unknown_ids():
    model = PopularityRecommender().fit(id_split())
    with pytest.raises(KeyError, match=r"user_ids holds 2 unknown user id\(s\): 7, 8 \(the model knows the 4 user ids"):
        model.recommend_ids([100, 7, 8], k=2)
    with pytest.raises(KeyError, match=r"user_ids holds 1 unknown user id\(s\): 'a'"):
        model.recommend_ids(["a"], k=2)
    with pytest.raises(KeyError, match=r"items holds 1 unknown item id\(s\): 0 "):
        model.recommend_ids([100], k=2, items=[10, 0])
    with pytest.raises(KeyError, match=r"filter_items holds 1 unknown item id\(s\): 99"):
        model.recommend_ids([100], k=2, filter_items=[99])


# -- similar items --------------------------------------------------------------------------------
def hand_cosine(v: np.ndarray) -> np.ndarray:
    """``<v_i, v_j> / (||v_i|| ||v_j||)``, 0 where either vector is zero (an item no user had, under ALS)."""
    v = v.astype(np.float64)
    norms = np.outer(*2 * [np.linalg.norm(v, axis=1)])
    return np.divide(v @ v.T, norms, out=np.zeros_like(norms), where=norms > 0)


def test_item_knn_similar_items_by_hand():
    """Columns: i0 = {u0, u1, u2}, i1 = i2 = {u0, u1}, i3 = {u2, u3}. Binary cosine:
    cos(0,1) = cos(0,2) = 2/√6, cos(0,3) = 1/√6, cos(1,2) = 1, cos(1,3) = cos(2,3) = 0 (no neighbour)."""
    x = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 1]], np.float32)
    model = ItemKNN(neighbours=None).fit(sp.csr_matrix(x))
    top = model.similar_items([0, 1, 3], k=3)
    assert top.indices.tolist() == [[1, 2, 3], [2, 0, PAD], [0, PAD, PAD]]  # 1 and 2 tie for 0: 1 first
    c = hand_cosine(x.T)
    np.testing.assert_allclose(top.scores.numpy(), [[c[0, 1], c[0, 2], c[0, 3]], [1.0, c[1, 0], -np.inf],
                                                    [c[3, 0], -np.inf, -np.inf]], rtol=1e-12)
    assert model.similar_items([0, 1], k=3, filter_items=[2]).indices.tolist() == [[1, 3, PAD], [0, PAD, PAD]]
    # pruned to 1 neighbour: each item keeps its single nearest
    assert ItemKNN(neighbours=1).fit(sp.csr_matrix(x)).similar_items([0, 2], k=2).indices.tolist() == [[1, PAD], [1, PAD]]


def test_ease_similar_items_are_rows_of_b():
    """``similar_items(j)`` ranks ``B[j]``: the scores of a user whose only item is ``j`` (u3 below)."""
    x = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], np.float64)
    model = EASE(l2=2.0).fit(sp.csr_matrix(x))
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(4))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    top = model.similar_items([2, 0], k=3)
    for row, j in enumerate((2, 0)):
        others = [i for i in np.argsort(-b[j], kind="stable") if i != j]
        assert top.indices[row].tolist() == others
        np.testing.assert_allclose(top.scores[row].numpy(), b[j, others], rtol=1e-5)
    np.testing.assert_allclose(model.score([3])[0].numpy(), b[2], atol=1e-6)


def shop_split() -> Split:
    return random_holdout(make_shop(n_users=60, n_items=40, n_interactions=900, seed=3), test_ratio=0.2, seed=3)


@pytest.mark.parametrize("make", [
    lambda: EmbeddingRecommender(embedding_dim=6, max_epochs=1, batch_size=256),
    lambda: BiasedMF(embedding_dim=5, max_epochs=1, batch_size=256),
    lambda: ALSRecommender(embedding_dim=4, iterations=2),
    lambda: ContentRecommender("tfidf"),
], ids=["EmbeddingRecommender", "BiasedMF", "ALSRecommender", "ContentRecommender"])
def test_similar_items_of_item_vectors_is_their_cosine(make):
    split = shop_split()
    model = make().fit(split)
    c = hand_cosine(model.item_vectors().numpy())
    query = [0, 7, 39]
    top = model.similar_items(query, k=5, filter_items=[1, 2])
    for row, i in enumerate(query):
        order = [j for j in np.argsort(-c[i], kind="stable") if j not in (i, 1, 2)][:5]
        assert top.indices[row].tolist() == order
        np.testing.assert_allclose(top.scores[row].numpy(), c[i, order], atol=1e-6)
    frame = model.similar_item_ids(split.items.ids[query], k=5, filter_items=split.items.ids[[1, 2]])
    assert frame["item_id"].tolist() == np.repeat(split.items.ids[query], 5).tolist()
    assert frame["similar_item_id"].tolist() == split.items.ids[top.indices.numpy().ravel()].tolist()
    assert frame["rank"].tolist() == [1, 2, 3, 4, 5] * 3


def test_similar_items_refuses_bad_items_and_models_without_similarity():
    model = ItemKNN(neighbours=None).fit(sp.csr_matrix(np.eye(3, dtype=np.float32)))
    with pytest.raises(TypeError, match="items must hold integer item indices"):
        model.similar_items([0.0])
    with pytest.raises(IndexError, match=r"filter_items holds item index 3, outside 0\.\.2"):
        model.similar_items([0], filter_items=[3])
    assert not hasattr(PopularityRecommender(), "similar_items")


# -- fit on a sparse matrix -----------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    PopularityRecommender,
    lambda: ItemKNN(neighbours=10),
    lambda: EASE(l2=20.0),
    lambda: EmbeddingRecommender(embedding_dim=4, max_epochs=1, batch_size=256),
], ids=["PopularityRecommender", "ItemKNN", "EASE", "EmbeddingRecommender"])
def test_fit_on_the_training_matrix_equals_fit_on_the_split(make):
    split = shop_split()
    on_split, on_matrix = make().fit(split), make().fit(split.train_csr())
    assert torch.equal(on_matrix.score(), on_split.score())
    assert torch.equal(on_matrix.recommend(k=5).indices, on_split.recommend(k=5).indices)
    np.testing.assert_array_equal(on_matrix.user_ids_, np.arange(split.n_users))  # ids are the indices


def test_a_content_model_refuses_a_bare_matrix():
    with pytest.raises(ValueError, match=r"a bare user-item matrix \(Split.from_matrix\) has none"):
        ContentRecommender("tfidf").fit(sp.csr_matrix(np.eye(3, dtype=np.float32)))
