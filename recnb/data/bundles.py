"""Bundles ("组合推荐", document 003): which item goes *with* an anchor item, as a pair data set.

**Baskets.** A basket is a set of items bought together: on the synthetic shop, the purchases
of one session; on MovieLens, the films one user rated ``>= min_rating`` (a *stand-in*: films
liked by the same person are not bought together, so a "partner" there is a co-liked film, not a
bundle). Baskets are a binary CSR matrix ``B`` ``(n_baskets, n_items)``.

**Co-occurrence and lift.** With ``C = BᵀB`` (``C_ij``: baskets holding both ``i`` and ``j``,
diagonal dropped), ``n_i = C_ii`` (baskets holding ``i``) and ``N`` baskets,

.. math::

    \\operatorname{lift}(i, j) = \\frac{P(i, j)}{P(i)\\,P(j)} = \\frac{N\\,C_{ij}}{n_i\\,n_j},

1 when ``i`` and ``j`` are independent, above 1 when they go together. Ranking candidates ``j``
by ``lift(a, j)`` is the co-occurrence baseline (:func:`lift_matrix`); it scores 0 for every pair
never seen together, so an anchor with no history gets no information at all.

**Bundle truth (synthetic shop).** The shop generates a bundle as a purchase followed, in the
same session, by the purchase of an item of the *complementary* category (``2k <-> 2k+1``). The
observed partners of item ``a`` are the items ``j`` of its complementary category co-purchased
with it in at least one session (:func:`shop_partners`, symmetric). Two phones bought in one
session are co-purchased but are substitutes, not a bundle: they are not partners.

**Pair targets.** Each anchor ``a`` contributes one pair per observed partner, target 1, and
``n_negatives`` pairs per positive with items drawn uniformly (seeded) from those that are *not*
partners of ``a`` in any period, target 0 (:func:`make_pairs`). With 0/1 targets the MSE loss is
the Brier score, minimised by ``P(partner | a, j)``, so a model's output is a probability-like
compatibility score; a lift target instead would be dominated by rare pairs (two items bought
once, together, have lift ``N``). Complementary items never co-purchased with ``a`` are labelled
0 although the generator could have bundled them: positives are observed, negatives unlabelled,
as in any implicit-feedback data.

**Held-out bundles.** Baskets are cut in time (:func:`bundle_task`): the earlier ``history_share``
form the *history* (lift is computed there; training pairs come from there), the later ones the
*future*. Anchor items are split at random into train / validation / test; the model never sees
a test anchor (pairs whose anchor *or candidate* is a test item are dropped from training and
validation, since partners are symmetric and ``(j, a)`` would give ``(a, j)`` away). The held-out
bundles are the future partners of the test anchors; each test anchor ranks the whole catalogue
(itself excluded) and :func:`evaluate_bundles` reports hit rate@k and NDCG@k of its true companions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.data.schema import EVENT, ITEM, RATING, SESSION, TIME, USER, IdIndex, RecData
from recnb.math.ranking import rank
from recnb.math.metrics import ranking_metrics

PAIR_COLUMNS = ("anchor", "candidate", "target")


def _item_positions(data: RecData, ids: pd.Series) -> np.ndarray:
    """Row positions in ``data.items`` (sorted by id) of ``ids``; raises on an unknown id."""
    pos, known = IdIndex.from_ids(data.items[ITEM]).lookup(ids.to_numpy())
    bad = ~known
    if bad.any():
        raise ValueError(f"interactions name item ids not in data.items, e.g. {ids.to_numpy()[bad][:5].tolist()}")
    return pos


def items_in_order(data: RecData) -> pd.DataFrame:
    """``data.items`` sorted by ``item_id``: row ``i`` is item index ``i`` of every matrix here."""
    return data.items.sort_values(ITEM, kind="stable").reset_index(drop=True)


def _baskets(data: RecData, rows: pd.DataFrame, key: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """``rows`` grouped by ``key`` (sorted): a binary CSR ``(n_groups, n_items)`` and each group's first timestamp."""
    groups, g_idx = np.unique(rows[key].to_numpy(), return_inverse=True)
    baskets = _binary_csr(g_idx, _item_positions(data, rows[ITEM]), len(groups), len(data.items))
    return baskets, rows.groupby(key)[TIME].min().reindex(groups).to_numpy()


def session_baskets(data: RecData, event: str = "purchase") -> tuple[sp.csr_matrix, np.ndarray]:
    """Baskets = the ``event`` rows of each session: binary CSR ``(n_sessions, n_items)`` and each
    session's first timestamp ``(n_sessions,)`` (datetime64), sessions in ``session_id`` order.

    Items are indexed as in :func:`items_in_order`. Raises ``ValueError`` when the interactions
    have no ``session_id`` column or no ``event`` row.
    """
    inter = data.interactions
    if SESSION not in inter.columns:
        raise ValueError(f"data {data.name!r} has no {SESSION!r} column: session baskets need sessions")
    rows = inter[inter[EVENT] == event]
    if rows.empty:
        raise ValueError(f"data {data.name!r} has no {event!r} events to build baskets from")
    return _baskets(data, rows, SESSION)


def user_baskets(data: RecData, min_rating: float = 4.0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Baskets = the items each user rated ``>= min_rating`` (the MovieLens stand-in): binary CSR
    ``(n_users, n_items)`` and each user's first such timestamp, users in ``user_id`` order."""
    rows = data.interactions[data.interactions[RATING] >= min_rating]
    if rows.empty:
        raise ValueError(f"data {data.name!r} has no rating >= {min_rating}")
    return _baskets(data, rows, USER)


def _binary_csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def co_occurrence(baskets: sp.spmatrix) -> tuple[sp.csr_matrix, np.ndarray, int]:
    """``(C, n, N)``: ``C = BᵀB`` with zero diagonal (float64 CSR ``(n_items, n_items)``, baskets
    holding both items), ``n`` ``(n_items,)`` baskets holding each item, ``N`` baskets."""
    b = sp.csr_matrix(baskets, dtype=np.float64)
    b.data[:] = 1.0
    c = (b.T @ b).tocsr()
    n = np.asarray(c.diagonal()).copy()
    c.setdiag(0.0)
    c.eliminate_zeros()
    c.sort_indices()
    return c, n, b.shape[0]


def lift_matrix(baskets: sp.spmatrix, min_count: int = 1) -> sp.csr_matrix:
    """``lift(i, j) = N C_ij / (n_i n_j)`` on pairs seen together in at least ``min_count`` baskets
    (CSR ``(n_items, n_items)``, zero elsewhere and on the diagonal).

    ``min_count = 1`` keeps every co-occurring pair. A **support threshold** ``min_count = m > 1``
    drops pairs seen together fewer than ``m`` times: a pair of two items bought once, together, has
    the largest lift of all (``N``), on the evidence of a single basket.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int | np.integer) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer (baskets holding both items), got {min_count!r}")
    c, n, total = co_occurrence(baskets)
    coo = c.tocoo()
    keep = coo.data >= min_count
    row, col = coo.row[keep], coo.col[keep]
    values = total * coo.data[keep] / (n[row] * n[col])
    return sp.csr_matrix((values, (row, col)), shape=c.shape)


def category_lift(baskets: sp.spmatrix, categories: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lift between item *categories*: ``(L, labels)`` with ``L`` ``(C, C)`` and ``labels`` ``(C,)`` sorted.

    A basket holds category ``c`` when it holds an item of ``c``; with ``N_c`` the baskets holding
    ``c``, ``N_cd`` those holding both ``c`` and ``d`` and ``N`` baskets,
    ``L_cd = N N_cd / (N_c N_d)`` (0 where a category never occurs). ``categories`` ``(n_items,)``
    gives each item's label.
    """
    b = sp.csr_matrix(baskets, dtype=np.float64)
    categories = np.asarray(categories)
    if len(categories) != b.shape[1]:
        raise ValueError(f"categories must have one label per item ({b.shape[1]}), got {len(categories)}")
    labels, codes = np.unique(categories, return_inverse=True)
    onehot = sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), len(labels)))
    holds = (b @ onehot).toarray() > 0  # (N, C)
    both = holds.T.astype(np.float64) @ holds  # (C, C)
    n_c = np.diag(both).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(np.outer(n_c, n_c) > 0, b.shape[0] * both / np.outer(n_c, n_c), 0.0)
    return lift, labels


def category_complement_scores(baskets: sp.spmatrix, categories: Any, anchors: Any) -> torch.Tensor:
    """The category-complement baseline: the popular items of the anchor's complementary category.

    For anchor ``a`` of category ``c``, the *other* categories are ordered by category lift
    ``L_cd`` (:func:`category_lift`, ties to the lower label; ``c`` itself comes last: a complement
    is by definition another category), and items are ranked by that order first and, within a
    category, by popularity ``n_j`` (baskets holding ``j``)::

        score(a, j) = (C − r_c(c_j)) + n_j / (max n + 1)

    with ``r_c(d) ∈ {0, ..., C − 1}`` the position of ``d`` in ``c``'s order, so the two keys never
    mix. It needs only the anchor's category: it ranks a *new* anchor as well as a known one.
    Returns ``(A, n_items)`` float64 scores for ``anchors`` ``(A,)`` (item indices).
    """
    lift, labels = category_lift(baskets, categories)
    codes = np.searchsorted(labels, np.asarray(categories))
    anchors = np.asarray(anchors)
    n_c = len(labels)
    _, n, _ = co_occurrence(baskets)
    order = np.empty((n_c, n_c), dtype=np.int64)  # order[c, d] = position of category d for anchors of c
    for c in range(n_c):
        key = lift[c].copy()
        key[c] = -np.inf
        order[c, np.argsort(-key, kind="stable")] = np.arange(n_c)
    popularity = n / (n.max() + 1.0)
    scores = (n_c - order[codes[anchors]][:, codes]) + popularity[None, :]
    return torch.as_tensor(scores, dtype=torch.float64)


def shop_partners(baskets: sp.spmatrix, item_category: np.ndarray, complement: np.ndarray) -> sp.csr_matrix:
    """Bundle partners: pairs co-purchased in some basket whose categories are complementary.

    ``item_category`` ``(n_items,)`` category codes, ``complement`` ``(C,)`` each category's
    complement (-1 if none), as in ``make_shop(...).truth``. Returns a symmetric bool CSR
    ``(n_items, n_items)``.
    """
    item_category, complement = np.asarray(item_category), np.asarray(complement)
    if item_category.shape != (baskets.shape[1],):
        raise ValueError(f"item_category must have one code per item ({baskets.shape[1]}), got shape {item_category.shape}")
    coo = co_occurrence(baskets)[0].tocoo()
    keep = complement[item_category[coo.row]] == item_category[coo.col]
    return _bool_csr(coo.row[keep], coo.col[keep], baskets.shape[1])


def lift_partners(baskets: sp.spmatrix, min_count: int = 5, min_lift: float = 2.0) -> sp.csr_matrix:
    """The stand-in partners: pairs in at least ``min_count`` baskets together with ``lift >= min_lift``
    (symmetric bool CSR). On MovieLens user baskets this is "co-liked", not "bought together"."""
    c, n, total = co_occurrence(baskets)
    coo = c.tocoo()
    lift = total * coo.data / (n[coo.row] * n[coo.col])
    keep = (coo.data >= min_count) & (lift >= min_lift)
    return _bool_csr(coo.row[keep], coo.col[keep], c.shape[0])


def _bool_csr(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m


def make_pairs(
    partners: sp.spmatrix,
    anchors: np.ndarray,
    n_negatives: int,
    seed: int = 0,
    forbidden: sp.spmatrix | None = None,
    allowed: np.ndarray | None = None,
) -> pd.DataFrame:
    """Pairs ``anchor, candidate, target`` for the ``anchors`` (item indices).

    For each anchor ``a``: one row per partner ``j`` of ``a`` in ``partners`` (target 1.0) that is
    ``allowed``, and ``n_negatives`` rows per positive with candidates drawn uniformly (with
    replacement, from ``numpy.random.default_rng(seed)``) among allowed items that are neither
    ``a`` nor a partner of ``a`` in ``forbidden`` (default: ``partners``), target 0.0.
    ``allowed``: bool ``(n_items,)`` (default all). Rows come sorted by anchor, positives first.
    """
    if n_negatives < 0:
        raise ValueError(f"n_negatives must be >= 0, got {n_negatives}")
    partners = sp.csr_matrix(partners, dtype=bool)
    n_items = partners.shape[0]
    forbidden = partners if forbidden is None else sp.csr_matrix(forbidden, dtype=bool)
    allowed = np.ones(n_items, bool) if allowed is None else np.asarray(allowed, bool)
    if allowed.shape != (n_items,):
        raise ValueError(f"allowed must be a bool mask of shape ({n_items},), got {allowed.shape}")
    anchors = np.unique(np.asarray(anchors, dtype=np.int64))
    sub = partners[anchors].tocoo()
    keep = allowed[sub.col]
    pos_a, pos_c = anchors[sub.row[keep]], sub.col[keep].astype(np.int64)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(allowed)
    neg_a = np.repeat(pos_a, n_negatives)
    neg_c = pool[rng.integers(0, len(pool), len(neg_a))] if len(pool) else np.empty(0, np.int64)
    bad = _is_partner_or_self(forbidden, neg_a, neg_c)
    for _ in range(100):
        if not bad.any():
            break
        neg_c[bad] = pool[rng.integers(0, len(pool), int(bad.sum()))]
        bad = _is_partner_or_self(forbidden, neg_a, neg_c)
    if bad.any():
        raise ValueError(f"anchor {neg_a[bad][0]} has no allowed non-partner to sample as a negative")
    frame = pd.DataFrame(
        {
            "anchor": np.concatenate([pos_a, neg_a]),
            "candidate": np.concatenate([pos_c, neg_c]),
            "target": np.concatenate([np.ones(len(pos_a)), np.zeros(len(neg_a))]).astype(np.float32),
        }
    )
    order = np.lexsort((-frame["target"].to_numpy(), frame["anchor"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def _is_partner_or_self(partners: sp.csr_matrix, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    if len(a) == 0:
        return np.zeros(0, bool)
    return (a == c) | np.asarray(partners[a, c]).reshape(-1).astype(bool)


@dataclass(frozen=True)
class BundleTask:
    """A pair data set with held-out bundles (see the module docstring).

    ``texts`` ``(n_items,)`` item texts; ``categories`` item labels; ``pairs`` ``{"train", "val",
    "test"}`` pair frames; ``anchors`` the same keys -> item indices; ``lift`` history lift CSR;
    ``history_partners`` / ``future_partners`` bool CSRs; ``eval_anchors`` test anchors with at
    least one future partner; ``relevant`` bool ``(len(eval_anchors), n_items)`` their future
    partners; ``cold`` bool ``(len(eval_anchors),)``: anchors with no co-occurrence at all in the
    history (lift knows nothing about them); ``history_baskets`` the history's baskets (CSR rows).
    """

    texts: list[str]
    categories: np.ndarray
    pairs: dict[str, pd.DataFrame]
    anchors: dict[str, np.ndarray]
    lift: sp.csr_matrix
    history_partners: sp.csr_matrix
    future_partners: sp.csr_matrix
    eval_anchors: np.ndarray
    relevant: torch.Tensor
    cold: np.ndarray
    history_baskets: sp.csr_matrix

    @property
    def n_items(self) -> int:
        return len(self.texts)

    def summary(self) -> pd.DataFrame:
        """Per split: anchors, pairs, positives and their share."""
        rows = {
            name: {"anchors": len(self.anchors[name]), "pairs": len(p), "positives": int(p["target"].sum()),
                   "positive share": float(p["target"].mean()) if len(p) else float("nan")}
            for name, p in self.pairs.items()
        }
        return pd.DataFrame(rows).T


def bundle_task(
    baskets: sp.spmatrix,
    basket_time: np.ndarray,
    texts: list[str],
    categories: Any,
    partners_of: Any,
    history_share: float = 0.7,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    n_negatives: int = 3,
    seed: int = 0,
) -> BundleTask:
    """Build the pair data set and the held-out bundles from baskets (module docstring).

    ``baskets`` ``(n_baskets, n_items)`` with ``basket_time`` ``(n_baskets,)``: the earliest
    ``history_share`` of baskets (by time, ties by basket order) are the history, the rest the
    future. ``partners_of(baskets) -> bool CSR`` defines partners (:func:`shop_partners` with the
    truth bound, or :func:`lift_partners`). Anchors -- items with a history or future partner -- are
    permuted with ``default_rng(seed)`` and cut by ``fractions`` (train, validation, test).
    Training / validation pairs come from history partners; test pairs from future partners.
    """
    if not 0.0 < history_share < 1.0:
        raise ValueError(f"history_share must lie strictly between 0 and 1, got {history_share}")
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three positive shares summing to 1, got {fractions}")
    baskets = sp.csr_matrix(baskets)
    n_items = baskets.shape[1]
    if len(texts) != n_items or len(categories) != n_items:
        raise ValueError(f"texts and categories must have one entry per item ({n_items}), got {len(texts)} and {len(categories)}")
    if len(basket_time) != baskets.shape[0]:
        raise ValueError(f"basket_time must have one entry per basket ({baskets.shape[0]}), got {len(basket_time)}")
    order = np.argsort(np.asarray(basket_time), kind="stable")
    cut = int(round(history_share * len(order)))
    hist, fut = baskets[np.sort(order[:cut])], baskets[np.sort(order[cut:])]
    p_hist, p_fut = partners_of(hist), partners_of(fut)
    p_all = (p_hist + p_fut).astype(bool)

    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(np.asarray(p_all.sum(axis=1)).reshape(-1) > 0)
    perm = rng.permutation(candidates)
    n_train = int(round(fractions[0] * len(perm)))
    n_val = int(round(fractions[1] * len(perm)))
    anchors = {"train": np.sort(perm[:n_train]), "val": np.sort(perm[n_train : n_train + n_val]),
               "test": np.sort(perm[n_train + n_val :])}
    not_test = np.ones(n_items, bool)
    not_test[anchors["test"]] = False
    not_held = not_test.copy()
    not_held[anchors["val"]] = False
    seeds = rng.integers(0, 2**31, 3)
    pairs = {
        "train": make_pairs(p_hist, anchors["train"], n_negatives, int(seeds[0]), p_all, allowed=not_held),
        "val": make_pairs(p_hist, anchors["val"], n_negatives, int(seeds[1]), p_all, allowed=not_test),
        "test": make_pairs(p_fut, anchors["test"], n_negatives, int(seeds[2]), p_all),
    }
    lift = lift_matrix(hist)
    has_future = np.asarray(p_fut[anchors["test"]].sum(axis=1)).reshape(-1) > 0
    eval_anchors = anchors["test"][has_future]
    relevant = torch.as_tensor(p_fut[eval_anchors].toarray())
    cold = np.asarray(lift[eval_anchors].getnnz(axis=1)) == 0
    return BundleTask(list(texts), np.asarray(categories), pairs, anchors, lift, p_hist, p_fut, eval_anchors, relevant, cold, hist)


def shop_bundle_task(data: RecData, text_column: str = "title", **options: Any) -> BundleTask:
    """:func:`bundle_task` on the synthetic shop: session purchase baskets, :func:`shop_partners`."""
    for key in ("item_category", "complement"):
        if key not in data.truth:
            raise ValueError(f"data {data.name!r} has no truth[{key!r}]: shop_bundle_task needs make_shop's truth")
    items = items_in_order(data)
    baskets, start = session_baskets(data)
    cat, comp = data.truth["item_category"], data.truth["complement"]
    return bundle_task(baskets, start, items[text_column].tolist(), items["category"].to_numpy(),
                       lambda b: shop_partners(b, cat, comp), **options)


def movielens_bundle_task(
    data: RecData, min_rating: float = 4.0, min_count: int = 5, min_lift: float = 2.0,
    text_column: str = "text", **options: Any,
) -> BundleTask:
    """The MovieLens stand-in: user baskets of liked films, :func:`lift_partners` (co-liked, not bundled)."""
    items = items_in_order(data)
    baskets, start = user_baskets(data, min_rating)
    return bundle_task(baskets, start, items[text_column].tolist(), items["category"].to_numpy(),
                       lambda b: lift_partners(b, min_count, min_lift), **options)


def lift_scores(lift: sp.spmatrix, anchors: np.ndarray) -> torch.Tensor:
    """The co-occurrence baseline's scores: rows ``anchors`` of ``lift`` as a dense ``(A, n_items)`` float32."""
    return torch.as_tensor(sp.csr_matrix(lift)[np.asarray(anchors)].toarray(), dtype=torch.float32)


def evaluate_bundles(
    scores: torch.Tensor, relevant: torch.Tensor, anchors: np.ndarray, k: int = 10, per_anchor: bool = False
) -> dict[str, Any]:
    """Hit rate@k and NDCG@k of each anchor's true companions among all other items.

    ``scores`` ``(A, n_items)`` (higher = better companion for anchor row ``a``), ``relevant`` bool
    ``(A, n_items)``, ``anchors`` ``(A,)`` the anchors' item indices (each anchor is excluded from
    its own ranking). Ties go to the lower item index (:func:`recnb.math.ranking.rank`). Returns
    the means over anchors ``{"hit_rate@k", "ndcg@k", "anchors"}`` (per-anchor tensors too, under
    ``"per_anchor"``, when ``per_anchor``).
    """
    scores, relevant = torch.as_tensor(scores), torch.as_tensor(relevant, dtype=torch.bool)
    anchors = torch.as_tensor(np.asarray(anchors), dtype=torch.int64)
    if scores.shape != relevant.shape or scores.ndim != 2 or len(anchors) != scores.shape[0]:
        raise ValueError(
            f"scores and relevant must both be (A, n_items) with A = len(anchors); got {tuple(scores.shape)}, "
            f"{tuple(relevant.shape)} and {len(anchors)} anchors"
        )
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    exclude = torch.zeros_like(relevant)
    exclude[torch.arange(len(anchors)), anchors] = True
    ranked = rank(scores, k=k, exclude=exclude).indices
    rel = relevant & ~exclude
    values = ranking_metrics(ranked, rel, ("hit_rate", "ndcg"))
    hit, ndcg = values["hit_rate"], values["ndcg"]
    out: dict[str, Any] = {f"hit_rate@{k}": float(np.nanmean(hit.numpy())), f"ndcg@{k}": float(np.nanmean(ndcg.numpy())),
                           "anchors": int((~torch.isnan(hit)).sum())}
    if per_anchor:
        out["per_anchor"] = {f"hit_rate@{k}": hit, f"ndcg@{k}": ndcg}
    return out
