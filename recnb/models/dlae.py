"""DLAE and EDLAE: EASE trained as a *denoising* autoencoder, in closed form (Steck 2020).

Steck, "Autoencoders that don't overfit towards the Identity" (NeurIPS 2020). Train the linear
autoencoder ``X B`` to rebuild ``X`` from a corrupted copy: every entry of ``X`` ``(n_users,
n_items)`` is dropped with probability ``p`` and the survivors are scaled by ``1/(1 − p)``,
``X̃ = X ∘ Δ / (1 − p)`` with ``Δ_ui ~ Bernoulli(1 − p)``, so ``E[X̃] = X`` and
``Var(X̃_ui) = X_ui² p / (1 − p)``. The expected loss is the plain one plus a penalty::

    E ||X − X̃ B||_F² = ||X − X B||_F² + Σ_u Σ_j Var(X̃_uj) ||B_j·||²
                     = ||X − X B||_F² + p/(1 − p) Σ_j G_jj ||B_j·||²,     G = XᵀX

i.e. dropout is an L2 penalty on row ``j`` of ``B`` weighted by item ``j``'s count ``G_jj``:
popular items, whose rows would otherwise copy themselves, are held back the most. With an
extra ``λ ||B||²`` the penalty is ``||Λ^{1/2} B||²`` with the diagonal matrix::

    Λ = p/(1 − p) · diag(G) + λ I

**DLAE** (no constraint): the normal equations ``(G + Λ) B = G`` give ``B = (G + Λ)⁻¹ G``.
Unlike EASE's unconstrained ridge it need not collapse to the identity as ``λ → 0``: the dropout
term alone penalises the diagonal (an item cannot predict itself when it has been dropped).

**EDLAE** (``zero_diagonal=True``, the default): add EASE's constraint ``diag(B) = 0``. The
Lagrangian of :mod:`recnb.models.ease` goes through with ``λ I`` replaced by ``Λ``: with
``P = (G + Λ)⁻¹``, ``(G + Λ) B = G − diag(γ)`` gives ``B = I − P (Λ + diag(γ))`` and
``diag(B) = 0`` fixes ``Λ_jj + γ_j = 1 / P_jj``::

    B = I − P · diag(1 / diag(P)),     P = (G + Λ)⁻¹

the closed form Steck derives for full emphasis on the dropped-out entries (EDLAE). At ``p = 0``
``Λ = λ I`` and EDLAE *is* EASE (:func:`recnb.models.ease.ease_weights`); ``p > 0`` moves the
regularisation from every item alike to each item in proportion to its popularity. One
``(n_items, n_items)`` inverse, as for EASE.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from recnb.data.schema import SplitLike, as_split
from recnb.models.ease import ItemWeights, gram


def dropout_penalty(g: np.ndarray, dropout: float, l2: float) -> np.ndarray:
    """The diagonal of ``Λ = p/(1 − p) · diag(G) + λ I`` as an ``(n,)`` float64 array."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1) (the probability of dropping an entry), got {dropout}")
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (it makes G + Λ invertible when an item has no interaction), got {l2}")
    return dropout / (1.0 - dropout) * np.diag(np.asarray(g, dtype=np.float64)) + l2


def dlae_weights(g: np.ndarray, dropout: float, l2: float, zero_diagonal: bool = True) -> np.ndarray:
    """``B`` of DLAE (``(G + Λ)⁻¹ G``) or, with ``zero_diagonal``, EDLAE (``I − P diag(1/diag(P))``).

    ``g``: the Gram matrix ``G = XᵀX`` ``(n, n)``; ``dropout``: ``p`` in ``[0, 1)``; ``l2``: ``λ > 0``.
    Returns ``B`` ``(n, n)`` float64; ``dropout = 0`` with ``zero_diagonal`` is EASE's ``B``.
    """
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"the Gram matrix must be square (n_items, n_items), got shape {g.shape}")
    a = g.copy()
    a[np.diag_indices_from(a)] += dropout_penalty(g, dropout, l2)  # G + Λ
    if not zero_diagonal:
        return np.linalg.solve(a, g)
    p = np.linalg.inv(a)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class DLAE(ItemWeights):
    """Denoising linear autoencoder: ``score(u) = x_u B`` with ``B`` from :func:`dlae_weights`.

    ``dropout``: ``p``, the probability of dropping an entry of ``X`` (``0`` with
    ``zero_diagonal=True`` is :class:`~recnb.models.ease.EASE`); ``l2``: ``λ``; ``zero_diagonal``:
    EDLAE's constraint ``diag(B) = 0`` (default) or the unconstrained DLAE. Choose ``dropout`` and
    ``l2`` on a validation split (:func:`recnb.evaluation.tuning.tune`). ``fit`` uses the binary
    training matrix; afterwards ``x_`` (that CSR) and ``weights_`` (``B``, float32
    ``(n_items, n_items)``).
    """

    def __init__(self, dropout: float = 0.25, l2: float = 100.0, zero_diagonal: bool = True) -> None:
        dropout_penalty(np.zeros((1, 1)), dropout, l2)  # the one check of both values
        self.dropout, self.l2, self.zero_diagonal = float(dropout), float(l2), bool(zero_diagonal)

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        self.x_: sp.csr_matrix = split.train_csr("binary")
        self.weights_ = dlae_weights(gram(self.x_), self.dropout, self.l2, self.zero_diagonal).astype(np.float32)
        return self

    def __repr__(self) -> str:
        return f"DLAE(dropout={self.dropout:g}, l2={self.l2:g}, zero_diagonal={self.zero_diagonal})"
