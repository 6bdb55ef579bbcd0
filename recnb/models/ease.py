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

from typing import Self

import numpy as np
import scipy.sparse as sp
import torch

from recnb.data.schema import SplitLike, as_split
from recnb.models.base import SimilarItems, Users, as_user_tensor


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


class ItemWeights(SimilarItems):
    """A linear item-to-item model: ``score(u) = x_u B``.

    ``x_`` is the binary training CSR ``(n_users, n_items)`` and ``weights_`` the item-item matrix
    ``B`` ``(n_items, n_items)`` float32 that a subclass's ``fit`` computes (EASE, DLAE, and the peer
    libraries' EASE in :mod:`recnb.studies.bench`); scoring and :meth:`similar_items` are shared.
    """

    def score(self, users: Users = None) -> torch.Tensor:
        """``X[users] B``: ``(U, n_items)`` float32."""
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        return torch.from_numpy(np.asarray(self.x_[u] @ self.weights_, dtype=np.float32))

    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        """Rows ``B[items]`` ``(len(items), n_items)``: ``B[j]`` is ``e_j B``, the scores of a user
        whose only item is ``j`` (what "more like ``j``" means to a linear item model); ``B`` is not
        symmetric, and its column ``B[:, j]`` would rank the items that *predict* ``j`` instead."""
        return torch.from_numpy(self.weights_[items.numpy()])


class EASE(ItemWeights):
    """Embarrassingly Shallow Autoencoder: ``score(u) = x_u B`` with ``B`` from :func:`ease_weights`.

    ``l2``: the L2 penalty ``λ`` (larger = smoother, less popularity-driven weights; choose it on a
    validation split with :func:`recnb.evaluation.tuning.tune`, e.g. ``tune(EASE(), validation,
    validation, {"l2": [50.0, 200.0, 1000.0]})``). ``fit`` uses the binary training matrix.
    After ``fit``: ``x_`` (the binary training CSR) and ``weights_`` (``B``, float32 ``(n_items, n_items)``).
    """

    def __init__(self, l2: float = 500.0) -> None:
        if not l2 > 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = float(l2)

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        self.x_ = split.train_csr("binary")
        self.weights_ = ease_weights(gram(self.x_), self.l2).astype(np.float32)  # B (n_items, n_items)
        return self

    def __repr__(self) -> str:
        return f"EASE(l2={self.l2:g})"
