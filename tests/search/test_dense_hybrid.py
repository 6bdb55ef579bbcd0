"""Dense retrieval (cosine + argsort), score blending with per-query normalisation, RRF, personalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnb.data.queries import make_queries
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.metrics import graded_ndcg_at_k
from recnb.math.ranking import PAD, Ranking, rank
from recnb.models.popularity import PopularityRecommender
from recnb.models.text_encoder import TextEncoder, TfidfEncoder
from recnb.search.dense import DenseRetriever
from recnb.search.hybrid import hybrid_scores, personalise, reciprocal_rank_fusion
from recnb.search.lexical import BM25


@pytest.fixture(scope="module")
def shop():
    return make_shop(n_users=80, n_items=200, n_interactions=1500, seed=5)


def test_dense_is_cosine_then_argsort(shop):
    texts = shop.items["text"].tolist()
    d = DenseRetriever(TfidfEncoder()).fit(texts)
    queries = ["running shoes", "espresso machine", ""]
    scores = d.score(queries)
    v = d.encoder.encode(queries[:2]).numpy()
    items = d.item_vectors.numpy()
    expected = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (items / np.linalg.norm(items, axis=1, keepdims=True)).T
    np.testing.assert_allclose(scores[:2].numpy(), expected, atol=1e-6)
    assert (scores[2] == 0).all()
    r = d.search(queries, k=5)
    assert torch.equal(r.indices[:2], torch.from_numpy(np.argsort(-expected, axis=1, kind="stable")[:, :5]))
    assert (r.indices[2] == PAD).all()


def test_dense_bad_input(shop):
    d = DenseRetriever(TfidfEncoder())
    with pytest.raises(RuntimeError, match="not fitted"):
        d.score(["phone"])
    d.fit(shop.items["text"].tolist())
    with pytest.raises(ValueError, match=r"query_vectors must be a \(Q, \d+\) tensor .* got \(2, 7\)"):
        d.score_vectors(torch.zeros(2, 7))
    with pytest.raises(TypeError, match=r"queries\[0\] must be a str, got NoneType"):
        d.score([None])
    with pytest.raises(TypeError, match="encoder must have an encode"):
        DenseRetriever(object())


def test_minilm_dense_finds_synonyms(shop):
    """The course's MiniLM encoder: a synonym no item text uses ("sneakers") still finds running shoes."""
    encoder = TextEncoder()
    d = DenseRetriever(encoder).fit(shop.items["text"].tolist())
    r = d.search(["sneakers", "cellphone"], k=10)
    cat = shop.truth["item_category"]
    assert d.item_vectors.shape == (len(shop.items), encoder.embedding_dim)
    assert (cat[r.indices[0].numpy()] == shop.truth["categories"].index("running shoes")).mean() >= 0.8
    assert (cat[r.indices[1].numpy()] == shop.truth["categories"].index("phones")).mean() >= 0.8
    assert BM25().fit(shop.items["text"].tolist()).score(["sneakers"]).nnz == 0  # lexical finds nothing


def test_hybrid_scores_by_hand():
    lex = torch.tensor([[0.0, 2.0, 4.0], [1.0, 1.0, 1.0]])
    den = torch.tensor([[0.5, 0.0, 0.25], [0.1, 0.3, 0.2]])
    got = hybrid_scores(lex, den, 0.25, "minmax")
    expected = torch.tensor([[0.25 * 0 + 0.75 * 1, 0.25 * 0.5 + 0, 0.25 * 1 + 0.75 * 0.5],
                             [0.0, 0.75, 0.375]])  # a constant lexical row normalises to 0
    torch.testing.assert_close(got, expected)
    z = hybrid_scores(lex, den, 0.5, "zscore")
    lz = (lex[0] - lex[0].mean()) / lex[0].std(correction=0)
    dz = (den[0] - den[0].mean()) / den[0].std(correction=0)
    torch.testing.assert_close(z[0], 0.5 * lz + 0.5 * dz)
    assert torch.equal(rank(hybrid_scores(lex, den, 1.0)).indices[0], rank(lex).indices[0])
    with pytest.raises(ValueError, match="normalise must be one of"):
        hybrid_scores(lex, den, 0.5, "rank")
    with pytest.raises(ValueError, match="lexical and dense must have the same shape"):
        hybrid_scores(lex, den[:, :2], 0.5)
    with pytest.raises(ValueError, match="alpha must lie in"):
        hybrid_scores(lex, den, 1.5)
    with pytest.raises(ValueError, match=r"dense must be a \(Q, N\) tensor"):
        hybrid_scores(lex, den[0], 0.5)


def test_reciprocal_rank_fusion_by_hand():
    a = Ranking(torch.tensor([[2, 0, PAD]]), torch.zeros(1, 3))
    b = Ranking(torch.tensor([[0, 3]]), torch.zeros(1, 2))
    got = reciprocal_rank_fusion([a, b], n_items=4, k=60)
    expected = torch.tensor([[1 / 62 + 1 / 61, 0.0, 1 / 61, 1 / 62]], dtype=torch.float64)
    torch.testing.assert_close(got, expected)
    assert rank(got, k=2).indices.tolist() == [[0, 2]]
    with pytest.raises(IndexError, match="rankings\\[0\\] holds item indices outside"):
        reciprocal_rank_fusion([a], n_items=2)
    with pytest.raises(ValueError, match="k must be > 0"):
        reciprocal_rank_fusion([a], n_items=4, k=0)


def test_hybrid_helps_on_the_shop(shop):
    """On the shop's queries a blend of BM25 and TF-IDF cosine is at least as good as the worse side."""
    texts = shop.items["text"].tolist()
    q = make_queries(shop, 120, seed=0)
    lex = BM25().fit(texts).score_dense(q.texts)
    den = DenseRetriever(TfidfEncoder(analyzer="char_wb", ngram_range=(3, 4))).fit(texts).score(q.texts).double()
    ndcg = {a: np.nanmean(graded_ndcg_at_k(rank(hybrid_scores(lex, den, a), k=10).indices, q.relevance).numpy())
            for a in (0.0, 0.5, 1.0)}
    assert ndcg[0.5] >= min(ndcg[0.0], ndcg[1.0]) and 0.2 < ndcg[1.0] < 1.0


def test_personalise(shop):
    split = random_holdout(shop, test_ratio=0.2, seed=0)
    model = PopularityRecommender().fit(split)
    scores = torch.rand(2, split.n_items, generator=torch.Generator().manual_seed(0))
    uid = split.users.ids[[0, 5]]
    got = personalise(scores, uid, model, split.users, beta=0.4)
    pop = model.score(torch.tensor([0, 5]))
    torch.testing.assert_close(got, hybrid_scores(pop.to(got.dtype), scores.to(got.dtype), 0.4))
    with pytest.raises(KeyError, match=r"user_ids\[1\] = 99999 is not a known user"):
        personalise(scores, [uid[0], 99999], model, split.users)
    with pytest.raises(ValueError, match="one user id per query"):
        personalise(scores, uid[:1], model, split.users)
    with pytest.raises(ValueError, match="cover the model's"):
        personalise(scores[:, :5], uid, model, split.users)
