"""An MLP scorer over user and item embeddings (001 §4.1; NeuMF's MLP tower), trained with BCE.

001 §4.1.1 gives the perceptron ``y = σ(W_1 x + b_1)``. Here ``x = [e_u; e_i]`` concatenates a
learnt user and item embedding, hidden layers ``h_{l+1} = ReLU(W_l h_l + b_l)`` follow, and a last
linear layer gives the logit ``s_ui``; ``P(u likes i) = σ(s_ui)``. Training is binary
cross-entropy (001 §4.1.2's cross entropy with two classes) on each observed pair (label 1)
and ``n_negatives`` sampled unobserved items (label 0)::

    L = -1/B Σ_b [ log σ(s_{u,pos}) + Σ_{g'} log σ(-s_{u,g'}) ] / (1 + n_negatives)

**Why a hidden layer.** With ``hidden=()`` the model is the document's single layer,
``s_ui = w_u·e_u + w_i·e_i + b``: a user term plus an item term. Every user then ranks items
identically (by ``w_i·e_i``): a learnt popularity list, no personalisation. One ReLU layer lets
the model combine ``e_u`` with ``e_i``.

001 §4.1.2 also lists MSE; for 0/1 labels squared error on ``σ(s)`` has vanishing gradients when
the prediction is confidently wrong, which is why cross-entropy is used.

``score(users)`` returns logits ``s_ui`` (ranking by logit = ranking by probability).
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import skip_init

from recnb.data.datamodule import InteractionDataModule
from recnb.data.schema import Split
from recnb.math.losses import bce_loss
from recnb.models.base import LightningRecommender, Users, as_user_tensor, check_sizes


class MLPRecommender(LightningRecommender):
    """``s_ui = MLP([e_u; e_i])``, ``P = σ(s)``, trained with BCE on sampled negatives (see module doc).

    ``l2``: the ℓ2 penalty as Adam's (coupled) ``weight_decay``: every gradient gets ``+ l2·θ``,
    the gradient of ``(l2 / 2)·‖θ‖²`` over all parameters. ``n_users``, ``n_items``: the sizes
    (``None`` until :meth:`build` sets them from the split); when given, ``__init__`` creates the
    parameters (:meth:`create_parameters`), so ``load_from_checkpoint`` rebuilds the model.
    """

    def __init__(
        self,
        embedding_dim: int = 32,
        hidden: tuple[int, ...] = (64, 32),
        lr: float = 0.01,
        l2: float = 0.0,
        n_negatives: int = 4,
        sampler: str = "uniform",
        max_epochs: int = 10,
        batch_size: int = 1024,
        seed: int = 0,
        progress: bool = False,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("embedding_dim", embedding_dim), ("n_negatives", n_negatives), ("max_epochs", max_epochs), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer sizes must be positive, got {hidden}")
        if lr <= 0 or l2 < 0:
            raise ValueError(f"need lr > 0 and l2 >= 0, got lr={lr}, l2={l2}")
        sized = check_sizes(n_users, n_items)
        self.save_hyperparameters()
        if sized:
            self.create_parameters(n_users, n_items)

    def build(self, split: Split) -> None:
        """Size the model for ``split`` (``n_users``, ``n_items``) and create its parameters."""
        self.hparams.update(n_users=split.n_users, n_items=split.n_items)
        self.create_parameters(split.n_users, split.n_items)

    def create_parameters(self, n_users: int, n_items: int) -> None:
        """Embeddings and layers for ``n_users`` users and ``n_items`` items, initialised from ``seed``.

        The modules are created uninitialised (``torch.nn.utils.skip_init``) and then drawn from a
        local ``torch.Generator`` seeded with ``seed``, so building neither reads nor resets the
        global random state. Embeddings start ``N(0, 0.1²)``; each ``Linear`` gets PyTorch's own
        default (``kaiming_uniform_(a=√5)`` weights, biases ``U(-1/√fan_in, 1/√fan_in)``).
        """
        hp = self.hparams
        g = torch.Generator().manual_seed(hp.seed)
        self.user_emb = skip_init(nn.Embedding, n_users, hp.embedding_dim)
        self.item_emb = skip_init(nn.Embedding, n_items, hp.embedding_dim)
        layers: list[nn.Module] = []
        width = 2 * hp.embedding_dim
        for h in hp.hidden:
            layers += [skip_init(nn.Linear, width, h), nn.ReLU()]
            width = h
        layers.append(skip_init(nn.Linear, width, 1))
        self.mlp = nn.Sequential(*layers)
        with torch.no_grad():
            nn.init.normal_(self.user_emb.weight, std=0.1, generator=g)
            nn.init.normal_(self.item_emb.weight, std=0.1, generator=g)
            for layer in self.mlp:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=g)
                    bound = 1 / math.sqrt(layer.in_features)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=g)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``s_ui`` for paired ``users``, ``items`` of the same shape (any): same shape."""
        x = torch.cat([self.user_emb(users), self.item_emb(items)], dim=-1)
        return self.mlp(x).squeeze(-1)

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        items = torch.arange(self.n_items_)
        with torch.no_grad():
            rows = [self.logits(chunk[:, None].expand(-1, len(items)), items.expand(len(chunk), -1))
                    for chunk in torch.split(u, 256)]
        return torch.cat(rows) if rows else torch.zeros(0, self.n_items_)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        u, pos, neg = batch["user"], batch["pos"], batch["neg"]
        s_pos = self.logits(u, pos)[:, None]
        s_neg = self.logits(u[:, None].expand_as(neg), neg)
        logits = torch.cat([s_pos, s_neg], dim=1)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        loss = bce_loss(logits, labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(u))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.l2)

    def datamodule(self, split: Split) -> pl.LightningDataModule:
        hp = self.hparams
        return InteractionDataModule(split, mode="implicit", batch_size=hp.batch_size, n_negatives=hp.n_negatives,
                                     sampler=hp.sampler, seed=hp.seed)

    def __repr__(self) -> str:
        hp = self.hparams
        return f"MLPRecommender(embedding_dim={hp.embedding_dim}, hidden={tuple(hp.hidden)}, n_negatives={hp.n_negatives})"
