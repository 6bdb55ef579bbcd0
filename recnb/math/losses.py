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
