"""Ranking metrics as formulas over one ranking and one relevance mask, vectorised over users.

Conventions shared by every ranking metric here:

- ``ranked``: ``(U, k)`` int64 item indices, best first, as :func:`recnb.math.ranking.rank` and
  ``Recommender.recommend`` return them; ``PAD`` (-1) marks empty slots and never counts as a hit.
  The cut-off ``k`` is ``ranked.shape[1]`` (use ``ranked[:, :5]`` for @5 from an @10 ranking).
- ``relevant``: ``(U, n_items)`` bool, the items each user actually interacted with in test.
- ``rel_uj = relevant[u, ranked[u, j]]`` is 1 when the item at rank ``j`` (1-based) is relevant;
  ``R_u = |relevant[u]|`` is the number of relevant items.
- Every metric returns a per-user float32 tensor ``(U,)``. Users with ``R_u = 0`` get ``NaN``
  from every metric: the metric is undefined for them, and :func:`recnb.evaluation.evaluate` and :func:`mean`
  leave them out of the mean.

Every value is computed the same way: :func:`ranking_metrics` finds the hits ``rel_uj`` once
(from a dense mask, or a sparse CSR one) and applies the formulas of :data:`RANKING_FORMULAS`.
Running models on splits (batching, seen items, shelves) is :mod:`recnb.evaluation`'s job;
beyond-accuracy measures are in :mod:`recnb.evaluation.beyond`.

Denominators (the places where libraries differ):

=============  ===============================================  ==============================
metric         definition                                       torchmetrics 1.9 (``top_k=k``)
=============  ===============================================  ==============================
precision@k    hits / k  (k fixed, also when PAD slots remain)  same
recall@k       hits / R_u  (not ``min(k, R_u)``)                same
f1@k           2 P R / (P + R), 0 when P + R = 0                --
ndcg@k         DCG / IDCG, DCG = sum_j rel_uj / log2(j + 1),    same (binary gains);
               IDCG = sum_{j <= min(k, R_u)} 1 / log2(j + 1)    sklearn ``ndcg_score`` same
map@k (AP@k)   sum_j P@j rel_uj / min(k, R_u)                   divides by hits instead
hit_rate@k     1 if hits > 0 else 0                             same
mrr (@k)       1 / rank of the first relevant item, 0 if none   same
=============  ===============================================  ==============================

(``hits = sum_j rel_uj``.) AP@k divides by ``min(k, R_u)``, the most hits a list of ``k`` can hold,
so a perfect list scores 1 and a list with one hit among many relevant items scores less than 1;
torchmetrics' ``retrieval_average_precision`` divides by the number of hits, which rates a list
holding a single hit at rank 1 as perfect. Note also that torchmetrics treats any item whose
*score* is ``<= 0`` as irrelevant; recnb metrics look at ranks only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from recnb.math.ranking import PAD, rank


def _check(ranked: torch.Tensor, relevant: torch.Tensor) -> None:
    if ranked.ndim != 2 or relevant.ndim != 2:
        raise ValueError(
            f"ranked must be (U, k) and relevant (U, n_items); got shapes {tuple(ranked.shape)} and {tuple(relevant.shape)}"
        )
    if ranked.shape[0] != relevant.shape[0]:
        raise ValueError(f"ranked has {ranked.shape[0]} users (rows), relevant has {relevant.shape[0]}")
    if ranked.shape[1] == 0:
        raise ValueError("ranked has k = 0 columns; metrics @k need k >= 1")
    if ranked.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ranked must hold integer item indices, got dtype {ranked.dtype}")
    if relevant.dtype != torch.bool:
        raise TypeError(f"relevant must be a bool mask, got dtype {relevant.dtype}")
    if ranked.numel() and (ranked.min() < PAD or ranked.max() >= relevant.shape[1]):
        raise IndexError(
            f"ranked item indices must lie in 0..{relevant.shape[1] - 1} (or PAD={PAD}), "
            f"got {ranked.min().item()}..{ranked.max().item()}"
        )


def hits(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``rel_uj``: ``(U, k)`` float32, 1 where the item at rank ``j`` is relevant (PAD gives 0)."""
    _check(ranked, relevant)
    pad = ranked == PAD
    got = torch.gather(relevant, 1, ranked.long().clamp(min=0))
    return (got & ~pad).float()


def _n_relevant(relevant: torch.Tensor) -> torch.Tensor:
    """``R_u``: ``(U,)`` float32 number of relevant items per user, ``NaN`` where ``R_u = 0``."""
    n = relevant.sum(dim=1).float()
    return n.masked_fill(n == 0, float("nan"))


def _undefined_to_nan(values: torch.Tensor, n_rel: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(torch.isnan(n_rel), float("nan"))


def _precision(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    return _undefined_to_nan(h.sum(dim=1) / k, n_rel)


def _recall(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    return _undefined_to_nan(h.sum(dim=1) / n_rel.clamp(min=1), n_rel)


def _f1(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    p, r = _precision(h, n_rel, k), _recall(h, n_rel, k)
    s = p + r
    return torch.where(s > 0, 2 * p * r / s.where(s > 0, torch.ones_like(s)), s * 0)


def _discounts(k: int) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))  # 1/log2(j+1), j = 1..k


def _ndcg(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    disc = _discounts(k)
    dcg = (h * disc).sum(dim=1)
    ideal_n = torch.nan_to_num(n_rel, nan=0.0).clamp(max=k).long()
    idcg = torch.cat([torch.zeros(1), disc.cumsum(0)])[ideal_n]
    return _undefined_to_nan(dcg / idcg.clamp(min=1e-12), n_rel)


def _map(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    prec_at_j = h.cumsum(dim=1) / torch.arange(1, k + 1, dtype=torch.float32)
    denom = n_rel.clamp(min=1, max=k)
    return _undefined_to_nan((prec_at_j * h).sum(dim=1) / denom, n_rel)


def _hit_rate(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    return _undefined_to_nan((h.sum(dim=1) > 0).float(), n_rel)


def _reciprocal_rank(h: torch.Tensor, n_rel: torch.Tensor, k: int) -> torch.Tensor:
    ranks = torch.arange(1, k + 1, dtype=torch.float32)
    first = torch.where(h > 0, ranks, torch.full_like(h, float("inf"))).amin(dim=1)
    return _undefined_to_nan(1.0 / first, n_rel)


def _dense(fn: Any, ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``fn(h, n_rel, k)`` with the hits and ``R_u`` of a dense ``relevant`` mask."""
    return fn(hits(ranked, relevant), _n_relevant(relevant), ranked.shape[1])


def precision_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``P@k = hits / k`` per user, ``k = ranked.shape[1]``."""
    return _dense(_precision, ranked, relevant)


def recall_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``R@k = hits / R_u`` per user (all relevant items in the denominator, not ``min(k, R_u)``)."""
    return _dense(_recall, ranked, relevant)


def f1_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``F1@k = 2 P@k R@k / (P@k + R@k)`` per user; 0 when the list holds no hit."""
    return _dense(_f1, ranked, relevant)


def ndcg_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``NDCG@k = DCG@k / IDCG@k`` per user with binary gains.

    ``DCG@k = sum_{j=1..k} rel_uj / log2(j + 1)``; ``IDCG@k`` is the DCG of the ideal list, which
    puts ``min(k, R_u)`` relevant items first.
    """
    return _dense(_ndcg, ranked, relevant)


#: gain functions of graded NDCG: ``2^rel - 1`` (Burges et al. 2005) or ``rel`` (Järvelin & Kekäläinen 2002)
GAINS = ("exponential", "linear")


def graded_ndcg_at_k(ranked: torch.Tensor, grades: torch.Tensor | np.ndarray | sp.spmatrix,
                     gain: str = "exponential") -> torch.Tensor:
    """NDCG@k with graded relevance, per row (user or query): ``(U,)`` float32.

    ``ranked``: ``(U, k)`` item indices (``PAD`` slots gain nothing); ``grades``: ``(U, n_items)``
    non-negative relevance grades (e.g. 0, 1, 2), a tensor, array or scipy sparse matrix (absent
    entries are grade 0). With ``rel_uj`` the grade of the item at rank ``j`` and the gain
    ``g(rel) = 2^rel - 1`` (``gain="exponential"``, the default) or ``g(rel) = rel``
    (``"linear"``, what ``trec_eval``'s ``ndcg_cut`` uses)::

        DCG@k  = sum_{j=1..k} g(rel_uj) / log2(j + 1)
        IDCG@k = DCG@k of the ideal list: the row's k largest grades in descending order
        NDCG@k = DCG@k / IDCG@k

    Rows with no positive grade get ``NaN`` (undefined, as in the binary metrics). With 0/1 grades
    both gains give :func:`ndcg_at_k`. Computed in float64.
    """
    if gain not in GAINS:
        raise ValueError(f"gain must be one of {GAINS}, got {gain!r}")
    if ranked.ndim != 2 or ranked.shape[1] == 0:
        raise ValueError(f"ranked must be (U, k) with k >= 1, got shape {tuple(ranked.shape)}")
    if ranked.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ranked must hold integer item indices, got dtype {ranked.dtype}")
    if sp.issparse(grades):
        g = sp.csr_matrix(grades, dtype=np.float64)
        g.sum_duplicates()
        values = g.data
    else:
        dense = torch.as_tensor(grades).double()
        if dense.ndim != 2:
            raise ValueError(f"grades must be (U, n_items), got shape {tuple(dense.shape)}")
        values = dense.numpy()
    n_users, n_items = g.shape if sp.issparse(grades) else tuple(dense.shape)
    if ranked.shape[0] != n_users:
        raise ValueError(f"ranked has {ranked.shape[0]} rows, grades has {n_users}")
    if values.size and not (np.isfinite(values).all() and values.min() >= 0):
        raise ValueError("grades must be finite and non-negative")
    r = ranked.long()
    if r.numel() and (r.min() < PAD or r.max() >= n_items):
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1} (or PAD={PAD}), got {r.min().item()}..{r.max().item()}")
    k = ranked.shape[1]
    disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # 1/log2(j+1), j = 1..k
    to_gain = (lambda x: np.exp2(x) - 1.0) if gain == "exponential" else (lambda x: x)
    if sp.issparse(grades):
        at = np.asarray(g[np.arange(n_users)[:, None], np.maximum(r.numpy(), 0)].todense()) if n_users else np.zeros((0, k))
        # the ideal list: each row's stored grades in descending order, the first k of them
        row = np.repeat(np.arange(n_users), np.diff(g.indptr))
        order = np.lexsort((-g.data, row))
        pos = np.arange(g.nnz) - g.indptr[row[order]]
        top = pos < k
        idcg = np.bincount(row[order][top], weights=to_gain(g.data[order][top]) * disc[pos[top]], minlength=n_users)
    else:
        at = np.take_along_axis(values, np.maximum(r.numpy(), 0), axis=1)
        ideal = -np.sort(-values, axis=1)[:, :k]
        idcg = (to_gain(ideal) * disc[: ideal.shape[1]]).sum(axis=1)
    at = np.where(r.numpy() == PAD, 0.0, at)
    dcg = (to_gain(at) * disc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)
    return torch.from_numpy(out).float()


def map_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Average precision ``AP@k = sum_{j=1..k} P@j rel_uj / min(k, R_u)`` per user.

    ``P@j`` is the precision of the first ``j`` items. The mean over users of AP@k is MAP@k.
    """
    return _dense(_map, ranked, relevant)


def hit_rate_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``HR@k = 1`` if at least one of the top ``k`` items is relevant, else 0."""
    return _dense(_hit_rate, ranked, relevant)


def mrr(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Reciprocal rank ``1 / j*`` of the first relevant item within the top ``k``; 0 if none.

    The mean over users is the mean reciprocal rank (MRR@k).
    """
    return _dense(_reciprocal_rank, ranked, relevant)


def mean(values: torch.Tensor) -> float:
    """Mean over users, leaving out users whose metric is undefined (``NaN``: no relevant items)."""
    defined = values[~torch.isnan(values)]
    if defined.numel() == 0:
        raise ValueError("no user has a defined value (every user has no relevant item)")
    return defined.mean().item()


RANKING_FUNCTIONS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr,
}


RANKING_METRICS = tuple(RANKING_FUNCTIONS)


RANKING_FORMULAS = {
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "ndcg": _ndcg,
    "map": _map,
    "hit_rate": _hit_rate,
    "mrr": _reciprocal_rank,
}

def sparse_hits(ranked: torch.Tensor, relevant: sp.csr_matrix) -> torch.Tensor:
    """``rel_uj`` of :func:`hits` from a canonical CSR ``relevant`` ``(U, n_items)``: ``(U, k)`` float32.

    In a canonical CSR the keys ``row * n_items + col`` of its entries are sorted, so the item at
    rank ``j`` of user ``u`` is relevant iff ``u * n_items + ranked[u, j]`` is found among them by
    ``np.searchsorted`` (PAD never is).
    """
    n_users, n_items = relevant.shape
    r = ranked.numpy().astype(np.int64)
    if r.shape[0] != n_users:
        raise ValueError(f"ranked has {r.shape[0]} users (rows), relevant has {n_users}")
    if r.size and (r.min() < PAD or r.max() >= n_items):
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1} (or PAD={PAD}), got {r.min()}..{r.max()}")
    keys = np.repeat(np.arange(n_users, dtype=np.int64) * n_items, np.diff(relevant.indptr)) + relevant.indices
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + np.maximum(r, 0)
    pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    found = (keys[pos] == query) & (r != PAD) if len(keys) else np.zeros(r.shape, dtype=bool)
    return torch.from_numpy(found).float()


def ranking_metrics(ranked: torch.Tensor, relevant: torch.Tensor | sp.spmatrix,
                    metrics: Sequence[str] = RANKING_METRICS) -> dict[str, torch.Tensor]:
    """Per-user values of ``metrics`` for one ranking: the one path every evaluation in recnb takes.

    ``ranked``: ``(U, k)`` item indices (``PAD`` allowed); ``relevant``: ``(U, n_items)`` as a
    bool tensor or a canonical scipy CSR matrix (no dense block is built from it). The hits
    ``rel_uj`` (:func:`hits` / :func:`sparse_hits`) and ``R_u`` are computed once and every metric
    is ``RANKING_FORMULAS[name](rel, R, k)``; users with ``R_u = 0`` get ``NaN``. Returns
    ``{name: (U,) float32}``. :func:`recnb.evaluation.evaluate`, :func:`batch_ndcg` (validation in
    training), the bundle and the α-curve evaluations and the sampled protocol all call it.
    """
    unknown = [m for m in metrics if m not in RANKING_FORMULAS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(RANKING_FORMULAS)}")
    if sp.issparse(relevant):
        relevant = sp.csr_matrix(relevant)
        h = sparse_hits(ranked, relevant)
        n = torch.from_numpy(np.diff(relevant.indptr)).float()
        n_rel = n.masked_fill(n == 0, float("nan"))
    else:
        h, n_rel = hits(ranked, relevant), _n_relevant(relevant)
    return {name: RANKING_FORMULAS[name](h, n_rel, ranked.shape[1]) for name in metrics}


def rank_position_hits(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """``rel_uj`` ``(P, k)`` of lists that hold exactly one relevant item, at 1-based rank ``ranks``
    ``(P,)``: 1 at column ``ranks - 1`` when ``ranks <= k``, else a row of zeros (``R = 1``).

    The sampled protocol knows only each held-out item's rank among its negatives; with these hits
    (and ``R = 1``) every formula of :data:`RANKING_FORMULAS` applies to it unchanged, e.g.
    ``NDCG@k = 1[r <= k] / log2(r + 1)``.
    """
    ranks = torch.as_tensor(ranks).long()
    if ranks.ndim != 1 or (ranks.numel() and ranks.min() < 1):
        raise ValueError(f"ranks must be a 1-D tensor of 1-based ranks (>= 1), got shape {tuple(ranks.shape)}")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    cols = torch.arange(1, k + 1)
    return (ranks[:, None] == cols[None, :]).float()


def batch_ndcg(scores: torch.Tensor, seen: torch.Tensor, relevant: torch.Tensor, k: int = 10) -> tuple[float, int]:
    """NDCG@k of one validation batch: ``(mean over users with a relevant unseen item, their count)``.

    ``scores``, ``seen``, ``relevant``: ``(b, n_items)``; seen items are excluded from the ranking
    and from relevance, as in :func:`evaluate`. Returns ``(nan, 0)`` when no user counts. Lightning
    models log it from ``validation_step`` (weighting by the count).
    """
    rel = relevant & ~seen
    keep = rel.any(dim=1)
    if not keep.any():
        return float("nan"), 0
    ranked = rank(scores[keep], k=k, exclude=seen[keep]).indices
    return mean(ranking_metrics(ranked, rel[keep], ("ndcg",))["ndcg"]), int(keep.sum())
