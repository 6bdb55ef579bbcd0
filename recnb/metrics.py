"""Ranking and rating metrics, vectorised over users.

Conventions shared by every ranking metric here:

- ``ranked``: ``(U, k)`` int64 item indices, best first, as :func:`recnb.math.ranking.rank` and
  ``Recommender.recommend`` return them; ``PAD`` (-1) marks empty slots and never counts as a hit.
  The cut-off ``k`` is ``ranked.shape[1]`` (use ``ranked[:, :5]`` for @5 from an @10 ranking).
- ``relevant``: ``(U, n_items)`` bool, the items each user actually interacted with in test.
- ``rel_uj = relevant[u, ranked[u, j]]`` is 1 when the item at rank ``j`` (1-based) is relevant;
  ``R_u = |relevant[u]|`` is the number of relevant items.
- Every metric returns a per-user float32 tensor ``(U,)``. Users with ``R_u = 0`` get ``NaN``
  from every metric: the metric is undefined for them, and :func:`evaluate` and :func:`mean`
  leave them out of the mean.

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

from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from recnb.data.schema import ITEM_IDX, RATING, USER_IDX, Split
from recnb.math.ranking import PAD, rank

DEFAULT_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage")


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
    return relevant.sum(dim=1).float()


def _undefined_to_nan(values: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(_n_relevant(relevant) == 0, float("nan"))


def precision_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``P@k = hits / k`` per user, ``k = ranked.shape[1]``."""
    h = hits(ranked, relevant)
    k = ranked.shape[1]
    return _undefined_to_nan(h.sum(dim=1) / k, relevant)


def recall_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``R@k = hits / R_u`` per user (all relevant items in the denominator, not ``min(k, R_u)``)."""
    h = hits(ranked, relevant)
    n = _n_relevant(relevant)
    return _undefined_to_nan(h.sum(dim=1) / n.clamp(min=1), relevant)


def f1_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``F1@k = 2 P@k R@k / (P@k + R@k)`` per user; 0 when the list holds no hit."""
    p, r = precision_at_k(ranked, relevant), recall_at_k(ranked, relevant)
    s = p + r
    return torch.where(s > 0, 2 * p * r / s.where(s > 0, torch.ones_like(s)), s * 0)


def _discounts(k: int) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))  # 1/log2(j+1), j = 1..k


def ndcg_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``NDCG@k = DCG@k / IDCG@k`` per user with binary gains.

    ``DCG@k = sum_{j=1..k} rel_uj / log2(j + 1)``; ``IDCG@k`` is the DCG of the ideal list, which
    puts ``min(k, R_u)`` relevant items first.
    """
    h = hits(ranked, relevant)
    k = ranked.shape[1]
    disc = _discounts(k)
    dcg = (h * disc).sum(dim=1)
    ideal_n = _n_relevant(relevant).clamp(max=k).long()
    idcg = torch.cat([torch.zeros(1), disc.cumsum(0)])[ideal_n]
    return _undefined_to_nan(dcg / idcg.clamp(min=1e-12), relevant)


def map_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Average precision ``AP@k = sum_{j=1..k} P@j rel_uj / min(k, R_u)`` per user.

    ``P@j`` is the precision of the first ``j`` items. The mean over users of AP@k is MAP@k.
    """
    h = hits(ranked, relevant)
    k = ranked.shape[1]
    prec_at_j = h.cumsum(dim=1) / torch.arange(1, k + 1, dtype=torch.float32)
    denom = _n_relevant(relevant).clamp(min=1, max=k)
    return _undefined_to_nan((prec_at_j * h).sum(dim=1) / denom, relevant)


def hit_rate_at_k(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``HR@k = 1`` if at least one of the top ``k`` items is relevant, else 0."""
    h = hits(ranked, relevant)
    return _undefined_to_nan((h.sum(dim=1) > 0).float(), relevant)


def mrr(ranked: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Reciprocal rank ``1 / j*`` of the first relevant item within the top ``k``; 0 if none.

    The mean over users is the mean reciprocal rank (MRR@k).
    """
    h = hits(ranked, relevant)
    k = ranked.shape[1]
    ranks = torch.arange(1, k + 1, dtype=torch.float32)
    first = torch.where(h > 0, ranks, torch.full_like(h, float("inf"))).amin(dim=1)
    return _undefined_to_nan(1.0 / first, relevant)


def catalogue_coverage(ranked: torch.Tensor, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one user's list: ``|∪_u top-k(u)| / n_items``."""
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    items = torch.unique(ranked[ranked != PAD])
    if items.numel() and (items.min() < 0 or items.max() >= n_items):
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1}, got {items.min().item()}..{items.max().item()}")
    return items.numel() / n_items


def mean(values: torch.Tensor) -> float:
    """Mean over users, leaving out users whose metric is undefined (``NaN``: no relevant items)."""
    defined = values[~torch.isnan(values)]
    if defined.numel() == 0:
        raise ValueError("no user has a defined value (every user has no relevant item)")
    return defined.mean().item()


def rmse(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean squared error ``sqrt(mean((r̂ - r)^2))`` over all given pairs."""
    predicted, target = _pairs(predicted, target)
    return torch.sqrt(((predicted - target) ** 2).mean()).item()


def mae(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error ``mean(|r̂ - r|)`` over all given pairs."""
    predicted, target = _pairs(predicted, target)
    return (predicted - target).abs().mean().item()


def _pairs(predicted: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.as_tensor(predicted, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(target, dtype=torch.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"predicted has {p.numel()} values, target has {t.numel()}")
    if p.numel() == 0:
        raise ValueError("no pairs to score: predicted and target are empty")
    return p, t


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


def relevance(split: Split, users: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(U, n_items)`` bool: each user's held-out items that are not among their training items.

    Training items are excluded because ``recommend`` never returns them; counting a re-purchase of
    a training item as relevant would cap every model's recall below 1.
    """
    u = torch.as_tensor(np.asarray(users), dtype=torch.long)
    return split.test_matrix()[u] & ~split.seen_mask()[u]


def evaluate(
    model: Any,
    split: Split,
    k: int = 10,
    users: np.ndarray | torch.Tensor | list[int] | None = None,
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean ranking metrics of a fitted recommender on ``split``'s test interactions.

    ``users``: which users to evaluate (default ``split.test_users``); users with no relevant item
    (see :func:`relevance`) are left out. Each user's list is ``model.recommend(users, k)``, which
    excludes their training items. Returns ``{"<metric>@<k>": mean, ..., "users": n}`` where
    ``<metric>`` is among ``precision, recall, f1, ndcg, map, hit_rate, mrr, coverage``
    (coverage is :func:`catalogue_coverage` of the evaluated users' lists).
    """
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in RANKING_METRICS and m != "coverage"]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted([*RANKING_FUNCTIONS, 'coverage'])}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    u = np.asarray(split.test_users if users is None else users, dtype=np.int64).reshape(-1)
    rel = relevance(split, u)
    keep = rel.any(dim=1)
    u, rel = u[keep.numpy()], rel[keep]
    if len(u) == 0:
        raise ValueError("no evaluated user has a relevant (held-out, unseen) item")
    ranked = model.recommend(u, k=k).indices
    out: dict[str, float] = {}
    for name in metrics:
        if name == "coverage":
            out[f"coverage@{k}"] = catalogue_coverage(ranked, split.n_items)
        else:
            out[f"{name}@{k}"] = mean(RANKING_FUNCTIONS[name](ranked, rel))
    out["users"] = float(len(u))
    return out


def rating_metrics(model: Any, split: Split) -> dict[str, float]:
    """RMSE and MAE of a rating model on ``split.test``'s explicit ratings (rows with a rating).

    Predictions come from ``model.predict(users, items)`` when the model has it, otherwise from
    ``model.score(users)`` read at each test pair (for a rating model, ``score`` is the predicted
    rating). Returns ``{"rmse": ..., "mae": ..., "pairs": n}``.
    """
    test = split.test[split.test[RATING].notna()]
    if test.empty:
        raise ValueError(f"split {split.name!r} has no explicit ratings in test (column {RATING!r} is all NaN)")
    u = torch.as_tensor(test[USER_IDX].to_numpy(), dtype=torch.long)
    i = torch.as_tensor(test[ITEM_IDX].to_numpy(), dtype=torch.long)
    target = torch.as_tensor(test[RATING].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        if hasattr(model, "predict"):
            pred = model.predict(u, i)
        else:
            uniq, inverse = torch.unique(u, return_inverse=True)
            pred = model.score(uniq)[inverse, i]
    return {"rmse": rmse(pred, target), "mae": mae(pred, target), "pairs": float(len(test))}


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
    return mean(ndcg_at_k(ranked, rel[keep])), int(keep.sum())


def compare(
    models: dict[str, Any],
    split: Split,
    k: int = 10,
    metrics: Iterable[str] = ("ndcg", "recall", "precision", "map"),
    ratings: bool = False,
) -> pd.DataFrame:
    """One row per fitted model: :func:`evaluate` means, plus RMSE/MAE with ``ratings=True``.

    ``ratings=True`` adds ``rmse``/``mae`` (:func:`rating_metrics`) for the models that predict
    ratings (a ``predict`` method, or ``values == "rating"`` as the kNN models have); the others
    get ``NaN``.
    """
    rows = {}
    for name, model in models.items():
        row = {key: value for key, value in evaluate(model, split, k=k, metrics=metrics).items() if key != "users"}
        if ratings:
            predicts = hasattr(model, "predict") or getattr(model, "values", None) == "rating"
            row.update(rating_metrics(model, split) if predicts else {"rmse": float("nan"), "mae": float("nan")})
            row.pop("pairs", None)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
