"""MMR and calibrated re-ranking against per-user brute-force loops, scipy's KL, and hand cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recnb.data.schema import IdIndex, Split
from recnb.data.categories import category_distribution, category_means
from recnb.math.ranking import PAD, Ranking, rank
from recnb.models.base import Recommender, as_user_tensor
from recnb.policies.rerank import (
    ItemSimilarity,
    calibrated,
    candidates,
    distinct_categories,
    history_distribution,
    list_distribution,
    kl_divergence,
    mmr,
    normalise_candidates,
    taste_mass,
    threshold_curve,
)


def _case(seed: int, n_users: int = 6, n_items: int = 15, n_cat: int = 3):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 8, (n_users, n_items), generator=g).double()  # ties happen
    cats = torch.randint(0, n_cat, (n_items,), generator=g)
    emb = torch.randn(n_items, 4, generator=g, dtype=torch.float64)
    exclude = torch.rand(n_users, n_items, generator=g) < 0.2
    return scores, cats, emb, exclude


def _minmax(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in values]


def _brute_mmr(scores, sim, lam, k, exclude, n_cand):
    """The MMR definition, one user at a time, in plain Python."""
    out = []
    for u in range(scores.shape[0]):
        order = sorted((i for i in range(scores.shape[1]) if not exclude[u, i]), key=lambda i: (-scores[u, i].item(), i))
        cand = order[:n_cand]
        rel = dict(zip(cand, _minmax([scores[u, i].item() for i in cand])))
        picked: list[int] = []
        while len(picked) < min(k, len(cand)):
            best, best_val = None, -math.inf
            for i in cand:  # candidate order: the first maximum wins
                if i in picked:
                    continue
                pen = max(sim[i][j] for j in picked) if picked else 0.0
                val = lam * rel[i] - (1 - lam) * pen
                if val > best_val:
                    best, best_val = i, val
            picked.append(best)
        out.append(picked + [PAD] * (k - len(picked)))
    return torch.tensor(out)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("source", ["categories", "embeddings", "matrix", "sparse"])
def test_mmr_matches_brute_force(seed, lam, source):
    scores, cats, emb, exclude = _case(seed)
    n = len(cats)
    if source == "categories":
        simf, dense = ItemSimilarity.from_categories(cats), (cats[:, None] == cats[None, :]).double()
    elif source == "embeddings":
        simf = ItemSimilarity.from_embeddings(emb)
        e = emb / emb.norm(dim=1, keepdim=True)
        dense = e @ e.T
    else:
        dense = torch.rand(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        dense[dense < 0.5] = 0  # a pruned, asymmetric kNN-like matrix
        simf = ItemSimilarity.from_matrix(sp.csr_matrix(dense.numpy()) if source == "sparse" else dense)
    got = mmr(scores, simf, lam, k=5, exclude=exclude, n_candidates=8)
    want = _brute_mmr(scores, dense.tolist(), lam, 5, exclude, 8)
    assert torch.equal(got.indices, want)
    # scores are the base scores of the picked items
    assert torch.equal(got.scores, torch.gather(scores, 1, want.clamp(min=0)).masked_fill(want == PAD, -torch.inf))


def test_mmr_at_lambda_one_is_the_base_ranking():
    scores, cats, _, exclude = _case(7, n_users=10, n_items=30)
    base = rank(scores, k=10, exclude=exclude)
    got = mmr(scores, ItemSimilarity.from_categories(cats), lam=1.0, k=10, exclude=exclude, n_candidates=30)
    assert torch.equal(got.indices, base.indices) and torch.equal(got.scores, base.scores)


def test_mmr_second_pick_switches_category():
    # items 0, 1 in category 0 score 1.0 and 0.9; item 2 in category 1 scores 0.5; item 3 (cat 0) 0.0
    scores = torch.tensor([[1.0, 0.9, 0.5, 0.0]])
    sim = ItemSimilarity.from_categories([0, 0, 1, 0])
    assert mmr(scores, sim, lam=1.0, k=2).indices.tolist() == [[0, 1]]
    # rel = (1, 0.9, 0.5, 0); λ = 0.6: item 1 gets 0.54 − 0.4 = 0.14, item 2 gets 0.30 − 0 = 0.30
    assert mmr(scores, sim, lam=0.6, k=2).indices.tolist() == [[0, 2]]
    # λ = 0.8: item 1 gets 0.72 − 0.2 = 0.52, item 2 gets 0.40: relevance still wins
    assert mmr(scores, sim, lam=0.8, k=2).indices.tolist() == [[0, 1]]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), lam=st.floats(0.0, 0.99))
def test_mmr_property_first_pick_and_no_less_diverse(seed, lam):
    """First pick is the base top item; by category, a λ<1 list never has more same-category
    pairs among its first two items than the λ=1 list (the second pick avoids the first's category
    whenever that is worth it), and every list holds distinct items."""
    scores, cats, _, _ = _case(seed, n_users=4, n_items=12)
    sim = ItemSimilarity.from_categories(cats)
    base = mmr(scores, sim, 1.0, k=6).indices
    got = mmr(scores, sim, lam, k=6).indices
    assert torch.equal(got[:, 0], base[:, 0])
    for row in got.tolist():
        assert len(set(row)) == len(row)
    same = lambda r: (cats[r[:, 0]] == cats[r[:, 1]]).sum()
    assert same(got) <= same(base)


def test_mmr_pads_when_candidates_run_out_and_accepts_a_block():
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    ex = torch.tensor([[False, True, False]])
    got = mmr(scores, ItemSimilarity.from_categories([0, 0, 1]), lam=0.5, k=4, exclude=ex)
    assert got.indices.tolist() == [[0, 2, PAD, PAD]]
    assert got.scores[0, 2:].tolist() == [-math.inf, -math.inf]
    cand = candidates(scores, 3)
    block = ItemSimilarity.from_categories([0, 0, 1]).block(cand.indices)
    assert torch.equal(mmr(cand, block, 0.5, k=3).indices, mmr(scores, ItemSimilarity.from_categories([0, 0, 1]), 0.5, k=3).indices)
    with pytest.raises(ValueError, match="lam"):
        mmr(scores, block, 1.5)
    with pytest.raises(ValueError, match=r"\(U, N, N\)"):
        mmr(cand, block[:, :2, :2], 0.5)


def test_candidates_from_a_ranking_drop_excluded_items():
    cand = Ranking(torch.tensor([[4, 2, 7, PAD]]), torch.tensor([[3.0, 2.0, 1.0, -math.inf]]))
    got = candidates(cand, exclude=[[2]])
    assert got.indices.tolist() == [[4, 7, PAD, PAD]]
    assert got.scores.tolist() == [[3.0, 1.0, -math.inf, -math.inf]]


def test_normalise_candidates_by_hand():
    cand = Ranking(torch.tensor([[0, 1, 2], [3, 4, PAD]]), torch.tensor([[5.0, 3.0, 1.0], [2.0, 2.0, -math.inf]]))
    rel = normalise_candidates(cand)
    assert rel[0].tolist() == [1.0, 0.5, 0.0]
    assert rel[1].tolist() == [0.0, 0.0, -math.inf]


def test_block_matches_the_dense_similarity():
    _, cats, emb, _ = _case(3)
    items = torch.tensor([[0, 3, 5, PAD], [2, 2, 9, 1]])
    b = ItemSimilarity.from_embeddings(emb).block(items)
    e = emb / emb.norm(dim=1, keepdim=True)
    full = e @ e.T
    assert torch.allclose(b[1], full[[2, 2, 9, 1]][:, [2, 2, 9, 1]])
    assert torch.allclose(b[0, :3, :3], full[[0, 3, 5]][:, [0, 3, 5]])
    assert (b[0, 3] == 0).all() and (b[0, :, 3] == 0).all()
    with pytest.raises(IndexError):
        ItemSimilarity.from_categories(cats).block(torch.tensor([[0, 99]]))
    with pytest.raises(TypeError, match="codes"):
        ItemSimilarity.from_categories([0.5, 1.0])


# --- calibration -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_kl_divergence_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(5, 0.5), size=4)
    p[0, 1] = 0
    p[0] /= p[0].sum()
    q = rng.dirichlet(np.ones(5), size=4)
    for alpha in (0.0, 0.01, 0.5):
        got = kl_divergence(torch.from_numpy(p), torch.from_numpy(q), alpha)
        want = [scipy.stats.entropy(p[u], (1 - alpha) * q[u] + alpha * p[u]) for u in range(4)]
        assert np.allclose(got.numpy(), want)
    # p_c > 0 = q_c without smoothing: infinite
    assert kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == math.inf


def test_history_distribution_by_hand():
    item_dist = category_distribution([0, 1, 1, 2])
    h = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 0], [2, 0, 0, 2]], dtype=np.float32))
    p = history_distribution(h, item_dist)
    assert np.allclose(p.numpy(), [[1 / 3, 2 / 3, 0], [0, 0, 0], [0.5, 0, 0.5]])
    assert torch.allclose(history_distribution(torch.from_numpy(h.toarray()), item_dist), p)
    with pytest.raises(ValueError, match="distributions"):
        category_distribution(np.array([[0.5, 0.6]]))


def _brute_calibrated(scores, cats, hist, lam, k, alpha, n_cand):
    n_cat = max(cats) + 1
    out = []
    for u in range(scores.shape[0]):
        cand = sorted(range(scores.shape[1]), key=lambda i: (-scores[u, i], i))[:n_cand]
        rel = dict(zip(cand, _minmax([scores[u, i] for i in cand])))
        h = [cats[j] for j in range(len(cats)) for _ in range(int(hist[u, j]))]
        p = np.bincount(h, minlength=n_cat) / max(len(h), 1)
        picked: list[int] = []
        for _ in range(min(k, len(cand))):
            best, best_val = None, -math.inf
            for i in cand:
                if i in picked:
                    continue
                lst = picked + [i]
                q = np.bincount([cats[j] for j in lst], minlength=n_cat) / len(lst)
                kl = scipy.stats.entropy(p, (1 - alpha) * q + alpha * p) if p.sum() > 0 else 0.0
                val = (1 - lam) * sum(rel[j] for j in lst) - lam * kl
                if val > best_val + 1e-12:
                    best, best_val = i, val
            picked.append(best)
        out.append(picked)
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.9, 0.99])  # λ = 1 ties mathematically equal KLs
def test_calibrated_matches_brute_force(seed, lam):
    rng = np.random.default_rng(seed)
    n_users, n_items = 5, 14
    scores = rng.normal(size=(n_users, n_items))  # continuous: no ties between objectives
    cats = rng.integers(0, 3, n_items).tolist()
    hist = (rng.random((n_users, n_items)) < 0.3).astype(np.float64)
    hist[0] = 0  # no history: relevance alone
    got = calibrated(torch.from_numpy(scores), cats, torch.from_numpy(hist), lam, k=5, alpha=0.01, n_candidates=10)
    assert got.indices.tolist() == _brute_calibrated(scores, cats, hist, lam, 5, 0.01, 10)
    # the general path, category distributions given as (n_items, C) rows, agrees
    dist = np.eye(3)[cats]
    assert torch.equal(calibrated(torch.from_numpy(scores), dist, torch.from_numpy(hist), lam, k=5, n_candidates=10).indices, got.indices)
    assert got.indices[0].tolist() == rank(torch.from_numpy(scores[0]), k=5).indices.tolist()


def test_calibrated_matches_the_history_mix():
    # history: 2 of category 0, 1 of category 1 -> p = (2/3, 1/3); category 0 items score highest
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.2, 0.1]])
    cats = [0, 0, 0, 0, 1, 1]
    hist = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    hist_mix = sp.csr_matrix(np.array([[1, 1, 0, 0, 1, 0]], dtype=np.float32))
    assert calibrated(scores, cats, hist, lam=0.9, k=3).indices.tolist() == [[0, 1, 2]]
    got = calibrated(scores, cats, hist_mix, lam=0.9, k=3).indices[0].tolist()
    assert sorted(cats[i] for i in got) == [0, 0, 1]  # the list's mix is the history's 2:1


# --- thresholds ------------------------------------------------------------------------------


class _FixedScores(Recommender):
    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores

    def fit(self, split):
        self.remember_split(split)
        return self

    def score(self, users=None):
        return self.scores[as_user_tensor(users, self.n_users_)]


def _tiny_split() -> Split:
    train = pd.DataFrame({"user_idx": [0, 1, 2], "item_idx": [0, 1, 2], "rating": np.nan})
    test = pd.DataFrame({"user_idx": [0, 0, 1, 2], "item_idx": [1, 3, 4, 5], "rating": np.nan})
    items = pd.DataFrame({"item_id": range(6)})
    return Split(train, test, IdIndex(np.arange(3)), IdIndex(np.arange(6)), items)


def test_threshold_curve_by_hand_and_against_recommend():
    split = _tiny_split()
    scores = torch.tensor(
        [[9.0, 0.9, 0.1, 0.8, 0.3, 0.2],  # top-3 unseen: 1 (hit), 3 (hit), 4
         [0.5, 9.0, 0.4, 0.3, 0.6, 0.1],  # 4 (hit), 0, 2
         [0.2, 0.1, 9.0, 0.7, 0.6, 0.05]]  # 3, 4, 0 (item 5, the hit, scores lowest)
    )
    model = _FixedScores(scores).fit(split)
    curve = threshold_curve(model, split, [0.55, 0.0, 0.85], k=3)
    assert curve["threshold"].tolist() == [0.0, 0.55, 0.85]
    full, mid, high = (curve.iloc[i] for i in range(3))
    assert full["length"] == 3 and full["empty"] == 0
    assert full["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert full["recall"] == pytest.approx((1 + 1 + 0) / 3)
    assert full["coverage"] == pytest.approx(5 / 6)  # lists [1, 3, 4], [4, 0, 2], [3, 4, 0]
    # t = 0.55: user 0 keeps 1, 3; user 1 keeps 4; user 2 keeps 3, 4
    assert mid["length"] == pytest.approx(5 / 3)
    assert mid["precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert mid["precision@k"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    # t = 0.85: user 0 keeps 1 only, the others nothing
    assert high["length"] == pytest.approx(1 / 3) and high["empty"] == pytest.approx(2 / 3)
    assert high["precision"] == pytest.approx(1.0)
    for t, row in zip(curve["threshold"], curve.itertuples()):
        lists = model.recommend(split.test_users, k=3, threshold=t).indices
        assert row.length == pytest.approx((lists != PAD).sum().item() / 3)
        assert row.coverage == pytest.approx(len(set(lists[lists != PAD].tolist())) / 6)


def test_taste_mass_by_hand():
    ranked = torch.tensor([[0, 1, PAD], [2, 2, 0], [PAD, PAD, PAD]])
    cats = [0, 1, 1]
    taste = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    got = taste_mass(ranked, cats, taste)
    assert got[:2].tolist() == pytest.approx([(0.7 + 0.3) / 2, (0.8 + 0.8 + 0.2) / 3])
    assert math.isnan(got[2])
    with pytest.raises(ValueError, match="same users"):
        taste_mass(ranked, cats, taste[:2])


def test_category_distribution_is_the_one_hot_indicator():
    codes = np.array([2, 0, 2, 1])
    want = np.zeros((4, 4))
    want[np.arange(4), codes] = 1.0
    assert torch.equal(category_distribution(codes, 4), torch.from_numpy(want))
    assert category_distribution(codes).shape == (4, 3)
    with pytest.raises(ValueError, match="n_categories=2"):
        category_distribution(codes, 2)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(0, 6))
def test_distinct_categories_and_list_mix_match_the_loop(seed, k):
    rng = np.random.default_rng(seed)
    n_items, n_cat, n_users = 12, 4, 5
    category = rng.integers(0, n_cat, n_items)
    ranked = rng.integers(0, n_items, (n_users, k))
    ranked[rng.random((n_users, k)) < 0.3] = PAD  # padded slots and empty lists
    # the loop notebook 10 used to hold, and the list mix item by item
    loop = [len(set(category[r[r >= 0]])) for r in ranked]
    assert distinct_categories(torch.from_numpy(ranked), category).tolist() == loop
    q = list_distribution(torch.from_numpy(ranked), category_distribution(category, n_cat))
    for u, r in enumerate(ranked):
        items = r[r >= 0]
        want = np.bincount(category[items], minlength=n_cat) / max(len(items), 1)
        assert q[u].numpy() == pytest.approx(want)


def test_distinct_categories_rejects_bad_lists():
    with pytest.raises(IndexError, match="0..2"):
        distinct_categories(torch.tensor([[0, 3]]), [0, 1, 1])
    with pytest.raises(ValueError, match=r"\(U, k\)"):
        distinct_categories(torch.tensor([0, 1]), [0, 1, 1])


def test_category_means_against_a_loop_and_an_empty_category():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 9))
    cats = np.array([0, 2, 2, 0, 1, 2, 0, 1, 2])
    got = category_means(values, cats, 4)  # category 3 has no item
    for u in range(4):
        for c in range(3):
            assert got[u, c] == pytest.approx(values[u, cats == c].mean())
    assert (got[:, 3] == 0).all()
    assert np.allclose(category_means(torch.as_tensor(values), cats, 4), got)
    with pytest.raises(ValueError, match=r"values must be \(U, n_items\) with n_items = 9"):
        category_means(values[:, :5], cats, 4)
