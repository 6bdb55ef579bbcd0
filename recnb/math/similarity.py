"""Cosine similarity between user and item embeddings: one pair, one-vs-many, all-vs-all.

.. math::

    \\operatorname{sim}(u, g) = \\frac{\\langle e_u, e_g \\rangle}{\\lVert e_u \\rVert \\, \\lVert e_g \\rVert}

Documented in 000 ("推荐结果生成") and 004 §4.1.3 / §4.2.3. All-vs-all is one matrix product of
row-normalised embeddings: ``normalise_rows(U) @ normalise_rows(G).T``.

**Zero vectors.** The formula divides by zero when either vector is 0. Here a zero vector has
similarity **0** with everything (itself included): it carries no direction, so it is neither
similar nor dissimilar. Nothing returns NaN. Inputs keep their floating dtype (float32 or float64).

**NaN and infinite entries.** A vector holding NaN (or ±inf) has no defined cosine with anything;
:func:`cosine`, :func:`one_vs_many` and :func:`all_vs_all` raise a ``ValueError`` naming the
argument and the first offending positions instead of returning NaN.
"""

from __future__ import annotations

import torch


def _check_float(name: str, x: torch.Tensor) -> None:
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor (float32/float64), got {x.dtype}")


def _check_finite(name: str, x: torch.Tensor) -> None:
    bad = ~torch.isfinite(x)
    if bad.any():
        where = [tuple(i) if len(i) > 1 else i[0] for i in bad.nonzero()[:5].tolist()]
        raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite value(s), first at position(s) {where}: "
                         f"the cosine similarity is undefined there")


def normalise_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row divided by its Euclidean norm; zero rows stay zero.

    ``x``: ``(..., d)``. Returns the same shape and dtype with ``||row|| = 1`` for every non-zero
    row: ``x / ||x||`` where ``||x|| > 0``, else ``0``.
    """
    _check_float("x", x)
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.where(norms > 0, x / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(x))


def cosine(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of two vectors ``u``, ``g`` of shape ``(d,)``: a 0-d tensor in [-1, 1]."""
    if u.ndim != 1 or u.shape != g.shape:
        raise ValueError(f"cosine takes two vectors of the same shape (d,), got {tuple(u.shape)} and {tuple(g.shape)}")
    _check_finite("u", u)
    _check_finite("g", g)
    return _cosines(u.unsqueeze(0), g.unsqueeze(0))[0, 0]


def one_vs_many(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of one vector ``u`` ``(d,)`` with each row of ``items`` ``(n, d)``: ``(n,)``."""
    if u.ndim != 1 or items.ndim != 2 or items.shape[1] != u.shape[0]:
        raise ValueError(f"one_vs_many takes u (d,) and items (n, d), got {tuple(u.shape)} and {tuple(items.shape)}")
    _check_finite("u", u)
    _check_finite("items", items)
    return _cosines(u.unsqueeze(0), items)[0]


def all_vs_all(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``users`` ``(U, d)`` with every row of ``items`` ``(N, d)``.

    Returns ``(U, N)``: ``normalise_rows(users) @ normalise_rows(items).T``, clamped to [-1, 1]
    (rounding can push ``|sim|`` a hair past 1).
    """
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(
            f"all_vs_all takes users (U, d) and items (N, d) with the same d, got {tuple(users.shape)} and {tuple(items.shape)}"
        )
    _check_finite("users", users)
    _check_finite("items", items)
    return _cosines(users, items)


def _cosines(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    if users.dtype != items.dtype:
        raise TypeError(f"users and items must share a dtype, got {users.dtype} and {items.dtype}")
    return (normalise_rows(users) @ normalise_rows(items).T).clamp(-1.0, 1.0)


def cosine_grad(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Gradient of ``sim(u, g)`` with respect to ``u`` (``(d,)``, both non-zero):

    .. math::

        \\frac{\\partial \\operatorname{sim}}{\\partial u} = \\frac{g}{\\lVert u \\rVert \\lVert g \\rVert}
        - \\operatorname{sim}(u, g) \\, \\frac{u}{\\lVert u \\rVert^2}

    It is orthogonal to ``u`` (cosine ignores length) and points where the angle to ``g`` shrinks:
    a step ``u + α ∇`` raises the similarity, a step ``u - α ∇`` (document 004 §4.2) lowers it.
    """
    if u.ndim != 1 or u.shape != g.shape:
        raise ValueError(f"cosine_grad takes two vectors of the same shape (d,), got {tuple(u.shape)} and {tuple(g.shape)}")
    nu, ng = torch.linalg.vector_norm(u), torch.linalg.vector_norm(g)
    if nu == 0 or ng == 0:
        raise ValueError("cosine_grad is undefined at a zero vector (the cosine is not differentiable there)")
    return g / (nu * ng) - cosine(u, g) * u / nu**2
