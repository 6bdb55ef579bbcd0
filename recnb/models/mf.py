"""Biased matrix factorisation for explicit ratings (002 §4.2), trained with MSE by Lightning.

.. math::

    \\hat r_{ui} = \\mu + b_u + b_i + e_u \\cdot e_i

``μ`` is the mean training rating (fixed), ``b_u`` / ``b_i`` learnt user and item biases (start at
0), ``e_u``, ``e_i`` learnt ``embedding_dim``-vectors (start ``N(0, init_std²)``, drawn from ``seed``). The
loss on a batch of rated pairs is the mean squared error plus the classic L2 penalty on the
parameters the batch touches (Koren, Bell & Volinsky 2009)::

    L = 1/B Σ_b (r̂_{u_b i_b} - r_b)² + l2 · 1/B Σ_b (‖e_{u_b}‖² + ‖e_{i_b}‖² + b_{u_b}² + b_{i_b}²)

with ``(u_b, i_b, r_b)`` the batch's ``B`` rated pairs (a user or item in several pairs is
penalised once per pair).

002 §4.2 writes ``I_ui = e_u · e_i + b`` with a single bias ``b``; one global offset cannot say
that some users rate everything higher or some items are better liked, hence ``b_u`` and ``b_i``.
It also builds the user vector as a *sum over the user's interacted items' embeddings*
(``e_u = V I_u1 + V I_u2 + ...``). ``implicit_pooling=True`` adds that term, as in SVD++::

    e_u = p_u + |N(u)|^{-1/2} Σ_{j∈N(u)} y_j

with ``N(u)`` every training item of ``u`` (rated or not) and ``y_j`` a second item embedding. The
``|N(u)|^{-1/2}`` keeps heavy users' vectors from growing with their history; the document's plain
sum has no such scale.

``init_std=0`` gives the **bias-only** baseline ``μ + b_u + b_i``: with ``e = 0`` the gradient of
``e_u · e_i`` is 0, so the factors never move.

:class:`GlobalMean` is the baseline below every rating model: ``r̂_ui = μ`` for every pair.

``score(users)`` is the predicted rating of every item, so ranking by it ranks by predicted
rating; :func:`recnb.evaluation.rating_metrics` gives RMSE/MAE on the test ratings.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch
from torch import nn

from recnb.data.datamodule import InteractionDataModule
from recnb.data.schema import RATING, Split, SplitLike, as_split
from recnb.data.validation import check_seed
from recnb.models.base import ItemVectors, LightningRecommender, Recommender, Users, as_user_tensor, check_sizes


class BiasedMF(ItemVectors, LightningRecommender):
    """``r̂ = μ + b_u + b_i + e_u·e_i`` trained with MSE + L2 on explicit ratings (see module doc).

    ``n_users``, ``n_items``: the sizes (``None`` until :meth:`build` sets them from the split); when
    given, ``__init__`` creates the parameters (:meth:`create_parameters`), so
    ``load_from_checkpoint`` rebuilds the model. ``N(u)`` of implicit pooling is read from ``seen_``.
    """

    def __init__(
        self,
        embedding_dim: int = 32,
        lr: float = 0.01,
        l2: float = 0.1,
        init_std: float = 0.1,
        implicit_pooling: bool = False,
        max_epochs: int = 10,
        batch_size: int = 2048,
        seed: int = 0,
        progress: bool = False,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("embedding_dim", embedding_dim), ("max_epochs", max_epochs), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        check_seed(seed)
        if lr <= 0 or l2 < 0 or init_std < 0:
            raise ValueError(f"need lr > 0, l2 >= 0, init_std >= 0; got lr={lr}, l2={l2}, init_std={init_std}")
        sized = check_sizes(n_users, n_items)
        self.save_hyperparameters()
        if sized:
            self.create_parameters(n_users, n_items)

    def build(self, split: Split) -> None:
        """Size the model for ``split`` (``n_users``, ``n_items``), create its parameters, and set ``μ``
        (the mean training rating) and ``N(u)`` (the split's seen items) for implicit pooling."""
        rated = split.train[RATING].notna()
        if not rated.any():
            raise ValueError(f"split {split.name!r} has no training ratings (column {RATING!r} is all NaN)")
        self.hparams.update(n_users=split.n_users, n_items=split.n_items)
        self.create_parameters(split.n_users, split.n_items)
        self.mu.fill_(float(split.train.loc[rated, RATING].mean()))
        if self.hparams.implicit_pooling:
            self._set_pool(split.seen_csr())

    def create_parameters(self, n_users: int, n_items: int) -> None:
        """``μ`` (0 until :meth:`build`), zero biases, and factors ``N(0, init_std²)`` drawn from ``seed``."""
        hp = self.hparams
        g = torch.Generator().manual_seed(hp.seed)
        self.register_buffer("mu", torch.tensor(0.0))
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.user_emb = nn.Parameter(torch.randn(n_users, hp.embedding_dim, generator=g) * hp.init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, hp.embedding_dim, generator=g) * hp.init_std)
        if hp.implicit_pooling:
            self._set_pool(sp.csr_matrix((n_users, n_items), dtype=np.float32))
            self.pooled_emb = nn.Parameter(torch.randn(n_items, hp.embedding_dim, generator=g) * hp.init_std)

    def _set_pool(self, seen: sp.spmatrix) -> None:
        """``N(u)`` as CSR buffers (offsets into one flat list of items), never a dense (n_users, n_items)
        matrix; not saved in the state dict: they are the seen matrix, which is (``seen_``)."""
        seen = sp.csr_matrix(seen)
        self.register_buffer("pool_indptr", torch.from_numpy(seen.indptr.astype(np.int64)), persistent=False)
        self.register_buffer("pool_indices", torch.from_numpy(seen.indices.astype(np.int64)), persistent=False)

    def _after_load(self) -> None:
        if self.hparams.implicit_pooling and self.seen_ is not None:
            self._set_pool(self.seen_)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """``e_u`` ``(B, embedding_dim)``: ``p_u``, plus ``|N(u)|^{-1/2} Σ_j y_j`` with implicit pooling."""
        e = self.user_emb[users]
        if self.hparams.implicit_pooling:
            e = e + self.pooled(users)
        return e

    def pooled(self, users: torch.Tensor) -> torch.Tensor:
        """``|N(u)|^{-1/2} Σ_{j∈N(u)} y_j`` ``(B, embedding_dim)``: one ``embedding_bag`` over the users' CSR rows.

        The bag of user ``b`` is ``pool_indices[indptr[u_b] : indptr[u_b + 1]]``, each item weighted
        ``|N(u_b)|^{-1/2}``; a user with no item gets the zero vector.
        """
        users = torch.as_tensor(users, dtype=torch.long).reshape(-1)
        start = self.pool_indptr[users]
        count = self.pool_indptr[users + 1] - start
        offsets = torch.cumsum(count, 0) - count  # where each bag starts in the gathered list
        pos = torch.arange(int(count.sum())) + torch.repeat_interleave(start - offsets, count)
        weight = torch.repeat_interleave(count.clamp(min=1).to(self.pooled_emb.dtype).rsqrt(), count)
        return nn.functional.embedding_bag(self.pool_indices[pos], self.pooled_emb, offsets, mode="sum",
                                           per_sample_weights=weight)

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``r̂_ui`` for paired ``users``, ``items`` ``(B,)``: ``(B,)``."""
        e_u = self.user_vectors(users)
        return self.mu + self.user_bias[users] + self.item_bias[items] + (e_u * self.item_emb[items]).sum(dim=1)

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        with torch.no_grad():
            return self.mu + self.user_bias[u, None] + self.item_bias[None, :] + self.user_vectors(u) @ self.item_emb.T

    def item_vectors(self) -> torch.Tensor:
        """The item factors ``e_i`` ``(n_items, embedding_dim)``, detached (biases are not directions)."""
        return self.item_emb.detach()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        u, i, r = batch["user"], batch["item"], batch["rating"]
        mse = ((self.predict(u, i) - r) ** 2).mean()
        penalty = (self.user_vectors(u).pow(2).sum(1) + self.item_emb[i].pow(2).sum(1)
                   + self.user_bias[u] ** 2 + self.item_bias[i] ** 2).mean()
        loss = mse + self.hparams.l2 * penalty
        self.log("train_mse", mse, on_step=False, on_epoch=True, batch_size=len(u))
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(u))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def datamodule(self, split: Split) -> pl.LightningDataModule:
        return InteractionDataModule(split, mode="explicit", batch_size=self.hparams.batch_size, seed=self.hparams.seed)

    def __repr__(self) -> str:
        hp = self.hparams
        return f"BiasedMF(embedding_dim={hp.embedding_dim}, l2={hp.l2}, implicit_pooling={hp.implicit_pooling})"


class GlobalMean(Recommender):
    """The global-mean rating baseline: ``r̂_ui = μ``, the mean training rating, for every pair.

    It ranks nothing (every item ties) but gives the RMSE every rating model must beat;
    :func:`recnb.evaluation.rating_metrics` reads it through :meth:`predict`.
    """

    mu_: float | None = None

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        rated = split.train[RATING].notna()
        if not rated.any():
            raise ValueError(f"split {split.name!r} has no training ratings (column {RATING!r} is all NaN)")
        self.remember_split(split)
        self.mu_ = float(split.train.loc[rated, RATING].mean())
        return self

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``μ`` for paired ``users``, ``items`` ``(B,)``: ``(B,)`` float32."""
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        i = torch.as_tensor(np.asarray(items), dtype=torch.long).reshape(-1)
        if u.shape != i.shape:
            raise ValueError(f"users and items must pair up, got {u.shape[0]} users and {i.shape[0]} items")
        if i.numel() and (i.min() < 0 or i.max() >= self.n_items_):
            raise IndexError(f"item indices must lie in 0..{self.n_items_ - 1}, got {i.min().item()}..{i.max().item()}")
        return torch.full(u.shape, self.mu_, dtype=torch.float32)

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return torch.full((len(u), self.n_items_), self.mu_, dtype=torch.float32)

    def __repr__(self) -> str:
        return "GlobalMean()"
