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
batches; ``tests/privacy/test_federated.py`` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import numpy as np
import torch

from recnb.data.sampling import PositiveSet, sample_negatives
from recnb.data.schema import ITEM_IDX, USER_IDX, Split, SplitLike, as_split
from recnb.math.losses import bpr_loss
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.training import torch_threads


def client_of_users(n_users: int, n_clients: int, seed: int = 0) -> np.ndarray:
    """``(n_users,)`` client index of each user: a seeded random partition into equal-size shards."""
    if not 1 <= n_clients <= n_users:
        raise ValueError(f"n_clients must lie in 1..n_users={n_users}, got {n_clients}")
    perm = np.random.default_rng(seed).permutation(n_users)
    out = np.empty(n_users, dtype=np.int64)
    out[perm] = np.arange(n_users) % n_clients
    return out


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


class FedAvgRecommender(Recommender):
    """The dot-product embedding model (BPR) trained by simulated FedAvg (see the module docstring).

    Parameters: ``n_clients`` shards of users; ``rounds``; ``local_epochs`` per round;
    ``client_fraction`` of clients drawn (seeded) to take part in each round (1 = all);
    ``embedding_dim``, ``lr`` (of SGD on the batch-mean BPR loss, hence large), ``batch_size``, ``n_negatives``, ``init_std``; ``seed``.
    After ``fit``: ``user_embedding_`` ``(n_users, d)``, ``item_embedding_`` ``(n_items, d)``,
    ``history_`` (one row per round: ``round``, ``train_loss``, ``clients``, plus what ``callback``
    returned).
    """

    def __init__(self, n_clients: int = 4, rounds: int = 10, local_epochs: int = 1, client_fraction: float = 1.0,
                 embedding_dim: int = 32, lr: float = 50.0, batch_size: int = 256, n_negatives: int = 4,
                 init_std: float = 0.1, seed: int = 0) -> None:
        for name, value in (("n_clients", n_clients), ("rounds", rounds), ("local_epochs", local_epochs),
                            ("embedding_dim", embedding_dim), ("batch_size", batch_size), ("n_negatives", n_negatives)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 < client_fraction <= 1 or not lr > 0 or not init_std > 0:
            raise ValueError(f"need 0 < client_fraction <= 1, lr > 0, init_std > 0; got {client_fraction}, {lr}, {init_std}")
        self.n_clients, self.rounds, self.local_epochs = n_clients, rounds, local_epochs
        self.client_fraction, self.embedding_dim, self.lr = client_fraction, embedding_dim, lr
        self.batch_size, self.n_negatives, self.init_std, self.seed = batch_size, n_negatives, init_std, seed
        self.user_embedding_: torch.Tensor | None = None
        self.item_embedding_: torch.Tensor | None = None
        self.history_: list[dict[str, Any]] = []

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
        client = torch.as_tensor(client_of_users(split.n_users, self.n_clients, self.seed))[users]
        shards = [torch.nonzero(client == c).squeeze(1) for c in range(self.n_clients)]
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

    def score(self, users: Users = None) -> torch.Tensor:
        if self.item_embedding_ is None:
            raise RuntimeError("FedAvgRecommender is not fitted yet: call .fit(split) first")
        u = as_user_tensor(users, self.user_embedding_.shape[0])
        return self.user_embedding_[u] @ self.item_embedding_.T

    def __repr__(self) -> str:
        return (f"FedAvgRecommender(n_clients={self.n_clients}, rounds={self.rounds}, local_epochs={self.local_epochs}, "
                f"client_fraction={self.client_fraction}, embedding_dim={self.embedding_dim}, lr={self.lr}, "
                f"seed={self.seed})")
