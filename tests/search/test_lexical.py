"""BM25 as sparse matrix operations: by hand, against bm25s (Lucene variant) to 1e-6, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recnb.data.queries import make_queries
from recnb.data.synthetic import make_shop
from recnb.math.ranking import PAD, rank
from recnb.search.lexical import BM25, STOP_WORDS, Tokenizer, row_top_k, unique_rows

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


def brute_force_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top k by a full sort: descending score, ties to the lower index, zeros never returned."""
    n_rows, n_cols = scores.shape
    indices, values = np.full((n_rows, k), PAD), np.full((n_rows, k), -np.inf)
    for r in range(n_rows):
        order = np.lexsort((np.arange(n_cols), -scores[r]))
        order = order[scores[r, order] != 0][:k]
        indices[r, :len(order)], values[r, :len(order)] = order, scores[r, order]
    return indices, values


def tied_corpus(rng: np.random.Generator, n_docs: int, n_words: int) -> list[str]:
    """Documents of 1-3 words from a small vocabulary: many documents score exactly alike."""
    words = [f"w{i}" for i in range(n_words)]
    return [" ".join(rng.choice(words, size=rng.integers(1, 4))) for _ in range(n_docs)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_search_equals_a_full_sort_of_the_dense_scores(seed, dtype):
    """Block-max pruning, per-row selection and deduplication change nothing: on corpora full of ties,
    with repeated, empty, unknown and few-match queries, search equals a full argsort of score_dense."""
    rng = np.random.default_rng(seed)
    docs = tied_corpus(rng, n_docs=int(rng.integers(50, 400)), n_words=int(rng.integers(3, 12)))
    docs[int(rng.integers(len(docs)))] = "rare"  # a query matching one document: fewer than k matches
    words = sorted({w for d in docs for w in d.split()})
    queries = [" ".join(rng.choice(words, size=rng.integers(1, 4))) for _ in range(40)]
    queries += queries[:10] + ["", "the of", "zzz", "rare", "rare zzz", "rare rare"]
    m = BM25(k1=float(rng.uniform(0.5, 2.0)), b=float(rng.uniform(0, 1)), dtype=dtype).fit(docs)
    dense = m.score_dense(queries).numpy()
    assert dense.dtype == dtype
    for k in (1, 4, 10):
        want_i, want_v = brute_force_top_k(dense, k)
        assert (want_i[-6:-3] == PAD).all() and (want_i == PAD).all(axis=1).sum() == 3  # "", stop words, unknown
        assert (want_i[-3:, 0] != PAD).all() and (k == 1 or (want_i[-3:, 1:] == PAD).all())  # one match
        for block_size, batch_size in [(16_384, 256), (int(rng.integers(2, 40)), int(rng.integers(1, 9)))]:
            got = m.search(queries, k=k, batch_size=batch_size, block_size=block_size)
            np.testing.assert_array_equal(got.indices.numpy(), want_i)
            np.testing.assert_array_equal(got.scores.numpy(), want_v.astype(dtype))


@pytest.mark.parametrize("seed", range(4))
def test_row_top_k_equals_a_full_sort(seed):
    """row_top_k on a random CSR matrix with heavy ties, negative values and short and empty rows."""
    rng = np.random.default_rng(seed)
    n_rows, n_cols = 30, 200
    dense = rng.integers(-3, 4, size=(n_rows, n_cols)).astype(float) * (rng.random((n_rows, n_cols)) < rng.random((n_rows, 1)))
    dense[:3] = 0
    dense[3, :2] = [1.0, -1.0]
    csr = sp.csr_matrix(dense)
    perm = [rng.permutation(np.arange(a, b)) for a, b in zip(csr.indptr[:-1], csr.indptr[1:])]  # order within a row is free
    order = np.concatenate(perm)
    columns, values = csr.indices[order], csr.data[order]
    for k in (1, 5, 50):
        kept = row_top_k(csr.indptr, columns, values, k)
        rows = np.searchsorted(csr.indptr, kept, side="right") - 1
        got = np.zeros_like(dense)
        got[rows, columns[kept]] = values[kept]
        want_i, _ = brute_force_top_k(dense, k)
        want = np.zeros_like(dense)
        for r in range(n_rows):
            sel = want_i[r][want_i[r] != PAD]
            want[r, sel] = dense[r, sel]
        np.testing.assert_array_equal(got, want)
        assert len(kept) == len(np.unique(kept)) == (want != 0).sum()


def test_unique_rows():
    m = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [1, 0, 2], [0, 3, 0], [0, 0, 0]], dtype=float))
    distinct, inverse = unique_rows(m)
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2, 1])
    np.testing.assert_array_equal(distinct.toarray(), m.toarray()[[0, 1, 3]])
    np.testing.assert_array_equal(distinct[inverse].toarray(), m.toarray())


def test_negative_query_counts_are_refused(shop):
    m = BM25().fit(shop.items["text"].tolist())
    c = m.query_matrix(["phone case", "phone"])
    c.data[c.indptr[1]] = -1.0
    with pytest.raises(ValueError, match="non-negative term counts, row 1 has -1.0"):
        m.search_matrix(c)
