"""Why was this item recommended? Exact score decompositions, as a table and as sentences.

004 §6.4.4 asks for explainable recommendations. For the neighbourhood and content models the
score *is* a sum over evidence, so an explanation can be exact: each model that can decompose its
score has a ``contributions(user, items)`` method returning one row per term, and the terms of an
item add up to ``model.score`` exactly. The models own their formulas:

- :meth:`recnb.models.knn.ItemKNN.contributions`: ``W_ij r_uj`` per training item ``j`` of the user
  (binary), or an ``item_mean`` row ``r̄_i`` plus mean-centred terms (ratings);
- :meth:`recnb.models.knn.UserKNN.contributions`: ``W_uv r_vi`` per neighbour ``v`` (binary), or a
  ``user_mean`` row ``r̄_u`` plus mean-centred terms (ratings);
- :meth:`recnb.models.content.ContentRecommender.contributions` (``method="item"``):
  ``sim(i, j) R_uj / Z_u(i)`` per training item;
- :meth:`recnb.models.hybrid.HybridRecommender.contributions`: a ``cf`` term ``α_u norm(s_cf)(i)``
  and a ``content`` term ``(1 − α_u) norm(s_cb)(i)`` (explain the components for their evidence).

This module formats them: :func:`contributions` adds each item's score and orders the terms;
:func:`explain` keeps the largest ``top`` per recommended item and folds the rest into one
``others`` row, so each item's rows still sum to its score; :func:`sentences` renders them;
:func:`max_residual` measures how exactly a table adds up.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from recnb.math.ranking import PAD
from recnb.models.base import Recommender, as_user_tensor

#: contributor index of the rows that are not one training item or neighbour
NO_CONTRIBUTOR = PAD

#: the columns of a model's ``contributions(user, items)`` frame
TERMS = ["item", "source", "contributor", "similarity", "value", "contribution"]
COLUMNS = ["user", "item", "score", "source", "contributor", "similarity", "value", "contribution"]


def contributions(model: Recommender, user: int, items: Sequence[int] | np.ndarray | torch.Tensor) -> pd.DataFrame:
    """Every non-zero term of ``model.score(user)[i]`` for each ``i`` in ``items``, from ``model.contributions``.

    Columns: ``user``, ``item``, ``score`` (the model's score of the item), ``source``
    (``"item"``: a training item of the user, ``"neighbour"``: a similar user, ``"item_mean"`` /
    ``"user_mean"``: the mean rating a rating prediction starts from, ``"cf"`` / ``"content"``: the
    hybrid's two parts), ``contributor`` (item or user index; ``-1`` for means and hybrid parts),
    ``similarity`` (``W`` or ``sim``; NaN where none), ``value`` (the rating, deviation or
    normalised component score it multiplies) and ``contribution``. Per item, ``contribution``
    sums to ``score``. Sorted by item (in the order given), then by decreasing contribution.
    """
    decompose = getattr(model, "contributions", None)
    if not callable(decompose):
        raise TypeError(
            f"cannot decompose the score of {type(model).__name__}: explanations exist for models with a "
            "contributions(user, items) method (ItemKNN, UserKNN, ContentRecommender(method='item'), HybridRecommender)"
        )
    terms = decompose(user, items)  # checks the user and the items
    missing = set(TERMS) - set(terms.columns)
    if missing:
        raise ValueError(f"{type(model).__name__}.contributions returned no column(s) {sorted(missing)}; expected {TERMS}")
    user = int(user)
    with torch.no_grad():
        score = model.score(torch.tensor([user]))[0].double().numpy()
    order = {i: n for n, i in enumerate(np.asarray(items).reshape(-1).tolist())}
    frame = terms[TERMS].assign(user=user, score=score[terms["item"].to_numpy(np.int64)])
    frame = frame.astype({"item": np.int64, "contributor": np.int64, "similarity": np.float64,
                          "value": np.float64, "contribution": np.float64})
    frame = frame.assign(_pos=frame["item"].map(order)).sort_values(["_pos", "contribution"], ascending=[True, False], kind="stable")
    return frame.drop(columns="_pos").reset_index(drop=True)[COLUMNS]


def max_residual(table: pd.DataFrame) -> float:
    """``max_{u, i} |Σ contributions(u, i) − score(u, i)|`` over a :func:`contributions` or :func:`explain` table.

    0 up to rounding when the terms are an exact decomposition; NaN for an empty table.
    """
    if not len(table):
        return float("nan")
    per_item = table.groupby(["user", "item"]).agg(score=("score", "first"), total=("contribution", "sum"))
    return float((per_item["total"] - per_item["score"]).abs().max())


def explain(model: Recommender, users: Sequence[int] | np.ndarray | torch.Tensor, k: int = 10, top: int = 3) -> pd.DataFrame:
    """Each user's top-``k`` list (``model.recommend``) with the ``top`` largest terms of every item.

    The remaining terms of an item are folded into one row with ``source="others"`` (its
    ``contribution`` their sum, ``contributor`` -1, ``similarity`` NaN, ``value`` the number of
    terms folded), so each item's ``contribution`` column still sums to its score. Mean-rating
    and hybrid rows are always kept. Adds ``rank`` (1 = first in the list) and ``share`` (the
    contribution over the score; NaN for a zero score).
    """
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    u = as_user_tensor(users, model.n_users_)
    ranked = model.recommend(u, k=k).indices
    parts = []
    for row, user in enumerate(u.tolist()):
        items = ranked[row][ranked[row] != PAD]
        if not len(items):
            continue
        frame = contributions(model, user, items)
        frame["rank"] = frame["item"].map({i: n + 1 for n, i in enumerate(items.tolist())})
        for _, group in frame.groupby("rank", sort=True):
            fixed = group[~group["source"].isin(["item", "neighbour"])]
            terms = group[group["source"].isin(["item", "neighbour"])]
            keep = terms.iloc[np.argsort(-terms["contribution"].abs().to_numpy(), kind="stable")[:top]]
            rest = terms.drop(keep.index)
            pieces = [fixed, keep]
            if len(rest):
                first = group.iloc[0]
                pieces.append(pd.DataFrame([{
                    "user": user, "item": first["item"], "score": first["score"], "source": "others",
                    "contributor": NO_CONTRIBUTOR, "similarity": float("nan"), "value": float(len(rest)),
                    "contribution": rest["contribution"].sum(), "rank": first["rank"],
                }]))
            parts.append(pd.concat([p for p in pieces if len(p)], ignore_index=True))
    columns = ["user", "rank", *COLUMNS[1:], "share"]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    out["contributor"] = out["contributor"].astype(np.int64)
    score = out["score"].to_numpy()
    out["share"] = np.where(score != 0, out["contribution"].to_numpy() / np.where(score != 0, score, 1.0), np.nan)
    return out[columns]


def sentences(
    table: pd.DataFrame,
    items_frame: pd.DataFrame,
    title: str = "title",
    verb: str = "interacted with",
    top: int = 2,
) -> list[str]:
    """One sentence per recommended item of an :func:`explain` table, in list order.

    ``items_frame``: item rows in index order (``split.items_frame``), whose ``title`` column names
    the items. Item-based terms read "because you {verb} Y (similarity 0.42) and Z (0.31)",
    user-based ones "because shoppers with histories like yours chose it: user 17 (similarity 0.42) ...",
    hybrid parts "because of what shoppers like you chose (CF, 71% of the score) and its description
    (content, 29%)". The ``top`` largest terms of each kind are named, with
    the share of the score they make together.
    """
    if title not in items_frame.columns:
        raise ValueError(f"items_frame has no column {title!r} (columns: {list(items_frame.columns)})")
    names = items_frame[title].astype(str).to_numpy()
    out = []
    for (user, rank_), group in table.groupby(["user", "rank"], sort=True):
        item, score = int(group["item"].iloc[0]), float(group["score"].iloc[0])
        text = f"{rank_}. We recommend “{names[item]}” (score {score:.3g})"
        reasons = []
        for source in ("item", "neighbour"):
            terms = group[group["source"] == source].sort_values("contribution", ascending=False, kind="stable").head(top)
            if not len(terms):
                continue
            share = terms["contribution"].sum() / score if score else float("nan")
            if source == "item":
                named = [f"“{names[j]}” ({'similarity ' if n == 0 else ''}{s:.2f})"
                         for n, (j, s) in enumerate(zip(terms["contributor"], terms["similarity"]))]
                reasons.append(f"because you {verb} {_join(named)}")
            else:
                named = [f"user {v} ({'similarity ' if n == 0 else ''}{s:.2f})"
                         for n, (v, s) in enumerate(zip(terms["contributor"], terms["similarity"]))]
                reasons.append(f"because shoppers with histories like yours chose it: {_join(named)}")
            reasons[-1] += f", {share:.0%} of the score" if np.isfinite(share) else ""
        parts = group[group["source"].isin(["cf", "content"])].set_index("source")["share"]
        if len(parts):
            said = {"cf": "what shoppers like you chose (CF, {:.0%} of the score)", "content": "its description (content, {:.0%})"}
            reasons.append("because of " + _join([said[s].format(parts[s]) for s in ("cf", "content") if s in parts.index]))
        for source, whose in (("item_mean", "its"), ("user_mean", "your")):
            if source in set(group["source"]):
                base = float(group.loc[group["source"] == source, "contribution"].iloc[0])
                reasons.append(f"starting from {whose} mean rating {base:.2f}")
        out.append(text + (" " + "; ".join(reasons) if reasons else "") + ".")
    return out


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
