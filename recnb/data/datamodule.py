"""``InteractionDataModule``: the batches every Lightning recommender trains and validates on.

Training batches (one epoch = one pass over the training rows, in a fresh order):

- ``mode="implicit"``: ``{"user": (B,), "pos": (B,), "neg": (B, n_neg)}`` int64 -- every distinct
  training pair ``(u, i)`` once per epoch, with ``n_neg`` negatives per row drawn by
  :func:`~recnb.data.sampling.sample_negatives` (``sampler="uniform"``, or ``"popularity"``:
  ``∝ count_j ** popularity_power``), never a training positive of ``u``; the ``n_neg`` draws of
  a row are independent, so a row may repeat a negative.
- ``mode="explicit"``: ``{"user": (B,), "item": (B,), "rating": (B,) float32}`` -- the training
  rows that carry a rating.

Validation batches (the ``test`` part of the split; its users in index order):
``{"user": (b,), "seen": bool (b, n_items), "relevant": bool (b, n_items)}`` -- the training
items to exclude and the held-out items to find.

Determinism: epoch ``e`` draws its order and negatives from a ``torch.Generator`` seeded with
``seed + e`` (``e`` = the trainer's current epoch, or a count of passes without a trainer), so the
same seed gives the same batches in every run. Data stays in memory; ``num_workers=0``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from recnb.data.sampling import PositiveSet, check_feasible, sample_negatives
from recnb.data.schema import ITEM_IDX, RATING, USER_IDX, Split


class _EpochBatches(Dataset):
    """Batch ``k`` of the current epoch; asking for batch 0 starts a new epoch.

    A map-style dataset of whole batches read in order (``DataLoader(batch_size=None)``): batch 0
    seeds a generator with ``seed + epoch()`` and draws the epoch's row order; every batch then
    draws its negatives from that generator, so an epoch read in order is reproducible.
    """

    def __init__(self, n_rows: int, batch_size: int, epoch: Callable[[], int], seed: int,
                 batch: Callable[[torch.Tensor, torch.Generator], dict[str, torch.Tensor]], shuffle: bool) -> None:
        self.n_rows, self.batch_size, self.epoch, self.seed = n_rows, batch_size, epoch, seed
        self.batch, self.shuffle = batch, shuffle
        self.generator = torch.Generator()
        self.order = torch.arange(n_rows)

    def __len__(self) -> int:
        return -(-self.n_rows // self.batch_size)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if k == 0:
            self.generator.manual_seed(self.seed + self.epoch())
            if self.shuffle:
                self.order = torch.randperm(self.n_rows, generator=self.generator)
        return self.batch(self.order[k * self.batch_size:(k + 1) * self.batch_size], self.generator)


class InteractionDataModule(pl.LightningDataModule):
    """Training and validation batches from a :class:`~recnb.data.schema.Split` (see module doc)."""

    def __init__(
        self,
        split: Split,
        mode: str = "implicit",
        batch_size: int = 1024,
        n_neg: int = 1,
        sampler: str = "uniform",
        popularity_power: float = 1.0,
        seed: int = 0,
        eval_batch_size: int = 512,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("implicit", "explicit"):
            raise ValueError(f"mode must be 'implicit' or 'explicit', got {mode!r}")
        if sampler not in ("uniform", "popularity"):
            raise ValueError(f"sampler must be 'uniform' or 'popularity', got {sampler!r}")
        if batch_size < 1 or eval_batch_size < 1 or n_neg < 1:
            raise ValueError(f"batch_size, eval_batch_size and n_neg must be >= 1, got {batch_size}, {eval_batch_size}, {n_neg}")
        self.split, self.mode, self.batch_size, self.n_neg = split, mode, batch_size, n_neg
        self.sampler, self.popularity_power, self.seed = sampler, popularity_power, seed
        self.eval_batch_size, self.shuffle = eval_batch_size, shuffle
        self._passes = 0

        train = split.train
        if mode == "implicit":
            pairs = np.unique(train[[USER_IDX, ITEM_IDX]].to_numpy(dtype=np.int64), axis=0).reshape(-1, 2)
            self.users = torch.as_tensor(pairs[:, 0])
            self.items = torch.as_tensor(pairs[:, 1])
            self.positives = PositiveSet(self.users, self.items, split.n_users, split.n_items)
            counts = torch.bincount(self.items, minlength=split.n_items).double()
            self.weights = counts**popularity_power if sampler == "popularity" else None
            if self.weights is not None:
                self.weights[counts == 0] = 0.0
            check_feasible(self.users, self.positives, self.weights)
        else:
            rated = train[train[RATING].notna()]
            if rated.empty:
                raise ValueError("mode='explicit' needs training rows with a rating; this split has none")
            self.users = torch.as_tensor(rated[USER_IDX].to_numpy(np.int64))
            self.items = torch.as_tensor(rated[ITEM_IDX].to_numpy(np.int64))
            self.ratings = torch.as_tensor(rated[RATING].to_numpy(np.float32))

    @property
    def n_train(self) -> int:
        """Training rows per epoch (distinct pairs, or rated rows)."""
        return len(self.users)

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.current_epoch)
        self._passes += 1
        return self._passes - 1

    def _batch(self, idx: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        if self.mode == "explicit":
            return {"user": self.users[idx], "item": self.items[idx], "rating": self.ratings[idx]}
        users = self.users[idx]
        neg = sample_negatives(users, self.n_neg, self.positives, self.weights, g, check=False)
        return {"user": users, "pos": self.items[idx], "neg": neg}

    def train_dataloader(self) -> DataLoader:
        data = _EpochBatches(self.n_train, self.batch_size, self._epoch, self.seed, self._batch, self.shuffle)
        return DataLoader(data, batch_size=None, shuffle=False, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        seen = self.split.seen_mask()
        relevant = self.split.test_matrix()
        users = torch.as_tensor(self.split.test_users, dtype=torch.long)
        batches = [
            {"user": u, "seen": seen[u], "relevant": relevant[u]} for u in torch.split(users, self.eval_batch_size)
        ]
        return DataLoader(batches, batch_size=None, num_workers=0)

    def test_dataloader(self) -> DataLoader:
        """The same batches as :meth:`val_dataloader`."""
        return self.val_dataloader()
