"""Lexical retrieval: a tokenizer and Okapi BM25 as sparse matrix operations.

**Tokens.** :class:`Tokenizer` cuts a text into runs of word characters (``\\w+``: ``"USB-C"`` is
``usb``, ``c``), optionally lower-cased, drops :data:`STOP_WORDS` (a short list of English
function words, this module's own: scikit-learn's list also drops shop words such as ``top`` or
``back``) and optionally stems with the Snowball English (Porter 2) stemmer of the PyPI package
``snowballstemmer`` (the ``search`` extra), so ``cushioned`` and ``cushioning`` meet at ``cushion``.

**BM25, derived.** A document ``d`` is scored for a query ``q`` by a sum over the query's terms
(a term repeated in the query counts each time), each term weighted by how telling it is and by
how much of the document it makes up:

.. math::

    \\operatorname{BM25}(q, d) = \\sum_{t \\in q} \\operatorname{idf}(t)\\,
        \\frac{f_{td}}{f_{td} + k_1 \\left(1 - b + b \\, \\frac{|d|}{\\operatorname{avgdl}}\\right)}

- **Term-frequency saturation.** Under the 2-Poisson "eliteness" model (Robertson & Walker 1994)
  the evidence of ``f`` occurrences grows fast at first and then levels off; ``f / (f + k_1)`` is
  the simple curve with that shape: 0 at ``f = 0``, ``1/(1 + k_1)`` at ``f = 1``, tending to 1.
  ``k_1`` (default 1.5) sets how quickly it saturates; ``k_1 = 0`` makes the term binary.
- **Length normalisation.** A long document contains a term more often by length alone. Scaling
  ``k_1`` by ``1 - b + b |d| / avgdl`` (``|d|`` the document's token count, ``avgdl`` the corpus
  mean) makes a term count for less in a longer document: ``b = 0`` ignores length, ``b = 1``
  divides the count by the relative length fully; ``b = 0.75`` is the usual default.
- **idf.** The Robertson–Spärck Jones weight without relevance information is
  ``log((N - n_t + 0.5) / (n_t + 0.5))`` (``N`` documents, ``n_t`` of them contain ``t``): the
  log-odds that a document containing ``t`` is relevant. It turns *negative* for a term in more
  than half the documents, so adding a common query word would lower a matching document's score.
  We use Lucene's variant ``idf(t) = log(1 + (N - n_t + 0.5) / (n_t + 0.5))``, always positive and
  monotone in ``n_t`` (Kamphuis et al. 2020, "Which BM25 do you mean?", ECIR), the one ``bm25s``
  calls ``"lucene"``, which the tests check against to 1e-6. (The classic numerator ``f (k_1 + 1)``
  only rescales every score by ``k_1 + 1``; Lucene and ``bm25s`` drop it, and so do we.)

**As sparse matrices.** With ``F`` the ``(V, N)`` term–document count matrix (CSR, rows are terms),
every stored entry ``f_{td}`` is replaced by its weight
``W_{td} = idf(t) f_{td} / (f_{td} + k_1 (1 - b + b |d|/avgdl))`` (same sparsity), and a batch of
``Q`` queries is a ``(Q, V)`` CSR matrix ``C`` of query-term counts. Then all the scores are one
sparse product ``S = C W`` ``(Q, N)``: documents that share no term with a query are not stored
(score 0). :meth:`BM25.search` takes each row's top ``k`` from ``S`` a batch of queries at a time,
so a million documents never need a dense ``Q × N`` block, and skips the blocks of documents whose
upper bound (each term's largest weight in the block) cannot beat a query's ``k``-th score so far.

**Empty queries.** A query with no token left after tokenisation (``""``, only stop words) or with
no token in the vocabulary scores 0 everywhere: an all-zero row of :meth:`BM25.score` and an empty
result (every slot ``PAD``) from :meth:`BM25.search`. This is a documented result, not an error:
a batch of ten thousand queries should not fail because one of them was ``"the"``. A query that is
not a string raises ``TypeError`` naming its row.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Iterable, Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch

from recnb.math.ranking import PAD, Ranking

#: English function words the default tokenizer drops
STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for from has have in into is it its of on or over so than that the their "
    "then there these this to under up was were which with without".split()
)

_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1)
def _snowball() -> object:
    if importlib.util.find_spec("snowballstemmer") is None:
        raise ModuleNotFoundError(
            "stemming uses the package 'snowballstemmer', which is not installed: "
            "run `pip install -e \".[search]\"` or make a Tokenizer(stem=False)"
        )
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball English (Porter 2) stem of one lower-case word (``"cushioned"`` -> ``"cushion"``)."""
    return _snowball().stemWord(word)


def check_texts(texts: Sequence[str], name: str = "queries") -> list[str]:
    """``texts`` as a list of str; a single str or a non-str entry raises ``TypeError`` naming ``name``."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of strings, got a single str {texts!r}: wrap it in a list")
    out = list(texts)
    for row, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{row}] must be a str, got {type(t).__name__} {t!r}")
    return out


class Tokenizer:
    """Text -> list of tokens: ``\\w+`` runs, then lower-casing, stop-word removal and stemming.

    ``lowercase``: fold case first. ``stop_words``: ``True`` drops :data:`STOP_WORDS`, ``False``
    keeps every word, or an iterable of words to drop (compared after lower-casing, if any).
    ``stem``: Snowball English stemming (needs ``snowballstemmer``).
    """

    def __init__(self, lowercase: bool = True, stop_words: bool | Iterable[str] = True, stem: bool = False) -> None:
        self.lowercase, self.stem = lowercase, stem
        if stop_words is True:
            self.stop_words: frozenset[str] = STOP_WORDS
        elif stop_words is False:
            self.stop_words = frozenset()
        elif isinstance(stop_words, str):
            raise TypeError(f"stop_words must be True, False or an iterable of words, got the str {stop_words!r}")
        else:
            self.stop_words = frozenset(stop_words)
        if stem:
            _snowball()  # fail now, naming the package, rather than at the first text

    def __repr__(self) -> str:
        return f"Tokenizer(lowercase={self.lowercase}, stop_words={len(self.stop_words)} words, stem={self.stem})"

    def __call__(self, text: str) -> list[str]:
        """The tokens of one text, in order (repeats kept)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__} {text!r}")
        words = _WORD.findall(text.lower() if self.lowercase else text)
        words = [w for w in words if w not in self.stop_words]
        return [stem(w) for w in words] if self.stem else words

    def tokenize(self, texts: Sequence[str], name: str = "queries") -> list[list[str]]:
        """The tokens of each text; a non-str entry raises ``TypeError`` naming ``name`` and its row."""
        return [self(t) for t in check_texts(texts, name)]


class BM25:
    """Okapi BM25 (Lucene's idf) over a fixed corpus, as a sparse ``(V, N)`` weight matrix.

    ``k1 >= 0`` (saturation), ``b`` in [0, 1] (length normalisation), ``tokenizer`` (default
    :class:`Tokenizer` ``()``), ``dtype`` of the weights and scores (float64 by default; float32
    halves memory at ~1e-7 relative rounding). After :meth:`fit`: ``vocabulary`` (term -> row),
    ``weights`` ``(V, N)`` CSR, ``doc_lengths`` ``(N,)``, ``idf`` ``(V,)``, ``n_docs``.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, tokenizer: Tokenizer | None = None,
                 dtype: type = np.float64) -> None:
        if not (np.isfinite(k1) and k1 >= 0):
            raise ValueError(f"k1 must be a finite number >= 0, got {k1!r}")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"b must lie in [0, 1], got {b!r}")
        self.k1, self.b = float(k1), float(b)
        self.tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.dtype = np.dtype(dtype)
        self.vocabulary: dict[str, int] = {}
        self.weights: sp.csr_matrix | None = None
        self.doc_lengths = np.zeros(0)
        self.idf = np.zeros(0)
        self.n_docs = 0
        self._block_cache: tuple[int, list[sp.csr_matrix], sp.csr_matrix] | None = None  # see _blocks

    def __repr__(self) -> str:
        return f"BM25(k1={self.k1}, b={self.b}, {self.tokenizer!r}, n_docs={self.n_docs}, V={len(self.vocabulary)})"

    def fit(self, documents: Sequence[str]) -> Self:
        """Index ``documents`` (strings, tokenized by ``tokenizer``); see :meth:`fit_tokens`."""
        return self.fit_tokens(self.tokenizer.tokenize(documents, "documents"))

    def fit_tokens(self, documents: Sequence[Sequence[str]]) -> Self:
        """Index already tokenized documents: counts ``F`` ``(V, N)``, then the weights ``W``.

        ``W_td = idf(t) f_td / (f_td + k1 (1 - b + b |d| / avgdl))`` on the stored entries of
        ``F``; ``idf(t) = log(1 + (N - n_t + 0.5) / (n_t + 0.5))``. An empty corpus raises.
        """
        if len(documents) == 0:
            raise ValueError("documents is empty: BM25 needs at least one document to index")
        vocab: dict[str, int] = {}
        lengths = np.fromiter((len(d) for d in documents), dtype=np.int64, count=len(documents))
        term_ids = np.fromiter((vocab.setdefault(t, len(vocab)) for d in documents for t in d),
                               dtype=np.int64, count=int(lengths.sum()))
        doc_ids = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
        counts = sp.csr_matrix((np.ones(len(term_ids), dtype=self.dtype), (term_ids, doc_ids)),
                               shape=(len(vocab), len(documents)))  # duplicates summed: f_td
        counts.sum_duplicates()
        n = len(documents)
        df = np.diff(counts.indptr)  # n_t: documents holding t (one stored entry per document)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(self.dtype)
        avgdl = lengths.mean() if lengths.mean() > 0 else 1.0  # a corpus of empty documents scores 0
        norm = self.k1 * (1.0 - self.b + self.b * lengths / avgdl)  # (N,)
        f = counts.data
        rows = np.repeat(np.arange(len(vocab)), df)
        counts.data = (self.idf[rows] * f / (f + norm[counts.indices])).astype(self.dtype)
        self.weights, self.vocabulary, self.doc_lengths, self.n_docs = counts, vocab, lengths, n
        self._block_cache = None
        return self

    def _fitted(self) -> sp.csr_matrix:
        if self.weights is None:
            raise RuntimeError("BM25 is not fitted: call .fit(documents) before scoring queries")
        return self.weights

    def query_matrix(self, queries: Sequence[str]) -> sp.csr_matrix:
        """``C`` ``(Q, V)``: how often each vocabulary term occurs in each query (unknown terms dropped)."""
        return self.query_matrix_tokens(self.tokenizer.tokenize(queries, "queries"))

    def query_matrix_tokens(self, queries: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """:meth:`query_matrix` of already tokenized queries."""
        self._fitted()
        ids = [[self.vocabulary[t] for t in q if t in self.vocabulary] for q in queries]
        lengths = np.fromiter((len(q) for q in ids), dtype=np.int64, count=len(ids))
        cols = np.fromiter((t for q in ids for t in q), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(ids)), lengths)
        c = sp.csr_matrix((np.ones(len(cols), dtype=self.dtype), (rows, cols)), shape=(len(ids), len(self.vocabulary)))
        c.sum_duplicates()
        return c

    def score(self, queries: Sequence[str]) -> sp.csr_matrix:
        """BM25 scores ``S = C W`` ``(Q, N)`` as CSR (only documents sharing a term are stored)."""
        return self.score_matrix(self.query_matrix(queries))

    def score_matrix(self, query_matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``S = C W`` for a :meth:`query_matrix` ``C`` ``(Q, V)``."""
        w = self._fitted()
        if query_matrix.ndim != 2 or query_matrix.shape[1] != w.shape[0]:
            raise ValueError(f"query_matrix must be (Q, V) with V = {w.shape[0]} vocabulary terms, "
                             f"got shape {query_matrix.shape}")
        return sp.csr_matrix(query_matrix @ w)

    def score_dense(self, queries: Sequence[str]) -> torch.Tensor:
        """:meth:`score` as a dense ``(Q, N)`` tensor (for a small catalogue: hybrids, plots)."""
        return torch.from_numpy(self.score(queries).toarray())

    def search(self, queries: Sequence[str], k: int = 10, batch_size: int = 256, block_size: int = 16_384) -> Ranking:
        """The top ``k`` documents of each query: a :class:`Ranking` ``(Q, k)``.

        Ranking is by descending score, ties to the lower document index, as in
        :func:`recnb.math.ranking.rank`; documents sharing no term with the query are never
        returned: slots beyond them are ``PAD`` with score ``-inf`` (an empty query: all ``PAD``).
        How, exactly (the result equals ``rank`` of the dense scores, zeros excluded):

        - identical rows of ``C`` are scored once (a query log repeats its head queries);
        - the distinct rows go ``batch_size`` at a time through the documents in column blocks of
          ``block_size`` (the product's accumulator of a block stays in cache: several times faster
          on a million documents than one product over all columns), in order, keeping each row's
          best ``k`` so far, whose ``k``-th score is the row's threshold ``θ``;
        - **block-max pruning** (Ding & Suel 2011): ``M`` ``(V, blocks)`` holds each term's
          largest weight in each block, so no document of block ``b`` scores above
          ``(C M)_{qb}``; a row skips every block whose bound is ``<= θ`` (a later block's document
          can only tie, and ties go to the earlier, lower index). Both products run the same
          sparse kernel, summing a row's terms in the same order, and rounding is monotone, so the
          computed bound is never below a computed score;
        - of a block's product only the entries above ``θ`` are kept, cut to each row's top ``k``
          for all rows at once (:func:`row_top_k`), then merged with the best so far.

        Query term counts must be non-negative (a bound needs non-negative weights).
        """
        return self.search_matrix(self.query_matrix(queries), k, batch_size, block_size)

    def _blocks(self, block_size: int) -> tuple[list[sp.csr_matrix], sp.csr_matrix]:
        """``W`` cut into column blocks of ``block_size`` documents, and the block maxima ``M`` ``(V, blocks)``."""
        w = self._fitted()
        if self._block_cache is None or self._block_cache[0] != block_size:
            blocks = [sp.csr_matrix(w[:, s:s + block_size]) for s in range(0, w.shape[1], block_size)]
            block_max = sp.csr_matrix(np.column_stack([blk.max(axis=1).toarray().ravel() for blk in blocks]))
            self._block_cache = (block_size, blocks, block_max)
        return self._block_cache[1], self._block_cache[2]

    def search_matrix(self, query_matrix: sp.csr_matrix, k: int = 10, batch_size: int = 256,
                      block_size: int = 16_384) -> Ranking:
        """:meth:`search` for a :meth:`query_matrix` ``C`` ``(Q, V)``."""
        for name, value in (("k", k), ("batch_size", batch_size), ("block_size", block_size)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        w = self._fitted()
        if query_matrix.ndim != 2 or query_matrix.shape[1] != w.shape[0]:
            raise ValueError(f"query_matrix must be (Q, V) with V = {w.shape[0]} vocabulary terms, "
                             f"got shape {query_matrix.shape}")
        query_matrix = sp.csr_matrix(query_matrix, dtype=self.dtype)
        negative = np.flatnonzero(query_matrix.data < 0)
        if len(negative):
            row = int(np.searchsorted(query_matrix.indptr, negative[0], side="right") - 1)
            raise ValueError(f"query_matrix must hold non-negative term counts, row {row} has "
                             f"{float(query_matrix.data[negative[0]])!r}")
        distinct, inverse = unique_rows(query_matrix)
        # batches of queries with similar numbers of matches pad less in row_top_k
        by_matches = np.argsort(distinct.sign() @ np.diff(w.indptr), kind="stable")
        distinct, inverse = distinct[by_matches], np.argsort(by_matches)[inverse]
        blocks, block_max = self._blocks(block_size)
        indices = np.full((distinct.shape[0], k), PAD, dtype=np.int64)
        values = np.full((distinct.shape[0], k), -np.inf, dtype=self.dtype)
        for start in range(0, distinct.shape[0], batch_size):
            batch = distinct[start:start + batch_size]
            top_i, top_v = indices[start:start + batch_size], values[start:start + batch_size]  # views
            bound = (batch @ block_max).toarray()  # (B, blocks): no document of block b scores above bound[:, b]
            for b, block in enumerate(blocks):
                active = np.flatnonzero(bound[:, b] > np.maximum(top_v[:, -1], 0))
                if len(active) == 0:
                    continue
                s = (batch if len(active) == batch.shape[0] else batch[active]) @ block
                position = np.flatnonzero(s.data > np.repeat(top_v[active, -1], np.diff(s.indptr)))  # only these can enter
                if len(position) == 0:
                    continue
                indptr = np.searchsorted(position, s.indptr)  # the kept entries as a CSR matrix
                position = position[row_top_k(indptr, s.indices[position], s.data[position], k)]
                rows = active[np.searchsorted(s.indptr, position, side="right") - 1]
                merge_top_k(top_i, top_v, rows, s.indices[position].astype(np.int64) + b * block_size, s.data[position])
        return Ranking(torch.from_numpy(indices[inverse]), torch.from_numpy(values[inverse]))


def merge_top_k(top_indices: np.ndarray, top_scores: np.ndarray, rows: np.ndarray, columns: np.ndarray,
                scores: np.ndarray) -> None:
    """Merge entries ``(rows, columns, scores)`` into the sorted top-``k`` arrays ``(n_rows, k)``, in place.

    Each row of ``top_indices`` / ``top_scores`` is ordered by descending score, ties to the lower
    column, ``PAD`` / ``-inf`` at the end; ``columns`` must not repeat a column a row already holds.
    """
    k = top_indices.shape[1]
    touched = np.unique(rows)
    old = top_indices[touched] != PAD
    r = np.concatenate([np.repeat(touched, old.sum(1)), rows])
    c = np.concatenate([top_indices[touched][old], columns])
    v = np.concatenate([top_scores[touched][old], scores])
    order = np.lexsort((c, -v, r))  # by row, then descending score, then lower column
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, touched)
    slot = np.arange(len(r)) - np.repeat(starts, np.diff(np.append(starts, len(r))))
    best = slot < k
    top_indices[touched], top_scores[touched] = PAD, -np.inf
    top_indices[r[best], slot[best]], top_scores[r[best], slot[best]] = c[best], v[best]


def unique_rows(matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """The distinct rows of a CSR matrix and, for each row, the index of its distinct row.

    Rows are compared by their stored entries after summing duplicates and sorting indices, so
    ``distinct[inverse]`` equals ``matrix``; distinct rows keep the order of their first occurrence.
    """
    m = sp.csr_matrix(matrix, copy=True)
    m.sum_duplicates()  # also sorts the indices of each row
    first: dict[bytes, int] = {}
    inverse = np.fromiter((first.setdefault(m.indices[a:b].tobytes() + m.data[a:b].tobytes(), len(first))
                           for a, b in zip(m.indptr[:-1].tolist(), m.indptr[1:].tolist())),
                          dtype=np.int64, count=m.shape[0])
    keep = np.full(len(first), -1, dtype=np.int64)
    keep[inverse[::-1]] = np.arange(m.shape[0])[::-1]  # the first row of each distinct row
    return m[keep], inverse


def row_top_k(indptr: np.ndarray, columns: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Positions of each row's top ``k`` stored entries of a CSR matrix (``indptr``, ``columns``, ``values``).

    Per row: every entry if it holds at most ``k``; otherwise the entries above its ``k``-th
    largest value ``v_k``, then the entries equal to ``v_k`` of the lowest columns until ``k`` are
    kept (ties to the lower index, as :func:`recnb.math.ranking.rank`). All rows at once: ``v_k``
    from ``torch.topk`` over the rows' stored values (never the zeros) padded with ``-inf`` to
    ``(rows, longest row)``, the tied entries ordered by ``(row, column)``.
    Returns the kept positions (unordered), at most ``k`` per row. Columns within a row must be
    distinct (as in any canonical CSR matrix; the order of a row's entries does not matter).
    """
    n_rows = len(indptr) - 1
    lengths = np.diff(indptr)
    if lengths.max(initial=0) <= k:
        return np.arange(len(values))
    width = int(lengths.max())
    padded = np.full((n_rows, width), -np.inf, dtype=values.dtype)  # row r's values, then -inf
    padded.reshape(-1)[np.arange(len(values)) + np.repeat(np.arange(n_rows) * width - indptr[:-1], lengths)] = values
    kth = torch.topk(torch.from_numpy(padded), k, dim=1).values[:, -1].numpy()  # -inf in a row of < k entries
    threshold = np.repeat(kth, lengths)
    above = np.flatnonzero(values > threshold)
    need = k - np.bincount(np.searchsorted(indptr, above, side="right") - 1, minlength=n_rows)
    tied = np.flatnonzero(values == threshold)  # a row of > k entries has >= need of them
    tied_rows = np.searchsorted(indptr, tied, side="right") - 1
    order = np.argsort(tied_rows * (int(columns.max()) + 1) + columns[tied])  # by row, then column
    tied, tied_rows = tied[order], tied_rows[order]
    counts = np.bincount(tied_rows, minlength=n_rows)
    rank_in_row = np.arange(len(tied)) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.concatenate([above, tied[rank_in_row < need[tied_rows]]])
