"""EASE: an item-item linear model in closed form (Steck 2019, "Embarrassingly Shallow Autoencoders").

With the binary training matrix ``X`` ``(n_users, n_items)``, EASE learns an item-item weight
matrix ``B`` ``(n_items, n_items)`` that reconstructs each user's row from the *other* items::

    min_B  ||X − X B||_F² + λ ||B||_F²   subject to   diag(B) = 0

Without the constraint the minimiser is ``B = (XᵀX + λI)⁻¹ XᵀX``, which tends to the identity
(every item predicts itself) as ``λ → 0``: useless for recommending *other* items. With the
Lagrangian ``||X − XB||² + λ||B||² + 2 γᵀ diag(B)`` the stationarity condition reads
``(XᵀX + λI) B = XᵀX − diag(γ)``, so with ``P = (XᵀX + λI)⁻¹``::

    B = I − P (λI + diag(γ))    and diag(B) = 0 fixes   λ + γ_j = 1 / P_jj,   hence
    B = I − P · diag(1 / diag(P)),   i.e.   B_ij = −P_ij / P_jj  (i ≠ j),   B_jj = 0.

Each column ``j`` of ``B`` is then exactly the ridge regression of item ``j``'s column of ``X`` on
the other items' columns with penalty ``λ`` (the problem decouples by column). The score of user
``u`` is ``s_u = x_u B``. One ``(n_items, n_items)`` inversion, no training loop: the cost is
``O(n_items³)`` whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.data.schema import Split
from recnb.models.base import Recommender, Users, as_user_tensor

DEFAULT_GRID = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)


def gram(x: sp.spmatrix) -> np.ndarray:
    """``XᵀX`` as a dense ``(n_items, n_items)`` float64 array, from the sparse product."""
    x = sp.csr_matrix(x, dtype=np.float64)
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def ease_weights(g: np.ndarray, l2: float) -> np.ndarray:
    """``B = I − P diag(1/diag(P))`` with ``P = (G + λI)⁻¹`` for a Gram matrix ``G = XᵀX``; ``diag(B) = 0``.

    ``g``: ``(n, n)`` symmetric positive semi-definite; ``λ > 0`` makes ``G + λI`` invertible.
    Returns ``B`` ``(n, n)`` float64.
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (it makes XᵀX + λI invertible), got {l2}")
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"the Gram matrix must be square (n_items, n_items), got shape {g.shape}")
    p = np.linalg.inv(g + l2 * np.eye(g.shape[0]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: ``score(u) = x_u B`` with ``B`` from :func:`ease_weights`.

    ``l2``: the L2 penalty ``λ`` (larger = smoother, less popularity-driven weights; choose it on a
    validation split with :meth:`select_lambda`). ``fit`` uses the binary training matrix.
    """

    def __init__(self, l2: float = 500.0) -> None:
        if not l2 > 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = float(l2)

    def fit(self, split: Split) -> Self:
        self.remember_split(split)
        self.x_ = split.train_csr("binary")
        self.weights_ = ease_weights(gram(self.x_), self.l2).astype(np.float32)  # B (n_items, n_items)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        return torch.from_numpy(np.asarray(self.x_[u] @ self.weights_, dtype=np.float32))

    def select_lambda(
        self, validation: Split, grid: Iterable[float] = DEFAULT_GRID, k: int = 10, metric: str = "ndcg"
    ) -> pd.DataFrame:
        """Set ``l2`` to the value of ``grid`` maximising ``metric@k`` on ``validation``.

        ``validation``: a split whose test part was carved out of the training data
        (:func:`recnb.data.splits.holdout_validation`), so the real test set is never looked at.
        The Gram matrix is computed once; each ``λ`` costs one inversion. Ties go to the first
        ``λ`` of the grid. Returns the curve (columns ``l2``, ``value``, ``users``); afterwards
        the model is fitted on ``validation``: refit it on the full split.
        """
        from recnb.evaluation import evaluate

        grid = [float(v) for v in grid]
        if not grid:
            raise ValueError("grid must hold at least one λ")
        self.remember_split(validation)
        self.x_ = validation.train_csr("binary")
        g = gram(self.x_)
        rows = []
        for l2 in grid:
            self.l2 = l2
            self.weights_ = ease_weights(g, l2).astype(np.float32)
            out = evaluate(self, validation, k=k, metrics=(metric,))
            rows.append({"l2": l2, "value": out[f"{metric}@{k}"], "users": int(out["users"])})
        curve = pd.DataFrame(rows)
        self.l2 = float(curve.loc[curve["value"].idxmax(), "l2"])
        self.weights_ = ease_weights(g, self.l2).astype(np.float32)
        return curve

    def __repr__(self) -> str:
        return f"EASE(l2={self.l2:g})"
