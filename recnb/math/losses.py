"""Sigmoid-based losses for implicit feedback, numerically stable via ``F.logsigmoid``.

``s_ug = <e_u, e_g>`` is the score of a user ``u`` and an item ``g``; ``σ(s) = 1 / (1 + e^{-s})``.
Every loss is the **mean over the batch** (one row per training user–positive pair).

``log σ(s)`` written naively as ``torch.log(torch.sigmoid(s))`` gives ``-inf`` once ``σ(s)``
rounds to 0 (``s ≲ -88`` in float32); ``F.logsigmoid(s) = -softplus(-s)`` stays finite.

Gradients (for the notebook's hand check):
``d/ds [-log σ(s)] = σ(s) - 1`` and ``d/ds [-log σ(-s)] = σ(s)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pos_neg(pos: torch.Tensor, neg: torch.Tensor) -> None:
    if pos.ndim != 1:
        raise ValueError(f"pos_scores must be 1-D (B,), got shape {tuple(pos.shape)}")
    if neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(f"neg_scores must be (B, k) with B = {pos.shape[0]} (pos_scores), got shape {tuple(neg.shape)}")


def positive_only_loss(pos_scores: torch.Tensor) -> torch.Tensor:
    """The loss as document 000 writes it: ``L = -Σ_(u,g) log σ(s_ug)``, over positives only.

    ``pos_scores``: ``(B,)`` scores of observed pairs. Returns the batch mean
    ``-(1/B) Σ_b log σ(s_b)``. There is no negative term, so the minimum (0) is approached by
    making *every* score large -- the loss cannot tell liked items from the rest.
    """
    if pos_scores.ndim != 1:
        raise ValueError(f"pos_scores must be 1-D (B,), got shape {tuple(pos_scores.shape)}")
    return -F.logsigmoid(pos_scores).mean()


def negative_sampling_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Negative-sampling loss (word2vec style): ``-log σ(s_ug) - Σ_g' log σ(-s_ug')``.

    ``pos_scores``: ``(B,)``; ``neg_scores``: ``(B, k)``, the scores of ``k`` sampled items
    ``g'`` for the same user. The negatives are *summed* per row, then the rows averaged.
    """
    _check_pos_neg(pos_scores, neg_scores)
    return (-F.logsigmoid(pos_scores) - F.logsigmoid(-neg_scores).sum(dim=1)).mean()


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: ``-log σ(s_ug - s_ug')``, averaged over negatives and batch.

    ``pos_scores``: ``(B,)``; ``neg_scores``: ``(B, k)``. Returns
    ``-(1/(B k)) Σ_b Σ_j log σ(s_b - s_bj)``: only score *differences* matter.
    """
    _check_pos_neg(pos_scores, neg_scores)
    return -F.logsigmoid(pos_scores.unsqueeze(1) - neg_scores).mean()


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits: ``-[y log σ(s) + (1 - y) log σ(-s)]``, averaged.

    ``logits`` and ``labels`` share a shape (any); labels lie in [0, 1]. Equals
    ``F.binary_cross_entropy_with_logits(logits, labels)``.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits and labels must have the same shape, got {tuple(logits.shape)} and {tuple(labels.shape)}")
    labels = labels.to(logits.dtype)
    return -(labels * F.logsigmoid(logits) + (1 - labels) * F.logsigmoid(-logits)).mean()


# --- learning to rank over query groups --------------------------------------------------------
#
# A batch of query groups: ``scores`` ``(B, m)`` of the ``m`` candidates of each of ``B`` queries,
# ``labels`` ``(B, m)`` (clicks 0/1 or graded relevance), ``weights`` ``(B, m)`` per-item weights
# (``1 / propensity`` for inverse propensity scoring, ones otherwise), ``mask`` ``(B, m)`` bool, True
# on real candidates (a shorter group is padded; padded slots never enter a pair or a softmax).
# Every loss below is the **mean over the B groups** of a per-group sum; a group with no preferred
# pair (no click) contributes 0.


def _check_groups(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
                  mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, m): B query groups of m candidates, got shape {tuple(scores.shape)}")
    for name, value in (("labels", labels), ("weights", weights), ("mask", mask)):
        if value is not None and value.shape != scores.shape:
            raise ValueError(f"{name} must have the shape of scores {tuple(scores.shape)}, got {tuple(value.shape)}")
    weights = torch.ones_like(scores) if weights is None else weights.to(scores.dtype)
    mask = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.bool()
    return labels.to(scores.dtype), weights, mask


def preferred_pairs(labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``P_bij = 1`` where candidate ``i`` is preferred to ``j`` in group ``b``: ``y_bi > y_bj``, both
    real (``mask``). ``labels`` ``(B, m)`` → bool ``(B, m, m)``."""
    mask = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask.bool()
    return (labels[:, :, None] > labels[:, None, :]) & mask[:, :, None] & mask[:, None, :]


def ranknet_loss(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, pair_weights: torch.Tensor | None = None) -> torch.Tensor:
    """RankNet (Burges et al. 2005): the documented sigmoid loss on pairs of one query's candidates.

    ``P(i ▷ j) = σ(s_i - s_j)`` is the model's probability that ``i`` ranks above ``j``; the loss is
    its negative log-likelihood over the preferred pairs (:func:`preferred_pairs`, ``y_i > y_j``)::

        L = (1/B) Σ_b Σ_{i,j: y_bi > y_bj} w_bi · λ_bij · (-log σ(s_bi - s_bj))

    with ``w_bi`` the weight of the *preferred* item (with clicks and ``w = 1 / propensity``: each
    click counted ``1 / P(examined)`` times, Joachims et al. 2017) and ``λ_bij`` optional pair
    weights ``(B, m, m)`` (:func:`lambdarank_loss` passes ``|ΔNDCG|``; ones by default). With one
    preferred item per group and weights 1 it is :func:`bpr_loss` summed over the negatives.
    Gradient: ``∂/∂s_i [-log σ(s_i - s_j)] = σ(s_i - s_j) - 1 = -σ(s_j - s_i)``.
    """
    labels, weights, mask = _check_groups(scores, labels, weights, mask)
    pairs = preferred_pairs(labels, mask)
    diff = scores[:, :, None] - scores[:, None, :]
    w = weights[:, :, None] * pairs
    if pair_weights is not None:
        if pair_weights.shape != pairs.shape:
            raise ValueError(f"pair_weights must be (B, m, m) = {tuple(pairs.shape)}, got {tuple(pair_weights.shape)}")
        w = w * pair_weights.to(scores.dtype)
    return -(w * F.logsigmoid(diff)).sum(dim=(1, 2)).mean()


def delta_ndcg(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``|ΔNDCG_bij|``: how much NDCG of group ``b``'s current ranking changes if ``i`` and ``j`` swap places.

    The ranking is by ``scores`` (descending, ties to the lower index, padded slots last); with
    gains ``g_i = 2^{y_i} - 1``, discounts ``D(r) = 1 / log2(1 + r)`` of the 1-based rank ``r_i``
    and ``IDCG`` the DCG of the group's labels sorted descending (all ``m`` positions)::

        |ΔNDCG_ij| = |g_i - g_j| · |D(r_i) - D(r_j)| / IDCG

    (only the two swapped terms of DCG change). Pairs with a padded slot and groups with ``IDCG = 0``
    get zeros. Returns
    ``(B, m, m)``, no gradient (a weight, not a function of the scores to differentiate).
    """
    labels, _, mask = _check_groups(scores, labels, None, mask)
    with torch.no_grad():
        s = scores.detach().masked_fill(~mask, -torch.inf)
        order = torch.sort(s, dim=1, descending=True, stable=True).indices
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(1, s.shape[1] + 1).expand_as(order).contiguous())
        disc = 1.0 / torch.log2(1.0 + ranks.to(scores.dtype))
        gains = torch.where(mask, torch.exp2(labels) - 1.0, torch.zeros_like(labels))
        ideal = torch.sort(gains, dim=1, descending=True).values
        positions = torch.arange(1, s.shape[1] + 1, dtype=scores.dtype)
        idcg = (ideal / torch.log2(1.0 + positions)).sum(dim=1)
        delta = (gains[:, :, None] - gains[:, None, :]).abs() * (disc[:, :, None] - disc[:, None, :]).abs()
        live = mask[:, :, None] & mask[:, None, :] & (idcg[:, None, None] > 0)
        return torch.where(live, delta / idcg.clamp(min=1e-12)[:, None, None], torch.zeros_like(delta))


def lambdarank_loss(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """LambdaRank (Burges, Ragno & Le 2006): RankNet's pairs, each weighted by ``|ΔNDCG_ij|``
    (:func:`delta_ndcg`, computed from the current scores and held constant)::

        L = (1/B) Σ_b Σ_{y_bi > y_bj} w_bi |ΔNDCG_bij| (-log σ(s_bi - s_bj))

    Its gradient is Burges' lambda ``λ_ij = -σ(s_j - s_i) |ΔNDCG_ij|``: a pair that would move NDCG
    a lot if swapped (a relevant item low in the list) pushes harder than one deep in the tail.
    """
    return ranknet_loss(scores, labels, weights, mask, pair_weights=delta_ndcg(scores, labels, mask))


def listwise_softmax_loss(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """Listwise softmax cross-entropy (ListNet's top-one form, Cao et al. 2007; Bruch et al. 2019).

    The scores of one group define a distribution over its candidates,
    ``p_b(i) = exp(s_bi) / Σ_{j real} exp(s_bj)``, and each labelled item pulls it toward itself::

        L = (1/B) Σ_b Σ_i w_bi y_bi (-log p_b(i))

    (with clicks and ``w = 1 / propensity``: the inverse-propensity estimate of the same sum over
    relevant items). Padded slots get ``p = 0`` and no label. Computed with ``log_softmax``.
    """
    labels, weights, mask = _check_groups(scores, labels, weights, mask)
    log_p = F.log_softmax(scores.masked_fill(~mask, -torch.inf), dim=1)
    target = torch.where(mask, weights * labels, torch.zeros_like(labels))
    return -(target * log_p.masked_fill(~mask, 0.0)).sum(dim=1).mean()
