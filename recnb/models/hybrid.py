"""Hybrid recommendation: blend a collaborative and a content model (001 §4.2.3).

The document writes ``score(u, i) = α · score_cf(u, i) + (1 - α) · score_cb(u, i)`` on the raw
scores. The two live on different scales (a kNN vote can be 30, a cosine at most 1), so the raw
blend is decided by whichever side has the larger spread and ``α`` barely matters until it is
close to 0. Each user's row is therefore normalised first (:func:`recnb.math.blend.normalise`)::

    score(u, i) = α_u · norm_u(score_cf)(i) + (1 - α_u) · norm_u(score_cb)(i),   α_u ∈ [0, 1]

``α_u`` is ``alpha`` for warm users and ``cold_alpha`` (when given) for *cold* users, those with
fewer than ``cold_threshold`` training interactions: collaborative filtering knows little about
them, so they usually want more content. Normalisation runs over the whole row, seen items
included. ``α = 1`` gives the CF ranking, ``α = 0`` the content ranking (every normalisation is
increasing per row).

``α`` and ``cold_alpha`` are parameters: choose them on a validation split with
:func:`recnb.evaluation.tuning.tune`; :func:`recnb.evaluation.blending.alpha_curve` sweeps ``α`` of
two components fitted once.

One ``α`` for every item cannot serve new items: CF scores an item nobody has bought 0, so any
weight on CF ranks it below every known item with a CF vote. The blends below weigh each *item*
by its support ``n_i`` (training interactions), the same for every user::

    score(u, i) = α_i · norm_u(score_cf)(i) + (1 - α_i) · norm_u(score_cb)(i)

- :class:`SupportHybrid`: ``α_i = n_i / (n_i + β)`` (:func:`recnb.math.blend.support_alpha`);
- :class:`SwitchingHybrid`: ``α_i = 1[n_i ≥ threshold]``, CF for known items and content for the
  others (:func:`recnb.math.blend.switch_alpha`);
- :class:`LearnedBlend`: ``α_i = σ(w · log(1 + n_i) + b)`` with ``w``, ``b`` learnt on held-out
  interactions with the sigmoid loss (:class:`BlendWeights`).

Reserved slots for new items, the fourth way, re-rank two models' lists:
:class:`recnb.policies.slots.ReservedSlots`.
"""

from __future__ import annotations

from typing import Self, Sequence

import numpy as np
import pandas as pd
import torch

from dataclasses import replace

import pytorch_lightning as pl

from recnb.data.datamodule import InteractionDataModule
from recnb.data.schema import Split, SplitLike, as_split
from recnb.data.splits import hold_out_items, holdout_validation
from recnb.math.blend import METHODS, blend, logistic_alpha, normalise, support_alpha, switch_alpha
from recnb.math.losses import negative_sampling_loss
from recnb.math.ranking import PAD, item_indices
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.training import make_trainer


def _check_alpha(name: str, alpha: float | None) -> None:
    if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {alpha}")


def _fit_components(cf: Recommender, content: Recommender, split: Split, fit_components: bool) -> None:
    if fit_components:
        cf.fit(split)
        content.fit(split)
    for name, model in (("cf", cf), ("content", content)):
        if model.seen_ is None:
            raise RuntimeError(f"the {name} component {model!r} is not fitted; fit it or use fit_components=True")
        if model.seen_.shape != (split.n_users, split.n_items):
            raise ValueError(f"the {name} component was fitted on a split of another size: {tuple(model.seen_.shape)}")


class HybridRecommender(Recommender):
    """Per-user normalised ``α``-blend of a CF and a content recommender (see the module docstring).

    ``cf`` and ``content`` are parameters too: ``get_params()`` holds the two models (and, deep,
    ``cf__<name>`` / ``content__<name>``), ``clone()`` clones them, and ``save`` writes them, fitted
    state included, into sub-folders.
    """

    def __init__(
        self,
        cf: Recommender,
        content: Recommender,
        alpha: float = 0.5,
        normalise: str = "minmax",
        cold_alpha: float | None = None,
        cold_threshold: int = 5,
    ) -> None:
        _check_alpha("alpha", alpha)
        _check_alpha("cold_alpha", cold_alpha)
        if normalise not in METHODS:
            raise ValueError(f"normalise must be one of {METHODS}, got {normalise!r}")
        if cold_threshold < 1:
            raise ValueError(f"cold_threshold must be >= 1, got {cold_threshold}")
        self.cf, self.content = cf, content
        self.alpha, self.normalise, self.cold_alpha, self.cold_threshold = alpha, normalise, cold_alpha, cold_threshold

    def fit(self, split: SplitLike, fit_components: bool = True) -> Self:
        """Fit both components on ``split`` (``fit_components=False``: they are already fitted on it)."""
        split = as_split(split)
        _fit_components(self.cf, self.content, split, fit_components)
        self.remember_split(split)
        return self

    def is_cold(self, users: Users = None) -> torch.Tensor:
        """``(U,)`` bool: fewer than ``cold_threshold`` training interactions."""
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return torch.from_numpy(self.seen_[u.numpy()].getnnz(axis=1)) < self.cold_threshold

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        s_cf, s_cb = self.cf.score(u), self.content.score(u)
        out = blend(s_cf, s_cb, self.alpha, normalise=self.normalise)
        if self.cold_alpha is not None:
            cold = self.is_cold(u)
            if cold.any():
                out[cold] = blend(s_cf[cold], s_cb[cold], self.cold_alpha, normalise=self.normalise)
        return out

    def contributions(self, user: int, items: Sequence[int] | np.ndarray | torch.Tensor) -> pd.DataFrame:
        """The two terms of ``score(user)[i]`` for each ``i`` in ``items``: ``α_u norm(s_cf)(i)`` and ``(1 − α_u) norm(s_cb)(i)``.

        ``α_u`` is ``cold_alpha`` for a cold user (when set), else ``alpha``. Returns a frame with
        two rows per item: ``item``, ``source`` (``"cf"``, ``"content"``), ``contributor``
        (``PAD``: no single item or user), ``similarity`` (NaN), ``value`` (the normalised
        component score) and ``contribution``; decompose a component itself with its own
        ``contributions`` for its evidence.
        """
        self._check_fitted()
        u = as_user_tensor([user], self.n_users_)
        idx = item_indices(items, self.n_items_, "items")
        alpha = self.cold_alpha if self.cold_alpha is not None and bool(self.is_cold(u)[0]) else self.alpha
        parts = [normalise(model.score(u).double(), self.normalise)[0, idx] for model in (self.cf, self.content)]
        value = torch.stack(parts, dim=1).reshape(-1).numpy()  # item by item: cf, content
        weight = np.tile([alpha, 1.0 - alpha], len(idx))
        return pd.DataFrame({"item": np.repeat(idx.numpy(), 2), "source": np.tile(["cf", "content"], len(idx)),
                             "contributor": PAD, "similarity": np.nan, "value": value, "contribution": weight * value})

    def __repr__(self) -> str:
        cold = "" if self.cold_alpha is None else f", cold_alpha={self.cold_alpha:g} (< {self.cold_threshold} items)"
        return f"HybridRecommender({self.cf!r}, {self.content!r}, alpha={self.alpha:g}, normalise={self.normalise!r}{cold})"



class _ItemWeightedHybrid(Recommender):
    """Base of the per-item blends: ``α_i · norm_u(s_cf)(i) + (1 − α_i) · norm_u(s_cb)(i)``.

    ``fit`` keeps ``item_alpha_`` ``(n_items,)``, the weight :meth:`item_alpha` gives each item's
    support ``n_i`` in the training data; ``score`` blends with it.
    """

    cf: Recommender
    content: Recommender
    normalise: str
    #: ``(n_items,)`` float32: α_i of every item, set by ``fit``
    item_alpha_: torch.Tensor | None = None

    def item_alpha(self, counts: np.ndarray) -> torch.Tensor:
        """``(n_items,)`` α_i from the items' training interactions ``counts``."""
        raise NotImplementedError

    def fit(self, split: SplitLike, fit_components: bool = True) -> Self:
        """Fit both components on ``split`` (``fit_components=False``: they are already fitted on
        it), then set ``item_alpha_`` from ``split.item_counts()``."""
        split = as_split(split)
        _fit_components(self.cf, self.content, split, fit_components)
        self.item_alpha_ = self.item_alpha(split.item_counts())
        self.remember_split(split)
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return blend(self.cf.score(u), self.content.score(u), self.item_alpha_, normalise=self.normalise)


def _check_normalise(normalise: str) -> None:
    if normalise not in METHODS:
        raise ValueError(f"normalise must be one of {METHODS}, got {normalise!r}")


class SupportHybrid(_ItemWeightedHybrid):
    """Support-weighted blend: ``α_i = n_i / (n_i + β)`` (:func:`recnb.math.blend.support_alpha`).

    A new item (``n_i = 0``) is placed by content alone, an item with ``n_i = β`` interactions by an
    even mix, a well-bought one almost by CF alone. ``beta``: choose it on a validation split that
    has new items of its own (:func:`recnb.evaluation.tuning.tune`).
    """

    def __init__(self, cf: Recommender, content: Recommender, beta: float = 10.0, normalise: str = "minmax") -> None:
        if not float(beta) > 0.0:
            raise ValueError(f"beta must be positive, got {beta}")
        _check_normalise(normalise)
        self.cf, self.content, self.beta, self.normalise = cf, content, beta, normalise

    def item_alpha(self, counts: np.ndarray) -> torch.Tensor:
        return support_alpha(counts, self.beta)

    def __repr__(self) -> str:
        return f"SupportHybrid({self.cf!r}, {self.content!r}, beta={self.beta:g}, normalise={self.normalise!r})"


class SwitchingHybrid(_ItemWeightedHybrid):
    """Switching hybrid (Burke 2002): CF for items with ``n_i ≥ threshold`` training interactions,
    content for the others (:func:`recnb.math.blend.switch_alpha`).

    Each side is normalised per user over the whole catalogue first (``normalise``), so the two
    kinds of item compete on one scale: ``[0, 1]`` for min-max and rank.
    """

    def __init__(self, cf: Recommender, content: Recommender, threshold: int = 1, normalise: str = "minmax") -> None:
        if int(threshold) < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        _check_normalise(normalise)
        self.cf, self.content, self.threshold, self.normalise = cf, content, threshold, normalise

    def item_alpha(self, counts: np.ndarray) -> torch.Tensor:
        return switch_alpha(counts, self.threshold)

    def __repr__(self) -> str:
        return f"SwitchingHybrid({self.cf!r}, {self.content!r}, threshold={self.threshold}, normalise={self.normalise!r})"


class BlendWeights(pl.LightningModule):
    """The trainable part of :class:`LearnedBlend`: ``α_i = σ(w · log(1 + n_i) + b)``.

    Given the per-user normalised component scores ``c = norm_u(s_cf)``, ``q = norm_u(s_cb)``
    ``(n_users, n_items)`` of a validation split and its item supports ``n``, the blended score of a
    pair is ``s_ui = α_i c_ui + (1 − α_i) q_ui`` and its logit ``ℓ_ui = γ s_ui + δ`` (a scale and an
    offset: a blend in ``[0, 1]`` is no logit by itself). Trained on the split's held-out pairs
    ``(u, g)`` with sampled negatives ``g'`` and the sigmoid loss of negative sampling,
    ``−log σ(ℓ_ug) − Σ_g' log σ(−ℓ_ug')`` (:func:`recnb.math.losses.negative_sampling_loss`).
    Only ``w`` and ``b`` change the ranking (``γ > 0``).
    """

    def __init__(self, counts: np.ndarray, cf_scores: torch.Tensor, content_scores: torch.Tensor, lr: float = 0.1) -> None:
        super().__init__()
        self.lr = lr
        self.register_buffer("counts", torch.as_tensor(np.asarray(counts), dtype=torch.float32))
        self.register_buffer("cf_scores", cf_scores.float())
        self.register_buffer("content_scores", content_scores.float())
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.offset = torch.nn.Parameter(torch.zeros(()))

    def alpha(self) -> torch.Tensor:
        """``(n_items,)``: ``σ(w · log(1 + n_i) + b)``."""
        return logistic_alpha(self.counts, self.weight, self.bias)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``γ (α_i c_ui + (1 − α_i) q_ui) + δ`` for ``users`` ``(B,)`` and ``items`` ``(B,)`` or ``(B, K)``."""
        rows = users if items.ndim == 1 else users.unsqueeze(1)
        a = self.alpha()[items]
        return self.scale * (a * self.cf_scores[rows, items] + (1 - a) * self.content_scores[rows, items]) + self.offset

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The sigmoid (negative-sampling) loss of a batch ``{"user": (B,), "pos": (B,), "neg": (B, K)}``."""
        return negative_sampling_loss(self.logits(batch["user"], batch["pos"]), self.logits(batch["user"], batch["neg"]))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["user"]))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class LearnedBlend(_ItemWeightedHybrid):
    """A blend whose per-item weight is learnt: ``α_i = σ(w · log(1 + n_i) + b)`` (:class:`BlendWeights`).

    ``fit(split)`` learns ``w`` and ``b`` from ``split.train`` alone: it carves a validation split
    out of it (:func:`~recnb.data.splits.holdout_validation` with ``validation_ratio``, then
    :func:`~recnb.data.splits.hold_out_items` with ``new_share`` of the items it has rows of, so
    that the validation has new items as the test will), fits clones of the two components on its training part, and trains
    :class:`BlendWeights` on its held-out pairs for ``max_epochs`` epochs with a real ``Trainer``
    (:func:`~recnb.training.make_trainer`), ``n_negatives`` negatives per pair from the
    :class:`~recnb.data.datamodule.InteractionDataModule` sampler, uniform over the items that have
    a held-out pair but not with this user (its popularity sampler with power 0: an item in no
    interaction at all, as the test's new items are, is never a negative). Then it fits the components on
    ``split`` and sets ``item_alpha_`` from ``split.item_counts()``. Fitted: ``blend_weights_``
    ``(2,)`` = ``(w, b)``. The component score tables of the validation split are dense
    ``(n_users, n_items)``: for catalogues of teaching size.
    :func:`recnb.math.blend.support_alpha` is the special case ``w = 1``, ``b = −log β`` on ``log n``.
    """

    def __init__(
        self,
        cf: Recommender,
        content: Recommender,
        normalise: str = "minmax",
        validation_ratio: float = 0.25,
        new_share: float = 0.1,
        n_negatives: int = 4,
        max_epochs: int = 30,
        lr: float = 0.1,
        batch_size: int = 512,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        _check_normalise(normalise)
        for name, value in (("n_negatives", n_negatives), ("max_epochs", max_epochs), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not float(lr) > 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.cf, self.content, self.normalise = cf, content, normalise
        self.validation_ratio, self.new_share, self.n_negatives = validation_ratio, new_share, n_negatives
        self.max_epochs, self.lr, self.batch_size, self.seed, self.progress = max_epochs, lr, batch_size, seed, progress

    #: ``(2,)`` float32: the learnt ``(w, b)``, set by ``fit``
    blend_weights_: torch.Tensor | None = None

    def weights_module(self, validation: Split) -> BlendWeights:
        """An untrained :class:`BlendWeights` on ``validation`` (clones of the components fitted on its training part)."""
        cf, content = self.cf.clone(), self.content.clone()
        cf.fit(validation)
        content.fit(validation)
        users = torch.arange(validation.n_users)
        return BlendWeights(validation.item_counts(), normalise(cf.score(users), self.normalise),
                            normalise(content.score(users), self.normalise), lr=self.lr)

    def fit(self, split: SplitLike, fit_components: bool = True) -> Self:
        split = as_split(split)
        validation = holdout_validation(split, ratio=self.validation_ratio, seed=self.seed)
        validation, _ = hold_out_items(validation, share=self.new_share, seed=self.seed,
                                       among=np.flatnonzero(validation.item_counts() > 0))
        module = self.weights_module(validation)
        held_out = replace(validation, train=validation.test, name=f"{validation.name} | held-out pairs")
        # popularity sampler, power 0: uniform over the items with a held-out pair, so an item in no
        # interaction at all (one that arrives only later, as the test's new items) is never a negative
        data = InteractionDataModule(held_out, batch_size=self.batch_size, n_negatives=self.n_negatives,
                                     sampler="popularity", popularity_power=0.0, seed=self.seed)
        make_trainer(max_epochs=self.max_epochs, seed=self.seed, progress=self.progress).fit(module, datamodule=data)
        self.blend_weights_ = torch.stack([module.weight.detach(), module.bias.detach()]).float()
        return super().fit(split, fit_components=fit_components)

    def item_alpha(self, counts: np.ndarray) -> torch.Tensor:
        return logistic_alpha(counts, self.blend_weights_[0], self.blend_weights_[1])

    def __repr__(self) -> str:
        return f"LearnedBlend({self.cf!r}, {self.content!r}, normalise={self.normalise!r}, max_epochs={self.max_epochs})"
