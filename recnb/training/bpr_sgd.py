"""BPR's stochastic gradient step, one (user, positive, negative) triple at a time, as one compiled loop.

This is the update of Rendle et al.'s LearnBPR (2009), which implicit's and cornac's BPR make too. For a triple
``(u, i, j)`` with ``x = ⟨e_u, e_i − e_j⟩ (+ b_i − b_j)`` and the per-triple objective

.. math::

    ℓ = -\\log σ(x) + λ\\,(‖e_u‖² + ‖e_i‖² + ‖e_j‖² [+ b_i² + b_j²]),

``∂ℓ/∂x = −σ(−x)``, and one SGD step of rate ``η`` on the three rows the triple touches is, with
``g = σ(−x)`` and every right-hand side read *before* the step,

.. math::

    e_u ← e_u + η\\,(g\\,(e_i − e_j) − 2λ e_u),\\quad
    e_i ← e_i + η\\,(g\\,e_u − 2λ e_i),\\quad
    e_j ← e_j + η\\,(−g\\,e_u − 2λ e_j),

    b_i ← b_i + η\\,(g − 2λ b_i),\\quad b_j ← b_j + η\\,(−g − 2λ b_j).

A row of ``users`` with ``k`` negatives is ``k`` triples, taken in order; the rows in order. Each
step sees the parameters the previous one left, so the result is that of the sequential loop
(tested against autograd steps one by one) and is the same on every run on one machine: the loop is
one thread (``fastmath`` lets the compiler reorder the dot products' sums for the CPU's vector
width, so another CPU may differ in the last bits). Three differences from the peers: their penalty
``reg`` decays a row by ``η·reg·θ`` where this one decays by ``2ηλθ`` (implicit's
``regularization=r`` is ``l2=r/2`` here); they draw (user, positive, negative) samples uniformly with
replacement, one negative each, where recnb's DataModule makes a shuffled pass over the training
pairs with ``k`` negatives per pair, the user's row then decayed ``k`` times per pair; and the bias
is penalised like the embeddings. A triple whose negative is its positive (``i = j``) is refused:
the loop and autograd would disagree on it, and a sampler of negatives never makes one. It touches ``3 d`` numbers per triple and allocates nothing, where the same step
through tensor operations gathers, scatters and sorts ``(B, k, d)`` copies; it runs in place on the
tables (float32 numpy views of the model's parameters). Compiled by numba on first use (cached on
disk); ``benchmarks/bpr_speed.py`` measures (positive, negative) pairs per second against implicit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True, fastmath=True)
def _bpr_sgd(U: np.ndarray, V: np.ndarray, b: np.ndarray, users: np.ndarray, pos: np.ndarray,
             neg: np.ndarray, lr: float, l2: float, sums: np.ndarray) -> None:  # pragma: no cover - compiled
    d = U.shape[1]
    biased = b.shape[0] > 0
    eta = np.float32(lr)
    decay = np.float32(2.0 * l2)
    one = np.float32(1.0)
    loss, pos_sum, neg_sum = 0.0, 0.0, 0.0
    for r in range(users.shape[0]):
        u, i = users[r], pos[r]
        for c in range(neg.shape[1]):
            j = neg[r, c]
            s_i = np.float32(0.0)
            s_j = np.float32(0.0)
            for f in range(d):
                s_i += U[u, f] * V[i, f]
                s_j += U[u, f] * V[j, f]
            if biased:
                s_i += b[i]
                s_j += b[j]
            x = s_i - s_j
            g = one / (one + np.float32(math.exp(min(x, 80.0))))  # σ(−x)
            for f in range(d):
                uf, vi, vj = U[u, f], V[i, f], V[j, f]
                U[u, f] = uf + eta * (g * (vi - vj) - decay * uf)
                V[i, f] = vi + eta * (g * uf - decay * vi)
                V[j, f] = vj + eta * (-g * uf - decay * vj)
            if biased:
                bi, bj = b[i], b[j]
                b[i] = bi + eta * (g - decay * bi)
                b[j] = bj + eta * (-g - decay * bj)
            loss += math.log1p(math.exp(-x)) if x > -30.0 else -x  # −log σ(x), stable
            pos_sum += s_i
            neg_sum += s_j
    sums[0] += loss
    sums[1] += pos_sum
    sums[2] += neg_sum


def bpr_sgd_step(users_table: torch.Tensor, items_table: torch.Tensor, bias: torch.Tensor | None,
                 users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, lr: float, l2: float) -> torch.Tensor:
    """Apply the SGD step of every triple of a batch to the tables, in place (see the module doc).

    ``users_table`` ``(n_users, d)``, ``items_table`` ``(n_items, d)``: contiguous float32 tensors
    (a model's ``weight`` tensors; changed in place, outside autograd); ``bias`` ``(n_items,)`` or
    ``None``; ``users``, ``pos`` ``(B,)`` and ``neg`` ``(B, k)`` int64 row indices; ``lr`` = η,
    ``l2`` = λ. Returns ``(3,)`` float64: the sums over the batch's ``B·k`` triples of the loss
    ``−log σ(x)`` (before each step), of ``s_ui`` and of ``s_uj``.
    """
    tables = {"users_table": users_table, "items_table": items_table, "bias": bias}
    for name, table in tables.items():
        if table is not None and table.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU (the loop runs on numpy views), got {table.device}")
        if table is not None and (table.dtype != torch.float32 or not table.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous float32 tensor, got {table.dtype}"
                             f"{'' if table.is_contiguous() else ' (not contiguous)'}")
    if users_table.shape[1] != items_table.shape[1]:
        raise ValueError(f"users_table and items_table must have the same width, got {users_table.shape[1]} "
                         f"and {items_table.shape[1]}")
    if bias is not None and bias.shape != (items_table.shape[0],):
        raise ValueError(f"bias must have shape ({items_table.shape[0]},), got {tuple(bias.shape)}")
    if users.ndim != 1 or pos.shape != users.shape or neg.ndim != 2 or neg.shape[0] != users.shape[0]:
        raise ValueError(f"users and pos must be (B,) and neg (B, k), got {tuple(users.shape)}, "
                         f"{tuple(pos.shape)}, {tuple(neg.shape)}")
    for name, index, n in (("users", users, users_table.shape[0]), ("pos", pos, items_table.shape[0]),
                           ("neg", neg, items_table.shape[0])):
        if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer row indices, got dtype {index.dtype}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
            raise ValueError(f"{name} must hold row indices in [0, {n}), got values in "
                             f"[{int(index.min())}, {int(index.max())}]")
    if neg.numel() and bool((neg == pos.unsqueeze(1)).any()):
        raise ValueError("neg must never equal its row's pos (a triple (u, i, i) has no ranking to learn)")
    sums = np.zeros(3)
    b = bias.detach().numpy() if bias is not None else np.zeros(0, dtype=np.float32)
    _bpr_sgd(users_table.detach().numpy(), items_table.detach().numpy(), b,
             users.numpy().astype(np.int64, copy=False), pos.numpy().astype(np.int64, copy=False),
             neg.numpy().astype(np.int64, copy=False), float(lr), float(l2), sums)
    return torch.from_numpy(sums)
