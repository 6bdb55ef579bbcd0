"""Bundle pairs, co-occurrence lift and the held-out-bundle evaluation, checked by hand and by counting."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recnb.data.bundles import (
    bundle_task,
    category_complement_scores,
    category_lift,
    co_occurrence,
    evaluate_bundles,
    lift_matrix,
    lift_partners,
    lift_scores,
    make_pairs,
    session_baskets,
    shop_bundle_task,
    shop_partners,
)
from recnb.data.schema import RecData
from recnb.data.synthetic import make_shop


@pytest.fixture
def tiny_shop(make_frame) -> RecData:
    """6 items; categories 0,1 and 2,3 are complements. Purchases per session:
    s1 {1, 2} (a bundle: categories 0 and 1), s2 {1, 3} (two category-0 items: substitutes),
    s3 {3, 4, 5} (3-4 a bundle, 5 of category 2 goes with neither), s4 {6}; views never count."""
    rows = [
        (1, 1, "2024-01-01 10:00", "purchase", 4, 1), (1, 2, "2024-01-01 10:05", "purchase", 5, 1),
        (1, 6, "2024-01-01 10:06", "view", None, 1),
        (2, 1, "2024-01-02 10:00", "purchase", 3, 2), (2, 3, "2024-01-02 10:02", "purchase", 3, 2),
        (3, 3, "2024-01-03 10:00", "purchase", 4, 3), (3, 4, "2024-01-03 10:01", "purchase", 4, 3),
        (3, 5, "2024-01-03 10:02", "purchase", 2, 3), (3, 2, "2024-01-03 10:03", "click", None, 3),
        (1, 6, "2024-01-04 10:00", "purchase", 5, 4),
    ]
    items = pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6], "title": list("abcdef"), "category": list("xyxyzw"),
                          "text": list("abcdef")})
    truth = {"item_category": np.array([0, 1, 0, 1, 2, 3]), "complement": np.array([1, 0, 3, 2])}
    return RecData("tiny", make_frame(rows), items, pd.DataFrame({"user_id": [1, 2, 3]}), truth)


def test_session_baskets_hold_purchases_only(tiny_shop):
    baskets, start = session_baskets(tiny_shop)
    expected = np.array([[1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(baskets.toarray(), expected)
    assert pd.Timestamp(start[2]) == pd.Timestamp("2024-01-03 10:00")


def test_partners_are_complementary_co_purchases(tiny_shop):
    baskets, _ = session_baskets(tiny_shop)
    p = shop_partners(baskets, tiny_shop.truth["item_category"], tiny_shop.truth["complement"]).toarray()
    expected = np.zeros((6, 6), bool)
    for a, b in [(0, 1), (2, 3)]:  # items 1-2 and 3-4; 1-3 are substitutes, 5 has no complement bought
        expected[a, b] = expected[b, a] = True
    np.testing.assert_array_equal(p, expected)


def test_lift_on_the_tiny_shop_by_hand(tiny_shop):
    baskets, _ = session_baskets(tiny_shop)
    lift = lift_matrix(baskets).toarray()
    # N = 4 sessions; n = [2, 1, 2, 1, 1, 1]; lift = N C_ij / (n_i n_j)
    assert lift[0, 1] == pytest.approx(4 * 1 / (2 * 1))
    assert lift[0, 2] == pytest.approx(4 * 1 / (2 * 2))
    assert lift[3, 4] == pytest.approx(4 * 1 / (1 * 1))
    assert lift[0, 5] == 0 and lift[0, 0] == 0
    np.testing.assert_allclose(lift, lift.T)


def test_lift_matches_a_direct_count():
    rng = np.random.default_rng(3)
    dense = rng.random((40, 9)) < 0.3
    baskets = [set(np.flatnonzero(row)) for row in dense]
    c, n, total = co_occurrence(sp.csr_matrix(dense.astype(np.float32)))
    lift = lift_matrix(sp.csr_matrix(dense.astype(np.float32))).toarray()
    assert total == 40
    for i in range(9):
        assert n[i] == sum(i in b for b in baskets)
    for i, j in combinations(range(9), 2):
        both = sum(i in b and j in b for b in baskets)
        assert c[i, j] == both
        expected = 40 * both / (n[i] * n[j]) if both else 0.0
        assert lift[i, j] == pytest.approx(expected) and lift[j, i] == pytest.approx(expected)


def test_support_threshold_drops_rare_pairs_and_keeps_the_rest():
    rng = np.random.default_rng(5)
    dense = (rng.random((60, 8)) < 0.2).astype(np.float32)
    c, _, _ = co_occurrence(sp.csr_matrix(dense))
    full = lift_matrix(sp.csr_matrix(dense)).toarray()
    for m in (3, 5):
        thresholded = lift_matrix(sp.csr_matrix(dense), min_count=m).toarray()
        kept = c.toarray() >= m
        np.testing.assert_allclose(thresholded[kept], full[kept])
        assert not thresholded[~kept].any()
        assert kept.any() and (~kept & (c.toarray() > 0)).any()  # the threshold bites on this draw
    with pytest.raises(ValueError, match="min_count"):
        lift_matrix(sp.csr_matrix(dense), min_count=0)


def test_category_lift_by_hand():
    # items 0,1 in category "a", 2 in "b", 3 in "c"; baskets: {0,2}, {1,2}, {3}, {0,1}
    dense = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], np.float32)
    lift, labels = category_lift(sp.csr_matrix(dense), ["a", "a", "b", "c"])
    assert labels.tolist() == ["a", "b", "c"]
    # N = 4; N_a = 3 baskets hold an a-item, N_b = 2, N_c = 1; N_ab = 2, N_ac = 0, N_bc = 0
    assert lift[0, 1] == pytest.approx(4 * 2 / (3 * 2)) and lift[1, 0] == pytest.approx(lift[0, 1])
    assert lift[0, 2] == 0 and lift[1, 2] == 0
    assert lift[0, 0] == pytest.approx(4 * 3 / (3 * 3)) and lift[2, 2] == pytest.approx(4.0)


def test_category_complement_ranks_the_complement_category_by_popularity():
    # categories x (items 0, 1), y (items 2, 3, 4), z (item 5); x goes with y, never with z
    dense = np.array([
        [1, 0, 1, 0, 0, 0], [1, 0, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0],
    ], np.float32)
    cats = ["x", "x", "y", "y", "y", "z"]
    scores = category_complement_scores(sp.csr_matrix(dense), cats, [0, 5]).numpy()
    # anchor 0 (x): y first (lift > 0), by popularity 3 (3 baskets) > 2 (1) = 4 (1, lower index first),
    # then z, then x itself last
    order = np.argsort(-scores[0], kind="stable").tolist()
    assert order[:3] == [3, 2, 4] and order[3] == 5 and set(order[4:]) == {0, 1}
    # anchor 5 (z): y (one basket with z) before x (never with z), z itself last
    order5 = np.argsort(-scores[1], kind="stable").tolist()
    assert order5[:3] == [3, 2, 4] and set(order5[3:5]) == {0, 1} and order5[5] == 5
    # the score is lexicographic: category position first, popularity only within a category
    assert scores[0, 4] > scores[0, 5] + 0.5


def test_lift_partners_need_support_and_lift():
    dense = np.zeros((10, 4), np.float32)
    dense[:4, [0, 1]] = 1  # 0 and 1 only together, 4 times: lift = 10*4/(4*4) = 2.5
    dense[4:10, 2] = 1
    dense[8:10, 3] = 1  # 2 and 3 together twice, n = 6 and 2: lift = 10*2/(6*2) = 1.67
    dense[9, 0] = 1  # 0 and 3 together once: lift = 10*1/(5*2) = 1, count 1
    p = lift_partners(sp.csr_matrix(dense), min_count=2, min_lift=2.0).toarray()
    expected = np.zeros((4, 4), bool)
    expected[0, 1] = expected[1, 0] = True  # lift(0, 1) = 10*4/(5*4) = 2.0 with n_0 = 5
    np.testing.assert_array_equal(p, expected)
    assert lift_partners(sp.csr_matrix(dense), min_count=2, min_lift=1.5).toarray()[2, 3]
    assert not lift_partners(sp.csr_matrix(dense), min_count=5, min_lift=1.0).toarray().any()


def test_make_pairs_targets_and_negatives():
    partners = sp.csr_matrix(np.array([[0, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0],
                                       [0, 0, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]], bool))
    pairs = make_pairs(partners, np.array([0, 3]), n_negatives=4, seed=1)
    pos = pairs[pairs["target"] == 1]
    assert sorted(zip(pos["anchor"], pos["candidate"])) == [(0, 1), (0, 2), (3, 4)]
    neg = pairs[pairs["target"] == 0]
    assert (neg.groupby("anchor").size() == pd.Series({0: 8, 3: 4})).all()
    dense = partners.toarray()
    assert not dense[neg["anchor"], neg["candidate"]].any()
    assert (neg["anchor"] != neg["candidate"]).all()
    pd.testing.assert_frame_equal(pairs, make_pairs(partners, np.array([0, 3]), n_negatives=4, seed=1))
    allowed = np.array([True, True, False, True, True, False])
    restricted = make_pairs(partners, np.array([0, 3]), n_negatives=4, seed=1, allowed=allowed)
    assert not set(restricted["candidate"]) & {2, 5}


def test_bundle_task_holds_test_anchors_out():
    data = make_shop(n_users=300, n_items=120, n_interactions=15_000, seed=0)
    task = shop_bundle_task(data, n_negatives=2, seed=0)
    test = set(task.anchors["test"])
    for name in ("train", "val"):
        used = set(task.pairs[name]["anchor"]) | set(task.pairs[name]["candidate"])
        assert not used & test, f"{name} pairs touch a test anchor"
    assert not set(task.pairs["train"]["candidate"]) & set(task.anchors["val"])
    # relevance = future partners of the evaluated anchors, every one of them a real complement
    np.testing.assert_array_equal(task.relevant.numpy(), task.future_partners[task.eval_anchors].toarray())
    cat, comp = data.truth["item_category"], data.truth["complement"]
    a, j = np.nonzero(task.relevant.numpy())
    assert (comp[cat[task.eval_anchors[a]]] == cat[j]).all()
    # positives are history partners for train/val, future partners for test
    for name, partners in [("train", task.history_partners), ("test", task.future_partners)]:
        pos = task.pairs[name][task.pairs[name]["target"] == 1]
        assert np.asarray(partners[pos["anchor"].to_numpy(), pos["candidate"].to_numpy()]).all()
    assert task.cold.tolist() == [task.lift[a].nnz == 0 for a in task.eval_anchors]


def test_bundle_task_rejects_bad_shares(tiny_shop):
    baskets, start = session_baskets(tiny_shop)
    with pytest.raises(ValueError, match="history_share"):
        bundle_task(baskets, start, list("abcdef"), list("xyxyzw"), lambda b: b.T @ b, history_share=1.0)
    with pytest.raises(ValueError, match="fractions"):
        bundle_task(baskets, start, list("abcdef"), list("xyxyzw"), lambda b: b.T @ b, fractions=(0.5, 0.5, 0.5))


def test_evaluate_bundles_by_hand():
    scores = torch.tensor([[9.0, 0.5, 0.4, 0.3, 0.0], [0.1, 0.2, 0.3, 0.9, 0.8]])
    relevant = torch.tensor([[False, False, True, False, False], [False, False, False, False, True]])
    out = evaluate_bundles(scores, relevant, np.array([0, 3]), k=2, per_anchor=True)
    # anchor 0 excluded from its row: ranking [1, 2] -> hit at rank 2: 1/log2(3)
    # anchor 3 excluded from its row: ranking [4, 2] -> hit at rank 1: 1
    assert out["per_anchor"]["ndcg@2"].tolist() == pytest.approx([1 / np.log2(3), 1.0])
    assert out["hit_rate@2"] == pytest.approx(1.0)
    assert out["ndcg@2"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    k1 = evaluate_bundles(scores, relevant, np.array([0, 3]), k=1)
    assert k1["hit_rate@1"] == pytest.approx(0.5) and k1["anchors"] == 2
    with pytest.raises(ValueError, match="len\\(anchors\\)"):
        evaluate_bundles(scores, relevant, np.array([0]), k=2)


def test_lift_scores_rows():
    lift = sp.csr_matrix(np.array([[0, 2.0, 0], [2.0, 0, 1.0], [0, 1.0, 0]]))
    np.testing.assert_array_equal(lift_scores(lift, np.array([2, 0])).numpy(), [[0, 1, 0], [0, 2, 0]])
