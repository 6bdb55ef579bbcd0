"""Dense retrieval: queries and items in one embedding space, cosine similarity, argsort.

An encoder maps every item text and every query to a vector of the same space (the course's
all-MiniLM-L6-v2 :class:`~recnb.models.text_encoder.TextEncoder`, ``embedding_dim = 384``, or the
:class:`~recnb.models.text_encoder.TfidfEncoder` as a cheap stand-in). A query ``q`` scores item
``i`` by the cosine of their vectors and the result is the items in descending order:

.. math::

    s(q, i) = \\frac{\\langle e_q, e_i \\rangle}{\\lVert e_q \\rVert \\lVert e_i \\rVert}, \\qquad
    \\text{result}(q) = \\operatorname{argsort}_i(-s(q, i))[:k]

computed for a batch as one product ``normalise_rows(E_Q) @ normalise_rows(E_I).T``
(:func:`recnb.math.similarity.all_vs_all`) and ranked by :func:`recnb.math.ranking.rank`.
Synonyms and misspellings that share no token with an item's text still land near it, which
BM25 cannot do; exact words (brands, model codes) and numbers (prices) are where it is weaker.

**Empty queries.** A query that is empty or only white space gets an all-zero score row and an
empty result (every slot ``PAD``), as in :mod:`recnb.search.lexical`; a query that is not a string
raises ``TypeError`` naming its row; query vectors of another dimension than the items' raise
``ValueError`` naming ``query_vectors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import torch

from recnb.math.ranking import Ranking, rank
from recnb.math.similarity import all_vs_all
from recnb.models.text_encoder import Encoder
from recnb.search.lexical import check_texts


class DenseRetriever:
    """Cosine retrieval over the ``encoder``'s vectors of a fixed set of item texts.

    :meth:`fit` encodes the items once (``item_vectors`` ``(N, d)``; the MiniLM encoder's disk
    cache makes a second run free); :meth:`score` encodes a batch of queries and returns
    ``(Q, N)`` cosines; :meth:`search` ranks them.
    """

    def __init__(self, encoder: Encoder) -> None:
        if not hasattr(encoder, "encode"):
            raise TypeError(f"encoder must have an encode(texts) method (TextEncoder, TfidfEncoder), got {type(encoder).__name__}")
        self.encoder = encoder
        self.item_vectors: torch.Tensor | None = None

    def __repr__(self) -> str:
        n = None if self.item_vectors is None else tuple(self.item_vectors.shape)
        return f"DenseRetriever({self.encoder!r}, item_vectors={n})"

    def fit(self, documents: Sequence[str]) -> Self:
        """Encode the item texts ``documents`` (a ``TfidfEncoder`` not yet fitted is fitted on them)."""
        documents = check_texts(documents, "documents")
        if not documents:
            raise ValueError("documents is empty: a DenseRetriever needs at least one item text")
        self.item_vectors = self.encoder.encode(documents).float()
        return self

    def _items(self) -> torch.Tensor:
        if self.item_vectors is None:
            raise RuntimeError("DenseRetriever is not fitted: call .fit(documents) before scoring queries")
        return self.item_vectors

    def encode_queries(self, queries: Sequence[str]) -> torch.Tensor:
        """``(Q, d)`` query vectors; empty (white-space) queries get a zero row."""
        queries = check_texts(queries, "queries")
        d = self._items().shape[1]
        out = torch.zeros(len(queries), d)
        live = [j for j, q in enumerate(queries) if q.strip()]
        if live:
            out[live] = self.encoder.encode([queries[j] for j in live]).float()
        return out

    def score(self, queries: Sequence[str]) -> torch.Tensor:
        """Cosine of every query with every item: ``(Q, N)`` float32 (0 for an empty query)."""
        return self.score_vectors(self.encode_queries(queries))

    def score_vectors(self, query_vectors: torch.Tensor) -> torch.Tensor:
        """Cosine of given query vectors ``(Q, d)`` with every item ``(N, d)``: ``(Q, N)``."""
        items = self._items()
        if not isinstance(query_vectors, torch.Tensor) or query_vectors.ndim != 2 or query_vectors.shape[1] != items.shape[1]:
            shape = tuple(query_vectors.shape) if hasattr(query_vectors, "shape") else type(query_vectors).__name__
            raise ValueError(f"query_vectors must be a (Q, {items.shape[1]}) tensor (the items' embedding_dim), got {shape}")
        return all_vs_all(query_vectors.to(items.dtype), items)

    def search(self, queries: Sequence[str], k: int = 10) -> Ranking:
        """The top ``k`` items of each query by cosine; an empty query's row is all ``PAD``."""
        scores = self.score(queries)
        empty = torch.tensor([not q.strip() for q in queries], dtype=torch.bool)
        return rank(scores, k=k, exclude=empty[:, None].expand_as(scores).clone())
