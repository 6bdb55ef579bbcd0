"""Why was this item recommended? Exact score decompositions, as a table and as sentences.

004 §6.4.4 asks for explainable recommendations. For the neighbourhood and content models the
score *is* a sum over evidence, so an explanation can be exact: each term below is one
contributor's share of the score, and the terms of an item add up to ``model.score`` exactly.

- :class:`~recnb.models.knn.ItemKNN` (binary): ``score(u, i) = Σ_j W_ij r_uj``: the term of
  training item ``j`` is ``W_ij r_uj`` (its similarity to ``i`` times the user's value for it).
  With ratings: ``r̂_ui = r̄_i + Σ_j W_ij (r_uj − r̄_j) / Σ_{j rated} |W_ij|``: an ``item_mean`` term
  ``r̄_i`` plus one term per rated item (the mean alone when no neighbour of ``i`` was rated).
- :class:`~recnb.models.knn.UserKNN` (binary): ``score(u, i) = Σ_v W_uv r_vi``: the term of
  neighbour ``v`` is ``W_uv r_vi``. With ratings: a ``user_mean`` term ``r̄_u`` plus
  ``W_uv (r_vi − r̄_v) / Σ_{v rated i} |W_uv|`` per neighbour.
- :class:`~recnb.models.content.ContentRecommender` (``method="item"``):
  ``score(u, i) = Σ_j sim(i, j) R_uj / Z_u(i)``, one term per training item.
- :class:`~recnb.models.hybrid.HybridRecommender`: ``score = α_u norm(s_cf)(i) + (1 − α_u) norm(s_cb)(i)``:
  a ``cf`` term and a ``content`` term (explain the components themselves for their evidence).

:func:`contributions` returns every non-zero term; :func:`explain` keeps the largest ``top`` per
recommended item and folds the rest into one ``others`` row, so each item's rows still sum to
its score; :func:`sentences` renders them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.math.blend import normalise as normalise_rows
from recnb.math.ranking import PAD, item_indices
from recnb.models.base import Recommender, as_user_tensor

#: contributor index of the rows that are not one training item or neighbour
NO_CONTRIBUTOR = PAD

COLUMNS = ["user", "item", "score", "source", "contributor", "similarity", "value", "contribution"]


def _rows(matrix: Any, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Rows of a dense tensor/array or a scipy-sparse matrix as a dense float64 tensor."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if sp.issparse(matrix):
        return torch.from_numpy(sp.csr_matrix(matrix)[rows].toarray().astype(np.float64))
    return torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)[torch.as_tensor(rows)].double()


def _cols(matrix: Any, cols: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Columns of a dense tensor/array or a scipy-sparse matrix: ``(n_rows, len(cols))`` float64."""
    cols = np.asarray(cols, dtype=np.int64).reshape(-1)
    if sp.issparse(matrix):
        return torch.from_numpy(sp.csc_matrix(matrix)[:, cols].toarray().astype(np.float64))
    return torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)[:, torch.as_tensor(cols)].double()


def _weights(model: Any) -> Any:
    w = getattr(model, "weights_", None)
    if w is None:
        raise RuntimeError(f"{type(model).__name__} has no neighbour weights (weights_): fit it first")
    return w


def _terms(model: Recommender, user: int, items: torch.Tensor) -> list[tuple[int, str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per recommended item: (item, source, contributors, similarities, values, contributions)."""
    from recnb.models.content import ContentRecommender
    from recnb.models.hybrid import HybridRecommender
    from recnb.models.knn import ItemKNN, UserKNN

    out = []
    if isinstance(model, ItemKNN):
        w = _rows(_weights(model), items.numpy())  # (k, n_items): W_ij
        r = _rows(model.ratings_, [user])[0]  # r_uj
        observed = r != 0
        for a, i in enumerate(items.tolist()):
            j = torch.nonzero((w[a] != 0) & observed).reshape(-1)
            if model.values == "binary":
                out.append((i, "item", j, w[a, j], r[j], w[a, j] * r[j]))
                continue
            mean_i, means_j = float(model.means_[i]), model.means_.double()[j]
            den = w[a, j].abs().sum()
            dev = r[j] - means_j
            contrib = w[a, j] * dev / den if den > 0 else torch.zeros(len(j), dtype=torch.float64)
            out.append((i, "item_mean", torch.tensor([NO_CONTRIBUTOR]), torch.tensor([float("nan")]), torch.tensor([mean_i]), torch.tensor([mean_i])))
            out.append((i, "item", j, w[a, j], dev, contrib))
    elif isinstance(model, UserKNN):
        w = _rows(_weights(model), [user])[0]  # W_uv
        r = _cols(model.ratings_, items.numpy())  # (n_users, k): r_vi
        for a, i in enumerate(items.tolist()):
            v = torch.nonzero((w != 0) & (r[:, a] != 0)).reshape(-1)
            if model.values == "binary":
                out.append((i, "neighbour", v, w[v], r[v, a], w[v] * r[v, a]))
                continue
            mean_u = float(model.means_[user])
            den = w[v].abs().sum()
            dev = r[v, a] - model.means_.double()[v]
            contrib = w[v] * dev / den if den > 0 else torch.zeros(len(v), dtype=torch.float64)
            out.append((i, "user_mean", torch.tensor([NO_CONTRIBUTOR]), torch.tensor([float("nan")]), torch.tensor([mean_u]), torch.tensor([mean_u])))
            out.append((i, "neighbour", v, w[v], dev, contrib))
    elif isinstance(model, ContentRecommender):
        if model.method != "item":
            raise ValueError("only ContentRecommender(method='item') is a sum over the user's items; method='profile' is a cosine")
        sim = _rows(model.similarity_, items.numpy())
        r = _rows(model.ratings_, [user])[0]
        observed = r != 0
        for a, i in enumerate(items.tolist()):
            if model.normalise == "none":
                z = torch.tensor(1.0, dtype=torch.float64)
            elif model.normalise == "count":
                z = observed.sum().clamp(min=1).double()
            else:
                z = (sim[a].abs() * observed).sum()
            j = torch.nonzero((sim[a] != 0) & observed).reshape(-1)
            contrib = sim[a, j] * r[j] / z if z > 0 else torch.zeros(len(j), dtype=torch.float64)
            out.append((i, "item", j, sim[a, j], r[j], contrib))
    elif isinstance(model, HybridRecommender):
        u = torch.tensor([user])
        alpha = model.alpha
        if model.cold_alpha is not None and bool(model.is_cold(u)[0]):
            alpha = model.cold_alpha
        s_cf = normalise_rows(model.cf.score(u).double(), model.normalise)[0, items]
        s_cb = normalise_rows(model.content.score(u).double(), model.normalise)[0, items]
        none = torch.tensor([NO_CONTRIBUTOR])
        for a, i in enumerate(items.tolist()):
            out.append((i, "cf", none, torch.tensor([float("nan")]), s_cf[a : a + 1], alpha * s_cf[a : a + 1]))
            out.append((i, "content", none, torch.tensor([float("nan")]), s_cb[a : a + 1], (1 - alpha) * s_cb[a : a + 1]))
    else:
        raise TypeError(
            f"cannot decompose the score of {type(model).__name__}: explanations exist for ItemKNN, UserKNN, "
            "ContentRecommender(method='item') and HybridRecommender"
        )
    return out


def contributions(model: Recommender, user: int, items: Sequence[int] | np.ndarray | torch.Tensor) -> pd.DataFrame:
    """Every non-zero term of ``model.score(user)[i]`` for each ``i`` in ``items`` (see the module docstring).

    Columns: ``user``, ``item``, ``score`` (the model's score of the item), ``source``
    (``"item"``: a training item of the user, ``"neighbour"``: a similar user, ``"item_mean"`` /
    ``"user_mean"``: the mean rating a rating prediction starts from, ``"cf"`` / ``"content"``: the
    hybrid's two parts), ``contributor`` (item or user index; ``-1`` for means and hybrid parts), ``similarity`` (``W`` or ``sim``; NaN where none),
    ``value`` (the rating, deviation or normalised component score it multiplies) and
    ``contribution``. Per item, ``contribution`` sums to ``score``. Sorted by item (in the order
    given), then by decreasing contribution.
    """
    model._check_fitted()
    user = int(as_user_tensor([user], model.n_users_)[0])
    idx = item_indices(items, model.n_items_, "items")
    with torch.no_grad():
        score = model.score(torch.tensor([user]))[0].double()
    order = {i: n for n, i in enumerate(idx.tolist())}
    frames = []
    for i, source, who, sim, value, contrib in _terms(model, user, idx):
        frames.append(
            pd.DataFrame(
                {
                    "user": user,
                    "item": i,
                    "score": float(score[i]),
                    "source": source,
                    "contributor": who.numpy().astype(np.int64),
                    "similarity": sim.double().numpy(),
                    "value": value.double().numpy(),
                    "contribution": contrib.double().numpy(),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    frame = frame.assign(_pos=frame["item"].map(order)).sort_values(["_pos", "contribution"], ascending=[True, False], kind="stable")
    return frame.drop(columns="_pos").reset_index(drop=True)[COLUMNS]


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
