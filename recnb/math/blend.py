"""Hybrid blending: ``score = α · s_cf + (1 - α) · s_cb`` after per-user normalisation.

Document 001 §4.2.3 blends raw scores. Collaborative and content scores live on different scales
(a dot product can be 40, a cosine at most 1), so the raw blend is dominated by one side; each
user's row is normalised first (:func:`normalise`).

One ``α`` for every item buries items nobody has bought (CF scores them 0), so ``α`` may also be
one weight per item, from the item's support ``n_i`` (training interactions):
:func:`support_alpha` (``n_i / (n_i + β)``), :func:`switch_alpha` (``1[n_i ≥ t]``) and
:func:`logistic_alpha` (``σ(w log(1 + n_i) + b)``, learnt by :class:`recnb.models.hybrid.LearnedBlend`).
"""

from __future__ import annotations

import numpy as np
import torch

METHODS = ("none", "minmax", "zscore", "rank")


def normalise(scores: torch.Tensor, method: str = "minmax") -> torch.Tensor:
    """Normalise each row (user) of ``scores`` ``(U, N)``; returns ``(U, N)``, same dtype.

    - ``"none"``: unchanged.
    - ``"minmax"``: ``(s - min) / (max - min)`` into [0, 1].
    - ``"zscore"``: ``(s - mean) / std`` (population std), mean 0 and std 1.
    - ``"rank"``: ``r / (N - 1)`` where ``r`` is the 0-based ascending rank (ties share their mean
      rank), into [0, 1]; only the order survives.

    **Constant rows** (no spread; for z-score also a spread so small its std underflows to 0)
    give no information to scale: they become all 0 for every method, never NaN. Entries must be
    finite.
    """
    if method not in METHODS:
        raise ValueError(f"normalise method must be one of {METHODS}, got {method!r}")
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {tuple(scores.shape)}")
    if not torch.is_floating_point(scores):
        scores = scores.float()
    if not torch.isfinite(scores).all():
        raise ValueError("scores must be finite (no NaN or inf) to be normalised")
    if method == "none":
        return scores
    lo, hi = scores.amin(dim=1, keepdim=True), scores.amax(dim=1, keepdim=True)
    if method == "rank":
        lo, spread = 0.0, torch.where(hi > lo, scores.shape[1] - 1.0, 0.0).to(scores.dtype)
        scores = _mean_ranks(scores)
    elif method == "minmax":
        spread = hi - lo
    else:
        lo = scores.mean(dim=1, keepdim=True)
        spread = scores.std(dim=1, keepdim=True, correction=0)
    constant = spread == 0  # (an std that underflows to 0 counts as constant too)
    return torch.where(constant, torch.zeros_like(scores), (scores - lo) / torch.where(constant, 1.0, spread))


def _mean_ranks(scores: torch.Tensor) -> torch.Tensor:
    """0-based ascending ranks per row, ties sharing their mean rank (like ``scipy.stats.rankdata - 1``)."""
    # rank of x = (#(values < x) + #(values <= x) - 1) / 2, both counted by binary search
    ordered = torch.sort(scores, dim=1).values.contiguous()
    below = torch.searchsorted(ordered, scores.contiguous(), side="left")
    upto = torch.searchsorted(ordered, scores.contiguous(), side="right")
    return ((below + upto - 1) / 2).to(scores.dtype)


_normalise = normalise  # blend's keyword argument shadows the function's name


def blend(s_cf: torch.Tensor, s_cb: torch.Tensor, alpha: float | torch.Tensor, normalise: str = "minmax") -> torch.Tensor:
    """``α · norm(s_cf) + (1 - α) · norm(s_cb)``, both ``(U, N)``, normalised per user.

    ``alpha``: one weight in [0, 1], or a ``(N,)`` tensor of per-item weights ``α_i`` in [0, 1]
    (:func:`support_alpha`, :func:`switch_alpha`, :func:`logistic_alpha`), the same for every user.
    ``normalise`` is a :func:`normalise` method.
    """
    if isinstance(alpha, torch.Tensor):
        if alpha.shape != (s_cf.shape[-1],):
            raise ValueError(f"a per-item alpha must have shape (n_items,) = ({s_cf.shape[-1]},), got {tuple(alpha.shape)}")
        if not bool(((alpha >= 0) & (alpha <= 1)).all()):
            raise ValueError("every per-item alpha must lie in [0, 1]")
    elif not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if s_cf.shape != s_cb.shape:
        raise ValueError(
            f"s_cf and s_cb must have the same shape (n_users, n_items), got s_cf {tuple(s_cf.shape)} and s_cb {tuple(s_cb.shape)}"
        )
    return alpha * _normalise(s_cf, normalise) + (1 - alpha) * _normalise(s_cb, normalise)


def _counts(counts: torch.Tensor | np.ndarray) -> torch.Tensor:
    n = torch.as_tensor(np.asarray(counts), dtype=torch.float64) if not isinstance(counts, torch.Tensor) else counts.double()
    if n.ndim != 1 or not bool((n >= 0).all()):
        raise ValueError(f"counts must be a 1-D array of non-negative training interactions per item, got shape {tuple(n.shape)}")
    return n


def support_alpha(counts: torch.Tensor | np.ndarray, beta: float) -> torch.Tensor:
    """Per-item CF weight from the item's support: ``α_i = n_i / (n_i + β)``, ``(N,)`` float32.

    ``counts``: ``n_i``, the item's training interactions ``(N,)``; ``beta > 0``: the support at
    which CF and content weigh the same (``α = 1/2``). A new item (``n_i = 0``) gets ``α = 0``
    (content alone), a well-bought one ``α → 1``. Equivalently ``α_i = σ(log n_i − log β)``: the
    :func:`logistic_alpha` of ``log n_i`` with weight 1 and bias ``−log β``.
    """
    if not float(beta) > 0.0:
        raise ValueError(f"beta must be positive, got {beta}")
    n = _counts(counts)
    return (n / (n + float(beta))).float()


def switch_alpha(counts: torch.Tensor | np.ndarray, threshold: int) -> torch.Tensor:
    """A switching hybrid's per-item weight: ``α_i = 1`` if ``n_i ≥ threshold`` (CF), else 0 (content); ``(N,)`` float32."""
    if int(threshold) < 1:
        raise ValueError(f"threshold must be >= 1 (items with fewer interactions go to content), got {threshold}")
    return (_counts(counts) >= int(threshold)).float()


def logistic_alpha(counts: torch.Tensor | np.ndarray, weight: torch.Tensor | float, bias: torch.Tensor | float) -> torch.Tensor:
    """A learned per-item weight: ``α_i = σ(w · log(1 + n_i) + b)``, ``(N,)`` (differentiable in ``w``, ``b``).

    ``w`` and ``b`` are learnt by :class:`recnb.models.hybrid.LearnedBlend`; ``log(1 + n)`` keeps a
    new item (``n = 0``) at ``σ(b)``.
    """
    x = torch.log1p(_counts(counts)).float()
    return torch.sigmoid(torch.as_tensor(weight, dtype=torch.float32) * x + torch.as_tensor(bias, dtype=torch.float32))
