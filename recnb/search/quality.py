"""Retrieval quality, method by method: the score matrices of lexical, dense and hybrid retrieval
for one set of queries, and each query's graded NDCG@k under each of them.

:func:`retrieval_methods` turns a lexical score matrix (BM25, ``(Q, N)``) and a dense one (cosines,
``(Q, N)``) into the score matrices of every method the product-search chapter compares:

- ``"bm25"``: the lexical scores with every document that shares no term with the query (score 0)
  set to ``-inf`` (:func:`matches_only`), so that, as :meth:`recnb.search.lexical.BM25.search`
  does, only matching documents are ever returned (the rest of the list is ``PAD``);
- ``"dense"``: the cosines as they are;
- ``"<normalise> α=<a>"`` (:func:`blend_name`) for each normalisation and each ``α`` in
  ``alphas``: :func:`recnb.search.hybrid.hybrid_scores`, ``α · norm(lexical) + (1 − α) · norm(dense)``;
- ``"rrf"``: :func:`recnb.search.hybrid.reciprocal_rank_fusion` of the top-``depth`` lists of
  ``"bm25"`` and ``"dense"``.

:func:`ndcg_by_query` ranks each matrix (:func:`recnb.math.ranking.rank`, top ``k``) and scores
the lists with graded NDCG (:func:`recnb.math.metrics.graded_ndcg_at_k`, gains ``2^rel − 1``):
a ``(Q, M)`` frame, one column per method, to be grouped by query type, seed or tuning half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.math.blend import blend, normalise
from recnb.math.metrics import graded_ndcg_at_k
from recnb.math.ranking import rank
from recnb.search.hybrid import NORMALISATIONS, reciprocal_rank_fusion

#: the blend weights compared by default: 0.1, 0.2, ..., 0.9 (α = 1 is "bm25", α = 0 is "dense")
ALPHAS: tuple[float, ...] = tuple(round(0.1 * j, 1) for j in range(1, 10))


def blend_name(normalise: str, alpha: float) -> str:
    """The method name of a score blend: ``"minmax α=0.3"``."""
    return f"{normalise} α={alpha:g}"


def matches_only(lexical: torch.Tensor) -> torch.Tensor:
    """``lexical`` ``(Q, N)`` with the zero scores (documents sharing no query term) set to ``-inf``."""
    return lexical.masked_fill(lexical == 0, -torch.inf)


def retrieval_methods(lexical: torch.Tensor, dense: torch.Tensor, alphas: Sequence[float] = ALPHAS,
                      normalisations: Sequence[str] = NORMALISATIONS, rrf_k: float = 60.0,
                      depth: int = 100) -> dict[str, torch.Tensor]:
    """The ``(Q, N)`` score matrix of every method (module docstring), keyed by its name.

    ``lexical``: BM25 scores (0 = no shared term), ``dense``: cosines, same shape. ``alphas``:
    blend weights strictly between 0 and 1; ``normalisations``: a subset of
    :data:`~recnb.search.hybrid.NORMALISATIONS`; ``rrf_k`` and ``depth`` (the length of each list
    fused) for reciprocal rank fusion. Keys in order: ``bm25``, ``dense``, the blends (by
    normalisation, then ``α``), ``rrf``.
    """
    if not isinstance(lexical, torch.Tensor) or not isinstance(dense, torch.Tensor) or lexical.shape != dense.shape \
            or lexical.ndim != 2:
        shapes = [tuple(x.shape) if hasattr(x, "shape") else type(x).__name__ for x in (lexical, dense)]
        raise ValueError(f"lexical and dense must be (Q, N) tensors of the same shape, got {shapes[0]} and {shapes[1]}")
    bad = [a for a in alphas if not 0.0 < float(a) < 1.0]
    if bad:
        raise ValueError(f"alphas must lie strictly between 0 and 1 (α = 1 is 'bm25', α = 0 is 'dense'), got {bad}")
    unknown = [n for n in normalisations if n not in NORMALISATIONS]
    if unknown:
        raise ValueError(f"normalisations must be drawn from {NORMALISATIONS}, got {unknown}")
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    lexical, dense = lexical.double(), dense.double()
    methods = {"bm25": matches_only(lexical), "dense": dense}
    for norm in normalisations:  # hybrid_scores for each α, with each side normalised once
        lexical_norm, dense_norm = normalise(lexical, norm), normalise(dense, norm)
        for a in alphas:
            methods[blend_name(norm, a)] = blend(lexical_norm, dense_norm, float(a), "none")
    depth = min(depth, lexical.shape[1])
    lists = [rank(methods["bm25"], k=depth), rank(dense, k=depth)]
    methods["rrf"] = reciprocal_rank_fusion(lists, n_items=lexical.shape[1], k=rrf_k)
    return methods


def ndcg_by_query(methods: Mapping[str, torch.Tensor], grades: sp.spmatrix | np.ndarray | torch.Tensor,
                  k: int = 10) -> pd.DataFrame:
    """Graded NDCG@k of each query under each method: ``(Q, M)`` float64, columns = ``methods``' keys.

    Each score matrix ``(Q, N)`` is ranked (top ``k``; ``-inf`` entries are never returned) and
    scored against ``grades`` ``(Q, N)`` with gains ``2^rel − 1``; a query without a positive grade
    is ``NaN``.
    """
    if not methods:
        raise ValueError("methods is empty: pass at least one (Q, N) score matrix")
    columns = {}
    for name, scores in methods.items():
        if scores.shape != tuple(grades.shape):
            raise ValueError(f"methods[{name!r}] has shape {tuple(scores.shape)}, grades {tuple(grades.shape)}")
        columns[name] = graded_ndcg_at_k(rank(scores, k=k).indices, grades).double().numpy()
    return pd.DataFrame(columns)
