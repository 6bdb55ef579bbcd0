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

Beyond accuracy: :func:`catalogue_coverage` (share of the catalogue in any list),
:func:`mean_popularity` (mean or median training popularity of the recommended items) and
:func:`rank_of` (where one item lands in each user's full ranking). :func:`evaluate` can also
restrict ranking and relevance to a *shelf* of items (``items=``).

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
import scipy.sparse as sp
import torch

from recnb.data import sampling
from recnb.data.schema import ITEM_IDX, RATING, USER_IDX, Split, dense_rows
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
    """``R_u``: ``(U,)`` float32 number of relevant items per user, ``NaN`` where ``R_u = 0``."""
    n = relevant.sum(dim=1).float()
    return n.masked_fill(n == 0, float("nan"))


def _undefined_to_nan(values: torch.Tensor, n_rel: torch.Tensor) -> torch.Tensor:
    return values.masked_fill(torch.isnan(n_rel), float("nan"))


# Each formula is written once, as a function of ``h`` (the ``(U, k)`` float hits ``rel_uj``),
# ``n_rel`` (the ``(U,)`` float ``R_u``, ``NaN`` for users without relevant items) and ``k``. The
# public metrics build ``h`` and ``n_rel`` from a dense ``relevant`` mask; :func:`evaluate` builds
# them from the sparse test matrix, without any ``(U, n_items)`` array.


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
# the same metrics as functions of (h, n_rel, k): what RANKING_FUNCTIONS computes after hits()
_RANKING_FORMULAS = {
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "ndcg": _ndcg,
    "map": _map,
    "hit_rate": _hit_rate,
    "mrr": _reciprocal_rank,
}


def relevance(split: Split, users: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(U, n_items)`` bool: each user's held-out items that are not among their training items.

    Training items are excluded because ``recommend`` never returns them; counting a re-purchase of
    a training item as relevant would cap every model's recall below 1.
    """
    return dense_rows(split.relevant_csr(), np.asarray(users, dtype=np.int64).reshape(-1))


def evaluate(
    model: Any,
    split: Split,
    k: int = 10,
    users: np.ndarray | torch.Tensor | list[int] | None = None,
    metrics: Iterable[str] = DEFAULT_METRICS,
    items: np.ndarray | torch.Tensor | list[int] | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean ranking metrics of a fitted recommender on ``split``'s test interactions.

    Users are processed ``batch_size`` at a time (scores, seen mask and relevance of one batch at
    once), so memory stays ``batch_size * n_items`` whatever the number of users.

    ``users``: which users to evaluate (default ``split.test_users``); users with no relevant item
    (see :func:`relevance`) are left out. Each user's list is ``model.recommend(users, k)``, which
    excludes their training items. Returns ``{"<metric>@<k>": mean, ..., "users": n}`` where
    ``<metric>`` is among ``precision, recall, f1, ndcg, map, hit_rate, mrr, coverage``
    (coverage is :func:`catalogue_coverage` of the evaluated users' lists).

    ``items``: an optional *shelf*, a 1-D array of distinct item indices. Then each user's list
    ranks only the shelf items (``model.score(users)`` restricted to ``items``, the user's training
    items excluded, ties to the lower item index), mapped back to item indices; relevance is
    ``relevance(split, users) & shelf`` (the held-out items on the shelf), so users with no relevant
    shelf item are left out; and coverage is the fraction of the *shelf* that appears in a list.
    """
    metrics = tuple(metrics)
    users_kept, values, ranked = _per_user(model, split, k, users, metrics, items, batch_size)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "coverage":
            if items is None:
                out[f"coverage@{k}"] = catalogue_coverage(ranked, split.n_items)
            else:
                shelf = _shelf(items, split.n_items)
                out[f"coverage@{k}"] = torch.isin(shelf, ranked[ranked != PAD]).sum().item() / len(shelf)
        else:
            out[f"{name}@{k}"] = mean(values[name])
    out["users"] = float(len(users_kept))
    return out


def evaluate_per_user(
    model: Any,
    split: Split,
    k: int = 10,
    users: np.ndarray | torch.Tensor | list[int] | None = None,
    metrics: Iterable[str] = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr"),
    items: np.ndarray | torch.Tensor | list[int] | None = None,
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Per-user values of the ranking metrics :func:`evaluate` averages: one row per evaluated user.

    Same arguments and same users as :func:`evaluate` (users with no relevant item left out); the
    index is the user index, the columns ``"<metric>@<k>"``. ``evaluate(...)[m]`` is the column
    mean. This is what bootstrap intervals and paired tests (:mod:`recnb.uncertainty`) resample.
    """
    metrics = tuple(m for m in metrics if m != "coverage")
    users_kept, values, _ = _per_user(model, split, k, users, metrics, items, batch_size)
    frame = pd.DataFrame({f"{name}@{k}": values[name].numpy() for name in metrics}, index=users_kept)
    frame.index.name = USER_IDX
    return frame


def _per_user(
    model: Any, split: Split, k: int, users: Any, metrics: tuple[str, ...], items: Any, batch_size: int
) -> tuple[np.ndarray, dict[str, torch.Tensor], torch.Tensor]:
    """Batched core of :func:`evaluate`: (kept users, per-user metric tensors, their ``(U, k)`` lists)."""
    unknown = [m for m in metrics if m not in RANKING_METRICS and m != "coverage"]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted([*RANKING_FUNCTIONS, 'coverage'])}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    u_all = np.asarray(split.test_users if users is None else users, dtype=np.int64).reshape(-1)
    shelf = None if items is None else _shelf(items, split.n_items)
    relevant = _relevant_csr(split, shelf)
    per_user: dict[str, list[torch.Tensor]] = {name: [] for name in metrics if name != "coverage"}
    kept: list[np.ndarray] = []
    lists: list[torch.Tensor] = []
    for start in range(0, len(u_all), batch_size):
        u = u_all[start : start + batch_size]
        u = u[relevant.indptr[u + 1] - relevant.indptr[u] > 0]
        if len(u) == 0:
            continue
        rel = relevant[u]
        ranked = model.recommend(u, k=k).indices if shelf is None else _shelf_ranking(model, split, u, shelf, k)
        kept.append(u)
        lists.append(ranked)
        h = _sparse_hits(ranked, rel)
        n_rel = torch.from_numpy(np.diff(rel.indptr)).float()
        for name in per_user:
            per_user[name].append(_RANKING_FORMULAS[name](h, n_rel, ranked.shape[1]))
    if not lists:
        where = " on the shelf (items)" if shelf is not None else ""
        raise ValueError(f"no evaluated user has a relevant (held-out, unseen) item{where}")
    return np.concatenate(kept), {n: torch.cat(v) for n, v in per_user.items()}, torch.cat(lists)


def _relevant_csr(split: Split, shelf: torch.Tensor | None) -> sp.csr_matrix:
    """The pairs of :func:`relevance` as a canonical CSR ``(n_users, n_items)``: test minus seen.

    With a ``shelf``, only its columns are kept. No dense ``(U, n_items)`` block is ever built.
    """
    rel = split.relevant_csr().copy()
    if shelf is not None:
        on_shelf = np.zeros(split.n_items, dtype=bool)
        on_shelf[shelf.numpy()] = True
        rel.data = rel.data * on_shelf[rel.indices]
        rel.eliminate_zeros()
    rel.sum_duplicates()  # sorts indices too: canonical
    return rel


def _sparse_hits(ranked: torch.Tensor, relevant: sp.csr_matrix) -> torch.Tensor:
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


def _shelf(items: Any, n_items: int) -> torch.Tensor:
    """``items`` as a 1-D int64 tensor of distinct indices in ``0..n_items-1`` (else a clear error)."""
    shelf = torch.as_tensor(np.asarray(items))
    if shelf.ndim != 1 or shelf.numel() == 0:
        raise ValueError(f"items must be a non-empty 1-D list of item indices, got shape {tuple(shelf.shape)}")
    if shelf.dtype == torch.bool or torch.is_floating_point(shelf):
        raise TypeError(f"items must hold integer item indices, got dtype {shelf.dtype}")
    shelf = shelf.long()
    if shelf.min() < 0 or shelf.max() >= n_items:
        raise IndexError(f"items must lie in 0..{n_items - 1}, got {shelf.min().item()}..{shelf.max().item()}")
    if torch.unique(shelf).numel() != shelf.numel():
        raise ValueError("items holds repeated item indices; a shelf lists each item once")
    return shelf


def _shelf_ranking(model: Any, split: Split, users: np.ndarray, shelf: torch.Tensor, k: int) -> torch.Tensor:
    """Top-``k`` of ``shelf`` per user as item indices ``(U, k)``, training items excluded, PAD-padded.

    The shelf is sorted first so that ties still go to the lower item index, as in ``recommend``.
    """
    shelf = torch.sort(shelf).values
    u = torch.as_tensor(users, dtype=torch.long)
    seen = getattr(model, "seen_", None)
    seen = dense_rows(split.seen_csr() if seen is None else seen, users)[:, shelf]
    with torch.no_grad():
        scores = model.score(u)[:, shelf]
    local = rank(scores, k=k, exclude=seen).indices
    return torch.where(local == PAD, torch.full_like(local, PAD), shelf[local.clamp(min=0)])


def mean_popularity(ranked: torch.Tensor, counts: Any, reduce: str = "mean") -> float:
    """Mean (or median) training popularity of the recommended items.

    ``ranked``: ``(U, k)`` item indices, ``PAD`` (-1) slots ignored; ``counts``: ``(n_items,)``
    the training popularity of each item (e.g. ``split.item_counts()``, the number
    of training users). Returns ``reduce`` (``"mean"`` or ``"median"``) of ``counts[i]`` over every
    non-PAD slot ``i`` of every list: an item recommended to many users counts once per list. The
    median of an even number of values is the mean of the middle two (as ``numpy.median``).
    """
    if reduce not in ("mean", "median"):
        raise ValueError(f"reduce must be 'mean' or 'median', got {reduce!r}")
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-D (n_items,), got shape {tuple(counts.shape)}")
    ranked = torch.as_tensor(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (U, k), got shape {tuple(ranked.shape)}")
    items = ranked[ranked != PAD].long()
    if items.numel() == 0:
        raise ValueError("ranked holds no item (every slot is PAD): no popularity to average")
    if items.min() < 0 or items.max() >= len(counts):
        raise IndexError(f"ranked item indices must lie in 0..{len(counts) - 1} (or PAD={PAD}), "
                         f"got {items.min().item()}..{items.max().item()}")
    values = counts[items].numpy()
    return float(np.mean(values) if reduce == "mean" else np.median(values))


def rank_of(model: Any, users: Any, item: int, exclude_seen: bool = True) -> torch.Tensor:
    """1-based position of ``item`` in each user's full ranking: ``(U,)`` int64.

    The ranking is the one ``model.recommend(users, k=n_items)`` would give: descending
    ``model.score(users)``, ties to the lower item index, each user's training items excluded
    (unless ``exclude_seen=False``). So the position is
    ``1 + |{j rankable, j != item : s_uj > s_u,item or (s_uj == s_u,item and j < item)}|``.
    Users for whom ``item`` is not rankable (a training item of theirs, or scored ``-inf``) get
    ``0``. ``users``: as ``recommend`` takes them (``None`` = all users).
    """
    from recnb.models.base import BATCH_SIZE, as_user_tensor

    n_users, n_items = model.n_users_, model.n_items_
    if not 0 <= int(item) < n_items:
        raise IndexError(f"item must lie in 0..{n_items - 1}, got {item}")
    item = int(item)
    lower = torch.arange(n_items) < item
    parts = []
    for batch in torch.split(as_user_tensor(users, n_users), BATCH_SIZE):  # (batch, n_items) at a time
        with torch.no_grad():
            s = model.score(batch)
        if torch.isnan(s).any():
            raise ValueError("scores contain NaN; rank_of needs comparable numbers")
        excluded = s == -torch.inf
        if exclude_seen:
            excluded = excluded | model.seen_rows(batch)
        mine = s[:, item : item + 1]
        ahead = ((s > mine) | ((s == mine) & lower)) & ~excluded
        parts.append((ahead.sum(dim=1) + 1).masked_fill(excluded[:, item], 0).long())
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


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
        else:  # score a batch of users at a time and read each test pair's entry
            uniq, inverse = torch.unique(u, return_inverse=True)
            pred = torch.empty(len(u))
            for start in range(0, len(uniq), 1024):
                rows = (inverse >= start) & (inverse < start + 1024)
                pred[rows] = model.score(uniq[start : start + 1024])[inverse[rows] - start, i[rows]]
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


# --- Ranking quality over all items: per-user AUC and GAUC -------------------------------------


def _rankable_masks(scores: torch.Tensor, relevant: torch.Tensor, exclude: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positives and negatives ``(U, n_items)`` bool among the rankable (not excluded) items."""
    if scores.ndim != 2 or relevant.shape != scores.shape:
        raise ValueError(
            f"scores and relevant must both be (U, n_items); got shapes {tuple(scores.shape)} and {tuple(relevant.shape)}"
        )
    if relevant.dtype != torch.bool:
        raise TypeError(f"relevant must be a bool mask, got dtype {relevant.dtype}")
    if exclude is None:
        exclude = torch.zeros_like(relevant)
    elif exclude.shape != scores.shape or exclude.dtype != torch.bool:
        raise ValueError(f"exclude must be a bool mask of shape {tuple(scores.shape)}, got {exclude.dtype} {tuple(exclude.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; AUC needs comparable numbers")
    return relevant & ~exclude, ~relevant & ~exclude


def user_auc(scores: torch.Tensor, relevant: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Per-user ROC AUC of ``scores`` for telling ``relevant`` items from the others: ``(U,)`` float64.

    Over each user's *rankable* items (not in ``exclude``, e.g. the training items), with
    ``P_u`` the relevant ones (positives) and ``N_u`` the others (negatives)::

        AUC_u = 1 / (|P_u| |N_u|) · Σ_{i∈P_u} Σ_{j∈N_u} ( 1[s_ui > s_uj] + ½ 1[s_ui = s_uj] )

    the probability that a random positive outscores a random negative, ties counting one half
    (the Mann-Whitney U statistic over ``|P_u| |N_u|``; equal to ``sklearn.metrics.roc_auc_score``).
    ``NaN`` for a user with no rankable positive or no rankable negative. Shapes: ``scores``
    ``(U, n_items)`` float, ``relevant`` and ``exclude`` ``(U, n_items)`` bool. Each positive's
    count of lower and tied negatives comes from a row-wise ``searchsorted`` in the sorted negative
    scores: ``O(U · n log n)``, no ``(P, N)`` pair matrix.
    """
    pos, neg = _rankable_masks(scores, relevant, exclude)
    s = scores.double()
    n_neg = neg.sum(dim=1)
    n_pos = pos.sum(dim=1)
    # negatives' scores sorted per row; every non-negative slot is +inf (sorted to the end)
    neg_sorted = torch.sort(torch.where(neg, s, torch.full_like(s, torch.inf)), dim=1).values
    below = torch.searchsorted(neg_sorted, s, side="left")  # negatives with s_j < s_i (+inf fillers never)
    at_or_below = torch.searchsorted(neg_sorted, s, side="right")  # ... with s_j <= s_i (fillers only if s_i = +inf)
    cap = n_neg[:, None]
    wins = (torch.minimum(below, cap) + torch.minimum(at_or_below, cap)).double() / 2  # below + ½ tied
    total = (wins * pos).sum(dim=1)
    auc = total / (n_pos * n_neg).clamp(min=1)
    return auc.masked_fill((n_pos == 0) | (n_neg == 0), float("nan"))


def gauc(
    scores: torch.Tensor,
    relevant: torch.Tensor,
    exclude: torch.Tensor | None = None,
    weights: str = "positives",
) -> float:
    """Group AUC: the weighted mean of :func:`user_auc` over the users where it is defined.

    ``GAUC = Σ_u w_u AUC_u / Σ_u w_u`` with ``w_u = |P_u|`` (the user's rankable positives, as
    GAUC is usually weighted by clicks or impressions; ``weights="positives"``) or ``w_u = 1``
    (``weights="uniform"``, the plain mean of per-user AUC). Unlike one AUC over all users' pairs
    pooled, it never compares one user's scores with another's, which is what a per-user ranking
    needs.
    """
    if weights not in ("positives", "uniform"):
        raise ValueError(f"weights must be 'positives' or 'uniform', got {weights!r}")
    auc = user_auc(scores, relevant, exclude)
    defined = ~torch.isnan(auc)
    if not defined.any():
        raise ValueError("no user has both a rankable relevant item and a rankable other item: GAUC is undefined")
    if weights == "uniform":
        w = defined.double()
    else:
        pos, _ = _rankable_masks(scores, relevant, exclude)
        w = pos.sum(dim=1).double() * defined
    return float((torch.nan_to_num(auc) * w).sum() / w.sum())


# --- Beyond accuracy: diversity, exposure, novelty, personalisation ---------------------------


def _ranked_items(ranked: Any, n_items: int | None = None) -> torch.Tensor:
    """``ranked`` as a 2-D int64 tensor, checked against ``n_items`` when given."""
    ranked = torch.as_tensor(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (U, k) item indices, got shape {tuple(ranked.shape)}")
    if ranked.dtype == torch.bool or torch.is_floating_point(ranked):
        raise TypeError(f"ranked must hold integer item indices, got dtype {ranked.dtype}")
    ranked = ranked.long()
    if ranked.numel() and ranked.min() < PAD:
        raise IndexError(f"ranked item indices must be >= 0 (or PAD={PAD}), got {ranked.min().item()}")
    if n_items is not None and ranked.numel() and ranked.max() >= n_items:
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1} (or PAD={PAD}), got {ranked.max().item()}")
    return ranked


def intra_list_diversity(ranked: torch.Tensor, item_repr: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean pairwise distance between the items of each list: ``(U,)`` float64.

    ``ILD_u = 1 / (m (m - 1)) · Σ_{i ≠ j ∈ L_u} d(i, j)`` over the ``m`` non-PAD items of list ``L_u``
    (``NaN`` when ``m < 2``). ``item_repr`` decides the distance:

    - 1-D integer ``(n_items,)`` category codes: ``d(i, j) = 1[c_i ≠ c_j]`` (the share of pairs
      from different categories);
    - 2-D float ``(n_items, d)`` embeddings: ``d(i, j) = 1 − cos(e_i, e_j)`` (a zero vector has
      cosine 0 with everything, as in :mod:`recnb.math.similarity`).

    Memory ``O(U k²)``; embeddings are gathered a chunk of users at a time (``O(chunk · k · d)``).
    """
    rep = torch.as_tensor(np.asarray(item_repr) if not isinstance(item_repr, torch.Tensor) else item_repr)
    if rep.ndim not in (1, 2):
        raise ValueError(f"item_repr must be 1-D category codes or 2-D (n_items, d) embeddings, got shape {tuple(rep.shape)}")
    if rep.ndim == 1 and (torch.is_floating_point(rep) or rep.dtype == torch.bool):
        raise TypeError(f"1-D item_repr must hold integer category codes, got dtype {rep.dtype}")
    ranked = _ranked_items(ranked, rep.shape[0])
    valid = ranked != PAD
    idx = ranked.clamp(min=0)
    if rep.ndim == 1:
        c = rep.long()[idx]
        dist = (c[:, :, None] != c[:, None, :]).double()
    else:
        e = rep.double()
        e = e / e.norm(dim=1, keepdim=True).clamp(min=1e-12)
        step = max(1, 2**22 // max(1, idx.shape[1] * e.shape[1]))  # users per chunk: ~4M gathered values
        dist = torch.cat([1.0 - torch.bmm(v, v.transpose(1, 2)) for v in (e[b] for b in idx.split(step))])
    k = ranked.shape[1]
    pair = valid[:, :, None] & valid[:, None, :] & ~torch.eye(k, dtype=torch.bool)
    n_pairs = pair.sum(dim=(1, 2))
    out = (dist * pair).sum(dim=(1, 2)) / n_pairs.clamp(min=1)
    return out.masked_fill(n_pairs == 0, float("nan"))


def exposure_counts(ranked: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(n_items,)`` int64: how many lists each catalogue item appears in (PAD slots ignored)."""
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    ranked = _ranked_items(ranked, n_items)
    return torch.bincount(ranked[ranked != PAD], minlength=n_items)


def exposure_gini(ranked: torch.Tensor, n_items: int) -> float:
    """Gini coefficient of the exposure of the catalogue's items in the lists ``ranked``.

    With ``x_i`` = :func:`exposure_counts` (items never recommended included, as zeros), sorted
    ascending, ``G = Σ_i (2i − n − 1) x_(i) / (n Σ_i x_i)`` (:func:`recnb.data.analysis.gini`):
    0 when every item is shown equally often, ``1 − 1/n`` when one item takes every slot.
    """
    from recnb.data.analysis import gini

    counts = exposure_counts(ranked, n_items)
    if counts.sum() == 0:
        raise ValueError("ranked holds no item (every slot is PAD): no exposure to measure")
    return gini(counts.numpy())


def novelty(ranked: torch.Tensor, counts: Any, n_users: int) -> torch.Tensor:
    """Mean self-information of each user's recommended items: ``(U,)`` float64.

    ``novelty_u = 1/|L_u| · Σ_{i∈L_u} −log2(p_i)``, ``p_i = max(counts_i, 1) / n_users``, the share
    of (training) users who have item ``i``. The count is clipped to at least 1 so that an item
    nobody has gets a finite ``log2(n_users)`` bits instead of ``+inf``. Higher = less popular
    items. ``counts``: ``(n_items,)`` e.g. ``split.item_counts()``; PAD slots are ignored; ``NaN``
    for an empty list.
    """
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-D (n_items,), got shape {tuple(counts.shape)}")
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    if n_users <= 0 or counts.max() > n_users:
        raise ValueError(f"n_users must be positive and at least every count, got {n_users} (max count {counts.max().item():g})")
    ranked = _ranked_items(ranked, len(counts))
    valid = ranked != PAD
    info = -torch.log2(counts.clamp(min=1) / n_users)[ranked.clamp(min=0)]
    m = valid.sum(dim=1)
    return ((info * valid).sum(dim=1) / m.clamp(min=1)).masked_fill(m == 0, float("nan"))


def personalisation(ranked: torch.Tensor) -> float:
    """``1 −`` the mean overlap ``|L_u ∩ L_v| / k`` over all pairs of users ``u < v``.

    0 when every user gets the same list, 1 when no two lists share an item. ``k = ranked.shape[1]``
    (PAD slots hold no item). With the incidence matrix ``M`` (``M_ui = 1`` if ``i ∈ L_u``) the
    overlaps are ``M Mᵀ``, and their sum over all ordered pairs is ``1ᵀ M Mᵀ 1 = Σ_i c_i²`` with
    ``c_i = Σ_u M_ui`` the exposure of item ``i``; removing the diagonal (``Σ_u |L_u|``) and halving::

        Σ_{u<v} |L_u ∩ L_v| = (Σ_i c_i² − Σ_u |L_u|) / 2

    so the ``U × U`` product is never formed: ``O(U k)`` time and memory. A list must not repeat
    an item.
    """
    ranked = _ranked_items(ranked)
    n_users, k = ranked.shape
    if n_users < 2:
        raise ValueError(f"personalisation compares lists of pairs of users; got {n_users} list(s)")
    if k == 0:
        raise ValueError("ranked has k = 0 columns")
    s = torch.sort(ranked, dim=1).values
    if ((s[:, 1:] == s[:, :-1]) & (s[:, 1:] != PAD)).any():
        raise ValueError("a list in ranked repeats an item; each list must hold distinct items")
    items = ranked[ranked != PAD]
    c = torch.bincount(items).double() if items.numel() else torch.zeros(1, dtype=torch.float64)
    overlap_sum = ((c**2).sum() - items.numel()) / 2
    n_pairs = n_users * (n_users - 1) / 2
    return float(1.0 - overlap_sum / (n_pairs * k))


# --- Sampled evaluation (a protocol to know about, and to distrust) ---------------------------


def sampled_ranks(positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Rank of each held-out item among its sampled negatives: ``(P,)`` int64, 1 = best.

    ``positive``: ``(P,)`` the held-out items' scores, ``negatives``: ``(P, n)`` the scores of the
    ``n`` negatives sampled for each. ``rank = 1 + |{j : s_j > s_pos}| + |{j : s_j = s_pos}|``:
    ties count *against* the held-out item, so a model that scores everything equally gets the worst
    rank ``n + 1`` rather than the best.
    """
    positive, negatives = torch.as_tensor(positive), torch.as_tensor(negatives)
    if positive.ndim != 1 or negatives.ndim != 2 or negatives.shape[0] != positive.shape[0]:
        raise ValueError(
            f"positive must be (P,) and negatives (P, n); got shapes {tuple(positive.shape)} and {tuple(negatives.shape)}"
        )
    if torch.isnan(positive).any() or torch.isnan(negatives).any():
        raise ValueError("scores contain NaN; ranks need comparable numbers")
    return 1 + (negatives >= positive[:, None]).sum(dim=1)


def sample_negatives(
    split: Split, n_negatives: int = 100, seed: int = 0, users: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out pairs of ``split`` and ``n_negatives`` sampled negatives for each.

    Held-out pairs: each test pair ``(u, i)`` whose item is not among ``u``'s training items (the
    relevance of :func:`relevance`), for the users in ``users`` (default ``split.test_users``).
    Negatives: items ``u`` has in neither train nor test, drawn uniformly *with replacement* by the
    training sampler :func:`recnb.data.sampling.sample_negatives` (rejection: any interacted item
    is redrawn) from a ``torch.Generator`` seeded with ``seed``. Returns
    ``(users (P,), items (P,), negatives (P, n_negatives))`` int64 arrays, pairs sorted by user then item.
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be a positive integer, got {n_negatives}")
    n_items = split.n_items
    train_key = split.train[USER_IDX].to_numpy(np.int64) * n_items + split.train[ITEM_IDX].to_numpy(np.int64)
    test_key = split.test[USER_IDX].to_numpy(np.int64) * n_items + split.test[ITEM_IDX].to_numpy(np.int64)
    test_key = np.unique(test_key[~np.isin(test_key, train_key)])
    pair_u, pair_i = test_key // n_items, test_key % n_items
    if users is not None:
        chosen = np.asarray(users, dtype=np.int64).reshape(-1)
        keep = np.isin(pair_u, chosen)
        pair_u, pair_i = pair_u[keep], pair_i[keep]
    if len(pair_u) == 0:
        raise ValueError("no held-out (test, not seen in train) pair for the chosen users")
    forbidden = np.concatenate([train_key, test_key])
    interacted = sampling.PositiveSet(torch.from_numpy(forbidden // n_items), torch.from_numpy(forbidden % n_items),
                                      split.n_users, n_items)
    generator = torch.Generator().manual_seed(seed)
    neg = sampling.sample_negatives(torch.from_numpy(pair_u), n_negatives, interacted, generator=generator)
    return pair_u, pair_i, neg.numpy()


def sampled_rank_metrics(
    model: Any,
    split: Split,
    k: int = 10,
    n_negatives: int = 100,
    seed: int = 0,
    users: Any = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Sampled evaluation: rank each held-out item among ``n_negatives`` sampled items only.

    For each held-out pair (:func:`sample_negatives`) the model scores the item and its negatives;
    :func:`sampled_ranks` gives its rank ``r`` among the ``n_negatives + 1``. Per pair:
    ``HR@k = 1[r <= k]``, ``NDCG@k = 1[r <= k] / log2(r + 1)`` (one relevant item, so ``IDCG = 1``),
    and ``AUC = (|{j : s_j < s_pos}| + ½ |{j : s_j = s_pos}|) / n_negatives``. Each is averaged over
    a user's pairs, then over users (as :func:`evaluate` averages over users). Returns
    ``{"hit_rate@k", "ndcg@k", "auc", "users", "pairs"}``.

    With 100 negatives, ``HR@10`` asks "is the item in the top 10 % of a random sample?", a far
    easier question than full ranking, and it can order models differently (Krichene & Rendle,
    "On Sampled Metrics for Item Recommendation", KDD 2020).
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    pair_u, pair_i, neg = sample_negatives(split, n_negatives, seed, users)
    uniq, inverse = np.unique(pair_u, return_inverse=True)
    pos_s = torch.empty(len(pair_u), dtype=torch.float64)
    neg_s = torch.empty(neg.shape, dtype=torch.float64)
    for start in range(0, len(uniq), batch_size):
        batch = uniq[start : start + batch_size]
        rows = np.flatnonzero((inverse >= start) & (inverse < start + len(batch)))
        with torch.no_grad():
            s = model.score(torch.as_tensor(batch)).double()
        local = torch.as_tensor(inverse[rows] - start)
        pos_s[rows] = s[local, torch.as_tensor(pair_i[rows])]
        neg_s[rows] = s[local[:, None], torch.as_tensor(neg[rows])]
    r = sampled_ranks(pos_s, neg_s)
    hit = (r <= k).double()
    per_pair = {
        f"hit_rate@{k}": hit,
        f"ndcg@{k}": hit / torch.log2(r.double() + 1),
        "auc": ((neg_s < pos_s[:, None]).sum(1) + 0.5 * (neg_s == pos_s[:, None]).sum(1)).double() / n_negatives,
    }
    frame = pd.DataFrame({name: v.numpy() for name, v in per_pair.items()}).groupby(inverse).mean()
    out = {name: float(frame[name].mean()) for name in per_pair}
    out["users"] = float(len(uniq))
    out["pairs"] = float(len(pair_u))
    return out
