"""AUC/GAUC, beyond-accuracy metrics and sampled evaluation against independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from recnb import evaluation as M
from recnb.data.sampling import PositiveSet, sample_negatives
from recnb.data.schema import IdIndex, Split
from recnb.math.ranking import PAD


def _random_case(seed: int, n_users: int = 30, n_items: int = 25):
    g = torch.Generator().manual_seed(seed)
    # few distinct values so that ties occur
    scores = torch.randint(0, 6, (n_users, n_items), generator=g).float()
    rel = torch.rand(n_users, n_items, generator=g) < 0.3
    exclude = torch.rand(n_users, n_items, generator=g) < 0.2
    rel[0] = False  # no positive
    rel[1] = True
    exclude[1] = False  # no negative
    return scores, rel, exclude


@pytest.mark.parametrize("seed", range(4))
def test_user_auc_matches_sklearn_per_user(seed):
    scores, rel, exclude = _random_case(seed)
    scores[2, 3] = -torch.inf  # a masked score still ranks (lowest)
    auc = M.user_auc(scores, rel, exclude)
    assert auc.shape == (scores.shape[0],)
    for u in range(scores.shape[0]):
        keep = ~exclude[u]
        y, s = rel[u][keep].numpy(), scores[u][keep].numpy()
        if y.all() or not y.any():
            assert math.isnan(auc[u].item())
        else:
            s = np.where(np.isinf(s), -1e9, s)
            assert auc[u].item() == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_user_auc_by_hand_and_gauc_weights():
    # user 0: positives {0}, negatives {1, 2}: s0 = 2 beats s1 = 1, ties s2 = 2 -> (1 + 0.5) / 2
    # user 1: positives {1, 2} (item 0 excluded), negative {3}: 3 > 0, 1 > 0 -> 1
    scores = torch.tensor([[2.0, 1.0, 2.0, 9.0], [5.0, 3.0, 1.0, 0.0]])
    rel = torch.tensor([[True, False, False, False], [True, True, True, False]])
    exclude = torch.tensor([[False, False, False, True], [True, False, False, False]])
    assert M.user_auc(scores, rel, exclude).tolist() == [0.75, 1.0]
    assert M.gauc(scores, rel, exclude, weights="uniform") == pytest.approx((0.75 + 1.0) / 2)
    assert M.gauc(scores, rel, exclude) == pytest.approx((1 * 0.75 + 2 * 1.0) / 3)
    # without the exclusion, user 0's negative item 3 (score 9) beats the positive
    assert M.user_auc(scores, rel)[0].item() == pytest.approx((1 + 0.5 + 0) / 3)


def test_auc_rejects_bad_input():
    s = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shapes"):
        M.user_auc(s, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        M.user_auc(s, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="weights"):
        M.gauc(s, torch.zeros(2, 3, dtype=torch.bool), weights="clicks")
    with pytest.raises(ValueError, match="undefined"):
        M.gauc(s, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        M.user_auc(torch.full((1, 2), float("nan")), torch.tensor([[True, False]]))


def _ild_loop(ranked, dist):
    out = []
    for row in ranked.tolist():
        items = [i for i in row if i != PAD]
        pairs = [(a, b) for a, b in itertools.permutations(items, 2)]
        out.append(np.mean([dist(a, b) for a, b in pairs]) if pairs else np.nan)
    return np.array(out)


def test_intra_list_diversity_by_category_and_embedding_against_a_loop():
    g = torch.Generator().manual_seed(0)
    n_items = 12
    category = torch.randint(0, 3, (n_items,), generator=g)
    emb = torch.randn(n_items, 4, generator=g, dtype=torch.float64)
    emb[5] = 0.0  # a zero vector: cosine 0, distance 1
    ranked = torch.stack([torch.randperm(n_items, generator=g)[:5] for _ in range(6)])
    ranked[1, 3:] = PAD
    ranked[2, 1:] = PAD  # one item: undefined
    ranked[3] = torch.tensor([5, 0, 1, 2, 3])
    ild_cat = M.intra_list_diversity(ranked, category)
    expected = _ild_loop(ranked, lambda a, b: float(category[a] != category[b]))
    np.testing.assert_allclose(ild_cat.numpy(), expected, equal_nan=True)

    def cos_dist(a, b):
        x, y = emb[a].numpy(), emb[b].numpy()
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        return 1.0 - (0.0 if nx == 0 or ny == 0 else x @ y / (nx * ny))

    np.testing.assert_allclose(M.intra_list_diversity(ranked, emb.numpy()).numpy(), _ild_loop(ranked, cos_dist),
                               equal_nan=True, atol=1e-12)
    # by hand: categories [0, 0, 1] -> pairs differ 2 of 3 (unordered)
    assert M.intra_list_diversity(torch.tensor([[0, 1, 2]]), torch.tensor([0, 0, 1])).item() == pytest.approx(2 / 3)
    with pytest.raises(TypeError, match="category codes"):
        M.intra_list_diversity(ranked, torch.rand(n_items))
    with pytest.raises(IndexError, match=r"0\.\.2"):
        M.intra_list_diversity(torch.tensor([[0, 3]]), torch.tensor([0, 1, 2]))


def test_exposure_gini_and_novelty_against_numpy():
    ranked = torch.tensor([[0, 1, 2], [0, 1, PAD], [0, 3, 1]])
    n_items = 6
    counts = np.bincount(np.array([0, 1, 2, 0, 1, 0, 3, 1]), minlength=n_items)  # [3, 3, 1, 1, 0, 0]
    x = np.sort(counts).astype(float)
    n = len(x)
    lorenz_gini = 1 - 2 * np.sum(np.cumsum(x) / x.sum() - x / (2 * x.sum())) / n  # trapezoid rule
    assert M.exposure_counts(ranked, n_items).tolist() == counts.tolist()
    assert M.exposure_gini(ranked, n_items) == pytest.approx(lorenz_gini)
    assert M.exposure_gini(torch.tensor([[0], [0]]), 4) == pytest.approx(1 - 1 / 4)
    assert M.exposure_gini(torch.tensor([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)

    train_counts = np.array([8, 4, 2, 1, 0, 0])
    nov = M.novelty(ranked, train_counts, n_users=8)
    info = -np.log2(np.maximum(train_counts, 1) / 8)  # [0, 1, 2, 3, 3, 3]
    assert nov.tolist() == pytest.approx([np.mean(info[[0, 1, 2]]), np.mean(info[[0, 1]]), np.mean(info[[0, 3, 1]])])
    assert nov.tolist() == pytest.approx([1.0, 0.5, 4 / 3])
    assert math.isnan(M.novelty(torch.tensor([[PAD]]), train_counts, 8).item())
    with pytest.raises(ValueError, match="n_users"):
        M.novelty(ranked, train_counts, n_users=5)


def _personalisation_loop(ranked):
    lists = [set(i for i in row if i != PAD) for row in ranked.tolist()]
    k = ranked.shape[1]
    overlaps = [len(a & b) / k for a, b in itertools.combinations(lists, 2)]
    return 1 - np.mean(overlaps)


@pytest.mark.parametrize("seed", range(3))
def test_personalisation_against_a_pairwise_loop(seed):
    g = torch.Generator().manual_seed(seed)
    ranked = torch.stack([torch.randperm(15, generator=g)[:4] for _ in range(20)])
    ranked[0, 2:] = PAD
    assert M.personalisation(ranked) == pytest.approx(_personalisation_loop(ranked))


def test_personalisation_by_hand():
    assert M.personalisation(torch.tensor([[0, 1], [0, 1], [0, 1]])) == pytest.approx(0.0)
    assert M.personalisation(torch.tensor([[0, 1], [2, 3]])) == pytest.approx(1.0)
    # overlaps {0,1}&{1,2} = 1, {0,1}&{3,4} = 0, {1,2}&{3,4} = 0 -> mean 1/6 of k=2 -> 1 - 1/6
    assert M.personalisation(torch.tensor([[0, 1], [1, 2], [3, 4]])) == pytest.approx(1 - 1 / 6)
    with pytest.raises(ValueError, match="repeats"):
        M.personalisation(torch.tensor([[0, 0], [1, 2]]))
    with pytest.raises(ValueError, match="pairs of users"):
        M.personalisation(torch.tensor([[0, 1]]))


def _split() -> Split:
    """3 users x 6 items; user 0: train {0, 1}, test {2, 3}; user 1: train {0}, test {4}; user 2: train {5}."""
    train = pd.DataFrame({"user_idx": [0, 0, 1, 2], "item_idx": [0, 1, 0, 5]})
    test = pd.DataFrame({"user_idx": [0, 0, 1, 2], "item_idx": [2, 3, 4, 5]})  # user 2's test item is seen
    for f in (train, test):
        f["user_id"], f["item_id"], f["rating"] = f["user_idx"], f["item_idx"], np.nan
    ids = IdIndex.from_ids(np.arange(6))
    return Split(train, test, IdIndex.from_ids(np.arange(3)), ids, pd.DataFrame({"item_id": np.arange(6)}), "tiny")


def test_held_out_negatives_never_draws_an_interacted_item():
    split = _split()
    u, i, neg = M.held_out_negatives(split, n_negatives=50, seed=3)
    assert u.tolist() == [0, 0, 1] and i.tolist() == [2, 3, 4]
    assert neg.shape == (3, 50)
    assert set(neg[:2].ravel()) <= {4, 5}  # user 0 has 0, 1 (train) and 2, 3 (test)
    assert set(neg[2].ravel()) <= {1, 2, 3, 5}
    assert len(set(neg[2].ravel())) == 4  # uniform over the allowed items: all drawn
    same = M.held_out_negatives(split, n_negatives=50, seed=3)[2]
    np.testing.assert_array_equal(neg, same)
    assert M.held_out_negatives(split, 5, users=[1])[0].tolist() == [1]
    # the training sampler's draws: same generator seed, same interacted set
    interacted = PositiveSet(torch.tensor([0, 0, 0, 0, 1, 1, 2]), torch.tensor([0, 1, 2, 3, 0, 4, 5]), 3, 6)
    again = sample_negatives(torch.tensor([0, 0, 1]), 50, interacted, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(neg, again.numpy())


def test_held_out_negatives_names_a_user_with_nothing_left_to_draw():
    split = _split()
    full = pd.DataFrame({"user_idx": [1] * 4, "item_idx": [1, 2, 3, 5]})  # with train {0} and test {4}: all 6
    full["user_id"], full["item_id"], full["rating"] = full["user_idx"], full["item_idx"], np.nan
    crowded = Split(pd.concat([split.train, full], ignore_index=True), split.test, split.users, split.items,
                    split.items_frame, "crowded")
    with pytest.raises(ValueError, match="user index 1 has no item left"):
        M.held_out_negatives(crowded, 5)
    assert M.held_out_negatives(crowded, 5, users=[0])[0].tolist() == [0, 0]  # user 0 still has items 4, 5


def test_sampled_ranks_count_ties_against_the_item():
    pos = torch.tensor([3.0, 1.0, 0.0])
    neg = torch.tensor([[1.0, 2.0, 5.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert M.sampled_ranks(pos, neg).tolist() == [2, 3, 4]


def test_sampled_rank_metrics_against_a_loop():
    split = _split()
    g = torch.Generator().manual_seed(0)
    table = torch.rand(3, 6, generator=g)

    class Fixed:
        def score(self, users):
            return table[torch.as_tensor(users)]

    k, n = 2, 4
    out = M.sampled_rank_metrics(Fixed(), split, k=k, n_negatives=n, seed=1, batch_size=1)
    u, i, neg = M.held_out_negatives(split, n_negatives=n, seed=1)
    per_user = {}
    for uu, ii, nn in zip(u, i, neg):
        s_pos, s_neg = table[uu, ii].item(), table[uu, nn].numpy()
        r = 1 + int((s_neg >= s_pos).sum())
        auc = ((s_neg < s_pos).sum() + 0.5 * (s_neg == s_pos).sum()) / n
        per_user.setdefault(uu, []).append((float(r <= k), (r <= k) / math.log2(r + 1), auc))
    means = np.mean([np.mean(v, axis=0) for v in per_user.values()], axis=0)
    assert out["hit_rate@2"] == pytest.approx(means[0])
    assert out["ndcg@2"] == pytest.approx(means[1])
    assert out["auc"] == pytest.approx(means[2])
    assert out["users"] == 2 and out["pairs"] == 3
    # a constant scorer: every tie goes against the item -> rank n + 1, no hit
    const = M.sampled_rank_metrics(type("C", (), {"score": lambda self, users: torch.zeros(len(users), 6)})(),
                                   split, k=k, n_negatives=n)
    assert const["hit_rate@2"] == 0.0 and const["auc"] == pytest.approx(0.5)


def test_intra_list_diversity_by_embedding_in_several_user_chunks():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(12, 100_000, generator=g, dtype=torch.float64)  # wide: a few users per chunk
    ranked = torch.stack([torch.randperm(12, generator=g)[:5] for _ in range(20)])
    e = emb.numpy() / np.linalg.norm(emb.numpy(), axis=1, keepdims=True)
    expected = _ild_loop(ranked, lambda a, b: 1.0 - float(e[a] @ e[b]))
    np.testing.assert_allclose(M.intra_list_diversity(ranked, emb).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_jaccard_against_a_pairwise_loop(seed):
    g = torch.Generator().manual_seed(seed)
    ranked = torch.stack([torch.randperm(15, generator=g)[:5] for _ in range(9)])
    ranked[2, 3:] = PAD  # a shorter list
    sets = [set(r[r != PAD].tolist()) for r in ranked]
    want = np.mean([len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2)])
    assert M.mean_jaccard(ranked) == pytest.approx(want, abs=1e-12)


def test_mean_jaccard_by_hand():
    same = torch.tensor([[0, 1, 2], [2, 1, 0]])
    assert M.mean_jaccard(same) == 1.0
    assert M.mean_jaccard(torch.tensor([[0, 1], [2, 3]])) == 0.0
    # {0, 1, 2} vs {1, 2, 3}: 2 shared of 4 -> 0.5; with {0, 5, 6}: 1/5 and 0/6 -> mean (0.5 + 0.2 + 0) / 3
    assert M.mean_jaccard(torch.tensor([[0, 1, 2], [1, 2, 3], [0, 5, 6]])) == pytest.approx(0.7 / 3)
    with pytest.raises(ValueError, match="repeats an item"):
        M.mean_jaccard(torch.tensor([[0, 0], [1, 2]]))
    with pytest.raises(ValueError, match="pairs of users"):
        M.mean_jaccard(torch.tensor([[0, 1]]))


def test_bpr_auc_bound_by_hand_and_below_the_auc():
    # one user, positives scoring 2 and 0, negatives 1 and -1: pairs' differences 1, 3, -1, 1
    scores = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
    relevant = torch.tensor([[True, True, False, False]])
    diffs = np.array([1.0, 3.0, -1.0, 1.0])
    loss = np.mean(np.log1p(np.exp(-diffs)))
    assert M.bpr_auc_bound(scores, relevant).item() == pytest.approx(1 - loss / np.log(2))
    assert M.user_auc(scores, relevant).item() == pytest.approx(0.75)
    g = torch.Generator().manual_seed(0)
    s = torch.randn(40, 30, generator=g) * 3
    rel = torch.rand(40, 30, generator=g) < 0.2
    ex = torch.rand(40, 30, generator=g) < 0.1
    bound, auc = M.bpr_auc_bound(s, rel, ex), M.user_auc(s, rel, ex)
    defined = ~torch.isnan(auc)
    assert torch.equal(defined, ~torch.isnan(bound))
    assert (bound[defined] <= auc[defined] + 1e-12).all()
