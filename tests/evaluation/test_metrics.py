"""Ranking and rating metrics against hand computations, scikit-learn and torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import ndcg_score
from torchmetrics.functional.retrieval import (
    retrieval_average_precision,
    retrieval_hit_rate,
    retrieval_normalized_dcg,
    retrieval_precision,
    retrieval_recall,
    retrieval_reciprocal_rank,
)

from recnb import evaluation as M
from recnb.data.schema import IdIndex, Split
from recnb.math.ranking import PAD, rank
from recnb.models.popularity import PopularityRecommender

ALL = {
    "precision": M.precision_at_k,
    "recall": M.recall_at_k,
    "f1": M.f1_at_k,
    "ndcg": M.ndcg_at_k,
    "map": M.map_at_k,
    "hit_rate": M.hit_rate_at_k,
    "mrr": M.mrr,
}


def _relevant(rows: list[list[int]], n_items: int) -> torch.Tensor:
    rel = torch.zeros(len(rows), n_items, dtype=torch.bool)
    for u, items in enumerate(rows):
        rel[u, items] = True
    return rel


def test_hand_computed_case_with_pad_and_user_without_relevant_items():
    ranked = torch.tensor([[3, 1, PAD], [0, 1, 2]])
    rel = _relevant([[1, 2], []], 4)
    l3 = math.log2(3)
    expected = {
        "precision": 1 / 3,
        "recall": 1 / 2,
        "f1": 0.4,
        "ndcg": (1 / l3) / (1 + 1 / l3),
        "map": (1 / 2) / 2,  # P@2 at the one hit, over min(k=3, R=2)
        "hit_rate": 1.0,
        "mrr": 0.5,
    }
    for name, fn in ALL.items():
        out = fn(ranked, rel)
        assert out.shape == (2,)
        assert out[0].item() == pytest.approx(expected[name], abs=1e-6), name
        assert math.isnan(out[1].item()), name


def test_perfect_and_empty_lists():
    rel = _relevant([[2, 4]], 6)
    perfect = torch.tensor([[4, 2, 0]])
    miss = torch.tensor([[0, 1, 3]])
    assert M.ndcg_at_k(perfect, rel).item() == pytest.approx(1.0)
    assert M.map_at_k(perfect, rel).item() == pytest.approx(1.0)
    assert M.recall_at_k(perfect, rel).item() == pytest.approx(1.0)
    assert M.precision_at_k(perfect, rel).item() == pytest.approx(2 / 3)
    for fn in ALL.values():
        assert fn(miss, rel).item() == 0.0


def test_map_denominator_is_min_k_and_relevant_count():
    # one hit at rank 1 among 5 relevant items, k = 2: AP@2 = 1 / min(2, 5) = 0.5 (torchmetrics: 1.0)
    rel = _relevant([[0, 1, 2, 3, 4]], 8)
    ranked = torch.tensor([[0, 7]])
    assert M.map_at_k(ranked, rel).item() == pytest.approx(0.5)
    preds = torch.tensor([8.0, 1, 1.5, 1.2, 1.1, 1.3, 1.4, 7.0])
    assert retrieval_average_precision(preds, rel[0], top_k=2).item() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_against_torchmetrics_and_sklearn_on_random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    n_users, n_items = 40, 30
    scores = torch.rand(n_users, n_items, generator=g) + 0.1  # positive: torchmetrics drops scores <= 0
    rel = torch.rand(n_users, n_items, generator=g) < torch.rand(n_users, 1, generator=g) * 0.4
    rel[0] = False
    rel[1, :] = False
    rel[1, 5] = True
    for k in (1, 3, 10, n_items):
        ranked = rank(scores, k=k).indices
        ours = {name: fn(ranked, rel) for name, fn in ALL.items()}
        for u in range(n_users):
            if not rel[u].any():
                assert all(math.isnan(v[u].item()) for v in ours.values())
                continue
            p, t = scores[u], rel[u]
            assert ours["precision"][u].item() == pytest.approx(retrieval_precision(p, t, top_k=k).item(), abs=1e-6)
            assert ours["recall"][u].item() == pytest.approx(retrieval_recall(p, t, top_k=k).item(), abs=1e-6)
            assert ours["ndcg"][u].item() == pytest.approx(retrieval_normalized_dcg(p, t, top_k=k).item(), abs=1e-5)
            assert ours["ndcg"][u].item() == pytest.approx(
                ndcg_score(t[None].numpy().astype(float), p[None].numpy(), k=k), abs=1e-5
            )
            assert ours["hit_rate"][u].item() == pytest.approx(retrieval_hit_rate(p, t, top_k=k).item())
            assert ours["mrr"][u].item() == pytest.approx(retrieval_reciprocal_rank(p, t, top_k=k).item(), abs=1e-6)
            # torchmetrics' AP divides by the hits in the top k; ours by min(k, R_u)
            n_hits = t[ranked[u]].sum().item()
            tm_ap = retrieval_average_precision(p, t, top_k=k).item()
            assert ours["map"][u].item() == pytest.approx(tm_ap * n_hits / min(k, t.sum().item()), abs=1e-6)
            pr, rc = ours["precision"][u].item(), ours["recall"][u].item()
            assert ours["f1"][u].item() == pytest.approx(0 if pr + rc == 0 else 2 * pr * rc / (pr + rc), abs=1e-6)


def test_metrics_reject_bad_input():
    rel = _relevant([[0]], 3)
    with pytest.raises(IndexError, match="0..2"):
        M.precision_at_k(torch.tensor([[3]]), rel)
    with pytest.raises(ValueError, match="users"):
        M.recall_at_k(torch.tensor([[0], [1]]), rel)
    with pytest.raises(TypeError, match="bool"):
        M.ndcg_at_k(torch.tensor([[0]]), rel.float())
    with pytest.raises(ValueError, match="k >= 1"):
        M.mrr(torch.zeros(1, 0, dtype=torch.long), rel)


def test_coverage_mean_and_rating_errors():
    ranked = torch.tensor([[0, 1, PAD], [1, 2, PAD]])
    assert M.catalogue_coverage(ranked, 6) == pytest.approx(0.5)
    assert M.mean(torch.tensor([1.0, float("nan"), 0.0])) == pytest.approx(0.5)
    pred, true = torch.tensor([3.0, 4.0, 1.0]), torch.tensor([2.0, 4.0, 3.0])
    assert M.rmse(pred, true) == pytest.approx(math.sqrt(5 / 3))
    assert M.mae(pred, true) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 values"):
        M.rmse(pred, true[:2])


def _split() -> Split:
    """4 users x 5 items. Train counts per item: 0:3, 1:2, 2:1, 3:0, 4:0."""
    train = pd.DataFrame({"user_idx": [0, 1, 2, 0, 1, 3], "item_idx": [0, 0, 0, 1, 1, 2], "rating": [4.0] * 6})
    test = pd.DataFrame(
        {"user_idx": [0, 1, 2, 3, 3], "item_idx": [2, 4, 1, 2, 0], "rating": [5.0, 1.0, 3.0, 2.0, np.nan]}
    )
    for f in (train, test):
        f["user_id"], f["item_id"] = f["user_idx"] + 100, f["item_idx"] + 10
    items = pd.DataFrame({"item_id": np.arange(10, 15)})
    return Split(train, test, IdIndex.from_ids(np.arange(100, 104)), IdIndex.from_ids(np.arange(10, 15)), items, "tiny")


def test_evaluate_popularity_by_hand():
    split = _split()
    model = PopularityRecommender().fit(split)
    # user 0 (seen 0,1) -> [2, 3]: hit at 1. user 1 (seen 0,1) -> [2, 3]: relevant {4}, miss.
    # user 2 (seen 0) -> [1, 2]: hit at 1. user 3 (seen 2) -> [0, 1]: test {2 (seen), 0}: hit at 1.
    out = M.evaluate(model, split, k=2)
    assert out["users"] == 4
    assert out["precision@2"] == pytest.approx(3 / 8)
    assert out["recall@2"] == pytest.approx(3 / 4)
    assert out["hit_rate@2"] == pytest.approx(3 / 4)
    assert out["mrr@2"] == pytest.approx(3 / 4)
    assert out["ndcg@2"] == pytest.approx(3 / 4)
    assert out["coverage@2"] == pytest.approx(4 / 5)
    only = M.evaluate(model, split, k=2, users=[1], metrics=("recall",))
    assert only == {"recall@2": 0.0, "users": 1.0}
    with pytest.raises(ValueError, match="unknown metric"):
        M.evaluate(model, split, metrics=("auc",))


def test_rating_metrics_reads_scores_at_test_pairs():
    split = _split()

    class Constant:
        def score(self, users):
            return torch.full((len(users), 5), 3.0)

    out = M.rating_metrics(Constant(), split)
    # test ratings with a value: 5, 1, 3, 2 -> errors 2, -2, 0, -1
    assert out["pairs"] == 4
    assert out["rmse"] == pytest.approx(math.sqrt(9 / 4))
    assert out["mae"] == pytest.approx(5 / 4)


def test_compare_tabulates_evaluate_and_rating_metrics():
    split = _split()
    pop = PopularityRecommender().fit(split)

    class Rated(PopularityRecommender):
        values = "rating"

        def score(self, users=None):
            return torch.full((len(users), 5), 3.0)

    rated = Rated().fit(split)
    table = M.compare({"pop": pop, "rated": rated}, split, k=2, metrics=("recall", "ndcg"), ratings=True)
    assert list(table.columns) == ["recall@2", "ndcg@2", "rmse", "mae"]
    assert table.loc["pop", "recall@2"] == pytest.approx(3 / 4)
    assert math.isnan(table.loc["pop", "rmse"])
    assert table.loc["rated", "rmse"] == pytest.approx(math.sqrt(9 / 4))


def test_mean_popularity_by_hand():
    counts = torch.tensor([3.0, 2.0, 1.0, 0.0, 0.0])
    ranked = torch.tensor([[0, 2, PAD], [1, 0, 4]])
    # recommended slots: 0, 2, 1, 0, 4 -> counts 3, 1, 2, 3, 0 (PAD ignored)
    assert M.mean_popularity(ranked, counts) == pytest.approx(9 / 5)
    assert M.mean_popularity(ranked, counts, reduce="median") == pytest.approx(2.0)
    # an even number of slots: counts 3, 2, 1, 0 -> median is the mean of the middle two
    assert M.mean_popularity(torch.tensor([[0, 1], [2, 3]]), counts.numpy(), reduce="median") == pytest.approx(1.5)
    with pytest.raises(ValueError, match="reduce must be"):
        M.mean_popularity(ranked, counts, reduce="max")
    with pytest.raises(ValueError, match="every slot is PAD"):
        M.mean_popularity(torch.tensor([[PAD, PAD]]), counts)
    with pytest.raises(IndexError, match=r"0\.\.4"):
        M.mean_popularity(torch.tensor([[5]]), counts)


def test_evaluate_on_a_shelf_by_hand():
    split = _split()
    model = PopularityRecommender().fit(split)
    # relevant (test minus train): u0 {2}, u1 {4}, u2 {1}, u3 {0}. Shelf {1, 3, 4}: only u1 {4} and
    # u2 {1} keep a relevant shelf item. Shelf scores (training users): 1 -> 2, 3 -> 0, 4 -> 0.
    # u1 (seen 0, 1) -> [3, 4] (tie: lower index first): hit at rank 2.
    # u2 (seen 0)    -> [1, 3]: hit at rank 1.
    out = M.evaluate(model, split, k=2, items=[4, 1, 3], metrics=("precision", "recall", "ndcg", "mrr", "coverage"))
    assert out["users"] == 2
    assert out["precision@2"] == pytest.approx(1 / 2)
    assert out["recall@2"] == pytest.approx(1.0)
    assert out["ndcg@2"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert out["mrr@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["coverage@2"] == pytest.approx(3 / 3)  # lists {3, 4} and {1, 3} cover the shelf
    # the whole catalogue as the shelf is plain evaluate
    assert M.evaluate(model, split, k=2, items=np.arange(5)) == M.evaluate(model, split, k=2)
    with pytest.raises(ValueError, match="on the shelf"):
        M.evaluate(model, split, k=2, items=[3])  # item 3 is nobody's held-out item
    with pytest.raises(ValueError, match="repeated"):
        M.evaluate(model, split, items=[1, 1])
    with pytest.raises(IndexError, match=r"0\.\.4, got 1\.\.7"):
        M.evaluate(model, split, items=[1, 7])


def test_evaluate_on_a_shelf_maps_back_to_item_indices():
    split = _split()
    scores = torch.tensor([[0.0, 1.0, 5.0, 4.0, 3.0]] * 4)

    class Fixed(PopularityRecommender):
        def score(self, users=None):
            return scores[: len(users)].clone()

    model = Fixed().fit(split)
    # shelf {0, 2, 4}: u3 (seen 2, relevant {0}) ranks 4 (3.0) then 0 (0.0): hit at rank 2 of k=2
    out = M.evaluate(model, split, k=2, users=[3], items=[0, 2, 4], metrics=("ndcg", "mrr"))
    assert out == {"ndcg@2": pytest.approx(1 / math.log2(3)), "mrr@2": pytest.approx(0.5), "users": 1.0}


def test_rank_of_by_hand():
    split = _split()
    model = PopularityRecommender().fit(split)
    # scores (training users) [3, 2, 1, 0, 0]; seen: u0 {0, 1}, u1 {0, 1}, u2 {0}, u3 {2}
    # item 3: u0 ranks 2 > 3 -> 2nd; u1 the same; u2 ranks 1, 2 first -> 3rd; u3 ranks 0, 1 first -> 3rd
    assert M.rank_of(model, None, 3).tolist() == [2, 2, 3, 3]
    # item 4 ties with item 3 (0 users): the lower index goes first
    assert M.rank_of(model, [0, 3], 4).tolist() == [3, 4]
    # item 0 is a training item of u0, u1, u2: not in their rankings -> 0
    assert M.rank_of(model, None, 0).tolist() == [0, 0, 0, 1]
    assert M.rank_of(model, [0], 3, exclude_seen=False).tolist() == [4]
    # agrees with the position in the full recommend list
    full = model.recommend(None, k=5).indices
    for item in range(5):
        expected = [(row.tolist().index(item) + 1) if item in row.tolist() else 0 for row in full]
        assert M.rank_of(model, None, item).tolist() == expected
    with pytest.raises(IndexError, match=r"0\.\.4, got 5"):
        M.rank_of(model, None, 5)
