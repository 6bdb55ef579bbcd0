"""The interface every recnb recommender shares.

A recommender is fitted on a :class:`~recnb.data.schema.Split`, then

- ``score(users)`` gives a ``(len(users), n_items)`` float tensor, higher = more relevant;
- ``recommend(users, k)`` ranks those scores with :func:`recnb.math.ranking.rank`, excluding
  each user's training items by default.

Trained models are ``LightningModule`` s (:class:`LightningRecommender`): ``fit`` builds the
DataModule and a seeded :func:`~recnb.training.make_trainer`, or you can drive them with your own
``Trainer`` and :class:`~recnb.data.datamodule.InteractionDataModule`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch

from recnb.data.datamodule import InteractionDataModule
from recnb.data.schema import Split, dense_rows
from recnb.math.metrics import batch_ndcg
from recnb.math.ranking import Ranking, rank
from recnb.training import make_trainer

#: users scored at once by ``recommend`` (and ``evaluate``): peak memory is ``batch * n_items`` scores
BATCH_SIZE = 1024

Users = torch.Tensor | np.ndarray | list[int] | None


def as_user_tensor(users: Users, n_users: int) -> torch.Tensor:
    """User indices as an int64 tensor; ``None`` means all users ``0..n_users-1``."""
    if users is None:
        return torch.arange(n_users)
    out = torch.as_tensor(np.asarray(users), dtype=torch.long).reshape(-1)
    if out.numel() and (out.min() < 0 or out.max() >= n_users):
        raise IndexError(f"user indices must lie in 0..{n_users - 1}, got {out.min().item()}..{out.max().item()}")
    return out


class Recommender(ABC):
    """Base of every recommender: ``fit`` -> ``score`` -> ``recommend``.

    Subclasses implement :meth:`fit` (which must call :meth:`remember_split`) and :meth:`score`.
    """

    #: training interactions as a sparse ``(n_users, n_items)`` CSR matrix, set by :meth:`remember_split`
    seen_: sp.csr_matrix | None = None

    @abstractmethod
    def fit(self, split: Split) -> Self:
        """Learn from ``split.train``; returns ``self``."""

    @abstractmethod
    def score(self, users: Users = None) -> torch.Tensor:
        """Scores ``(len(users), n_items)``, float32, higher = more relevant.

        A new tensor that the caller owns: :meth:`recommend` writes ``-inf`` over the seen items
        of it in place, so it must not be (a view of) anything the model keeps.
        """

    def remember_split(self, split: Split) -> None:
        """Keep what ``recommend`` needs from the split (the sparse seen-item matrix and sizes)."""
        self.seen_ = split.seen_csr()

    def seen_rows(self, users: Users) -> torch.Tensor:
        """Dense ``(len(users), n_items)`` bool mask of the users' training items (one batch)."""
        self._check_fitted()
        return dense_rows(self.seen_, as_user_tensor(users, self.n_users_).numpy())

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return self.seen_.shape[0]

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return self.seen_.shape[1]

    def _check_fitted(self) -> None:
        if self.seen_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call .fit(split) first")

    def recommend(
        self,
        users: Users = None,
        k: int = 10,
        exclude_seen: bool = True,
        threshold: float | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> Ranking:
        """Top-``k`` items per user, best first (see :func:`recnb.math.ranking.rank`).

        ``exclude_seen`` drops each user's training items; ``threshold`` drops items scoring
        below it. Users are scored ``batch_size`` at a time, each batch masked with its own rows of
        the sparse seen matrix (``-inf`` written over the batch's seen entries of the scores
        ``score`` returned), so peak memory is ``batch_size * n_items`` scores whatever the number
        of users. Returns a :class:`~recnb.math.ranking.Ranking` of item *indices*.
        """
        self._check_fitted()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        u = as_user_tensor(users, self.n_users_)
        parts = []
        for start in range(0, max(len(u), 1), batch_size):
            batch = u[start : start + batch_size]
            with torch.no_grad():
                scores = self.score(batch)
            exclude = self.seen_[batch.numpy()] if exclude_seen else None  # the batch's CSR rows
            parts.append(rank(scores, k=k, exclude=exclude, threshold=threshold, in_place=True))
        if len(parts) == 1:
            return parts[0]
        return Ranking(torch.cat([p.indices for p in parts]), torch.cat([p.scores for p in parts]))

    def __repr__(self) -> str:  # short, stable: notebooks print models
        return f"{type(self).__name__}()"


class LightningRecommender(Recommender, pl.LightningModule):
    """A recommender trained by a Lightning ``Trainer``.

    Subclasses define ``build`` (parameters sized for the split), ``datamodule``, ``training_step``
    on the batches of :class:`~recnb.data.datamodule.InteractionDataModule` and ``score``; ``fit``
    does the rest, and validation (when ``fit`` is given a ``validation`` split) logs ``val_ndcg@10``.
    Hyper-parameters given to ``__init__`` are saved with ``save_hyperparameters`` and read back
    from ``self.hparams`` (``max_epochs``, ``batch_size``, ``seed``, ``progress``...).
    """

    def build(self, split: Split) -> None:
        """Create the parameters sized for ``split``, drawn from ``hparams.seed`` (before training)."""
        raise NotImplementedError

    def datamodule(self, split: Split) -> pl.LightningDataModule:
        """The DataModule ``fit`` trains on; subclasses choose batches (triples, ratings...)."""
        raise NotImplementedError

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Log ``val_ndcg@10`` of the batch's users (seen items excluded, as in ``evaluate``)."""
        value, n = batch_ndcg(self.score(batch["user"]), batch["seen"], batch["relevant"], k=10)
        if n:  # sync_dist: under DDP, the mean over ranks (each rank validates every user: the same value)
            self.log("val_ndcg@10", value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)

    def fit(self, split: Split, trainer: pl.Trainer | None = None, validation: Split | None = None) -> Self:
        """Train on ``split.train`` with ``trainer`` (default: :func:`~recnb.training.make_trainer`).

        ``validation``: a Split of the same users and items whose held-out items are validated on
        after every epoch (``val_ndcg@10`` in the logger's history), e.g. ``val =
        holdout_validation(split)`` then ``fit(val, validation=val)``; ``None`` (default): no
        validation loop. ``split.test`` is never looked at. With a multi-process ``trainer``
        (``make_trainer(devices=2)``), the trained weights of rank 0 come back to this object.
        """
        self.remember_split(split)
        self.build(split)
        datamodule = self.datamodule(split)
        if validation is not None:
            if not isinstance(datamodule, InteractionDataModule):
                raise TypeError(f"validation needs an InteractionDataModule, {type(self).__name__}.datamodule gave "
                                f"{type(datamodule).__name__}")
            datamodule.validate_on(validation)
        hp: Any = self.hparams
        if trainer is None:
            trainer = make_trainer(
                max_epochs=hp.get("max_epochs", 10), seed=hp.get("seed", 0), progress=hp.get("progress", False)
            )
        self.trainer_ = trainer
        trainer.fit(self, datamodule=datamodule)
        self.eval()
        return self

    def __repr__(self) -> str:
        return pl.LightningModule.__repr__(self)
