"""Data parallelism in formulas: what DDP's gradient all-reduce computes, and what world size changes.

With ``W`` processes (ranks), each holding a full copy of the model, one training step is:

1. rank ``r`` takes its own batch ``B_r`` of ``b`` rows (a disjoint share of the epoch, see
   :class:`~recnb.data.datamodule.ShardedBatchSampler`) and computes ``g_r = ∇ L(B_r)``, where
   ``L(B) = (1/|B|) Σ_{x ∈ B} ℓ(x)`` is the batch *mean* loss;
2. an **all-reduce** sums the ``W`` gradients and every rank divides by ``W``:
   ``ḡ = (1/W) Σ_r g_r``;
3. every rank applies the same optimiser step with ``ḡ``, so the copies stay identical.

Because every ``B_r`` has the same size ``b``, ``ḡ = (1/W) Σ_r (1/b) Σ_{x ∈ B_r} ∇ℓ(x) =
(1/(W b)) Σ_{x ∈ ∪B_r} ∇ℓ(x) = ∇ L(∪_r B_r)``: the step is the single-process step on a batch of
``W·b`` rows (the *effective batch*). With unequal shards the average is no longer the full-batch
gradient -- which is why ``DistributedSampler`` pads the epoch to a multiple of ``W``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Batch = dict[str, torch.Tensor]


def allreduce_mean(per_rank: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """``ḡ = (1/W) Σ_r g_r`` parameter by parameter: what DDP's gradient all-reduce leaves on every rank.

    ``per_rank``: ``W`` lists, each the gradients of one rank (same shapes in the same order).
    """
    if not per_rank:
        raise ValueError("per_rank must hold the gradients of at least one rank")
    shapes = [tuple(g.shape) for g in per_rank[0]]
    for r, grads in enumerate(per_rank):
        if [tuple(g.shape) for g in grads] != shapes:
            raise ValueError(f"rank {r}'s gradients have shapes {[tuple(g.shape) for g in grads]}, expected {shapes}")
    return [torch.stack(gs).mean(dim=0) for gs in zip(*per_rank)]


def shard_batch(batch: Batch, world_size: int) -> list[Batch]:
    """Cut a batch (a dict of tensors sharing their first dimension) into ``world_size`` contiguous shards.

    Shard sizes differ by at most one row (``torch.tensor_split``); they are equal when
    ``world_size`` divides the batch size.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    sizes = {len(v) for v in batch.values()}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors must share their first dimension, got lengths {sorted(sizes)}")
    parts = {k: torch.tensor_split(v, world_size) for k, v in batch.items()}
    return [{k: parts[k][r] for k in batch} for r in range(world_size)]


def shard_gradients(loss: Callable[[Batch], torch.Tensor], params: Sequence[torch.Tensor], batch: Batch,
                    world_size: int) -> list[list[torch.Tensor]]:
    """The gradients ``g_r = ∇ loss(B_r)`` each of ``world_size`` ranks would compute on its shard
    of ``batch`` (:func:`shard_batch`), by autograd: ``W`` lists, one dense tensor per parameter.

    A sparse gradient (``nn.Embedding(sparse=True)``: only the rows the shard used) is returned
    dense, zeros elsewhere, so that gradients can be averaged and compared entry by entry.
    """
    return [[g.to_dense() if g.is_sparse else g for g in torch.autograd.grad(loss(shard), list(params))]
            for shard in shard_batch(batch, world_size)]


def effective_batch_size(batch_size: int, world_size: int, accumulate_grad_batches: int = 1) -> int:
    """Rows behind one optimiser step: ``batch_size · world_size · accumulate_grad_batches``
    (``world_size`` = devices per node × nodes)."""
    for name, value in (("batch_size", batch_size), ("world_size", world_size),
                        ("accumulate_grad_batches", accumulate_grad_batches)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return batch_size * world_size * accumulate_grad_batches


def scaled_lr(lr: float, world_size: int, rule: str = "linear") -> float:
    """Learning rate for ``world_size`` ranks from one tuned on a single process.

    ``"linear"``: ``lr · W`` (Goyal et al. 2017 for SGD: ``W`` times fewer steps per epoch, each on
    a ``W`` times larger batch whose gradient is an average, so the same distance per epoch needs a
    ``W`` times larger step); ``"sqrt"``: ``lr · √W`` (keeps the step's noise variance, often used
    with Adam); ``"none"``: ``lr``.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    factors = {"linear": float(world_size), "sqrt": math.sqrt(world_size), "none": 1.0}
    if rule not in factors:
        raise ValueError(f"rule must be one of {sorted(factors)}, got {rule!r}")
    return lr * factors[rule]
