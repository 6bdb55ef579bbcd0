"""BM25 as sparse matrix operations: by hand, against bm25s (Lucene variant) to 1e-6, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recnb.data.queries import make_queries
from recnb.data.synthetic import make_shop
from recnb.math.ranking import PAD, rank
from recnb.search.lexical import BM25, STOP_WORDS, Tokenizer

bm25s = pytest.importorskip("bm25s", reason="bm25s is the reference BM25: pip install -e '.[search]'")


@pytest.fixture(scope="module")
def shop():
    return make_shop(n_users=60, n_items=250, n_interactions=600, seed=3)


def test_tokenizer_options():
    text = "The Shockproof phone-case, with RAISED edges"
    assert Tokenizer()(text) == ["shockproof", "phone", "case", "raised", "edges"]
    assert Tokenizer(stop_words=False)(text)[:2] == ["the", "shockproof"]
    assert Tokenizer(lowercase=False, stop_words=False)(text)[0] == "The"
    assert Tokenizer(stem=True)(text) == ["shockproof", "phone", "case", "rais", "edg"]
    assert Tokenizer(stem=True)("cushioned") == Tokenizer(stem=True)("cushioning") == ["cushion"]
    assert Tokenizer(stop_words=["case"])("phone case") == ["phone"]
    assert "under" in STOP_WORDS and "top" not in STOP_WORDS


def test_bm25_by_hand():
    """Three documents, k1 = 1.2, b = 0.75, the formula written out."""
    docs = ["red shoe", "red red sock", "blue shoe shoe shoe"]
    m = BM25(k1=1.2, b=0.75, tokenizer=Tokenizer(stop_words=False)).fit(docs)
    lengths, avgdl, n = np.array([2, 3, 4]), 3.0, 3

    def w(f, df, dl):
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * f / (f + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    expected = [w(1, 2, 2) + w(1, 2, 2), w(2, 2, 3), w(3, 2, 4)]  # query "red shoe"
    got = m.score(["red shoe"]).toarray()[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m.doc_lengths, lengths)
    # a term repeated in the query counts twice
    np.testing.assert_allclose(m.score(["red red"]).toarray()[0], 2 * m.score(["red"]).toarray()[0], atol=1e-12)


@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (0.9, 0.4), (2.0, 1.0)])
def test_bm25_matches_bm25s_lucene(shop, stem, k1, b):
    """Every score of every query equals bm25s (method="lucene", float64) to 1e-6."""
    tok = Tokenizer(stem=stem)
    texts = shop.items["text"].tolist()
    queries = make_queries(shop, 48, seed=1).texts + ["phone phone case", "tent tent"]
    ours = BM25(k1=k1, b=b, tokenizer=tok).fit(texts).score(queries).toarray()
    ref = bm25s.BM25(k1=k1, b=b, method="lucene", dtype="float64")
    ref.index(tok.tokenize(texts, "documents"), show_progress=False)
    checked = 0
    for j, q in enumerate(tok.tokenize(queries)):
        known = [t for t in q if t in ref.vocab_dict]
        expected = ref.get_scores(known) if known else np.zeros(len(texts))
        np.testing.assert_allclose(ours[j], expected, rtol=0, atol=1e-6)
        checked += bool(known)
    assert checked >= 40


def test_search_is_rank_of_the_scores(shop):
    """search's top-k (blocked products, per-row selection) equals rank() of the dense scores."""
    m = BM25().fit(shop.items["text"].tolist())
    queries = make_queries(shop, 30, seed=2).texts
    dense = m.score_dense(queries)
    ref = rank(dense.masked_fill(dense == 0, -torch.inf), k=20)
    for block_size, batch_size in [(65_536, 256), (37, 7)]:
        got = m.search(queries, k=20, batch_size=batch_size, block_size=block_size)
        assert torch.equal(got.indices, ref.indices)
        torch.testing.assert_close(got.scores, ref.scores)


def test_empty_and_unknown_queries_give_empty_results(shop):
    m = BM25().fit(shop.items["text"].tolist())
    s = m.score(["", "the of and", "zzzzqx", "phone"])
    assert s.getrow(0).nnz == s.getrow(1).nnz == s.getrow(2).nnz == 0 and s.getrow(3).nnz > 0
    r = m.search(["", "the with", "phone"], k=5)
    assert (r.indices[:2] == PAD).all() and torch.isinf(r.scores[:2]).all() and (r.indices[2] != PAD).all()


def test_bad_input(shop):
    m = BM25()
    with pytest.raises(RuntimeError, match="not fitted"):
        m.score(["phone"])
    m.fit(shop.items["text"].tolist())
    with pytest.raises(TypeError, match=r"queries\[1\] must be a str, got int"):
        m.score(["phone", 3])
    with pytest.raises(TypeError, match="queries must be a sequence of strings, got a single str"):
        m.score("phone")
    with pytest.raises(TypeError, match=r"documents\[0\]"):
        BM25().fit([None])
    with pytest.raises(ValueError, match="documents is empty"):
        BM25().fit([])
    with pytest.raises(ValueError, match="b must lie in"):
        BM25(b=1.5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        m.search(["phone"], k=0)
    with pytest.raises(ValueError, match="query_matrix must be"):
        m.score_matrix(m.query_matrix(["phone"])[:, :3])
