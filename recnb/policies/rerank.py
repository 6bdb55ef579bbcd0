"""Re-ranking a recommender's candidates: diversity (MMR), calibration, and score cut-offs.

A base model ranks the whole catalogue by relevance alone, so a user who likes running shoes gets
ten pairs of running shoes. 000 asks for "多样性控制" ("avoid recommending consecutive or similar
items") and 004 §5.4 sketches accuracy, coverage and diversity charts; this module holds the
standard tools, applied to the base model's top-``N`` **candidates** (e.g. ``N = 100``) so that the
cost is ``O(U · N²)`` whatever the catalogue size.

**Relevance, normalised per user.** The base scores of user ``u``'s candidates are min-max
scaled over that user's (valid) candidates, ``rel_u(i) = (s_ui − min_u) / (max_u − min_u)`` in
``[0, 1]`` (0 for every candidate when they all score the same), so that the trade-off weight
means the same thing for every user and every model, whatever its score scale.

**Maximal marginal relevance** (Carbonell & Goldstein, SIGIR 1998). Greedily, with ``S`` the items
picked so far and ``C`` the candidates left::

    i* = argmax_{i ∈ C}  λ · rel_u(i) − (1 − λ) · max_{j ∈ S} sim(i, j)

(the max term is absent while ``S`` is empty, so the first pick is always the most relevant).
``λ = 1`` returns the base ranking; ``λ = 0`` picks, after the top item, whatever is least similar
to the list so far. Ties go to the candidate ranked higher by the base model.

**Calibration** (Steck, "Calibrated recommendations", RecSys 2018). With ``p(c|i)`` the category
distribution of item ``i`` (one-hot for a single category), the user's history distribution
``p(c|u) = Σ_{j∈H_u} w_uj p(c|j) / Σ_{j∈H_u} w_uj`` and the list's ``q(c|u) = (1/|I|) Σ_{i∈I} p(c|i)``
(uniform weights over the list), the list maximises greedily::

    (1 − λ) · Σ_{i∈I} rel_u(i) − λ · KL(p ‖ q̃),   q̃ = (1 − α) q + α p,   KL(p ‖ q̃) = Σ_c p_c log(p_c / q̃_c)

``α`` (0.01 in the paper) keeps ``q̃_c > 0`` wherever ``p_c > 0``, so the KL divergence is finite.
``λ = 0`` is the base ranking; a larger ``λ`` makes the category mix of the list match the user's
history.

Both re-rankers return a :class:`~recnb.math.ranking.Ranking` whose ``scores`` are the *base*
model's scores of the picked items (so they are no longer sorted: that is the point of
re-ranking), padded with ``PAD`` / ``-inf`` where a user has fewer than ``k`` candidates.

**Score thresholds** (000: "设置一个阈值"): :func:`threshold_curve` measures what a cut-off on the
score does to list length, precision and coverage. It lives here rather than in
:mod:`recnb.evaluation` because a cut-off is, like re-ranking, a policy applied to a model's ranked
list before it is shown; the metrics it reports are computed from the lists it produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.data.categories import category_distribution
from recnb.math.ranking import PAD, Ranking, rank
from recnb.math.similarity import normalise_rows
from recnb.evaluation import catalogue_coverage, relevance

__all__ = [
    "ItemSimilarity",
    "candidates",
    "normalise_candidates",
    "mmr",
    "history_distribution",
    "list_distribution",
    "kl_divergence",
    "calibrated",
    "threshold_curve",
    "taste_mass",
    "distinct_categories",
]


# --- item-item similarity on candidate blocks --------------------------------------------------


@dataclass(frozen=True)
class ItemSimilarity:
    """Item-item similarity that can fill a ``(U, N, N)`` block for each user's ``N`` candidates.

    Build one with :meth:`from_categories` (``sim(i, j) = 1[c_i = c_j]``), :meth:`from_embeddings`
    (cosine of item vectors, e.g. the text embeddings of notebook 05) or :meth:`from_matrix` (a
    precomputed ``(n_items, n_items)`` matrix, dense or scipy-sparse, e.g. item-kNN similarities).
    Memory is that of the block, ``U · N²``; the full item-item matrix is never built.
    """

    kind: str
    data: Any

    @classmethod
    def from_categories(cls, codes: Sequence[int] | np.ndarray | torch.Tensor) -> ItemSimilarity:
        """``sim(i, j) = 1`` when items ``i`` and ``j`` share a category code, else 0."""
        c = torch.as_tensor(np.asarray(codes))
        if c.ndim != 1 or torch.is_floating_point(c) or c.dtype == torch.bool:
            raise TypeError(f"codes must be a 1-D array of integer category codes, got dtype {c.dtype}, shape {tuple(c.shape)}")
        return cls("categories", c.long())

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray | torch.Tensor) -> ItemSimilarity:
        """``sim(i, j) = cos(e_i, e_j)`` of the rows of ``embeddings`` ``(n_items, d)`` (a zero row gives 0)."""
        e = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
        if e.ndim != 2 or not torch.is_floating_point(e):
            raise TypeError(f"embeddings must be a 2-D float (n_items, d) array, got dtype {e.dtype}, shape {tuple(e.shape)}")
        return cls("embeddings", normalise_rows(e.double()))

    @classmethod
    def from_matrix(cls, matrix: np.ndarray | torch.Tensor | sp.spmatrix) -> ItemSimilarity:
        """``sim(i, j) = matrix[i, j]``, a square ``(n_items, n_items)`` dense or scipy-sparse matrix.

        A kNN similarity is pruned per row and not symmetric: ``sim(i, j)`` reads row ``i`` (the
        candidate) at column ``j`` (an item already in the list).
        """
        if sp.issparse(matrix):
            m = sp.csr_matrix(matrix, dtype=np.float64)
        else:
            m = torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix).double()
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"matrix must be square (n_items, n_items), got shape {tuple(m.shape)}")
        return cls("matrix", m)

    @property
    def n_items(self) -> int:
        return int(self.data.shape[0])

    def block(self, items: torch.Tensor) -> torch.Tensor:
        """``(U, N, N)`` float64 with ``[u, a, b] = sim(items[u, a], items[u, b])``; 0 where either is ``PAD``."""
        items = torch.as_tensor(items).long()
        if items.ndim != 2:
            raise ValueError(f"items must be (U, N) candidate indices, got shape {tuple(items.shape)}")
        if items.numel() and (items.min() < PAD or items.max() >= self.n_items):
            raise IndexError(f"items must lie in 0..{self.n_items - 1} (or PAD={PAD}), got {items.min().item()}..{items.max().item()}")
        valid = items != PAD
        idx = items.clamp(min=0)
        if self.kind == "categories":
            c = self.data[idx]
            out = (c[:, :, None] == c[:, None, :]).double()
        elif self.kind == "embeddings":
            v = self.data[idx]
            out = torch.bmm(v, v.transpose(1, 2))
        elif isinstance(self.data, torch.Tensor):
            out = self.data[idx[:, :, None], idx[:, None, :]]
        else:  # scipy sparse: one small sub-matrix per user
            rows = idx.numpy()
            out = torch.from_numpy(np.stack([self.data[r][:, r].toarray() for r in rows]) if len(rows) else
                                   np.zeros((0,) + tuple(items.shape[1:]) * 2))
        return out * (valid[:, :, None] & valid[:, None, :])


# --- candidates and relevance -----------------------------------------------------------------


def candidates(
    scores: torch.Tensor | Ranking,
    n_candidates: int = 100,
    exclude: torch.Tensor | Sequence[Sequence[int]] | None = None,
) -> Ranking:
    """The top ``n_candidates`` per user of full ``(U, n_items)`` scores (:func:`~recnb.math.ranking.rank`).

    A :class:`Ranking` passes through unchanged (its items are the candidates) unless ``exclude``
    is given, which is then a bool mask ``(U, n_items)`` or per-user index lists of items to drop:
    the remaining candidates move up and the tail is padded.
    """
    if isinstance(scores, Ranking):
        cand = scores
        if cand.indices.ndim != 2 or cand.indices.shape != cand.scores.shape:
            raise ValueError(f"a candidate Ranking must hold (U, N) indices and scores, got {tuple(cand.indices.shape)} and {tuple(cand.scores.shape)}")
        if exclude is None:
            return cand
        drop = _excluded(cand.indices, exclude)
        s = cand.scores.double().masked_fill(drop | (cand.indices == PAD), -torch.inf)
        order = torch.sort(s, dim=1, descending=True, stable=True).indices
        idx, sc = torch.gather(cand.indices, 1, order), torch.gather(cand.scores, 1, order)
        gone = torch.gather(drop | (cand.indices == PAD), 1, order)
        return Ranking(idx.masked_fill(gone, PAD), sc.masked_fill(gone, -torch.inf))
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
        raise ValueError(f"scores must be a (U, n_items) tensor or a candidate Ranking, got {type(scores).__name__}")
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be a positive integer, got {n_candidates}")
    return rank(scores, k=n_candidates, exclude=exclude)


def _excluded(items: torch.Tensor, exclude: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
    """``(U, N)`` bool: which candidates ``exclude`` (a ``(U, n_items)`` mask or index lists) names."""
    if isinstance(exclude, np.ndarray) and exclude.dtype == np.bool_:
        exclude = torch.from_numpy(exclude)
    if isinstance(exclude, torch.Tensor) and exclude.dtype == torch.bool:
        if exclude.ndim != 2 or exclude.shape[0] != items.shape[0]:
            raise ValueError(f"exclude mask must be (U, n_items) with U = {items.shape[0]}, got {tuple(exclude.shape)}")
        return torch.gather(exclude, 1, items.clamp(min=0)) & (items != PAD)
    if len(exclude) != items.shape[0]:
        raise ValueError(f"exclude has {len(exclude)} index lists, the candidates have {items.shape[0]} users")
    out = torch.zeros(items.shape, dtype=torch.bool)
    for u, lst in enumerate(exclude):
        out[u] = torch.isin(items[u], torch.as_tensor(list(lst), dtype=torch.long)) & (items[u] != PAD)
    return out


def normalise_candidates(cand: Ranking) -> torch.Tensor:
    """Per-user min-max of the candidates' scores: ``(U, N)`` float64 in ``[0, 1]``, ``-inf`` at ``PAD``.

    ``rel_u(i) = (s_ui − min_u) / (max_u − min_u)`` over the user's valid (non-``PAD``, finite)
    candidates; a user whose candidates all score the same gets 0 for each.
    """
    s = cand.scores.double()
    valid = (cand.indices != PAD) & torch.isfinite(s)
    lo = torch.where(valid, s, torch.inf).amin(dim=1, keepdim=True)
    hi = torch.where(valid, s, -torch.inf).amax(dim=1, keepdim=True)
    spread = hi - lo
    ok = spread > 0
    rel = torch.where(ok, (s - lo) / torch.where(ok, spread, torch.ones_like(spread)), torch.zeros_like(s))
    return rel.masked_fill(~valid, -torch.inf)


def _check_weight(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


def _check_ranked(ranked: torch.Tensor | np.ndarray, n_items: int) -> torch.Tensor:
    """``ranked`` as a ``(U, k)`` int64 tensor of item indices in ``0..n_items - 1`` or ``PAD``."""
    ranked = torch.as_tensor(ranked).long()
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (U, k) item indices, got shape {tuple(ranked.shape)}")
    if ranked.numel() and (ranked.min() < PAD or ranked.max() >= n_items):
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1} (or PAD={PAD}), got {ranked.min().item()}..{ranked.max().item()}")
    return ranked


def _picked(cand: Ranking, positions: torch.Tensor) -> Ranking:
    """The candidates at ``positions`` ``(U, k)`` (``-1`` = none) as a Ranking of items and base scores."""
    none = positions < 0
    p = positions.clamp(min=0)
    idx = torch.gather(cand.indices, 1, p).masked_fill(none, PAD)
    sc = torch.gather(cand.scores, 1, p).masked_fill(none, -torch.inf)
    return Ranking(idx, sc)


# --- maximal marginal relevance -----------------------------------------------------------------


def mmr(
    scores: torch.Tensor | Ranking,
    item_similarity: ItemSimilarity | torch.Tensor,
    lam: float,
    k: int = 10,
    exclude: torch.Tensor | Sequence[Sequence[int]] | None = None,
    n_candidates: int = 100,
) -> Ranking:
    """Maximal marginal relevance re-ranking (see the module docstring), vectorised over users.

    ``scores``: full ``(U, n_items)`` scores (the top ``n_candidates`` after ``exclude`` become the
    candidates) or a candidate :class:`Ranking` ``(U, N)`` such as ``model.recommend(users, k=100)``.
    ``item_similarity``: an :class:`ItemSimilarity`, or a precomputed ``(U, N, N)`` block aligned
    with the candidates. ``lam``: ``λ ∈ [0, 1]``, the weight of relevance. Returns the ``k`` picks
    per user (``PAD`` when candidates run out), with their base scores.

    Each of the ``k`` greedy steps is one batched operation over all users: the running
    ``max_{j∈S} sim(i, j)`` is updated with the column of the item just picked.
    """
    lam = _check_weight("lam", lam)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    cand = candidates(scores, n_candidates, exclude)
    rel = normalise_candidates(cand)
    n_users, n = rel.shape
    sim = _block(item_similarity, cand.indices)
    available = torch.isfinite(rel)
    closest = torch.zeros((n_users, n), dtype=torch.float64)  # max_{j∈S} sim(i, j); no term while S = ∅
    rows = torch.arange(n_users)
    positions = torch.full((n_users, k), -1, dtype=torch.long)
    for t in range(min(k, n)):
        objective = (lam * rel - (1.0 - lam) * closest).masked_fill(~available, -torch.inf)
        pick = objective.argmax(dim=1)  # first maximum: the higher-ranked candidate wins ties
        ok = available[rows, pick]
        positions[:, t] = torch.where(ok, pick, -1)
        available[rows, pick] = False
        column = sim[rows, :, pick]  # sim(i, just picked) for every candidate i
        closest = column if t == 0 else torch.where(ok[:, None], torch.maximum(closest, column), closest)
    return _picked(cand, positions)


def _block(item_similarity: ItemSimilarity | torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    if isinstance(item_similarity, ItemSimilarity):
        return item_similarity.block(items)
    if isinstance(item_similarity, torch.Tensor):
        want = (items.shape[0], items.shape[1], items.shape[1])
        if tuple(item_similarity.shape) != want:
            raise ValueError(f"a precomputed similarity block must have shape (U, N, N) = {want}, got {tuple(item_similarity.shape)}")
        return item_similarity.double()
    raise TypeError(f"item_similarity must be an ItemSimilarity or a (U, N, N) tensor, got {type(item_similarity).__name__}")


# --- calibration ---------------------------------------------------------------------------------


def history_distribution(history: sp.spmatrix | torch.Tensor | np.ndarray, item_dist: torch.Tensor) -> torch.Tensor:
    """``p(c|u) = Σ_j w_uj p(c|j) / Σ_j w_uj``: ``(U, C)`` float64 from the ``(U, n_items)`` history weights.

    ``history``: e.g. ``split.seen_csr()[users]`` (``w_uj = 1`` per training item) or ratings.
    A user with no history gets the zero vector (no target to calibrate to).
    """
    if sp.issparse(history):
        h = sp.csr_matrix(history, dtype=np.float64)
        num = torch.from_numpy(np.asarray(h @ item_dist.numpy()))
        tot = torch.from_numpy(np.asarray(h.sum(axis=1)).reshape(-1, 1))
    else:
        h = torch.as_tensor(np.asarray(history) if not isinstance(history, torch.Tensor) else history).double()
        if h.ndim != 2:
            raise ValueError(f"history must be (U, n_items), got shape {tuple(h.shape)}")
        num, tot = h @ item_dist, h.sum(dim=1, keepdim=True)
    if num.shape[0] and (tot < 0).any():
        raise ValueError("history weights must be non-negative")
    return torch.where(tot > 0, num / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.zeros_like(num))


def list_distribution(ranked: torch.Tensor, item_dist: torch.Tensor) -> torch.Tensor:
    """``q(c|u) = (1/|L_u|) Σ_{i∈L_u} p(c|i)``: the category mix of each list, ``(U, C)`` float64.

    ``ranked``: ``(U, k)`` item indices (``PAD`` slots are not items of the list); ``item_dist``:
    ``(n_items, C)`` from :func:`category_distribution`. An empty list gets the zero vector.
    """
    ranked = _check_ranked(ranked, item_dist.shape[0])
    valid = (ranked != PAD).double()
    total = (item_dist.double()[ranked.clamp(min=0)] * valid[:, :, None]).sum(dim=1)
    m = valid.sum(dim=1, keepdim=True)
    return total / m.clamp(min=1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
    """``KL(p ‖ q̃) = Σ_c p_c log(p_c / q̃_c)`` with ``q̃ = (1 − α) q + α p`` (natural log), over the last axis.

    Terms with ``p_c = 0`` are 0; a term with ``p_c > 0 = q̃_c`` is ``+inf``.
    """
    alpha = _check_weight("alpha", alpha)
    p, q = p.double(), q.double()
    qt = (1.0 - alpha) * q + alpha * p
    ratio = torch.where(p > 0, p / qt, torch.ones_like(p))
    return (torch.where(p > 0, p * torch.log(ratio), torch.zeros_like(p))).sum(dim=-1)


def _is_codes(item_categories: Any) -> bool:
    return np.asarray(item_categories).ndim == 1


def calibrated(
    scores: torch.Tensor | Ranking,
    item_categories: Sequence[int] | np.ndarray | torch.Tensor,
    history: sp.spmatrix | torch.Tensor | np.ndarray,
    lam: float,
    k: int = 10,
    alpha: float = 0.01,
    exclude: torch.Tensor | Sequence[Sequence[int]] | None = None,
    n_candidates: int = 100,
) -> Ranking:
    """Calibrated re-ranking (Steck 2018; see the module docstring), greedy and vectorised over users.

    ``item_categories``: ``(n_items,)`` codes or ``(n_items, C)`` distributions ``p(c|i)``;
    ``history``: the users' ``(U, n_items)`` history weights (same rows as ``scores``), giving
    ``p(c|u)``; ``lam``: ``λ ∈ [0, 1]``, the weight of calibration; ``alpha``: the smoothing
    ``α ∈ (0, 1]``. At step ``t`` each remaining candidate ``i`` is scored by the objective of
    ``S ∪ {i}``, ``(1 − λ)(Σ_{j∈S} rel(j) + rel(i)) − λ KL(p ‖ q̃(S ∪ {i}))``; the best is added
    (ties to the higher-ranked candidate). A user with no history is ranked by relevance alone.
    """
    lam = _check_weight("lam", lam)
    if not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in (0, 1] so that the KL divergence stays finite, got {alpha}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    cand = candidates(scores, n_candidates, exclude)
    rel = normalise_candidates(cand)
    n_users, n = rel.shape
    item_dist = category_distribution(item_categories)
    p = history_distribution(history, item_dist)
    if p.shape[0] != n_users:
        raise ValueError(f"history has {p.shape[0]} rows (users), the scores have {n_users}")
    idx = cand.indices.clamp(min=0)
    codes = torch.as_tensor(np.asarray(item_categories)).long()[idx] if _is_codes(item_categories) else None
    one_hot = torch.eye(item_dist.shape[1], dtype=torch.float64)
    counts = torch.zeros_like(p)  # Σ_{j∈S} p(c|j)
    gained = torch.zeros(n_users, dtype=torch.float64)  # Σ_{j∈S} rel(j)
    available = torch.isfinite(rel)
    rows = torch.arange(n_users)
    positions = torch.full((n_users, k), -1, dtype=torch.long)
    for t in range(min(k, n)):
        if codes is not None:  # one category per item: only C possible lists q, a (U, C) divergence
            kl_by_category = kl_divergence(p[:, None, :], (counts[:, None, :] + one_hot) / (t + 1), alpha)
            kl = torch.gather(kl_by_category, 1, codes)
        else:
            kl = kl_divergence(p[:, None, :], (counts[:, None, :] + item_dist[idx]) / (t + 1), alpha)
        objective = (1.0 - lam) * (gained[:, None] + rel) - lam * kl
        objective = objective.masked_fill(~available, -torch.inf)
        pick = objective.argmax(dim=1)
        ok = available[rows, pick]
        positions[:, t] = torch.where(ok, pick, -1)
        available[rows[ok], pick[ok]] = False
        counts[ok] += item_dist[cand.indices[rows[ok], pick[ok]]]
        gained[ok] += rel[rows[ok], pick[ok]]
    return _picked(cand, positions)


# --- score thresholds ------------------------------------------------------------------------------


def threshold_curve(
    model: Any,
    split: Any,
    thresholds: Iterable[float],
    k: int = 10,
    users: np.ndarray | Sequence[int] | None = None,
    batch_size: int = 1024,
) -> pd.DataFrame:
    """What a score cut-off does to the lists: one row per threshold ``t`` (sorted ascending).

    Each user's list is ``model.recommend(users, k, threshold=t)``: the top ``k`` unseen items
    whose score is at least ``t``. The base top-``k`` is computed once and cut, which gives the
    same lists (ranking is by descending score). ``users``: default ``split.test_users``; users
    with no relevant item (:func:`recnb.evaluation.relevance`) are left out. Columns:

    - ``length``: mean list length ``|L_u|`` (``<= k``);
    - ``empty``: share of users whose list is empty;
    - ``precision``: mean over users with a non-empty list of ``hits_u / |L_u|``, the precision of
      what is actually shown;
    - ``precision@k``: mean of ``hits_u / k`` over all users (an empty slot counts as a miss), as
      :func:`recnb.evaluation.precision_at_k`;
    - ``recall``: mean of ``hits_u / R_u``;
    - ``coverage``: share of the catalogue in at least one list;
    - ``users``: number of users measured.
    """
    ts = sorted(float(t) for t in thresholds)
    if not ts:
        raise ValueError("thresholds is empty: give at least one cut-off")
    if any(np.isnan(ts)):
        raise ValueError("thresholds must be numbers, got NaN")
    u = np.asarray(split.test_users if users is None else users, dtype=np.int64).reshape(-1)
    lists, hits, counts = [], [], []
    for start in range(0, len(u), batch_size):  # keep (U, k) hits and (U,) counts, never (U, n_items)
        batch = u[start : start + batch_size]
        rel = relevance(split, batch)
        keep = rel.any(dim=1)
        if not keep.any():
            continue
        top = model.recommend(batch[keep.numpy()], k=k, batch_size=batch_size)
        lists.append(top)
        hits.append(torch.gather(rel[keep], 1, top.indices.clamp(min=0)) & (top.indices != PAD))
        counts.append(rel[keep].sum(dim=1).double())
    if not lists:
        raise ValueError("no user with a relevant (held-out, unseen) item among the users given")
    top = Ranking(torch.cat([r.indices for r in lists]), torch.cat([r.scores for r in lists]))
    hit_all = torch.cat(hits)
    n_rel = torch.cat(counts)
    rows = []
    for t in ts:
        shown = (top.indices != PAD) & (top.scores >= t)
        length = shown.sum(dim=1).double()
        h = (hit_all & shown).sum(dim=1).double()
        nonempty = length > 0
        rows.append(
            {
                "threshold": t,
                "length": length.mean().item(),
                "empty": (~nonempty).double().mean().item(),
                "precision": (h[nonempty] / length[nonempty]).mean().item() if nonempty.any() else float("nan"),
                "precision@k": (h / k).mean().item(),
                "recall": (h / n_rel).mean().item(),
                "coverage": catalogue_coverage(top.indices.masked_fill(~shown, PAD), split.n_items),
                "users": len(rel),
            }
        )
    return pd.DataFrame(rows)


# --- measuring a list against the synthetic shop's truth -----------------------------------------


def taste_mass(ranked: torch.Tensor, item_category: Sequence[int] | np.ndarray, taste: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Mean true taste of each list's items: ``(U,)`` float64, ``NaN`` for an empty list.

    ``m_u = (1/|L_u|) Σ_{i∈L_u} θ_{u, c_i}`` with ``θ_u`` the user's true category taste (rows of
    ``truth["user_taste"]`` for the same users as ``ranked``) and ``c_i`` the item's category. It is
    the probability that the category of a random item of the list is the category of the user's
    next session (drawn from ``θ_u``): 1 when every item sits in a category the user always shops,
    ``1/C`` on average for random categories when tastes are uniform.
    """
    cat = torch.as_tensor(np.asarray(item_category)).long()
    ranked = _check_ranked(ranked, len(cat))
    theta = torch.as_tensor(np.asarray(taste, dtype=np.float64))
    if theta.ndim != 2 or theta.shape[0] != ranked.shape[0]:
        raise ValueError(f"ranked must be (U, k) and taste (U, C) for the same users, got {tuple(ranked.shape)} and {tuple(theta.shape)}")
    valid = ranked != PAD
    got = torch.gather(theta, 1, cat[ranked.clamp(min=0)])
    m = valid.sum(dim=1)
    return ((got * valid).sum(dim=1) / m.clamp(min=1)).masked_fill(m == 0, float("nan"))


def distinct_categories(ranked: torch.Tensor, item_category: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """How many categories each list spans: ``(U,)`` int64, ``n_u = |{c_i : i ∈ L_u}|`` (0 for an empty list).

    ``ranked``: ``(U, k)`` item indices (``PAD`` slots skipped); ``item_category``: ``(n_items,)``
    integer codes. It is the number of categories ``c`` with ``q(c|u) > 0`` in the list's category
    mix (:func:`list_distribution` of the one-hot :func:`category_distribution`).
    """
    q = list_distribution(ranked, category_distribution(item_category))
    return (q > 0).sum(dim=1)
