"""``InteractionDataModule``: the batches every Lightning recommender trains and validates on.

Training batches (one epoch = one pass over the training rows, in a fresh order):

- ``mode="implicit"``: ``{"user": (B,), "pos": (B,), "neg": (B, n_negatives)}`` int64 -- every distinct
  training pair ``(u, i)`` once per epoch, with ``n_negatives`` negatives per row drawn by
  :func:`~recnb.data.sampling.sample_negatives` (``sampler="uniform"``, or ``"popularity"``:
  ``∝ count_j ** popularity_power``), never a training positive of ``u``; the ``n_negatives`` draws of
  a row are independent, so a row may repeat a negative.
- ``mode="explicit"``: ``{"user": (B,), "item": (B,), "rating": (B,) float32}`` -- the training
  rows that carry a rating.

Validation batches exist only when a ``validation`` split is given (otherwise ``val_dataloader``
is empty and Lightning runs no validation loop): the users with a held-out item in
``validation.test``, in index order, as ``{"user": (b,), "seen": bool (b, n_items), "relevant":
bool (b, n_items)}`` -- the training items of ``split`` (excluded from ranking and relevance) and
the validation items to find. Each block is cut from the sparse matrices per batch
(:func:`~recnb.data.schema.dense_rows`): memory ``eval_batch_size * n_items``, never the whole
matrix. ``split.test`` is never served for validation; ``test_dataloader`` serves it, for
``trainer.test``.

**Sharding and determinism.** The training rows of one epoch are dealt out by
:class:`ShardedBatchSampler`, a :class:`~torch.utils.data.DistributedSampler` that yields whole
batches: with world size ``W`` (1 in a single process, ``trainer.world_size`` under DDP) and rank
``r``, epoch ``e`` permutes the ``N`` rows with ``torch.randperm`` seeded by ``seed + e``, pads the
permutation to a multiple of ``W`` by repeating its first rows, and rank ``r`` takes positions
``r, r + W, r + 2W, ...`` -- a disjoint share of ``ceil(N / W)`` rows -- cut into batches of
``batch_size``. The ``k``-th batch of rank ``r`` in epoch ``e`` draws its negatives from a
``torch.Generator`` seeded by ``SeedSequence((seed, e, r, k))``. So the batches depend on ``(seed,
W, batch_size)`` and on nothing else: the same seed and world size give the same batches, run
after run; a different world size gives different (equally valid) batches. ``e`` is the trainer's
current epoch (Lightning calls ``set_epoch``), or a count of passes when iterated without a
trainer. Data stays in memory; ``num_workers=0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from recnb.data.sampling import PositiveSet, check_feasible, sample_negatives
from recnb.data.schema import ITEM_IDX, RATING, USER_IDX, Split, dense_rows
from recnb.data.validation import check_seed


def steps_per_epoch(n_rows: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch of ``n_rows`` rows on ``world_size`` ranks with per-rank batches of ``batch_size``.

    Each rank gets ``⌈n_rows / W⌉`` rows (the epoch is padded to a multiple of ``W``, as
    ``DistributedSampler`` does) and cuts them into batches, the last one possibly short:
    ``⌈⌈n_rows / W⌉ / b⌉`` steps -- about ``W`` times fewer than on one process.
    """
    for name, value in (("batch_size", batch_size), ("world_size", world_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(n_rows, int) or n_rows < 0:
        raise ValueError(f"n_rows must be a non-negative integer, got {n_rows!r}")
    return math.ceil(math.ceil(n_rows / world_size) / batch_size)


class BatchKey(NamedTuple):
    """What :class:`ShardedBatchSampler` yields: batch ``number`` of ``rank`` in ``epoch``, its ``rows``."""

    epoch: int
    rank: int
    number: int
    rows: torch.Tensor


def batch_generator(seed: int, epoch: int, rank: int, number: int) -> torch.Generator:
    """The ``torch.Generator`` batch ``number`` of ``rank`` in ``epoch`` draws its negatives from.

    Seeded by ``numpy.random.SeedSequence((seed, epoch, rank, number))``, which mixes the four
    integers into an independent stream for each batch (nearby seeds do not give related streams).
    """
    state = np.random.SeedSequence((seed, epoch, rank, number)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class ShardedBatchSampler(DistributedSampler):
    """Rank ``rank``'s disjoint share of an epoch's ``n_rows`` training rows, in batches of ``batch_size``.

    The row order is :class:`~torch.utils.data.DistributedSampler`'s (``drop_last=False``): a
    permutation seeded by ``seed + epoch`` (or ``0..n_rows-1`` with ``shuffle=False``), padded to a
    multiple of ``num_replicas`` with its first rows, positions ``rank::num_replicas``. Yields
    :class:`BatchKey` s; ``set_epoch(e)`` (called by Lightning before each epoch) picks the epoch.
    Being a ``DistributedSampler``, Lightning leaves it in place instead of adding its own.
    """

    def __init__(self, n_rows: int, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(range(n_rows), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=False)
        self.n_rows, self.batch_size = n_rows, batch_size

    def rows(self) -> torch.Tensor:
        """This rank's rows of the current epoch, in order: ``(num_samples,)`` int64."""
        if self.shuffle:
            order = torch.randperm(self.n_rows, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n_rows)
        padding = self.total_size - self.n_rows
        if padding:
            order = torch.cat([order, order.repeat(-(-padding // max(self.n_rows, 1)))[:padding]])
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[BatchKey]:  # type: ignore[override]
        rows = self.rows()
        for number, start in enumerate(range(0, len(rows), self.batch_size)):
            yield BatchKey(self.epoch, self.rank, number, rows[start : start + self.batch_size])

    def __len__(self) -> int:
        return steps_per_epoch(self.n_rows, self.batch_size, self.num_replicas)


class _TrainBatches(Dataset):
    """Map-style dataset of whole batches: ``dataset[BatchKey]`` -> the batch's tensors."""

    def __init__(self, module: InteractionDataModule) -> None:
        self.module = module

    def __getitem__(self, key: BatchKey) -> dict[str, torch.Tensor]:
        m = self.module
        return m.training_batch(key.rows, batch_generator(m.seed, key.epoch, key.rank, key.number))

    def __len__(self) -> int:
        return self.module.n_train


class InteractionDataModule(pl.LightningDataModule):
    """Training and validation batches from a :class:`~recnb.data.schema.Split` (see module doc).

    ``validation``: an optional Split of the same users and items whose ``test`` part holds the
    validation items (e.g. :func:`recnb.data.splits.holdout_validation` of the test split, trained
    on through its own ``train`` part: ``InteractionDataModule(val, validation=val)``). Without it
    there is no validation loop, so no per-epoch validation curve.
    """

    def __init__(
        self,
        split: Split,
        mode: str = "implicit",
        batch_size: int = 2048,
        n_negatives: int = 4,
        sampler: str = "uniform",
        popularity_power: float = 1.0,
        seed: int = 0,
        eval_batch_size: int = 512,
        shuffle: bool = True,
        validation: Split | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("implicit", "explicit"):
            raise ValueError(f"mode must be 'implicit' or 'explicit', got {mode!r}")
        if sampler not in ("uniform", "popularity"):
            raise ValueError(f"sampler must be 'uniform' or 'popularity', got {sampler!r}")
        if batch_size < 1 or eval_batch_size < 1 or n_negatives < 1:
            raise ValueError(f"batch_size, eval_batch_size and n_negatives must be >= 1, got {batch_size}, {eval_batch_size}, {n_negatives}")
        self.split, self.mode, self.batch_size, self.n_negatives = split, mode, batch_size, n_negatives
        self.sampler, self.popularity_power, self.seed = sampler, popularity_power, check_seed(seed)
        self.eval_batch_size, self.shuffle = eval_batch_size, shuffle
        self.validation: Split | None = None
        if validation is not None:
            self.validate_on(validation)
        self._passes = 0

        train = split.train
        if train.empty:
            raise ValueError(f"split {split.name!r} has no training rows: nothing to train on")
        if mode == "implicit":
            csr = split.train_csr("binary")
            self.users = torch.as_tensor(np.repeat(np.arange(split.n_users), np.diff(csr.indptr)), dtype=torch.long)
            self.items = torch.as_tensor(csr.indices, dtype=torch.long)
            self.positives = PositiveSet.from_csr(csr)
            counts = torch.as_tensor(split.item_counts(), dtype=torch.float64)
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

    def validate_on(self, validation: Split) -> InteractionDataModule:
        """Serve ``validation.test`` as the validation batches (checked by :func:`check_validation`)."""
        check_validation(self.split, validation)
        self.validation = validation
        return self

    @property
    def n_train(self) -> int:
        """Training rows per epoch (distinct pairs, or rated rows), over all ranks."""
        return len(self.users)

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.current_epoch)
        self._passes += 1
        return self._passes - 1

    def training_batch(self, idx: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        """The batch of training rows ``idx`` ``(B,)``; negatives (implicit mode) drawn from ``g``."""
        if self.mode == "explicit":
            return {"user": self.users[idx], "item": self.items[idx], "rating": self.ratings[idx]}
        users = self.users[idx]
        neg = sample_negatives(users, self.n_negatives, self.positives, self.weights, g, check=False)
        return {"user": users, "pos": self.items[idx], "neg": neg}

    def train_dataloader(self, rank: int | None = None, world_size: int | None = None) -> DataLoader:
        """This rank's batches (see module doc); ``rank``/``world_size`` default to the trainer's (0, 1)."""
        trainer = getattr(self, "trainer", None)
        world_size = world_size if world_size is not None else (trainer.world_size if trainer is not None else 1)
        rank = rank if rank is not None else (trainer.global_rank if trainer is not None else 0)
        batches = ShardedBatchSampler(self.n_train, self.batch_size, num_replicas=world_size, rank=rank,
                                      shuffle=self.shuffle, seed=self.seed)
        batches.set_epoch(self._epoch())
        return DataLoader(_TrainBatches(self), sampler=batches, batch_size=None, num_workers=0)

    def val_dataloader(self) -> Any:
        """Batches of the validation split's held-out items; empty (no validation loop) without one.

        Every rank evaluates every validation user (the weights are the same on all ranks, so so is
        the value): simple, and exact.
        """
        if self.validation is None:
            return []
        return DataLoader(_LazyBlocks(self, self.validation), batch_size=None, num_workers=0)

    def test_dataloader(self) -> DataLoader:
        """The same batches for ``split.test`` (for ``trainer.test``; never used for validation)."""
        return DataLoader(_LazyBlocks(self, self.split), batch_size=None, num_workers=0)


class _LazyBlocks(Dataset):
    """Evaluation batch ``k``: users ``k*b .. (k+1)*b`` of ``target.test_users``, built when read."""

    def __init__(self, module: InteractionDataModule, target: Split) -> None:
        self.seen, self.relevant = module.split.seen_csr(), target.test_csr()
        self.users = torch.as_tensor(target.test_users, dtype=torch.long)
        self.size = module.eval_batch_size

    def __len__(self) -> int:
        return -(-len(self.users) // self.size)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        u = self.users[k * self.size : (k + 1) * self.size]
        return {"user": u, "seen": dense_rows(self.seen, u.numpy()), "relevant": dense_rows(self.relevant, u.numpy())}


def check_validation(split: Split, validation: Split) -> None:
    """Raise unless ``validation`` indexes the same users and items as ``split`` and holds at least
    one held-out pair that is not a training pair of ``split`` (else validation would score
    training items, which ranking excludes)."""
    if not isinstance(validation, Split):
        raise TypeError(f"validation must be a Split, got {type(validation).__name__}")
    if (validation.n_users, validation.n_items) != (split.n_users, split.n_items):
        raise ValueError(f"validation must index the same users and items as split: got {validation.n_users} x "
                         f"{validation.n_items}, expected {split.n_users} x {split.n_items}")
    held = validation.test_csr()
    if held.nnz == 0 or held.nnz == held.multiply(split.seen_csr()).nnz:
        raise ValueError("validation.test has no held-out pair outside split's training pairs: train on the "
                         "validation split's own train part, e.g. val = holdout_validation(split); "
                         "InteractionDataModule(val, validation=val)")
