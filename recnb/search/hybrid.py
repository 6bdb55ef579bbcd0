"""Hybrid retrieval: a lexical and a dense score blended by α, or fused by rank; personalisation.

**Score blending.** BM25 scores are unbounded (a query of rare words scores 15, one of common words
2) while cosines lie in [-1, 1], so a raw ``α · s_lex + (1 - α) · s_dense`` is decided by whichever
side is larger. Each query's row is normalised first (:func:`recnb.math.blend.normalise`, the
per-row normalisation the recommender hybrid uses), then blended:

.. math::

    s_\\alpha(q, i) = \\alpha \\, \\operatorname{norm}_q(s_{lex})(i) + (1 - \\alpha) \\, \\operatorname{norm}_q(s_{dense})(i)

with ``norm`` min–max ``(s - min_q) / (max_q - min_q)`` or z-score ``(s - mean_q) / std_q`` over
the query's candidates. ``α = 1`` is BM25 alone, ``α = 0`` dense alone (the order, not the scale,
of each is kept). A query with no lexical match has a constant lexical row, which normalises to 0:
the dense side decides it.

**Reciprocal rank fusion** (Cormack, Clarke & Büttcher 2009, "Reciprocal rank fusion outperforms
Condorcet and individual rank learning methods", SIGIR) ignores scores altogether: an item's fused
score is

.. math::

    \\operatorname{RRF}(q, i) = \\sum_{s} \\frac{1}{k + r_s(q, i)}

over the ranked lists ``s`` that retrieved it, ``r_s`` its 1-based rank there; ``k = 60`` (the
paper's value) damps the weight of the very top ranks so one system's first place does not
outvote agreement lower down.

**Personalised search** (:func:`personalise`) blends the same way a query's normalised scores
with a recommender's normalised scores for the issuing user:
``(1 - β) norm(s_search) + β norm(s_model(u))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recnb.data.schema import IdIndex
from recnb.math.blend import blend
from recnb.math.ranking import PAD, Ranking
from recnb.models.base import Recommender

#: the per-query normalisations a score blend may use
NORMALISATIONS = ("minmax", "zscore")


def _check_scores(name: str, scores: torch.Tensor) -> None:
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
        shape = tuple(scores.shape) if hasattr(scores, "shape") else type(scores).__name__
        raise ValueError(f"{name} must be a (Q, N) tensor of scores, got {shape}")


def hybrid_scores(lexical: torch.Tensor, dense: torch.Tensor, alpha: float, normalise: str = "minmax") -> torch.Tensor:
    """``α · norm(lexical) + (1 - α) · norm(dense)``, both ``(Q, N)``, normalised per query (row).

    ``normalise``: ``"minmax"`` or ``"zscore"`` (:data:`NORMALISATIONS`); ``alpha`` in [0, 1].
    Returns ``(Q, N)`` float (the wider dtype of the two).
    """
    _check_scores("lexical", lexical)
    _check_scores("dense", dense)
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    if lexical.shape != dense.shape:
        raise ValueError(f"lexical and dense must have the same shape (Q, N), got lexical {tuple(lexical.shape)} "
                         f"and dense {tuple(dense.shape)}")
    dtype = torch.promote_types(lexical.dtype, dense.dtype)
    return blend(lexical.to(dtype), dense.to(dtype), alpha, normalise)


def reciprocal_rank_fusion(rankings: Sequence[Ranking], n_items: int, k: float = 60.0) -> torch.Tensor:
    """RRF scores ``Σ_s 1 / (k + r_s)`` ``(Q, n_items)`` float64 from ranked lists ``(Q, depth_s)``.

    Each :class:`Ranking` lists item indices best first (``PAD`` slots skipped); an item absent
    from a list gets nothing from it, one in no list scores 0. ``k > 0`` (default 60, Cormack et
    al. 2009). Rank the result with :func:`recnb.math.ranking.rank`.
    """
    if not rankings:
        raise ValueError("rankings is empty: fuse at least one ranked list")
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    n_queries = rankings[0].indices.shape[0]
    fused = torch.zeros(n_queries, n_items, dtype=torch.float64)
    for s, ranking in enumerate(rankings):
        idx = ranking.indices
        if idx.ndim != 2 or idx.shape[0] != n_queries:
            raise ValueError(f"rankings[{s}] must be (Q, depth) with Q = {n_queries}, got {tuple(idx.shape)}")
        if idx.numel() and (idx.min() < PAD or idx.max() >= n_items):
            raise IndexError(f"rankings[{s}] holds item indices outside 0..{n_items - 1}")
        ranks = torch.arange(1, idx.shape[1] + 1, dtype=torch.float64).expand(n_queries, -1)
        live = idx != PAD
        rows = torch.arange(n_queries).unsqueeze(1).expand_as(idx)
        fused.index_put_((rows[live], idx[live]), 1.0 / (k + ranks[live]), accumulate=True)
    return fused


def personalise(scores: torch.Tensor, user_ids: Sequence[int] | np.ndarray, model: Recommender, users: IdIndex,
                beta: float = 0.3, normalise: str = "minmax") -> torch.Tensor:
    """``(1 - β) norm(scores) + β norm(model.score(u_q))``: search scores ``(Q, N)`` tilted to each
    query's issuing user.

    ``user_ids`` ``(Q,)`` are raw user ids, mapped by ``users`` (the model's
    :class:`~recnb.data.schema.IdIndex`, e.g. ``split.users``); an id it does not know raises
    ``KeyError`` naming ``user_ids`` and the row. ``scores``' columns must be the model's items
    (``N = model.score(...).shape[1]``). ``beta`` in [0, 1]; ``normalise`` as in :func:`hybrid_scores`.
    """
    _check_scores("scores", scores)
    ids = np.asarray(user_ids)
    if ids.ndim != 1 or len(ids) != scores.shape[0]:
        raise ValueError(f"user_ids must hold one user id per query ({scores.shape[0]}), got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"user_ids must be integer user ids, got dtype {ids.dtype}")
    pos, known = users.lookup(ids)
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        raise KeyError(f"user_ids[{row}] = {ids[row].item()!r} is not a known user (the index holds {len(users)} users)")
    taste = model.score(torch.from_numpy(pos.astype(np.int64)))
    if taste.shape != scores.shape:
        raise ValueError(f"scores must cover the model's {taste.shape[1]} items, got shape {tuple(scores.shape)}")
    dtype = torch.promote_types(scores.dtype, taste.dtype)
    return hybrid_scores(taste.to(dtype), scores.to(dtype), beta, normalise)
