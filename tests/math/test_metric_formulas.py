"""The one metric path: ranking_metrics on dense and sparse relevance, and lists with one relevant item."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recnb.math.metrics import RANKING_FORMULAS, RANKING_FUNCTIONS, batch_ndcg, rank_position_hits, ranking_metrics
from recnb.math.ranking import PAD


def _case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    relevant = torch.rand(12, 30, generator=g) < 0.15
    relevant[3] = False  # a user with nothing relevant
    ranked = torch.stack([torch.randperm(30, generator=g)[:6] for _ in range(12)])
    ranked[5, 4:] = PAD
    return ranked, relevant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_and_sparse_relevance_give_the_per_metric_functions_values(seed):
    ranked, relevant = _case(seed)
    dense = ranking_metrics(ranked, relevant)
    sparse = ranking_metrics(ranked, sp.csr_matrix(relevant.numpy()))
    for name, fn in RANKING_FUNCTIONS.items():
        want = fn(ranked, relevant)
        torch.testing.assert_close(dense[name], want, equal_nan=True)
        torch.testing.assert_close(sparse[name], want, equal_nan=True)
    assert torch.isnan(dense["ndcg"][3]) and torch.isnan(sparse["recall"][3])


def test_unknown_metric_is_named():
    ranked, relevant = _case(0)
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['auc'\]"):
        ranking_metrics(ranked, relevant, ("ndcg", "auc"))


def test_one_relevant_item_at_a_known_rank_by_hand():
    ranks = torch.tensor([1, 3, 10, 11])
    h = rank_position_hits(ranks, k=10)
    assert h.sum(dim=1).tolist() == [1.0, 1.0, 1.0, 0.0]
    one = torch.ones(4)
    ndcg = RANKING_FORMULAS["ndcg"](h, one, 10)
    want = [1.0, 1 / math.log2(4), 1 / math.log2(11), 0.0]  # 1[r <= k] / log2(r + 1)
    np.testing.assert_allclose(ndcg.numpy(), want, rtol=1e-6)
    assert RANKING_FORMULAS["hit_rate"](h, one, 10).tolist() == [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="1-based"):
        rank_position_hits(torch.tensor([0, 2]), k=3)


def test_batch_ndcg_excludes_seen_items_from_ranking_and_relevance():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    seen = torch.tensor([[True, False, False, False], [False, False, False, False]])
    relevant = torch.tensor([[True, False, True, False], [False, False, False, False]])
    value, n = batch_ndcg(scores, seen, relevant, k=2)
    # user 0: item 0 is seen (dropped from both); list = [1, 2], item 2 relevant at rank 2; user 1 has none
    assert n == 1
    assert value == pytest.approx((1 / math.log2(3)) / 1.0)
