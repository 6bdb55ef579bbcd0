"""evaluate's sparse relevance (no dense (U, n_items) mask) gives exactly the dense formulation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recnb import evaluation as M
from recnb.evaluation import protocol as P
from recnb.math.metrics import sparse_hits
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.ranking import PAD, rank
from recnb.models.knn import ItemKNN
from recnb.models.popularity import PopularityRecommender

RANKING = tuple(M.RANKING_FUNCTIONS)


def _dense_reference(model, split, k, users, items, batch_size):
    """The former evaluate core: dense relevance() per batch and the public metric functions."""
    shelf = None if items is None else P._shelf(items, split.n_items)
    kept, lists, values = [], [], {name: [] for name in RANKING}
    for start in range(0, len(users), batch_size):
        u = users[start : start + batch_size]
        rel = M.relevance(split, u)
        if shelf is not None:
            on_shelf = torch.zeros(split.n_items, dtype=torch.bool)
            on_shelf[shelf] = True
            rel = rel & on_shelf
        keep = rel.any(dim=1)
        u, rel = u[keep.numpy()], rel[keep]
        if len(u) == 0:
            continue
        if shelf is None:
            ranked = model.recommend(u, k=k).indices
        else:  # the former shelf ranking: dense scores and seen mask on the sorted shelf's columns
            cols = torch.sort(shelf).values
            local = rank(model.score(torch.as_tensor(u))[:, cols], k=k, exclude=split.seen_mask()[u][:, cols]).indices
            ranked = torch.where(local == PAD, PAD, cols[local.clamp(min=0)])
        kept.append(u)
        lists.append(ranked)
        for name in RANKING:
            values[name].append(M.RANKING_FUNCTIONS[name](ranked, rel))
    return np.concatenate(kept), {n: torch.cat(v) for n, v in values.items()}, torch.cat(lists)


def _shop(seed):
    data = make_shop(n_users=120, n_items=60, n_interactions=2500, seed=seed)
    return random_holdout(data, test_ratio=0.3, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shelf", [False, True])
@pytest.mark.parametrize("model_cls", [ItemKNN, PopularityRecommender])
def test_evaluate_equals_dense_formulation(seed, shelf, model_cls, monkeypatch):
    split = _shop(seed)
    model = model_cls().fit(split)
    rng = np.random.default_rng(seed)
    # every user (some have no relevant item), in shuffled order; small batches cross boundaries
    users = rng.permutation(split.n_users)
    items = rng.choice(split.n_items, size=split.n_items // 3, replace=False) if shelf else None
    k, batch_size = 7, 25
    ref_users, ref_values, ref_ranked = _dense_reference(model, split, k, users, items, batch_size)

    def no_dense(*args, **kwargs):
        raise AssertionError("evaluate must not build the dense relevance mask")

    monkeypatch.setattr(M, "relevance", no_dense)
    frame = M.evaluate_per_user(model, split, k=k, users=users, metrics=RANKING, items=items, batch_size=batch_size)
    np.testing.assert_array_equal(frame.index.to_numpy(), ref_users)
    for name in RANKING:
        np.testing.assert_array_equal(frame[f"{name}@{k}"].to_numpy(), ref_values[name].numpy())
    out = M.evaluate(model, split, k=k, users=users, metrics=(*RANKING, "coverage"), items=items, batch_size=batch_size)
    assert out["users"] == len(ref_users)
    for name in RANKING:
        assert out[f"{name}@{k}"] == M.mean(ref_values[name])
    if items is None:
        assert out[f"coverage@{k}"] == M.catalogue_coverage(ref_ranked, split.n_items)
    # a shop where the hits are not trivially zero or all-ones
    assert 0 < out[f"hit_rate@{k}"] < 1


def test_sparse_hits_match_dense_gather_with_pad():
    rng = np.random.default_rng(0)
    dense = torch.from_numpy(rng.random((30, 40)) < 0.2)
    ranked = torch.from_numpy(np.stack([rng.permutation(40)[:8] for _ in range(30)]))
    ranked[::3, 5:] = PAD  # short lists
    ranked[4] = PAD  # an empty list
    relevant = sp.csr_matrix(dense.numpy().astype(np.float32))
    got = sparse_hits(ranked, relevant)
    assert got.dtype == torch.float32
    assert torch.equal(got, M.hits(ranked, dense))
    assert got.sum() > 0
    with pytest.raises(IndexError, match="0..39"):
        sparse_hits(torch.full((30, 2), 40), relevant)


def test_relevant_csr_is_relevance_and_canonical():
    split = _shop(3)
    rel = P._relevant_csr(split, None)
    assert rel.has_canonical_format
    users = np.arange(split.n_users)
    assert torch.equal(torch.from_numpy(rel.toarray() != 0), M.relevance(split, users))
    shelf = torch.tensor([5, 0, 17, 33])
    on = P._relevant_csr(split, shelf).toarray() != 0
    expected = M.relevance(split, users).numpy().copy()
    expected[:, np.setdiff1d(np.arange(split.n_items), shelf.numpy())] = False
    np.testing.assert_array_equal(on, expected)


def test_formulas_take_nan_for_users_without_relevant_items():
    ranked = torch.tensor([[0, 1, PAD], [2, 0, 1]])
    relevant = torch.tensor([[False, True, False], [False, False, False]])
    for name, fn in M.RANKING_FUNCTIONS.items():
        v = fn(ranked, relevant)
        assert torch.isnan(v[1]), name
        assert not torch.isnan(v[0]), name
    h, n_rel = M.hits(ranked, relevant), torch.tensor([1.0, float("nan")])
    assert M.RANKING_FORMULAS["ndcg"](h, n_rel, 3)[0].item() == pytest.approx(1 / np.log2(3))
    assert M.RANKING_FORMULAS["map"](h, n_rel, 3)[0].item() == pytest.approx(0.5)
