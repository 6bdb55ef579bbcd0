"""Federated averaging (FedAvg, McMahan et al. 2017) of the embedding model, **simulated in one
process**.

The users are split into ``n_clients`` shards (think: devices or regions). Each client keeps its
users' interactions and user vectors; only the item table travels. One round:

1. the server sends the current item table ``V`` to the participating clients;
2. each client ``c`` runs ``local_epochs`` epochs of plain SGD on its own pairs (BPR with sampled
   negatives), updating its user vectors and its copy ``V_c``;
3. the server averages the returned tables, weighted by the clients' numbers of pairs ``n_c``:

.. math::  V \\leftarrow \\sum_c \\frac{n_c}{\\sum_{c'} n_{c'}} V_c.

Raw interactions never leave a client, but the updates do, and updates can leak data (they are
not differentially private unless clipped and noised as in DP-SGD). This module only simulates
the protocol: no network, no stragglers, no secure aggregation. A real deployment would use a
federated-learning framework such as Flower (``flwr``) or TensorFlow Federated.

With one client holding every user, FedAvg is ordinary (centralised) mini-batch SGD on the same
batches; ``tests/studies/privacy/test_federated.py`` checks it.

**Clients.** ``partition="iid"`` deals the users to the clients at random; ``"category"`` is a
non-IID (label-skewed) federation: users sorted by their most frequent training category
(:func:`dominant_category`) and cut into contiguous shards, so each client holds users of one or
two tastes -- regional shops, say.

**DP-FedAvg with local DP-SGD** (``noise_multiplier`` set). Each client trains by DP-SGD on its own
pairs (Poisson sampling with rate ``q`` = ``sample_rate``, per-example clipping to ``C``, Gaussian
noise ``N(0, σ²C²)`` on every entry of the item table and of its users' rows, divided by
``q n_c``). The clients' data are disjoint and averaging is post-processing, so the released item
tables are ``(ε, δ)``-DP *per interaction* with the ``ε`` of one client's steps (parallel
composition): ``rounds × local_epochs × round(1/q)`` steps at ``(q, σ)`` -- the same accounting as
centralised DP-SGD with the same ``q``, ``σ`` and epochs (one client). At a matched budget the
averaged item update carries ``Σ_c (n_c/N) σC z_c/(q n_c) = σC Σ_c z_c/(qN)``: ``√K`` times the
centralised noise for ``K`` clients, for the same signal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import numpy as np
import pandas as pd
import torch

from recnb.data.sampling import PositiveSet, sample_negatives
from recnb.data.schema import ITEM_IDX, USER_IDX, Split, SplitLike, as_split
from recnb.math.losses import bpr_loss
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.models.private_embedding import per_example_row_grads, table_grad_norms
from recnb.training import torch_threads
from recnb.training.accountant import dp_sgd_epsilon
from recnb.training.dp_sgd import clip_factors, gaussian_noise_like

PARTITIONS = ("iid", "category")


def client_of_users(n_users: int, n_clients: int, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """``(n_users,)`` client index of each user, shards of equal size (± 1).

    ``groups=None``: a seeded random partition (IID clients). ``groups`` ``(n_users,)`` labels: the
    users sorted by label (random order within a label) and cut into ``n_clients`` contiguous
    shards, so each client holds few labels (non-IID clients)."""
    if not 1 <= n_clients <= n_users:
        raise ValueError(f"n_clients must lie in 1..n_users={n_users}, got {n_clients}")
    rng = np.random.default_rng(seed)
    out = np.empty(n_users, dtype=np.int64)
    if groups is None:
        out[rng.permutation(n_users)] = np.arange(n_users) % n_clients
        return out
    groups = np.asarray(groups)
    if groups.shape != (n_users,):
        raise ValueError(f"groups must hold one label per user, shape ({n_users},), got {groups.shape}")
    order = np.lexsort((rng.random(n_users), groups))
    out[order] = np.arange(n_users) * n_clients // n_users
    return out


def dominant_category(split: Split) -> np.ndarray:
    """``(n_users,)`` each user's most frequent category among their training pairs, as a code into
    the sorted categories of ``split.items_frame`` (ties to the smaller code; ``-1`` for a user
    without training pairs)."""
    codes, _ = pd.factorize(split.items_frame["category"], sort=True)
    pairs = np.unique(split.train[[USER_IDX, ITEM_IDX]].to_numpy(dtype=np.int64), axis=0).reshape(-1, 2)
    counts = np.zeros((split.n_users, max(codes.max() + 1, 1)), dtype=np.int64)
    np.add.at(counts, (pairs[:, 0], codes[pairs[:, 1]]), 1)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1)


def weighted_average(tables: list[torch.Tensor], weights: list[float] | np.ndarray) -> torch.Tensor:
    """``Σ_c w_c T_c / Σ_c w_c``: the FedAvg aggregation of same-shape tensors."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if len(tables) == 0 or len(tables) != len(w):
        raise ValueError(f"need one weight per table and at least one table, got {len(tables)} tables, {len(w)} weights")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {w.tolist()}")
    stacked = torch.stack(tables).double()
    return (stacked * (w / w.sum()).reshape(-1, *[1] * (stacked.ndim - 1))).sum(dim=0).to(tables[0].dtype)


def epoch_generator(seed: int, client: int, epoch: int) -> torch.Generator:
    """The generator of one client's local epoch: batch order and negatives (the same for client 0
    of a one-client federation and for centralised training)."""
    state = np.random.SeedSequence([seed, client, epoch]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def local_sgd(U: torch.Tensor, V: torch.Tensor, users: torch.Tensor, items: torch.Tensor, positives: PositiveSet,
              generator: torch.Generator, lr: float, batch_size: int, n_negatives: int) -> float:
    """One epoch of mini-batch SGD on the pairs ``(users, items)``, updating ``U`` and ``V`` in place.

    Batches: a permutation of the pairs from ``generator``, ``batch_size`` at a time, each row with
    ``n_negatives`` negatives from :func:`~recnb.data.sampling.sample_negatives`; loss
    :func:`~recnb.math.losses.bpr_loss` (batch mean); step ``θ ← θ - lr ∇θ``. Returns the mean loss.
    """
    order = torch.randperm(len(users), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        u, i = users[idx], items[idx]
        j = sample_negatives(u, n_negatives, positives, None, generator, check=False)
        Ub, Vb = U.detach().requires_grad_(True), V.detach().requires_grad_(True)
        pos = (Ub[u] * Vb[i]).sum(dim=1)
        neg = (Ub[u].unsqueeze(1) * Vb[j]).sum(dim=2)
        loss = bpr_loss(pos, neg)
        gU, gV = torch.autograd.grad(loss, (Ub, Vb))
        with torch.no_grad():
            U.sub_(lr * gU)
            V.sub_(lr * gV)
        total += loss.item() * len(idx)
    return total / max(len(users), 1)


def dp_local_step(U: torch.Tensor, V: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
                  own_users: torch.Tensor, lr: float, max_grad_norm: float, noise_multiplier: float,
                  expected_batch_size: float, generator: torch.Generator) -> tuple[float, float]:
    """One DP-SGD step of a client on the BPR embedding model, updating ``U`` and ``V`` in place.

    ``users`` ``(B,)`` and ``items`` ``(B, 1 + k)`` (positive, then negatives) are the Poisson batch;
    each example's gradient over both tables (:func:`~recnb.models.private_embedding.per_example_row_grads`,
    norm :func:`~recnb.models.private_embedding.table_grad_norms`) is clipped to ``C``, summed, and
    ``N(0, σ²C²)`` noise is added to every entry of ``V`` and of the rows ``own_users`` (the client's
    users); the sum is divided by ``qN`` = ``expected_batch_size`` and ``θ ← θ - lr g̃``. Returns
    ``(batch loss, share of examples clipped)``.
    """
    grad_u, grad_v = torch.zeros_like(U), torch.zeros_like(V)
    loss, clipped = float("nan"), 0.0
    if len(users):
        gu, gi = per_example_row_grads(U[users], V[items])
        norms = table_grad_norms(gu, gi, items)
        f = clip_factors(norms, max_grad_norm)
        grad_u.index_add_(0, users, gu * f[:, None])
        grad_v.index_add_(0, items.reshape(-1), (gi * f[:, None, None]).reshape(-1, V.shape[1]))
        s = (V[items] @ U[users].unsqueeze(2)).squeeze(2)
        loss, clipped = float(bpr_loss(s[:, 0], s[:, 1:])), float((norms > max_grad_norm).float().mean())
    std = noise_multiplier * max_grad_norm
    grad_u[own_users] += gaussian_noise_like(grad_u[own_users], std, generator)
    grad_v += gaussian_noise_like(grad_v, std, generator)
    U.sub_(lr * grad_u / expected_batch_size)
    V.sub_(lr * grad_v / expected_batch_size)
    return loss, clipped


def local_dp_sgd(U: torch.Tensor, V: torch.Tensor, users: torch.Tensor, items: torch.Tensor, positives: PositiveSet,
                 own_users: torch.Tensor, generator: torch.Generator, lr: float, sample_rate: float,
                 max_grad_norm: float, noise_multiplier: float, n_negatives: int) -> tuple[float, int]:
    """One local epoch of DP-SGD on a client's pairs ``(users, items)``: ``round(1/q)`` steps of
    :func:`dp_local_step`, each on a Poisson sample (every pair with probability ``q``, negatives
    from :func:`~recnb.data.sampling.sample_negatives`), all drawn from ``generator`` (the secret
    randomness). Returns ``(mean batch loss, steps)``."""
    steps = max(1, round(1 / sample_rate))
    losses = []
    for _ in range(steps):
        chosen = torch.rand(len(users), generator=generator) < sample_rate
        u = users[chosen]
        j = sample_negatives(u, n_negatives, positives, None, generator, check=False)
        batch_items = torch.cat([items[chosen].unsqueeze(1), j], dim=1)
        loss, _ = dp_local_step(U, V, u, batch_items, own_users, lr, max_grad_norm, noise_multiplier,
                                sample_rate * len(users), generator)
        losses.append(loss)
    return float(np.nanmean(losses)) if not np.isnan(losses).all() else float("nan"), steps


class FedAvgRecommender(Recommender):
    """The dot-product embedding model (BPR) trained by simulated FedAvg (see the module docstring).

    Parameters: ``n_clients`` shards of users; ``partition`` (``"iid"`` or ``"category"``, see
    the module docstring); ``rounds``; ``local_epochs`` per round;
    ``client_fraction`` of clients drawn (seeded) to take part in each round (1 = all);
    ``embedding_dim``, ``lr`` (of SGD on the batch-mean BPR loss, hence large), ``batch_size``, ``n_negatives``, ``init_std``; ``seed``.
    DP-FedAvg: ``noise_multiplier`` σ (``None``, the default: plain FedAvg, no privacy),
    ``max_grad_norm`` C, ``sample_rate`` q (``batch_size`` is then unused), ``noise_seed`` (the
    Poisson samples, negatives and noise: ``None`` draws them from fresh OS entropy; an integer
    reproduces a run, for teaching and tests only).
    After ``fit``: ``user_embedding_`` ``(n_users, d)``, ``item_embedding_`` ``(n_items, d)``,
    ``history_`` (one row per round: ``round``, ``train_loss``, ``clients``, plus what ``callback``
    returned), ``client_steps_`` (noisy steps each client took; DP only) and :meth:`epsilon`.
    """

    def __init__(self, n_clients: int = 4, rounds: int = 10, local_epochs: int = 1, client_fraction: float = 1.0,
                 embedding_dim: int = 32, lr: float = 50.0, batch_size: int = 256, n_negatives: int = 4,
                 init_std: float = 0.1, seed: int = 0, partition: str = "iid", noise_multiplier: float | None = None,
                 max_grad_norm: float = 1.0, sample_rate: float = 0.05, noise_seed: int | None = None) -> None:
        for name, value in (("n_clients", n_clients), ("rounds", rounds), ("local_epochs", local_epochs),
                            ("embedding_dim", embedding_dim), ("batch_size", batch_size), ("n_negatives", n_negatives)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 < client_fraction <= 1 or not lr > 0 or not init_std > 0:
            raise ValueError(f"need 0 < client_fraction <= 1, lr > 0, init_std > 0; got {client_fraction}, {lr}, {init_std}")
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
        if noise_multiplier is not None and noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be None (no DP) or >= 0, got {noise_multiplier}")
        if not max_grad_norm > 0 or not 0 < sample_rate <= 1:
            raise ValueError(f"need max_grad_norm > 0 and 0 < sample_rate <= 1, got {max_grad_norm}, {sample_rate}")
        if noise_seed is not None and (isinstance(noise_seed, bool) or not isinstance(noise_seed, int) or noise_seed < 0):
            raise ValueError(f"noise_seed must be None (fresh entropy) or a non-negative integer, got {noise_seed!r}")
        self.n_clients, self.rounds, self.local_epochs = n_clients, rounds, local_epochs
        self.client_fraction, self.embedding_dim, self.lr = client_fraction, embedding_dim, lr
        self.batch_size, self.n_negatives, self.init_std, self.seed = batch_size, n_negatives, init_std, seed
        self.partition, self.noise_multiplier, self.max_grad_norm = partition, noise_multiplier, max_grad_norm
        self.sample_rate, self.noise_seed = sample_rate, noise_seed
        self.user_embedding_: torch.Tensor | None = None
        self.item_embedding_: torch.Tensor | None = None
        self.history_: list[dict[str, Any]] = []
        self.client_steps_: np.ndarray | None = None

    def init_tables(self, n_users: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``N(0, init_std²)`` user and item tables from a generator seeded with ``seed``."""
        g = torch.Generator().manual_seed(self.seed)
        U = torch.randn(n_users, self.embedding_dim, generator=g) * self.init_std
        V = torch.randn(n_items, self.embedding_dim, generator=g) * self.init_std
        return U, V

    def fit(self, split: SplitLike, callback: Callable[[int, FedAvgRecommender], dict[str, float]] | None = None) -> Self:
        """Run ``rounds`` rounds; after each, ``callback(round, self)`` may return metrics to log.

        Like :func:`~recnb.training.make_trainer`, it trains on one torch thread (restored after):
        the steps are small, and one thread runs them many times faster than several contending ones.
        """
        split = as_split(split)
        with torch_threads(1):
            return self._fit(split, callback)

    def _fit(self, split: Split, callback: Callable[[int, FedAvgRecommender], dict[str, float]] | None) -> Self:
        self.remember_split(split)
        pairs = np.unique(split.train[[USER_IDX, ITEM_IDX]].to_numpy(dtype=np.int64), axis=0).reshape(-1, 2)
        users, items = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
        positives = PositiveSet(users, items, split.n_users, split.n_items)
        groups = dominant_category(split) if self.partition == "category" else None
        owner = torch.as_tensor(client_of_users(split.n_users, self.n_clients, self.seed, groups))
        client = owner[users]
        shards = [torch.nonzero(client == c).squeeze(1) for c in range(self.n_clients)]
        own_users = [torch.nonzero(owner == c).squeeze(1) for c in range(self.n_clients)]
        private = self.noise_multiplier is not None
        if private:
            secret = torch.Generator()
            secret.manual_seed(int(np.random.SeedSequence(self.noise_seed).generate_state(1, np.uint64)[0] >> 2))
        self.client_steps_ = np.zeros(self.n_clients, dtype=np.int64) if private else None
        U, V = self.init_tables(split.n_users, split.n_items)
        self.user_embedding_, self.item_embedding_ = U, V
        pick = np.random.default_rng([self.seed, 1])
        n_pick = max(1, round(self.client_fraction * self.n_clients))
        self.history_ = []
        for r in range(self.rounds):
            chosen = np.sort(pick.choice(self.n_clients, n_pick, replace=False)) if n_pick < self.n_clients \
                else np.arange(self.n_clients)
            tables, weights, losses = [], [], []
            for c in chosen:
                rows = shards[c]
                if len(rows) == 0:
                    continue
                Vc = V.clone()
                for e in range(self.local_epochs):
                    if private:
                        loss, steps = local_dp_sgd(U, Vc, users[rows], items[rows], positives, own_users[c], secret,
                                                   self.lr, self.sample_rate, self.max_grad_norm,
                                                   self.noise_multiplier, self.n_negatives)
                        self.client_steps_[c] += steps
                        continue
                    gen = epoch_generator(self.seed, int(c), r * self.local_epochs + e)
                    loss = local_sgd(U, Vc, users[rows], items[rows], positives, gen, self.lr, self.batch_size,
                                     self.n_negatives)
                tables.append(Vc)
                weights.append(len(rows))
                losses.append(loss)
            V = weighted_average(tables, weights)
            self.item_embedding_ = V
            row = {"round": r + 1, "train_loss": float(np.average(losses, weights=weights)), "clients": len(tables)}
            if callback is not None:
                row.update(callback(r + 1, self))
            self.history_.append(row)
        return self

    def epsilon(self, delta: float) -> float:
        """``ε`` at ``δ`` of the released item tables, per interaction: the RDP accountant of the
        client that took the most noisy steps (the clients' data are disjoint: parallel
        composition); ``inf`` for plain FedAvg or ``σ = 0``."""
        if self.client_steps_ is None and self.noise_multiplier is not None:
            raise RuntimeError("FedAvgRecommender is not fitted yet: call .fit(split) first")
        if not self.noise_multiplier:
            return float("inf")
        return dp_sgd_epsilon(self.sample_rate, self.noise_multiplier, int(self.client_steps_.max()), delta)

    def score(self, users: Users = None) -> torch.Tensor:
        if self.item_embedding_ is None:
            raise RuntimeError("FedAvgRecommender is not fitted yet: call .fit(split) first")
        u = as_user_tensor(users, self.user_embedding_.shape[0])
        return self.user_embedding_[u] @ self.item_embedding_.T

    def __repr__(self) -> str:
        return (f"FedAvgRecommender(n_clients={self.n_clients}, rounds={self.rounds}, local_epochs={self.local_epochs}, "
                f"client_fraction={self.client_fraction}, embedding_dim={self.embedding_dim}, lr={self.lr}, "
                f"seed={self.seed}, partition={self.partition!r}, noise_multiplier={self.noise_multiplier})")
