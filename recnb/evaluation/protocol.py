"""The one evaluation path: a fitted recommender's lists on a split's held-out items, scored by
the formulas of :mod:`recnb.math.metrics`, users a batch at a time.

:func:`evaluate` (means) and :func:`evaluate_per_user` (one row per user, what bootstrap intervals
resample) share :func:`_per_user`; a *shelf* (``items=``) restricts ranking and relevance to a
subset of the catalogue, ``relevant_items=`` relevance alone; :func:`evaluated_users` says which users
they score. :func:`rank_of` finds one item in each user's full ranking;
:func:`compare` tabulates several models.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.data.schema import USER_IDX, Split, dense_rows
from recnb.evaluation.beyond import catalogue_coverage
from recnb.evaluation.rating import rating_metrics
from recnb.math.metrics import RANKING_FUNCTIONS, RANKING_METRICS, mean, ranking_metrics
from recnb.math.ranking import PAD, item_indices
from recnb.models.base import BATCH_SIZE, as_user_tensor


DEFAULT_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage")


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
    relevant_items: np.ndarray | torch.Tensor | list[int] | None = None,
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
    ranks only the shelf items (``model.recommend(users, k, items=shelf)``: the user's training
    items excluded, ties to the lower item index, item indices); relevance is
    ``relevance(split, users) & shelf`` (the held-out items on the shelf), so users with no relevant
    shelf item are left out; and coverage is the fraction of the *shelf* that appears in a list.

    ``relevant_items``: count only these held-out items as relevant (e.g. items new to the
    catalogue, to ask how well a model surfaces them); unlike a shelf, the lists still rank every
    item. Users with no relevant item among them are left out.
    """
    metrics = tuple(metrics)
    users_kept, values, ranked = _per_user(model, split, k, users, metrics, items, batch_size, relevant_items)
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
    relevant_items: np.ndarray | torch.Tensor | list[int] | None = None,
) -> pd.DataFrame:
    """Per-user values of the ranking metrics :func:`evaluate` averages: one row per evaluated user.

    Same arguments and same users as :func:`evaluate` (users with no relevant item left out); the
    index is the user index, the columns ``"<metric>@<k>"``. ``evaluate(...)[m]`` is the column
    mean. This is what bootstrap intervals and paired tests (:mod:`recnb.evaluation.uncertainty`) resample.
    """
    metrics = tuple(m for m in metrics if m != "coverage")
    users_kept, values, _ = _per_user(model, split, k, users, metrics, items, batch_size, relevant_items)
    frame = pd.DataFrame({f"{name}@{k}": values[name].numpy() for name in metrics}, index=users_kept)
    frame.index.name = USER_IDX
    return frame


def _per_user(
    model: Any, split: Split, k: int, users: Any, metrics: tuple[str, ...], items: Any, batch_size: int,
    relevant_items: Any = None,
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
    relevant = _relevant_csr(split, shelf, relevant_items)
    per_user: dict[str, list[torch.Tensor]] = {name: [] for name in metrics if name != "coverage"}
    kept: list[np.ndarray] = []
    lists: list[torch.Tensor] = []
    for start in range(0, len(u_all), batch_size):
        u = u_all[start : start + batch_size]
        u = u[relevant.indptr[u + 1] - relevant.indptr[u] > 0]
        if len(u) == 0:
            continue
        rel = relevant[u]
        ranked = model.recommend(u, k=k, items=shelf).indices  # items=None: the whole catalogue
        kept.append(u)
        lists.append(ranked)
        for name, values in ranking_metrics(ranked, rel, tuple(per_user)).items():
            per_user[name].append(values)
    if not lists:
        where = " on the shelf (items)" if shelf is not None else ""
        raise ValueError(f"no evaluated user has a relevant (held-out, unseen) item{where}")
    return np.concatenate(kept), {n: torch.cat(v) for n, v in per_user.items()}, torch.cat(lists)


def evaluated_users(
    split: Split,
    users: np.ndarray | torch.Tensor | list[int] | None = None,
    items: np.ndarray | torch.Tensor | list[int] | None = None,
    relevant_items: np.ndarray | torch.Tensor | list[int] | None = None,
) -> np.ndarray:
    """The users :func:`evaluate` scores, in order: those of ``users`` (default ``split.test_users``)
    with at least one relevant item (on the shelf ``items``, among ``relevant_items``). Empty when
    there is none, where :func:`evaluate` raises."""
    u = np.asarray(split.test_users if users is None else users, dtype=np.int64).reshape(-1)
    rel = _relevant_csr(split, items, relevant_items)
    return u[rel.indptr[u + 1] - rel.indptr[u] > 0]


def _relevant_csr(split: Split, shelf: Any = None, relevant_items: Any = None) -> sp.csr_matrix:
    """The pairs of :func:`relevance` as a canonical CSR ``(n_users, n_items)``: test minus seen.

    With a ``shelf`` and/or ``relevant_items`` (item indices), only those columns are kept (both:
    the items in both). No dense ``(U, n_items)`` block is ever built. A user's row is empty when
    :func:`evaluate` would leave them out.
    """
    rel = split.relevant_csr().copy()
    keep = np.ones(split.n_items, dtype=bool)
    if shelf is not None:
        keep &= np.isin(np.arange(split.n_items), _shelf(shelf, split.n_items).numpy())
    if relevant_items is not None:
        keep &= np.isin(np.arange(split.n_items), item_indices(relevant_items, split.n_items, "relevant_items").numpy())
    if not keep.all():
        rel.data = rel.data * keep[rel.indices]
        rel.eliminate_zeros()
    rel.sum_duplicates()  # sorts indices too: canonical
    return rel



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


def rank_of(model: Any, users: Any, item: int, exclude_seen: bool = True) -> torch.Tensor:
    """1-based position of ``item`` in each user's full ranking: ``(U,)`` int64.

    The ranking is the one ``model.recommend(users, k=n_items)`` would give: descending
    ``model.score(users)``, ties to the lower item index, each user's training items excluded
    (unless ``exclude_seen=False``). So the position is
    ``1 + |{j rankable, j != item : s_uj > s_u,item or (s_uj == s_u,item and j < item)}|``.
    Users for whom ``item`` is not rankable (a training item of theirs, or scored ``-inf``) get
    ``0``. ``users``: as ``recommend`` takes them (``None`` = all users).
    """
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
