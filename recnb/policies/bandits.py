"""Multi-armed bandits: explore a little to learn what a user (or the population) likes.

A bandit policy faces ``K`` arms (here: product categories). In round ``t`` it picks an arm
``a_t``, observes a reward ``r_t ∈ [0, 1]`` (a click) drawn with mean ``μ_{a_t}``, and updates.
Every policy here has the same interface::

    arm = policy.select(rng, context=None)   # an int in 0..K-1
    policy.update(arm, reward, context=None)

``rng`` is a ``numpy.random.Generator`` the caller owns (the policies hold no global random
state), ``context`` a ``(d,)`` feature vector that only :class:`LinUCB` reads.

**Regret.** With ``μ* = max_a μ_a`` the (pseudo-)regret after ``T`` rounds is

.. math::  R_T = \\sum_{t=1}^{T} (\\mu^* - \\mu_{a_t}) = \\sum_a \\Delta_a \\, N_a(T),
           \\qquad \\Delta_a = \\mu^* - \\mu_a,

the expected clicks lost to not always playing the best arm (``N_a(T)``: plays of arm ``a``).
It uses the means, not the drawn rewards, so it carries no reward noise. A policy that explores
a fixed share ``ε`` of the time loses about ``ε · mean_a Δ_a`` per round for ever: ``R_T`` grows
linearly. UCB1 and Thompson sampling play a bad arm ``O(log T / Δ_a²)`` times: ``R_T = O(log T)``.
For a contextual bandit the best arm depends on the round's context ``x_t`` (the user), and the
regret compares with the per-round best: ``R_T = Σ_t (max_a μ_a(x_t) − μ_{a_t}(x_t))``
(:func:`cumulative_regret` takes the per-round ``μ*`` either way).

Ties in an ``argmax`` go to the lowest arm index (``numpy.argmax``), so a policy is deterministic
given its ``rng``.

Reading runs: :class:`BanditRun` holds one policy's arms, rewards and regret;
:func:`regret_summary` turns runs into one table; :func:`arm_gaps`,
:func:`epsilon_greedy_regret_rate` and :func:`ucb1_play_bound` give the gaps ``Δ_a`` and the two
rates the regret is compared with.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Policy(ABC):
    """A ``K``-armed bandit policy: :meth:`select` an arm, then :meth:`update` it with the reward.

    ``counts_`` ``(K,)`` plays per arm and ``sums_`` ``(K,)`` summed rewards; ``means_`` is their
    ratio (0 for an arm never played); ``t_`` is the number of updates so far.
    """

    def __init__(self, n_arms: int) -> None:
        _check_positive_int("n_arms", n_arms)
        self.n_arms = int(n_arms)
        self.counts_ = np.zeros(self.n_arms, dtype=np.int64)
        self.sums_ = np.zeros(self.n_arms, dtype=np.float64)
        self.t_ = 0

    @property
    def means_(self) -> np.ndarray:
        """``(K,)`` empirical mean reward of each arm, ``sums_ / counts_`` (0 where unplayed)."""
        return np.divide(self.sums_, self.counts_, out=np.zeros(self.n_arms), where=self.counts_ > 0)

    @abstractmethod
    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> int:
        """The arm to play this round."""

    def update(self, arm: int, reward: float, context: np.ndarray | None = None) -> None:
        """Record that ``arm`` gave ``reward`` (in ``[0, 1]``)."""
        if not 0 <= arm < self.n_arms:
            raise IndexError(f"arm must lie in 0..{self.n_arms - 1}, got {arm}")
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must lie in [0, 1], got {reward}")
        self.counts_[arm] += 1
        self.sums_[arm] += reward
        self.t_ += 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_arms={self.n_arms})"


class EpsilonGreedy(Policy):
    """With probability ``ε_t`` a uniformly random arm, otherwise the best empirical mean.

    ``epsilon`` fixed: ``ε_t = ε`` (linear regret). ``decay=c``: the ε_n-greedy schedule of Auer,
    Cesa-Bianchi & Fischer (2002), ``ε_t = min(1, c K / (d² t))`` with ``t`` the round number
    (1-based) and ``gap`` ``d``, a lower bound ``0 < d ≤ min_j Δ_j`` on the gaps between the best
    arm's mean and the others'; their regret bound is logarithmic for ``c > 5``. ``gap=1`` gives
    ``min(1, c K / t)``, which stops exploring far too early when the true gaps are small.
    ``epsilon`` is unused when ``decay`` is set.
    """

    def __init__(self, n_arms: int, epsilon: float = 0.1, decay: float | None = None, gap: float = 1.0) -> None:
        super().__init__(n_arms)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        if decay is not None and decay <= 0:
            raise ValueError(f"decay must be positive (or None for a fixed epsilon), got {decay}")
        if not 0.0 < gap <= 1.0:
            raise ValueError(f"gap must lie in (0, 1] (a lower bound on the arms' mean gaps), got {gap}")
        self.epsilon, self.decay, self.gap = float(epsilon), decay, float(gap)

    def current_epsilon(self) -> float:
        """``ε_t`` of the coming round ``t = t_ + 1``."""
        if self.decay is None:
            return self.epsilon
        return min(1.0, self.decay * self.n_arms / (self.gap**2 * (self.t_ + 1)))

    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> int:
        if rng.random() < self.current_epsilon():
            return int(rng.integers(self.n_arms))
        return int(np.argmax(self.means_))

    def __repr__(self) -> str:
        how = f"epsilon={self.epsilon:g}" if self.decay is None else f"decay={self.decay:g}, gap={self.gap:g}"
        return f"EpsilonGreedy(n_arms={self.n_arms}, {how})"


class UCB1(Policy):
    """Optimism in the face of uncertainty (Auer et al., 2002).

    Each arm is played once (lowest index first); then the arm maximising the index

    .. math::  \\mathrm{UCB}_a(t) = \\bar r_a + c \\sqrt{\\frac{2 \\ln t}{N_a}}

    with ``t`` the number of plays so far and ``N_a`` those of arm ``a`` (``c = 1``: UCB1; the
    bonus is a Hoeffding confidence radius, so an arm's index stays above its true mean with high
    probability and a bad arm stops being played once its radius falls below its gap).
    """

    def __init__(self, n_arms: int, c: float = 1.0) -> None:
        super().__init__(n_arms)
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.c = float(c)

    def index(self) -> np.ndarray:
        """``(K,)`` UCB index of every arm; ``+inf`` for an arm never played."""
        bonus = self.c * np.sqrt(2.0 * np.log(max(self.t_, 1)) / np.maximum(self.counts_, 1))
        return np.where(self.counts_ > 0, self.means_ + bonus, np.inf)

    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> int:
        return int(np.argmax(self.index()))

    def __repr__(self) -> str:
        return f"UCB1(n_arms={self.n_arms}, c={self.c:g})"


class ThompsonSampling(Policy):
    """Beta-Bernoulli Thompson sampling: play each arm with the probability that it is the best.

    Prior ``μ_a ~ Beta(a0, b0)``. A reward ``r ∈ {0, 1}`` updates the posterior by conjugacy:
    ``Beta(α_a + r, β_a + 1 − r)``; a fractional ``r ∈ [0, 1]`` is added the same way. Each round
    draws ``μ̃_a ~ Beta(α_a, β_a)`` for every arm and plays ``argmax μ̃_a``.
    """

    def __init__(self, n_arms: int, a0: float = 1.0, b0: float = 1.0) -> None:
        super().__init__(n_arms)
        if a0 <= 0 or b0 <= 0:
            raise ValueError(f"the Beta prior needs a0 > 0 and b0 > 0, got a0={a0}, b0={b0}")
        self.a0, self.b0 = float(a0), float(b0)

    @property
    def alpha_(self) -> np.ndarray:
        """``(K,)`` posterior ``α_a = a0 + Σ r`` (successes)."""
        return self.a0 + self.sums_

    @property
    def beta_(self) -> np.ndarray:
        """``(K,)`` posterior ``β_a = b0 + Σ (1 − r)`` (failures)."""
        return self.b0 + self.counts_ - self.sums_

    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> int:
        return int(np.argmax(rng.beta(self.alpha_, self.beta_)))

    def __repr__(self) -> str:
        return f"ThompsonSampling(n_arms={self.n_arms}, prior=Beta({self.a0:g}, {self.b0:g}))"


class LinUCB(Policy):
    """Disjoint LinUCB (Li, Chu, Langford & Schapire, 2010): one ridge regression per arm.

    The reward of arm ``a`` in context ``x ∈ R^d`` is modelled as ``x·θ_a``. With the contexts
    ``X_a`` ``(N_a, d)`` and rewards ``y_a`` seen on arm ``a``, and ridge ``λ``:

    .. math::  A_a = \\lambda I + X_a^\\top X_a, \\quad b_a = X_a^\\top y_a, \\quad
               \\hat\\theta_a = A_a^{-1} b_a, \\quad
               p_a(x) = x \\cdot \\hat\\theta_a + \\alpha \\sqrt{x^\\top A_a^{-1} x},

    and the policy plays ``argmax_a p_a(x)``. ``θ̂_a`` is the minimiser of
    ``‖X_a θ − y_a‖² + λ‖θ‖²``; the bonus is the width of its confidence ellipsoid along ``x``.
    """

    def __init__(self, n_arms: int, dim: int, alpha: float = 1.0, ridge: float = 1.0) -> None:
        super().__init__(n_arms)
        _check_positive_int("dim", dim)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        self.dim, self.alpha, self.ridge = int(dim), float(alpha), float(ridge)
        self.A_ = np.tile(self.ridge * np.eye(self.dim), (self.n_arms, 1, 1))  # (K, d, d)
        self.b_ = np.zeros((self.n_arms, self.dim))  # (K, d)

    def _context(self, context: np.ndarray | None) -> np.ndarray:
        if context is None:
            raise ValueError("LinUCB needs a context: a (dim,) feature vector of the round's user")
        x = np.asarray(context, dtype=np.float64).reshape(-1)
        if x.shape != (self.dim,):
            raise ValueError(f"context must have shape ({self.dim},), got {np.shape(context)}")
        return x

    def theta(self) -> np.ndarray:
        """``(K, d)`` ridge estimates ``θ̂_a = A_a^{-1} b_a``."""
        return np.linalg.solve(self.A_, self.b_[:, :, None])[:, :, 0]

    def upper_bounds(self, context: np.ndarray) -> np.ndarray:
        """``(K,)`` ``p_a(x) = x·θ̂_a + α sqrt(xᵀ A_a⁻¹ x)``."""
        x = self._context(context)
        a_inv_x = np.linalg.solve(self.A_, np.broadcast_to(x, (self.n_arms, self.dim))[:, :, None])[:, :, 0]
        return self.theta() @ x + self.alpha * np.sqrt(np.maximum(a_inv_x @ x, 0.0))

    def select(self, rng: np.random.Generator, context: np.ndarray | None = None) -> int:
        return int(np.argmax(self.upper_bounds(context)))

    def update(self, arm: int, reward: float, context: np.ndarray | None = None) -> None:
        x = self._context(context)
        super().update(arm, reward)
        self.A_[arm] += np.outer(x, x)
        self.b_[arm] += reward * x

    def __repr__(self) -> str:
        return f"LinUCB(n_arms={self.n_arms}, dim={self.dim}, alpha={self.alpha:g}, ridge={self.ridge:g})"


def cumulative_regret(best_means: np.ndarray, chosen_means: np.ndarray) -> np.ndarray:
    """``R_t = Σ_{s≤t} (μ*_s − μ_{a_s})`` along the last axis (rounds).

    ``best_means``: ``μ*`` per round (a scalar or an array broadcasting against ``chosen_means``),
    ``chosen_means``: ``(..., T)`` the true mean of the arm played each round.
    """
    chosen = np.asarray(chosen_means, dtype=np.float64)
    gap = np.asarray(best_means, dtype=np.float64) - chosen
    if (gap < -1e-12).any():
        raise ValueError("a chosen mean exceeds the best mean: best_means must be the per-round maximum")
    return np.cumsum(gap, axis=-1)


@dataclass(frozen=True)
class BanditRun:
    """One policy's run: ``arms``, ``rewards`` and cumulative pseudo-``regret``, each ``(..., T)``.

    Leading axes index independent runs (e.g. users), the last one the rounds.
    """

    arms: np.ndarray
    rewards: np.ndarray
    regret: np.ndarray


def arm_gaps(means: np.ndarray) -> np.ndarray:
    """``Δ_a = max_b μ_b − μ_a`` along the last axis (arms): ``(..., K)`` like ``means``, 0 for a best arm."""
    means = np.asarray(means, dtype=np.float64)
    if means.ndim == 0 or means.shape[-1] == 0:
        raise ValueError(f"means must be a (..., K) array of arm means with K >= 1, got shape {means.shape}")
    return means.max(axis=-1, keepdims=True) - means


def epsilon_greedy_regret_rate(means: np.ndarray, epsilon: float) -> np.ndarray:
    """Regret per round that fixed ε-greedy's exploration alone costs: ``ε · (1/K) Σ_a Δ_a``.

    In a share ``ε`` of the rounds it plays a uniform arm, losing ``Δ_a`` on arm ``a``; even with a
    perfect greedy choice the rest of the time, ``R_T ≥ ε T · mean_a Δ_a``: linear in ``T``.
    ``means`` ``(..., K)``; returns ``(...)`` (a 0-d array for one bandit).
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    return epsilon * arm_gaps(means).mean(axis=-1)


def ucb1_play_bound(means: np.ndarray, horizon: int) -> np.ndarray:
    """Auer et al.'s (2002, Theorem 1) bound on UCB1's expected plays of each bad arm in ``T`` rounds.

    .. math::  \\mathbb{E}[N_a(T)] \\le \\frac{8 \\ln T}{\\Delta_a^2} + 1 + \\frac{\\pi^2}{3}
               \\qquad (\\Delta_a > 0).

    ``means`` ``(..., K)`` arm means in ``[0, 1]``, ``horizon`` ``T``. Returns ``(..., K)``; NaN for a
    best arm (``Δ_a = 0``: the theorem says nothing about it).
    """
    _check_positive_int("horizon", horizon)
    gaps = arm_gaps(means)
    bound = np.full(gaps.shape, np.nan)
    bad = gaps > 0
    bound[bad] = 8.0 * np.log(horizon) / gaps[bad] ** 2 + 1.0 + np.pi**2 / 3.0
    return bound


def regret_summary(runs: Mapping[str, BanditRun], tail: float = 0.1) -> pd.DataFrame:
    """One row per policy of ``runs``: how its regret grows, and the clicks it collected.

    Each run's ``regret`` ``(..., T)`` is first averaged over its leading axes (users), giving the
    mean curve ``R_t``. With ``h = ⌊T/2⌋`` and ``m = max(1, round(tail · T))`` the columns are

    - ``R_T``, ``R_T/2`` (``= R_h``) and ``R_T − R_T/2``;
    - ``second / first half`` ``= (R_T − R_h) / R_h`` (NaN when ``R_h = 0``): near 1 when the regret
      grows linearly, near 0 when it has flattened;
    - ``regret per round, last {tail}`` ``= (R_T − R_{T−m}) / m``: the current loss rate;
    - ``clicks per round``: the mean of ``rewards`` over every run and round.
    """
    if not runs:
        raise ValueError("runs must hold at least one {name: BanditRun}")
    if not 0.0 < tail <= 1.0:
        raise ValueError(f"tail must be a share of the rounds in (0, 1], got {tail}")
    rows = {}
    for name, run in runs.items():
        regret = np.asarray(run.regret, dtype=np.float64)
        if regret.ndim == 0 or regret.shape[-1] < 2:
            raise ValueError(f"run {name!r}: regret must be (..., T) with T >= 2 rounds, got shape {regret.shape}")
        r = regret.reshape(-1, regret.shape[-1]).mean(axis=0)
        n_rounds = len(r)
        half, m = n_rounds // 2, max(1, int(round(tail * n_rounds)))
        first, second = r[half - 1], r[-1] - r[half - 1]
        before_tail = r[-m - 1] if m < n_rounds else 0.0
        rows[name] = {
            "R_T": r[-1],
            "R_T/2": first,
            "R_T − R_T/2": second,
            "second / first half": second / first if first > 0 else np.nan,
            f"regret per round, last {tail:.0%}": (r[-1] - before_tail) / m,
            "clicks per round": float(np.mean(run.rewards)),
        }
    return pd.DataFrame(rows).T
