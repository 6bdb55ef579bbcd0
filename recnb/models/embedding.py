"""The embedding model of document 000: users and items as vectors, score = dot product.

.. math::

    s_{ug} = \\langle e_u, e_g \\rangle \\; (+\\, b_g)

trained on implicit feedback with one of the losses of :mod:`recnb.math.losses`:

- ``"positive_only"`` -- the loss *as 000 writes it*, ``-Σ log σ(s_ug)`` over observed pairs only
  (the sampled negatives of each batch are scored for the logs but never enter the loss);
- ``"negative_sampling"`` -- ``-log σ(s_ug) - Σ_g' log σ(-s_ug')`` with ``n_negatives`` samples;
- ``"bpr"`` -- ``-log σ(s_ug - s_ug')``;
- ``"bce"`` -- binary cross-entropy with label 1 for the positive and 0 for each negative.

Training (the defaults were chosen on MovieLens-100k, see ``benchmarks/movielens.py``): Adagrad
(``optimizer="adagrad"``, or Adam) on mini-batches of ``batch_size`` triples, with BPR's own
regulariser (Rendle et al. 2009) on the rows a batch touches:
``loss + l2 * mean_b(‖e_u‖² + ‖e_g‖² + Σ_{g'} ‖e_g'‖²)``, not a decay of every row at every step.

Each step is one Lightning manual-optimisation step (``zero_grad``, gradient, ``step``). With dense
tables the gradient is autograd's through the embedding lookups. With sparse tables (large ones,
see :meth:`EmbeddingRecommender.uses_sparse_gradients`) :meth:`~EmbeddingRecommender.backward_rows`
computes it on the rows the batch uses: autograd only through the loss of the ``(B,)`` and
``(B, k)`` scores, the chain rule to the rows by hand, duplicate rows summed into a coalesced sparse
gradient (:func:`row_gradient`) that ``torch.optim.Adagrad`` applies to those rows alone. The same
gradient and the same Adagrad step (tested against the dense path), without building, sorting and
merging a sparse gradient per lookup (``benchmarks/bpr_speed.py`` measures an epoch). Under DDP
(``trainer.world_size > 1``) the sparse tables take autograd's path, whose backward pass is what
DDP's gradient all-reduce hooks into.

``optimizer="sgd"`` (BPR only) is Rendle's LearnBPR instead: plain SGD on one (user, positive,
negative) triple at a time, in order, as implicit and cornac train BPR. Its step is one compiled
loop over the batch (:func:`recnb.training.bpr_sgd.bpr_sgd_step`) that updates the three rows of
each triple in place, with no gradient tensor at all; the batch only sets how often Lightning's
loop and the negative sampler run. A pass over ``n`` training pairs with ``k`` negatives makes
``n·k`` updates where the batched optimisers make ``n / batch_size``, so the rate ``lr`` wants a
smaller value (``benchmarks/time_to_quality.py`` uses 0.02). There ``l2`` is the per-triple λ of
:mod:`recnb.training.bpr_sgd` (which also says how it differs from implicit's and cornac's BPR),
not the batch mean above. On one process only (DDP has nothing to synchronise).

Each training epoch logs (one value per epoch, see :class:`~recnb.training.HistoryLogger`)
``train_loss``, ``pos_score`` and ``neg_score`` (means over the epoch's rows of the loss and of the
scores of positives and sampled negatives), ``user_norm`` and ``item_norm`` (mean Euclidean norm of
the embedding tables at the end of the epoch);
each validation pass logs ``val_ndcg@10`` on the split's test items, training items excluded from
both the lists and the relevant set (as :func:`recnb.evaluation.evaluate` does).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recnb.data.datamodule import InteractionDataModule
from recnb.data.schema import Split
from recnb.math.losses import bce_loss, bpr_loss, negative_sampling_loss, positive_only_loss
from recnb.models.base import ItemVectors, LightningRecommender, Users, as_user_tensor, check_sizes
from recnb.training.bpr_sgd import bpr_sgd_step

LOSSES = ("positive_only", "negative_sampling", "bpr", "bce")
OPTIMIZERS = ("adagrad", "adam", "sgd")
#: automatic sparse gradients above this many times the table rows one batch can touch
SPARSE_FACTOR = 2


def top_direction_share(E: torch.Tensor) -> float:
    """Share of an embedding table's energy along its first singular direction: ``σ₁² / Σ σᵢ²``.

    ``E``: ``(n, d)`` (rows are vectors; a numpy array or tensor). With ``E = U diag(σ) Vᵀ``,
    ``Σ σᵢ² = ‖E‖_F²`` (the sum of the rows' squared norms), so the result is the fraction of the
    squared Frobenius norm that lies along the single direction ``v₁`` -- 1 when all rows are
    multiples of one vector, ``1/d`` (its minimum) when the energy is spread evenly over ``d``
    orthogonal directions. Raises ``ValueError`` for an all-zero or empty table.
    """
    E = torch.as_tensor(E).detach().double()
    if E.ndim != 2 or E.numel() == 0:
        raise ValueError(f"E must be a non-empty (n, d) matrix, got shape {tuple(E.shape)}")
    sigma = torch.linalg.svdvals(E)
    total = (sigma**2).sum()
    if total == 0:
        raise ValueError("E is all zeros: it has no direction to share its (zero) norm")
    return float(sigma[0] ** 2 / total)


def row_gradient(index: torch.Tensor, grads: torch.Tensor, n_rows: int) -> torch.Tensor:
    """The gradient of a ``(n_rows, d)`` table whose rows ``index`` ``(m,)`` were gathered and got
    the gradients ``grads`` ``(m, d)``: ``G[r] = Σ_{j: index_j = r} grads_j``, as a coalesced sparse
    COO tensor (sorted distinct rows, duplicates summed; rows not in ``index`` are absent, i.e. zero).
    """
    rows, where = torch.unique(index, return_inverse=True)
    values = grads.new_zeros(len(rows), grads.shape[1]).index_add_(0, where, grads)
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, (n_rows, grads.shape[1]), is_coalesced=True,
                                   check_invariants=False)


class EmbeddingRecommender(ItemVectors, LightningRecommender):
    """User and item embeddings (optionally an item bias) trained with a sigmoid loss.

    Hyper-parameters (all saved with ``save_hyperparameters``):
    ``embedding_dim`` d; ``loss`` (see :data:`LOSSES`); ``n_negatives`` sampled per positive;
    ``item_bias``; ``optimizer`` (``"adagrad"``, ``"adam"`` or BPR's per-triple ``"sgd"``) and its ``lr``; ``l2``, the penalty on
    the squared norms of the embeddings a batch uses (see the module docstring); ``init_std`` of the normal
    initialisation; ``max_epochs``; ``batch_size``; ``sampler`` of negatives (``"uniform"`` or
    ``"popularity"``); ``sparse_gradients`` (``None``: automatic, see :meth:`uses_sparse_gradients`);
    ``seed`` (initialisation, batch order and negatives); ``progress``; ``n_users``, ``n_items``:
    the table sizes (``None`` until :meth:`build`, which :meth:`fit` calls, sets them from the split).

    The embedding tables are created by :meth:`create_parameters`, from a generator seeded with
    ``seed`` (the same seed gives the same model): in ``__init__`` when the sizes are given (so
    ``load_from_checkpoint`` rebuilds the model), else by :meth:`build`.
    """

    def __init__(
        self,
        embedding_dim: int = 64,
        loss: str = "bpr",
        n_negatives: int = 4,
        item_bias: bool = False,
        optimizer: str = "adagrad",
        lr: float = 0.1,
        l2: float = 0.01,
        init_std: float = 0.1,
        max_epochs: int = 12,
        batch_size: int = 2048,
        sampler: str = "uniform",
        sparse_gradients: bool | None = None,
        seed: int = 0,
        progress: bool = False,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> None:
        super().__init__()
        if sparse_gradients and optimizer != "adagrad":
            raise ValueError(f"sparse_gradients=True needs optimizer='adagrad' (Adam has no sparse update, and "
                             f"'sgd' updates rows in place without gradients), got {optimizer!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if optimizer == "sgd" and loss != "bpr":
            raise ValueError(f"optimizer='sgd' is BPR's per-triple step (recnb.training.bpr_sgd) and needs "
                             f"loss='bpr', got loss={loss!r}: use optimizer='adagrad' for the other losses")
        for name, value in (("embedding_dim", embedding_dim), ("n_negatives", n_negatives), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value, ok in (("lr", lr, lr > 0), ("init_std", init_std, init_std > 0),
                                ("l2", l2, l2 >= 0)):
            if not ok:
                raise ValueError(f"{name} must be {'>= 0' if name == 'l2' else '> 0'}, got {value}")
        sized = check_sizes(n_users, n_items)
        self.save_hyperparameters()
        self.automatic_optimization = False  # training_step takes the step: dense by autograd, sparse by backward_rows
        self.user_embedding: nn.Embedding | None = None
        self.item_embedding: nn.Embedding | None = None
        self.item_bias: nn.Embedding | None = None
        if sized:
            self.create_parameters(n_users, n_items)

    # -- parameters ---------------------------------------------------------------------------
    def build(self, split: Split) -> None:
        """Size the model for ``split`` (the ``n_users``, ``n_items`` hyper-parameters) and create its tables."""
        self.hparams.update(n_users=split.n_users, n_items=split.n_items)
        self.create_parameters(split.n_users, split.n_items)

    def create_parameters(self, n_users: int, n_items: int) -> None:
        """Create the tables ``(n_users, d)``, ``(n_items, d)`` [and bias ``(n_items, 1)``], seeded.

        Gradients are sparse (``nn.Embedding(sparse=True)``) when :meth:`uses_sparse_gradients`
        says so: a step then updates only the rows its batch used, which is the same Adagrad step
        (a row with zero gradient keeps its parameters and accumulator) at a fraction of the cost
        when the tables are much larger than a batch.
        """
        hp: Any = self.hparams
        g = torch.Generator().manual_seed(hp.seed)
        sparse = self.uses_sparse_gradients(n_users, n_items)
        self.user_embedding = nn.Embedding(n_users, hp.embedding_dim, sparse=sparse)
        self.item_embedding = nn.Embedding(n_items, hp.embedding_dim, sparse=sparse)
        with torch.no_grad():
            self.user_embedding.weight.copy_(torch.randn(n_users, hp.embedding_dim, generator=g) * hp.init_std)
            self.item_embedding.weight.copy_(torch.randn(n_items, hp.embedding_dim, generator=g) * hp.init_std)
        if hp.item_bias:
            self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
            nn.init.zeros_(self.item_bias.weight)

    def uses_sparse_gradients(self, n_users: int, n_items: int) -> bool:
        """Whether the tables give sparse gradients: ``sparse_gradients`` if set, else automatically
        with Adagrad when the tables hold more than ``SPARSE_FACTOR`` times the rows a batch can touch,
        ``n_users + n_items > SPARSE_FACTOR · batch_size · (2 + n_negatives)`` (a user, a positive and
        the negatives per row): on small tables a dense step costs no more (the batch covers much of
        the table anyway), on large ones it reads and writes every row. ``benchmarks/scale.py
        --dense-epoch --movielens`` measures both sides (``benchmarks/results/scale.csv``).
        Adam has no sparse form with the same update, so it always keeps dense gradients; ``"sgd"``
        makes no gradient at all (its loop updates the rows in place).
        """
        hp: Any = self.hparams
        if hp.optimizer != "adagrad":
            return False
        if hp.sparse_gradients is not None:
            return hp.sparse_gradients
        return n_users + n_items > SPARSE_FACTOR * hp.batch_size * (2 + hp.n_negatives)

    def datamodule(self, split: Split) -> InteractionDataModule:
        """The implicit-feedback DataModule of ``split`` (triples with ``n_negatives`` negatives)."""
        hp: Any = self.hparams
        return InteractionDataModule(
            split, mode="implicit", batch_size=hp.batch_size, n_negatives=hp.n_negatives, sampler=hp.sampler, seed=hp.seed
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adagrad or Adam on the tables; for ``"sgd"`` a ``torch.optim.SGD`` that holds the rate η
        (read from its ``param_groups`` at every step, so a callback may change it) while
        :func:`~recnb.training.bpr_sgd.bpr_sgd_step` makes the update."""
        hp: Any = self.hparams
        if hp.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=hp.lr)
        if hp.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=hp.lr)
        return torch.optim.Adagrad(self.parameters(), lr=hp.lr)

    # -- scores -------------------------------------------------------------------------------
    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``s_ug = <e_u, e_g> (+ b_g)`` for ``users`` ``(B,)`` and ``items`` ``(B,)`` or ``(B, k)``."""
        u = self.user_embedding(users)
        v = self.item_embedding(items)
        s = (v * (u if items.ndim == 1 else u.unsqueeze(1))).sum(dim=-1)
        if self.item_bias is not None:
            s = s + self.item_bias(items).squeeze(-1)
        return s

    def score(self, users: Users = None) -> torch.Tensor:
        """Scores ``(len(users), n_items)``: ``E_users @ E_items.T (+ b)``, detached float32."""
        self._check_fitted()  # tables built from sizes alone (type(m)(**m.get_params())) are not a fitted model
        u = as_user_tensor(users, self.user_embedding.num_embeddings)
        with torch.no_grad():
            s = self.user_embedding(u) @ self.item_embedding.weight.T
            if self.item_bias is not None:
                s = s + self.item_bias.weight.T
        return s

    def item_vectors(self) -> torch.Tensor:
        """The item embeddings ``e_g`` ``(n_items, embedding_dim)``, detached (the bias is not a direction)."""
        return self.item_embedding.weight.detach()

    # -- training -----------------------------------------------------------------------------
    def loss(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """The configured loss of positive scores ``(B,)`` and negative scores ``(B, k)``."""
        name = self.hparams.loss
        if name == "positive_only":
            return positive_only_loss(pos)
        if name == "negative_sampling":
            return negative_sampling_loss(pos, neg)
        if name == "bpr":
            return bpr_loss(pos, neg)
        logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        return bce_loss(logits, labels)

    def batch_norms(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``mean_b(‖e_u‖² + ‖e_g‖² + Σ_{g'} ‖e_g'‖²)``: the squared norms of the rows a batch uses."""
        rows = (self.user_embedding(batch["user"]), self.item_embedding(batch["pos"]), self.item_embedding(batch["neg"]))
        return sum((r**2).reshape(len(batch["user"]), -1).sum(dim=1) for r in rows).mean()

    def on_train_epoch_start(self) -> None:
        self._epoch_sums = torch.zeros(3)  # Σ_b B·(loss, mean pos score, mean neg score), and Σ_b B
        self._epoch_rows = 0

    def backward_rows(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Set each table's ``.grad`` to the batch loss's gradient, computed on the rows it uses, as a
        coalesced sparse tensor (:func:`row_gradient`); return ``(loss, pos, neg)``, detached.

        With ``u = e_u``, ``p = e_g``, ``n_j = e_{g'_j}`` (``(B, d)``, ``(B, d)``, ``(B, k, d)``), the
        scores ``s⁺ = ⟨u, p⟩ (+ b_g)``, ``s⁻_j = ⟨u, n_j⟩ (+ b_{g'_j})`` and ``γ⁺ = ∂L/∂s⁺``,
        ``γ⁻_j = ∂L/∂s⁻_j`` (autograd through the loss of the scores alone), the chain rule gives
        ``∂/∂u = γ⁺ p + Σ_j γ⁻_j n_j + c u``, ``∂/∂p = γ⁺ u + c p``, ``∂/∂n_j = γ⁻_j u + c n_j``
        and ``∂/∂b = γ`` with ``c = 2 l2 / B`` (the penalty ``l2 · mean_b(...)``). A row used several
        times gets the sum of its uses' gradients: the gradient autograd gives the tables.
        """
        hp: Any = self.hparams
        users, items, negatives = batch["user"], batch["pos"], batch["neg"]
        U, V = self.user_embedding.weight, self.item_embedding.weight
        u, p, n = U.detach()[users], V.detach()[items], V.detach()[negatives]
        pos = (u * p).sum(dim=-1)
        neg = torch.bmm(n, u.unsqueeze(2)).squeeze(2)
        if self.item_bias is not None:
            bias = self.item_bias.weight.detach().squeeze(1)
            pos, neg = pos + bias[items], neg + bias[negatives]
        pos.requires_grad_()
        neg.requires_grad_()
        with torch.enable_grad():
            fit = self.loss(pos, neg)
        g_pos, g_neg = torch.autograd.grad(fit, (pos, neg), allow_unused=True, materialize_grads=True)
        c = 2 * hp.l2 / len(users)
        g_u = g_pos.unsqueeze(1) * p + torch.bmm(g_neg.unsqueeze(1), n).squeeze(1) + c * u
        g_p = g_pos.unsqueeze(1) * u + c * p
        g_n = g_neg.unsqueeze(2) * u.unsqueeze(1) + c * n
        norms = ((u**2).sum(dim=1) + (p**2).sum(dim=1) + (n**2).sum(dim=(1, 2))).mean()
        all_items = torch.cat([items, negatives.reshape(-1)])
        U.grad = row_gradient(users, g_u, U.shape[0])
        V.grad = row_gradient(all_items, torch.cat([g_p, g_n.reshape(-1, V.shape[1])]), V.shape[0])
        if self.item_bias is not None:
            self.item_bias.weight.grad = row_gradient(all_items, torch.cat([g_pos, g_neg.reshape(-1)]).unsqueeze(1), V.shape[0])
        return fit.detach() + hp.l2 * norms, pos.detach(), neg.detach()

    def sgd_rows(self, batch: dict[str, torch.Tensor], lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BPR's per-triple SGD steps over ``batch``, in place (:func:`~recnb.training.bpr_sgd.bpr_sgd_step`);
        returns ``(loss, pos, neg)`` as ``(1,)`` means over the batch's triples, each taken before its step
        (the loss is ``−log σ(x)``, without the penalty)."""
        hp: Any = self.hparams
        bias = self.item_bias.weight.view(-1) if self.item_bias is not None else None
        sums = bpr_sgd_step(self.user_embedding.weight, self.item_embedding.weight, bias,
                            batch["user"], batch["pos"], batch["neg"], lr=lr, l2=hp.l2)
        means = (sums / batch["neg"].numel()).float()
        return means[0], means[1:2], means[2:3]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimiser step on ``batch``; returns the (detached) loss."""
        opt = self.optimizers()
        opt.zero_grad()
        if self.hparams.optimizer == "sgd":
            if self.trainer.world_size > 1:
                raise RuntimeError("optimizer='sgd' updates one process's tables in place, which DDP cannot "
                                   "synchronise: train with optimizer='adagrad' on several processes")
            loss, pos, neg = self.sgd_rows(batch, opt.optimizer.param_groups[0]["lr"])
        elif self.user_embedding.sparse and self.trainer.world_size == 1:  # DDP all-reduces only what backward() makes
            loss, pos, neg = self.backward_rows(batch)
        else:
            pos = self.pair_scores(batch["user"], batch["pos"])
            neg = self.pair_scores(batch["user"], batch["neg"])
            loss = self.loss(pos, neg) + self.hparams.l2 * self.batch_norms(batch)
            self.manual_backward(loss)
        opt.step()  # for "sgd" no table has a gradient: the step changes nothing and counts for the trainer
        b = len(batch["user"])
        with torch.no_grad():  # summed here, logged once per epoch: Lightning's per-step logging costs more than the step
            self._epoch_sums += b * torch.stack([loss.detach(), pos.mean(), neg.mean()])
            self._epoch_rows += b
        return loss.detach()

    def on_train_epoch_end(self) -> None:
        """Log the epoch's row-weighted means of the loss and scores, and the tables' mean norms."""
        if not getattr(self, "_epoch_rows", 0):
            return
        loss, pos, neg = (self._epoch_sums / self._epoch_rows).tolist()
        with torch.no_grad():
            norms = {
                "user_norm": self.user_embedding.weight.norm(dim=1).mean().item(),
                "item_norm": self.item_embedding.weight.norm(dim=1).mean().item(),
            }
        self.log_dict({"train_loss": loss, **norms, "pos_score": pos, "neg_score": neg}, on_step=False, on_epoch=True)

