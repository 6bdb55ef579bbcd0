"""The methods of the product-search comparison, each checked against an independent path or by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recnb.data.queries import make_queries
from recnb.data.synthetic import make_shop
from recnb.math.metrics import graded_ndcg_at_k
from recnb.math.ranking import PAD
from recnb.models.text_encoder import TfidfEncoder
from recnb.search.dense import DenseRetriever
from recnb.search.hybrid import hybrid_scores
from recnb.search.lexical import BM25
from recnb.search.quality import (
    ALPHAS,
    blend_name,
    matches_only,
    ndcg_by_query,
    retrieval_methods,
)


@pytest.fixture(scope="module")
def setup():
    shop = make_shop(n_users=60, n_items=150, n_interactions=600, seed=7)
    queries = make_queries(shop, 36, seed=7)
    texts = shop.items["text"].tolist()
    bm25 = BM25().fit(texts)
    dense = DenseRetriever(TfidfEncoder()).fit(texts)
    return queries, bm25, dense, bm25.score_dense(queries.texts), dense.score(queries.texts)


def test_method_names_and_single_methods(setup):
    queries, bm25, dense, lex, den = setup
    methods = retrieval_methods(lex, den, alphas=(0.25, 0.5), normalisations=("minmax",))
    assert list(methods) == ["bm25", "dense", "minmax α=0.25", "minmax α=0.5", "rrf"]
    assert blend_name("zscore", 0.3) == "zscore α=0.3" and len(ALPHAS) == 9 and ALPHAS[0] == 0.1
    # "bm25" ranked = BM25.search (the sparse path): matching documents only, PAD after them
    table = ndcg_by_query(methods, queries.relevance, k=10)
    sparse = bm25.search(queries.texts, k=10)
    assert (sparse.indices == PAD).any()  # some query matches fewer than 10 documents
    np.testing.assert_allclose(table["bm25"], graded_ndcg_at_k(sparse.indices, queries.relevance).numpy(), atol=1e-7)
    np.testing.assert_allclose(table["dense"], graded_ndcg_at_k(dense.search(queries.texts, k=10).indices,
                                                                queries.relevance).numpy(), atol=1e-7)


def test_blend_and_rrf_by_hand(setup):
    _, _, _, lex, den = setup
    methods = retrieval_methods(lex, den, alphas=(0.3,), depth=5)
    q = int(torch.nonzero(lex.amax(1) > 0)[0])  # a query with a lexical match
    lx, dn = lex[q].double().numpy(), den[q].double().numpy()
    mm = 0.3 * (lx - lx.min()) / (lx.max() - lx.min()) + 0.7 * (dn - dn.min()) / (dn.max() - dn.min())
    np.testing.assert_allclose(methods["minmax α=0.3"][q].numpy(), mm, atol=1e-12)
    z = 0.3 * (lx - lx.mean()) / lx.std() + 0.7 * (dn - dn.mean()) / dn.std()
    np.testing.assert_allclose(methods["zscore α=0.3"][q].numpy(), z, atol=1e-12)
    for norm in ("minmax", "zscore"):  # every query: the same numbers as hybrid_scores, to the bit
        assert torch.equal(methods[f"{norm} α=0.3"], hybrid_scores(lex.double(), den.double(), 0.3, norm))
    # RRF over the two top-5 lists: 1/(60 + r) summed over the lists that hold the item
    expected = np.zeros(len(lx))
    for scores in (np.where(lx > 0, lx, -np.inf), dn):
        top = [i for i in np.lexsort((np.arange(len(scores)), -scores))[:5] if np.isfinite(scores[i])]
        for r, i in enumerate(top, start=1):
            expected[i] += 1 / (60 + r)
    np.testing.assert_allclose(methods["rrf"][q].numpy(), expected, atol=1e-15)
    assert torch.isinf(matches_only(lex)[lex == 0]).all()


def test_ndcg_by_query_by_hand():
    grades = np.array([[2, 0, 1], [0, 0, 0]])
    scores = {"a": torch.tensor([[0.1, 0.9, 0.5], [1.0, 0.0, 0.0]]), "b": torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0]])}
    t = ndcg_by_query(scores, grades, k=2)
    ideal = 3 + 1 / math.log2(3)
    assert t["a"][0] == pytest.approx((0 + 1 / math.log2(3)) / ideal)  # ranks item 1 (grade 0), item 2 (grade 1)
    assert t["b"][0] == pytest.approx(3 / ideal) and np.isnan(t["a"][1]) and list(t.columns) == ["a", "b"]


def test_bad_input(setup):
    _, _, _, lex, den = setup
    with pytest.raises(ValueError, match="alphas must lie strictly between 0 and 1"):
        retrieval_methods(lex, den, alphas=(0.0, 0.5))
    with pytest.raises(ValueError, match="same shape"):
        retrieval_methods(lex, den[:, :5])
    with pytest.raises(ValueError, match="normalisations must be drawn from"):
        retrieval_methods(lex, den, normalisations=("rank",))
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        retrieval_methods(lex, den, depth=0)
    with pytest.raises(ValueError, match=r"methods\['x'\] has shape"):
        ndcg_by_query({"x": lex[:, :3]}, np.zeros(tuple(lex.shape)))
    with pytest.raises(ValueError, match="methods is empty"):
        ndcg_by_query({}, np.zeros((1, 1)))
