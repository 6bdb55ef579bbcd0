"""Ranking quality over all items: per-user AUC and GAUC (the user-weighted mean of AUC)."""

from __future__ import annotations

import torch


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


def bpr_auc_bound(scores: torch.Tensor, relevant: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """The lower bound on each user's AUC that the BPR loss gives: ``(U,)`` float64.

    For every ``x``, ``1[x > 0] ≥ 1 + log₂ σ(x)`` (both sides are 0 at ``x = 0``; for ``x < 0`` the
    right side is below 0, for ``x > 0`` it is at most 1). Averaged over a user's pairs of a
    positive ``i ∈ P_u`` and a negative ``j ∈ N_u`` (as in :func:`user_auc`)::

        AUC_u ≥ 1 − L_u / ln 2,   L_u = 1 / (|P_u| |N_u|) Σ_{i∈P_u} Σ_{j∈N_u} −log σ(s_ui − s_uj)

    where ``L_u`` is the BPR loss over *all* of the user's pairs: minimising BPR raises a lower bound
    on the AUC (Rendle et al. 2009 present BPR as a smooth AUC). ``NaN`` where ``user_auc`` is.
    The pairs of one user at a time: ``O(|P_u| |N_u|)`` memory.
    """
    pos, neg = _rankable_masks(scores, relevant, exclude)
    s = scores.double()
    out = torch.full((s.shape[0],), float("nan"), dtype=torch.float64)
    for u in range(s.shape[0]):
        sp, sn = s[u][pos[u]], s[u][neg[u]]
        if len(sp) and len(sn):
            loss = -torch.nn.functional.logsigmoid(sp[:, None] - sn[None, :]).mean()
            out[u] = 1.0 - loss / torch.log(torch.tensor(2.0, dtype=torch.float64))
    return out
