"""Sampled evaluation: each held-out item ranked among ``n`` sampled negatives instead of the whole
catalogue -- a protocol to know about, and to distrust (Krichene & Rendle 2020).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from recnb.data import sampling
from recnb.data.schema import ITEM_IDX, USER_IDX, Split
from recnb.math.metrics import RANKING_FORMULAS, rank_position_hits


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


def held_out_negatives(
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

    For each held-out pair (:func:`held_out_negatives`) the model scores the item and its negatives;
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
    pair_u, pair_i, neg = held_out_negatives(split, n_negatives, seed, users)
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
    h, one = rank_position_hits(r, k), torch.ones(len(r))  # one relevant item per list
    per_pair = {
        f"{name}@{k}": RANKING_FORMULAS[name](h, one, k).double() for name in ("hit_rate", "ndcg")
    } | {
        "auc": ((neg_s < pos_s[:, None]).sum(1) + 0.5 * (neg_s == pos_s[:, None]).sum(1)).double() / n_negatives,
    }
    frame = pd.DataFrame({name: v.numpy() for name, v in per_pair.items()}).groupby(inverse).mean()
    out = {name: float(frame[name].mean()) for name in per_pair}
    out["users"] = float(len(uniq))
    out["pairs"] = float(len(pair_u))
    return out
