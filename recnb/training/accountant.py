"""Rényi-DP accounting of the subsampled Gaussian mechanism: the ``(ε, δ)`` of DP-SGD.

One DP-SGD step samples each training example independently with probability ``q`` (Poisson
sampling), sums the clipped per-example gradients (each of norm ``<= C``) and adds
``N(0, σ² C² I)``; ``σ`` is the *noise multiplier*. Mironov, Talwar & Zhang (2019) give its
Rényi divergence of order ``α`` in closed form for integer ``α``:

.. math::  RDP(α) = \\frac{1}{α - 1} \\log A_α, \\qquad
           A_α = \\sum_{i=0}^{α} \\binom{α}{i} (1 - q)^{α - i} q^i \\exp\\Big(\\frac{i^2 - i}{2σ^2}\\Big),

and as a convergent series with ``erfc`` terms for fractional ``α`` (both computed in log space).
RDP composes by addition: ``T`` steps have ``T · RDP(α)``. The guarantee is then turned into
``(ε, δ)``-DP by minimising over the orders ``α``, either with Mironov's (2017) conversion

.. math::  ε = \\min_α\\; RDP(α) + \\frac{\\log(1/δ)}{α - 1}  \\qquad (``conversion="mironov"``)

or with the tighter one of Balle et al. (2020), which Opacus uses (``conversion="balle"``, default):

.. math::  ε = \\min_α\\; RDP(α) + \\log\\frac{α - 1}{α} - \\frac{\\log δ + \\log α}{α - 1}.

The neighbouring relation is add/remove one example, and the analysis assumes Poisson sampling:
fixed-size shuffled batches are a different mechanism (see "How to DP-fy ML", Ponomareva et
al. 2023, §5.6), which is why :mod:`recnb.models.private_embedding` samples its batches Poisson.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

#: the orders Opacus tries by default: 1.1, 1.2, ..., 10.9, then 12, ..., 63
DEFAULT_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


def _log_add(a: float, b: float) -> float:
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _log_sub(a: float, b: float) -> float:
    """``log(e^a - e^b)`` for ``a >= b``."""
    if b == -np.inf:
        return a
    if a == b:
        return -np.inf
    return a + math.log(-math.expm1(b - a))


def _log_erfc(x: float) -> float:
    return math.log(2) + float(special.log_ndtr(-x * math.sqrt(2)))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    log_a = -np.inf
    for i in range(alpha + 1):
        term = (math.log(special.binom(alpha, i)) + i * math.log(q) + (alpha - i) * math.log1p(-q)
                + (i * i - i) / (2 * sigma**2))
        log_a = _log_add(log_a, term)
    return log_a


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    log_a0, log_a1 = -np.inf, -np.inf
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    i = 0
    while True:
        coef = special.binom(alpha, i)
        log_coef = math.log(abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * math.log(q) + j * math.log1p(-q)
        log_t1 = log_coef + j * math.log(q) + i * math.log1p(-q)
        log_s0 = log_t0 + (i * i - i) / (2 * sigma**2) + math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_s1 = log_t1 + (j * j - j) / (2 * sigma**2) + math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        if coef > 0:
            log_a0, log_a1 = _log_add(log_a0, log_s0), _log_add(log_a1, log_s1)
        else:
            log_a0, log_a1 = _log_sub(log_a0, log_s0), _log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30:
            return _log_add(log_a0, log_a1)


def subsampled_gaussian_rdp(q: float, noise_multiplier: float, steps: int,
                            orders: Sequence[float] = DEFAULT_ORDERS) -> np.ndarray:
    """``T · RDP(α)`` of ``steps`` Poisson-subsampled Gaussian steps, one value per order ``α > 1``.

    ``q`` in [0, 1]: sampling rate; ``noise_multiplier`` σ > 0. ``q = 1`` is the plain Gaussian
    mechanism, ``RDP(α) = α / (2σ²)``; ``α = inf`` gives ``inf``.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q (sampling rate) must lie in [0, 1], got {q}")
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier must be > 0, got {noise_multiplier}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    orders = np.atleast_1d(np.asarray(orders, dtype=np.float64))
    if (orders <= 1).any():
        raise ValueError(f"orders must all be > 1, got {orders[orders <= 1].tolist()}")
    out = np.empty(len(orders))
    for k, alpha in enumerate(orders):
        if q == 0:
            out[k] = 0.0
        elif np.isinf(alpha):
            out[k] = np.inf
        elif q == 1:
            out[k] = alpha / (2 * noise_multiplier**2)
        elif float(alpha).is_integer():
            out[k] = _log_a_int(q, noise_multiplier, int(alpha)) / (alpha - 1)
        else:
            out[k] = _log_a_frac(q, noise_multiplier, float(alpha)) / (alpha - 1)
    return out * steps


def rdp_to_epsilon(orders: Sequence[float], rdp: Sequence[float], delta: float,
                   conversion: str = "balle") -> tuple[float, float]:
    """``(ε, best α)`` of an RDP curve at ``δ`` (see the module docstring for both conversions)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    a = np.asarray(orders, dtype=np.float64)
    r = np.asarray(rdp, dtype=np.float64)
    if a.shape != r.shape:
        raise ValueError(f"orders and rdp must have the same length, got {a.shape} and {r.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        if conversion == "mironov":
            eps = r + math.log(1 / delta) / (a - 1)
        elif conversion == "balle":
            eps = r + np.log((a - 1) / a) - (math.log(delta) + np.log(a)) / (a - 1)
        else:
            raise ValueError(f"conversion must be 'balle' or 'mironov', got {conversion!r}")
    eps = np.where(np.isnan(eps), np.inf, eps)
    best = int(np.argmin(eps))
    return max(float(eps[best]), 0.0), float(a[best])


def dp_sgd_epsilon(q: float, noise_multiplier: float, steps: int, delta: float,
                   orders: Sequence[float] = DEFAULT_ORDERS, conversion: str = "balle") -> float:
    """ε of ``steps`` DP-SGD steps with sampling rate ``q`` and noise multiplier σ, at ``δ``."""
    rdp = subsampled_gaussian_rdp(q, noise_multiplier, steps, orders)
    return rdp_to_epsilon(orders, rdp, delta, conversion)[0]
