"""The Recommender interface (base.py) through the popularity baseline, on a hand-made Split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnb.data.schema import IdIndex, Split
from recnb.math.ranking import PAD
from recnb.models.base import as_user_tensor
from recnb.models.popularity import PopularityRecommender, RandomRecommender


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
    assert as_user_tensor([], 3).tolist() == []
    with pytest.raises(IndexError, match=r"users holds user index 3, outside 0\.\.2"):
        as_user_tensor([1, 3], 3)


@pytest.mark.parametrize("bad", [[True, False, True], np.array([True, False, True]), torch.tensor([True, False, True]),
                                 [0.0, 2.0], np.array([1.5]), torch.tensor([0.0])], ids=repr)
def test_as_user_tensor_refuses_masks_and_floats(bad):
    """A bool mask used to become indices 1, 0, 1 and floats were truncated: both are refused now,
    as ``item_indices`` refuses them."""
    with pytest.raises(TypeError, match=r"users must hold integer user indices in 0\.\.2, got dtype"):
        as_user_tensor(bad, 3)


def test_recommend_with_raw_ids_says_what_users_are():
    model = PopularityRecommender().fit(hand_split())
    with pytest.raises(TypeError, match=r"users must hold integer user indices in 0\.\.3, got dtype <U1 "
                                        r"\(first value 'a'\); raw user ids go through recommend_ids"):
        model.recommend(users=["a"])
    with pytest.raises(TypeError, match="users must hold integer user indices"):
        model.recommend(users=np.array([100, 101.5]))


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


def test_random_scores_are_seeded_and_repeatable():
    split = hand_split()
    model = RandomRecommender(seed=3).fit(split)
    scores = model.score()
    assert scores.shape == (4, 5) and scores.dtype == torch.float32
    assert ((scores >= 0) & (scores < 1)).all()
    assert torch.equal(model.score(), scores)  # repeated calls: the same scores
    assert torch.equal(model.score([2, 0]), scores[[2, 0]])
    assert torch.equal(RandomRecommender(seed=3).fit(split).score(), scores)  # same seed, same model
    assert not torch.equal(RandomRecommender(seed=4).fit(split).score(), scores)
    # recommend still excludes training items: u2 has 0, 1, 3, so only 2 and 4 remain
    assert sorted(model.recommend([2], k=5).indices[0, :2].tolist()) == [2, 4]
    assert model.recommend([2], k=5).indices[0, 2:].tolist() == [PAD, PAD, PAD]
    assert repr(model) == "RandomRecommender(seed=3)"
    with pytest.raises(RuntimeError, match="RandomRecommender is not fitted yet"):
        RandomRecommender().score()


def test_random_ndcg_matches_the_chance_expectation():
    """Mean NDCG@10 of random lists ~ sum over users of (R_u / M_u) sum_j 1/log2(j+1) / IDCG_u,
    and popularity beats it on the synthetic shop (whose item popularity is long-tailed)."""
    from recnb.data.splits import random_holdout
    from recnb.data.synthetic import make_shop
    from recnb.evaluation import evaluate, relevance

    split = random_holdout(make_shop(n_users=300, n_items=200, n_interactions=8000, seed=0), 0.2, seed=0)
    users = np.asarray(split.test_users)
    rel = relevance(split, users)
    users, rel = users[rel.any(1).numpy()], rel[rel.any(1)]
    R = rel.sum(1).double()
    M = (~split.seen_mask()[torch.as_tensor(users)]).sum(1).double()  # rankable (unseen) items
    disc = 1 / torch.log2(torch.arange(2, 12, dtype=torch.float64))
    dcg_sum = torch.stack([disc[: int(min(10, m))].sum() for m in M])
    idcg = torch.stack([disc[: int(min(10, r))].sum() for r in R])
    expected = ((R / M) * dcg_sum / idcg).mean().item()

    runs = np.array([evaluate(RandomRecommender(seed=s).fit(split), split, 10, metrics=("ndcg",))["ndcg@10"]
                     for s in range(20)])
    stderr = runs.std(ddof=1) / np.sqrt(len(runs))
    assert abs(runs.mean() - expected) < 4 * stderr + 1e-3
    popularity = evaluate(PopularityRecommender().fit(split), split, 10, metrics=("ndcg",))["ndcg@10"]
    assert popularity > runs.mean() + 0.05


def test_recommend_and_evaluate_in_batches_equal_one_batch():
    from recnb.data.splits import random_holdout
    from recnb.data.synthetic import make_shop
    from recnb.evaluation import evaluate, evaluate_per_user
    from recnb.models.knn import ItemKNN

    split = random_holdout(make_shop(n_users=70, n_items=50, n_interactions=2000, seed=1), test_ratio=0.25, seed=1)
    model = ItemKNN(neighbours=10).fit(split)
    whole = model.recommend(None, k=7, batch_size=10_000)
    parts = model.recommend(None, k=7, batch_size=3)
    assert torch.equal(whole.indices, parts.indices) and torch.equal(whole.scores, parts.scores)
    assert evaluate(model, split, k=5, batch_size=4) == evaluate(model, split, k=5, batch_size=10_000)
    per_user = evaluate_per_user(model, split, k=5)
    means = evaluate(model, split, k=5)
    assert len(per_user) == means["users"]
    assert per_user["ndcg@5"].mean() == pytest.approx(means["ndcg@5"], rel=1e-6)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.recommend([0], k=3, batch_size=0)


def _owned_score_models():
    from recnb.models.ease import EASE
    from recnb.models.embedding import EmbeddingRecommender
    from recnb.models.knn import ItemKNN, UserKNN
    from recnb.models.mf import BiasedMF
    from recnb.studies.privacy.laplace import DPPopularityRecommender

    return [
        PopularityRecommender(), RandomRecommender(seed=3), ItemKNN(neighbours=5), UserKNN(neighbours=5),
        ItemKNN(neighbours=5, values="rating"), EASE(l2=10.0), DPPopularityRecommender(epsilon=1.0),
        EmbeddingRecommender(embedding_dim=4, max_epochs=1), BiasedMF(max_epochs=1),
    ]


@pytest.mark.parametrize("model", _owned_score_models(), ids=lambda m: type(m).__name__)
def test_score_returns_a_tensor_the_caller_owns(model):
    """``recommend`` writes -inf over seen items of ``score``'s result in place: writing into one
    result must change neither the model nor the next call (a view of a kept table would)."""
    from recnb.data.splits import random_holdout
    from recnb.data.synthetic import make_shop

    split = random_holdout(make_shop(n_users=40, n_items=30, n_interactions=600, seed=2), test_ratio=0.25, seed=2)
    model.fit(split)
    users = torch.tensor([0, 3, 5])
    first = model.score(users)
    reference = first.clone()
    first.fill_(float("nan"))
    assert torch.equal(model.score(users), reference)
    listed = model.recommend(users, k=4)
    assert torch.equal(model.score(users), reference)
    seen = split.seen_csr()[users.numpy()].toarray() != 0
    assert not seen[np.arange(3)[:, None], listed.indices.numpy()].any()
