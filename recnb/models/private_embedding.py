"""The embedding model trained with DP-SGD: user and item vectors, BPR loss, per-example clipping
and Gaussian noise (see :mod:`recnb.training.dp_sgd` for the step, :mod:`recnb.training.accountant`
for the ``(ε, δ)`` it buys).

**The privacy unit is one training interaction** ``(u, i)`` (one example = the pair with its
``n_negatives`` sampled items): the guarantee covers adding or removing one interaction. A user
with ``n`` interactions is a group of ``n``, protected only at ``(nε, n e^{(n-1)ε} δ)``
(:func:`recnb.studies.privacy.laplace.group_privacy`; the ``δ`` term grows exponentially, so for a
few dozen interactions it promises nothing); user-level DP needs each user's contribution bounded
as a whole. The released model contains the user vectors too.

Each step (Lightning manual optimisation, ``automatic_optimization = False``):

1. Poisson sampling: every training pair joins the batch independently with probability ``q``
   (:class:`PoissonPairsDataModule`; an epoch is ``round(1/q)`` steps);
2. per-example gradients of ``ℓ_b = -(1/k) Σ_j log σ(⟨e_u, e_i⟩ - ⟨e_u, e_j⟩)`` with respect to the
   rows the example touches (``e_u``, ``e_i``, ``e_{j}``), by ``torch.func.vmap(grad(...))``;
3. the per-example norm over *both tables* -- rows hit twice (a repeated negative) summed first;
4. clip to ``C``, scatter-add into the tables, add ``N(0, σ² C²)`` to **every** entry of both
   tables, divide by ``qN``, and take a plain SGD step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.func import grad, vmap
from torch.utils.data import DataLoader, Dataset

from recnb.data.datamodule import InteractionDataModule
from recnb.data.sampling import sample_negatives
from recnb.data.schema import Split
from recnb.math.losses import bpr_loss
from recnb.models.embedding import EmbeddingRecommender
from recnb.training.accountant import dp_sgd_epsilon
from recnb.training.dp_sgd import clip_factors, gaussian_noise_like


class _PoissonSteps(Dataset):
    """Step ``k`` of the current epoch: each pair joins with probability ``q``, plus its negatives."""

    def __init__(self, module: PoissonPairsDataModule) -> None:
        self.dm = module
        self.generator = torch.Generator()

    def __len__(self) -> int:
        return self.dm.steps_per_epoch

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        dm = self.dm
        if k == 0:
            self.generator.manual_seed(dm.seed + dm.epoch())
        chosen = torch.rand(dm.n_train, generator=self.generator) < dm.sample_rate
        users = dm.users[chosen]
        neg = sample_negatives(users, dm.n_negatives, dm.positives, None, self.generator, check=False)
        return {"user": users, "pos": dm.items[chosen], "neg": neg}


class PoissonPairsDataModule(InteractionDataModule):
    """:class:`~recnb.data.datamodule.InteractionDataModule` whose training batches are Poisson
    samples of the distinct training pairs (rate ``sample_rate``, ``round(1/sample_rate)`` steps per
    epoch, seeded by ``seed + epoch``); validation batches are unchanged."""

    def __init__(self, split: Split, sample_rate: float, n_negatives: int = 1, seed: int = 0) -> None:
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must lie in (0, 1], got {sample_rate}")
        super().__init__(split, mode="implicit", n_negatives=n_negatives, seed=seed)
        self.sample_rate = sample_rate
        self.steps_per_epoch = max(1, round(1 / sample_rate))

    def epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_PoissonSteps(self), batch_size=None, shuffle=False, num_workers=0)


def _example_loss(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """BPR loss of one example from its rows: ``rows["user"]`` ``(d,)``, ``rows["items"]`` ``(1 + k, d)``
    (the positive first, then the ``k`` negatives)."""
    s = rows["items"] @ rows["user"]
    return bpr_loss(s[:1], s[1:].unsqueeze(0))


def per_example_row_grads(user_rows: torch.Tensor, item_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example gradients of :func:`_example_loss`: ``(B, d)`` for the user rows and
    ``(B, 1 + k, d)`` for the item rows, by ``vmap(grad(...))``."""
    g = vmap(grad(_example_loss))({"user": user_rows, "items": item_rows})
    return g["user"], g["items"]


def table_grad_norms(user_grads: torch.Tensor, item_grads: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``(B,)`` norm of each example's gradient on the full tables.

    An item that fills two slots of an example (a repeated negative) receives the *sum* of their
    row gradients, so ``‖g‖² = ‖g_u‖² + Σ_{j,l: items_j = items_l} ⟨g_j, g_l⟩`` (``items``: ``(B, 1 + k)``).
    """
    same = (items.unsqueeze(2) == items.unsqueeze(1)).to(item_grads.dtype)
    gram = item_grads @ item_grads.transpose(1, 2)
    return torch.sqrt(user_grads.pow(2).sum(dim=1) + (same * gram).sum(dim=(1, 2)))


class DPEmbeddingRecommender(EmbeddingRecommender):
    """:class:`~recnb.models.embedding.EmbeddingRecommender` (BPR, no item bias) trained by DP-SGD.

    Hyper-parameters: ``embedding_dim``; ``n_negatives`` per example; ``lr`` of plain SGD;
    ``init_std``; ``max_epochs`` (each ``round(1/sample_rate)`` steps); ``sample_rate`` q;
    ``noise_multiplier`` σ; ``max_grad_norm`` C; ``seed`` (initialisation); ``noise_seed`` (the
    mechanism's secret randomness: the Gaussian noise and the Poisson sampling of each step, with its
    negatives -- ``None``, the default, draws it from fresh operating-system entropy at every
    ``fit``; an integer reproduces a run, for teaching and tests only: whoever knows it can subtract
    the noise, and the accountant's amplification by subsampling assumes the sample is secret too);
    ``progress``; ``n_users``, ``n_items`` (set by ``build``, as in the parent). After ``fit``, ``steps_`` holds the number of noisy steps taken and
    :meth:`epsilon` the privacy spent. ``noise_multiplier=0`` trains with clipping only (no privacy).
    """

    def __init__(
        self,
        embedding_dim: int = 32,
        n_negatives: int = 4,
        lr: float = 1.0,
        init_std: float = 0.1,
        max_epochs: int = 10,
        sample_rate: float = 0.01,
        noise_multiplier: float = 1.0,
        max_grad_norm: float = 1.0,
        seed: int = 0,
        noise_seed: int | None = None,
        progress: bool = False,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> None:
        super().__init__(embedding_dim=embedding_dim, loss="bpr", n_negatives=n_negatives, lr=lr, l2=0.0,
                         init_std=init_std, max_epochs=max_epochs, seed=seed, progress=progress,
                         n_users=n_users, n_items=n_items)
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must lie in (0, 1], got {sample_rate}")
        if noise_multiplier < 0 or not max_grad_norm > 0:
            raise ValueError(f"noise_multiplier must be >= 0 and max_grad_norm > 0, got {noise_multiplier}, {max_grad_norm}")
        if noise_seed is not None and (isinstance(noise_seed, bool) or not isinstance(noise_seed, int) or noise_seed < 0):
            raise ValueError(f"noise_seed must be None (fresh entropy) or a non-negative integer, got {noise_seed!r}")
        self.hparams.update(sample_rate=sample_rate, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                            noise_seed=noise_seed)
        self.automatic_optimization = False
        self.steps_ = 0
        self.n_examples_ = 0
        self.noise_generator = torch.Generator()
        self._sampling_seed: int | None = None

    def _draw_mechanism_seeds(self) -> None:
        """Seed the noise generator and the sampling from ``noise_seed`` (``None``: 128 bits of fresh
        OS entropy), as two independent streams of ``numpy.random.SeedSequence``; never stored in
        ``hparams`` or the state dict."""
        noise, sampling = (np.random.SeedSequence(self.hparams.get("noise_seed")).generate_state(2, np.uint64) >> 2).tolist()
        self.noise_generator.manual_seed(noise)
        self._sampling_seed = sampling

    def build(self, split: Split) -> None:
        super().build(split)
        self.steps_ = 0
        self._draw_mechanism_seeds()

    def datamodule(self, split: Split) -> PoissonPairsDataModule:
        hp: Any = self.hparams
        if self._sampling_seed is None:
            self._draw_mechanism_seeds()
        dm = PoissonPairsDataModule(split, hp.sample_rate, n_negatives=hp.n_negatives, seed=self._sampling_seed)
        self.n_examples_ = dm.n_train
        return dm

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        hp: Any = self.hparams
        users, items = batch["user"], torch.cat([batch["pos"].unsqueeze(1), batch["neg"]], dim=1)
        U, V = self.user_embedding.weight, self.item_embedding.weight
        grad_u, grad_v = torch.zeros_like(U), torch.zeros_like(V)
        if len(users):
            gu, gi = per_example_row_grads(U.detach()[users], V.detach()[items])
            norms = table_grad_norms(gu, gi, items)
            f = clip_factors(norms, hp.max_grad_norm)
            grad_u.index_add_(0, users, gu * f[:, None])
            grad_v.index_add_(0, items.reshape(-1), (gi * f[:, None, None]).reshape(-1, U.shape[1]))
            with torch.no_grad():
                s = (V[items] @ U[users].unsqueeze(2)).squeeze(2)
                loss = bpr_loss(s[:, 0], s[:, 1:])
            self.log_dict({"train_loss": loss, "clipped_share": (norms > hp.max_grad_norm).float().mean()},
                          on_step=False, on_epoch=True, batch_size=len(users))
        std = hp.noise_multiplier * hp.max_grad_norm
        expected = hp.sample_rate * self.n_examples_
        opt = self.optimizers()
        opt.zero_grad()
        U.grad = (grad_u + gaussian_noise_like(U, std, self.noise_generator)) / expected
        V.grad = (grad_v + gaussian_noise_like(V, std, self.noise_generator)) / expected
        opt.step()
        self.steps_ += 1

    def epsilon(self, delta: float) -> float:
        """ε at ``δ`` of the ``steps_`` steps taken (RDP accountant, Poisson rate ``sample_rate``);
        ``inf`` without noise."""
        hp: Any = self.hparams
        if hp.noise_multiplier == 0:
            return float("inf")
        return dp_sgd_epsilon(hp.sample_rate, hp.noise_multiplier, self.steps_, delta)
