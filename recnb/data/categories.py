"""Items by category: the item-category indicator matrix and per-category means.

The one way recnb builds ``p(c|i)``: content similarity by category (:mod:`recnb.models.content`),
calibrated re-ranking (:mod:`recnb.policies.rerank`), the bandit arms and the shop's taste checks
all use :func:`category_distribution`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def category_distribution(item_categories: Sequence[int] | np.ndarray | torch.Tensor, n_categories: int | None = None) -> torch.Tensor:
    """``p(c|i)`` as an ``(n_items, C)`` float64 matrix: one-hot rows from 1-D integer codes, or
    a given 2-D matrix whose rows are checked to be distributions (non-negative, summing to 1).

    From codes, ``p(c|i) = 1[c_i = c]`` with ``C = n_categories`` (default: the largest code + 1):
    the item-category indicator matrix, recnb's one way to build it (e.g. ``onehot.T @ S @ onehot``
    sums a similarity ``S`` over pairs of categories).
    """
    c = torch.as_tensor(np.asarray(item_categories) if not isinstance(item_categories, torch.Tensor) else item_categories)
    if c.ndim == 1:
        if torch.is_floating_point(c) or c.dtype == torch.bool:
            raise TypeError(f"1-D item_categories must hold integer category codes, got dtype {c.dtype}")
        if c.numel() and c.min() < 0:
            raise ValueError(f"category codes must be >= 0, got {c.min().item()}")
        n = int(c.max()) + 1 if n_categories is None else n_categories
        if c.numel() and c.max() >= n:
            raise ValueError(f"category code {c.max().item()} is outside 0..{n - 1} (n_categories={n})")
        return torch.nn.functional.one_hot(c.long(), n).double()
    if c.ndim != 2:
        raise ValueError(f"item_categories must be 1-D codes or a 2-D (n_items, C) matrix, got shape {tuple(c.shape)}")
    p = c.double()
    if (p < 0).any() or not torch.allclose(p.sum(dim=1), torch.ones(p.shape[0], dtype=torch.float64), atol=1e-6):
        raise ValueError("rows of a 2-D item_categories must be distributions: non-negative, summing to 1")
    return p


def category_means(values: np.ndarray | torch.Tensor, item_categories: Sequence[int] | np.ndarray, n_categories: int) -> np.ndarray:
    """Each row's mean value over each category's items: ``(U, C)`` float64.

    ``m_uc = Σ_{i : c_i = c} v_ui / |{i : c_i = c}|`` for ``values`` ``(U, n_items)`` (scores, click
    probabilities...) and integer codes ``item_categories`` ``(n_items,)``; a category without
    items gets 0. It is ``values @ onehot / counts`` with :func:`category_distribution`'s one-hot.
    """
    v = values.double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)
    onehot = category_distribution(item_categories, n_categories).numpy()
    if v.ndim != 2 or v.shape[1] != onehot.shape[0]:
        raise ValueError(f"values must be (U, n_items) with n_items = {onehot.shape[0]}, got shape {v.shape}")
    return (v @ onehot) / np.maximum(onehot.sum(axis=0), 1)
