"""DP-SGD (Abadi et al. 2016): per-example gradients, clipping to norm ``C``, Gaussian noise ``σC``.

One step on a batch ``B`` (drawn by Poisson sampling with rate ``q`` from ``N`` examples):

.. math::

    g_b = ∇_θ \\ell(θ; x_b), \\qquad
    \\bar g_b = g_b \\cdot \\min\\Big(1, \\frac{C}{\\lVert g_b \\rVert_2}\\Big), \\qquad
    \\tilde g = \\frac{1}{qN}\\Big(\\sum_{b ∈ B} \\bar g_b + \\mathcal N(0, σ^2 C^2 I)\\Big),

then ``θ ← θ - η \\tilde g``. Clipping bounds what one example can move the sum (sensitivity
``C``); the noise hides it; :mod:`recnb.training.accountant` turns ``(q, σ, steps)`` into ``(ε, δ)``.
The norm ``‖g_b‖`` is over *all* parameters together (every tensor of the model, flattened).

Per-example gradients come from ``torch.func``: ``vmap(grad(loss))`` evaluates the gradient of
one example's loss for every example of the batch in one vectorised call. Gradients are dicts
``name -> (B, *shape)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad, vmap

Grads = dict[str, torch.Tensor]


def per_example_grads(loss: Callable[..., torch.Tensor], params: dict[str, torch.Tensor],
                      *batch: torch.Tensor) -> Grads:
    """Per-example gradients ``{name: (B, *params[name].shape)}``.

    ``loss(params, *example)`` returns the scalar loss of **one** example (each tensor of ``batch``
    without its leading batch dimension ``B``); ``params`` is shared by all examples.
    """
    if not batch:
        raise ValueError("batch must hold at least one tensor with a leading batch dimension")
    sizes = {len(t) for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"every batch tensor must have the same first dimension, got sizes {sorted(sizes)}")
    return vmap(grad(loss), in_dims=(None, *[0] * len(batch)))(params, *batch)


def per_example_norms(grads: Grads) -> torch.Tensor:
    """``(B,)`` Euclidean norm of each example's gradient over all parameters together."""
    if not grads:
        raise ValueError("grads is empty: no parameter gradients to measure")
    return torch.sqrt(sum(g.reshape(len(g), -1).pow(2).sum(dim=1) for g in grads.values()))


def clip_factors(norms: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``min(1, C / ‖g_b‖)`` per example (1 for a zero gradient)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm (C) must be > 0, got {max_norm}")
    return (max_norm / norms.clamp(min=1e-12)).clamp(max=1.0)


def clip_per_example(grads: Grads, max_norm: float) -> Grads:
    """Each example's gradient scaled to norm at most ``C`` = ``max_norm`` (direction kept)."""
    factor = clip_factors(per_example_norms(grads), max_norm)
    return {name: g * factor.reshape(-1, *[1] * (g.ndim - 1)) for name, g in grads.items()}


def gaussian_noise_like(tensor: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """``N(0, std²)`` noise of ``tensor``'s shape and dtype, from ``generator``."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    return torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * std


def noisy_clipped_mean(grads: Grads, max_norm: float, noise_multiplier: float, expected_batch_size: float,
                       generator: torch.Generator) -> Grads:
    """DP-SGD's gradient ``(Σ_b clip(g_b) + N(0, σ²C² I)) / (qN)`` per parameter.

    ``grads``: per-example gradients ``(B, ...)``; ``expected_batch_size`` = ``qN`` (dividing by
    the *expected* size, not the drawn ``B``, keeps the batch size itself private).
    """
    if not expected_batch_size > 0:
        raise ValueError(f"expected_batch_size must be > 0, got {expected_batch_size}")
    clipped = clip_per_example(grads, max_norm)
    return {name: (g.sum(dim=0) + gaussian_noise_like(g[0], noise_multiplier * max_norm, generator))
            / expected_batch_size for name, g in clipped.items()}
