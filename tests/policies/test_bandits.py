import math

import numpy as np
import pytest
from scipy import stats

from recnb.policies.bandits import (
    UCB1,
    BanditRun,
    EpsilonGreedy,
    LinUCB,
    ThompsonSampling,
    arm_gaps,
    cumulative_regret,
    epsilon_greedy_regret_rate,
    regret_summary,
    ucb1_play_bound,
)


def _play(policy, means, n_rounds, seed):
    """Play a Bernoulli bandit; returns the true means of the arms played, in order."""
    rng = np.random.default_rng(seed)
    chosen = np.empty(n_rounds)
    for t in range(n_rounds):
        a = policy.select(rng)
        policy.update(a, float(rng.random() < means[a]))
        chosen[t] = means[a]
    return chosen


def test_ucb_index_by_hand():
    p = UCB1(3)
    rng = np.random.default_rng(0)
    # untried arms first, lowest index first
    assert [p.select(rng) for _ in range(1)] == [0]
    for arm, r in [(0, 1.0), (1, 0.0), (2, 1.0), (0, 0.0), (2, 1.0)]:
        p.update(arm, r)
    # t = 5; arm 0: mean 1/2, N=2; arm 1: mean 0, N=1; arm 2: mean 1, N=2
    expected = [0.5 + math.sqrt(2 * math.log(5) / 2), 0.0 + math.sqrt(2 * math.log(5) / 1), 1.0 + math.sqrt(2 * math.log(5) / 2)]
    np.testing.assert_allclose(p.index(), expected)
    assert p.select(rng) == 2


def test_ucb_plays_every_arm_once_first():
    p = UCB1(4)
    rng = np.random.default_rng(0)
    order = []
    for _ in range(4):
        a = p.select(rng)
        order.append(a)
        p.update(a, 1.0)
    assert order == [0, 1, 2, 3]


def test_thompson_posterior_is_beta_conjugate():
    p = ThompsonSampling(2, a0=2.0, b0=3.0)
    rewards = [1, 0, 1, 1, 0]
    for r in rewards:
        p.update(0, r)
    assert p.alpha_[0] == 2.0 + 3 and p.beta_[0] == 3.0 + 2
    assert p.alpha_[1] == 2.0 and p.beta_[1] == 3.0
    # the draws of select follow the posterior: P(arm 0 wins) = P(X > Y), X~Beta(5,5), Y~Beta(2,3)
    rng = np.random.default_rng(1)
    wins = np.mean([p.select(rng) == 0 for _ in range(4000)])
    x = np.linspace(0, 1, 20001)
    exact = np.trapezoid(stats.beta(5, 5).pdf(x) * stats.beta(2, 3).cdf(x), x)
    assert wins == pytest.approx(exact, abs=0.025)


def test_linucb_ridge_matches_lstsq():
    rng = np.random.default_rng(0)
    d, ridge = 3, 0.7
    p = LinUCB(2, dim=d, alpha=0.5, ridge=ridge)
    X = rng.normal(size=(30, d))
    y = rng.random(30)
    arms = rng.integers(0, 2, 30)
    for x, r, a in zip(X, y, arms):
        p.update(int(a), float(r), context=x)
    for a in range(2):
        Xa, ya = X[arms == a], y[arms == a]
        aug_X = np.vstack([Xa, math.sqrt(ridge) * np.eye(d)])
        aug_y = np.concatenate([ya, np.zeros(d)])
        expected = np.linalg.lstsq(aug_X, aug_y, rcond=None)[0]
        np.testing.assert_allclose(p.theta()[a], expected, atol=1e-10)
    x = X[0]
    A0 = ridge * np.eye(d) + X[arms == 0].T @ X[arms == 0]
    bound0 = x @ p.theta()[0] + 0.5 * math.sqrt(x @ np.linalg.solve(A0, x))
    assert p.upper_bounds(x)[0] == pytest.approx(bound0)


def test_linucb_needs_context():
    with pytest.raises(ValueError, match="context"):
        LinUCB(2, dim=3).select(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        LinUCB(2, dim=3).select(np.random.default_rng(0), context=np.ones(2))


def test_epsilon_schedules():
    fixed = EpsilonGreedy(4, epsilon=0.2)
    decaying = EpsilonGreedy(4, decay=0.5)
    assert fixed.current_epsilon() == 0.2
    assert decaying.current_epsilon() == 1.0  # min(1, 0.5 * 4 / 1)
    for _ in range(9):
        decaying.update(0, 0.0)
    assert decaying.current_epsilon() == pytest.approx(0.5 * 4 / 10)
    greedy = EpsilonGreedy(3, epsilon=0.0)
    greedy.update(1, 1.0)
    assert greedy.select(np.random.default_rng(0)) == 1
    # Auer et al.'s schedule with a gap bound d: eps_t = min(1, c K / (d^2 t)), so 1 until t = c K / d^2
    auer = EpsilonGreedy(4, decay=0.5, gap=0.1)  # c K / d^2 = 200
    for _ in range(198):  # the coming round is t = 199
        auer.update(0, 0.0)
    assert auer.current_epsilon() == 1.0
    for _ in range(201):
        auer.update(0, 0.0)
    assert auer.current_epsilon() == pytest.approx(0.5 * 4 / (0.01 * 400))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="gap"):
            EpsilonGreedy(4, decay=0.5, gap=bad)


def test_ucb_regret_sublinear_and_fixed_epsilon_linear():
    means = np.array([0.2, 0.35, 0.5, 0.3])
    T = 4000
    reg_ucb = np.mean([cumulative_regret(means.max(), _play(UCB1(4), means, T, s)) for s in range(5)], axis=0)
    reg_eps = np.mean([cumulative_regret(means.max(), _play(EpsilonGreedy(4, 0.2), means, T, s)) for s in range(5)], axis=0)
    h = T // 2
    # UCB: the second half adds less regret than the first; fixed ε: about as much (linear)
    assert reg_ucb[-1] - reg_ucb[h - 1] < 0.6 * reg_ucb[h - 1]
    second, first = reg_eps[-1] - reg_eps[h - 1], reg_eps[h - 1]
    assert 0.8 < second / first < 1.25
    # the fixed-ε loss rate is ε · mean gap in the long run
    assert second / h == pytest.approx(epsilon_greedy_regret_rate(means, 0.2), rel=0.25)
    assert reg_ucb[-1] < reg_eps[-1]


def test_thompson_beats_fixed_epsilon():
    means = np.array([0.1, 0.15, 0.3])
    r_ts = cumulative_regret(0.3, _play(ThompsonSampling(3), means, 2000, 3))[-1]
    r_eps = cumulative_regret(0.3, _play(EpsilonGreedy(3, 0.2), means, 2000, 3))[-1]
    assert r_ts < r_eps


def test_seeded_reproducibility():
    means = np.array([0.2, 0.5, 0.4])
    a = _play(ThompsonSampling(3), means, 300, 7)
    b = _play(ThompsonSampling(3), means, 300, 7)
    c = _play(ThompsonSampling(3), means, 300, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cumulative_regret_and_errors():
    np.testing.assert_allclose(cumulative_regret(0.5, [0.5, 0.2, 0.4]), [0.0, 0.3, 0.4])
    np.testing.assert_allclose(cumulative_regret(np.array([0.5, 0.9]), [0.5, 0.2]), [0.0, 0.7])
    with pytest.raises(ValueError, match="best_means"):
        cumulative_regret(0.1, [0.5])
    with pytest.raises(ValueError, match="n_arms"):
        UCB1(0)
    with pytest.raises(ValueError, match="reward"):
        UCB1(2).update(0, 2.0)
    with pytest.raises(IndexError, match="arm"):
        UCB1(2).update(5, 1.0)
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(2, epsilon=1.5)


def test_gaps_and_rates_by_hand():
    means = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.1]])
    np.testing.assert_allclose(arm_gaps(means), [[0.3, 0.0, 0.2], [0.0, 0.0, 0.3]])
    np.testing.assert_allclose(epsilon_greedy_regret_rate(means, 0.1), [0.1 * 0.5 / 3, 0.1 * 0.3 / 3])
    assert float(epsilon_greedy_regret_rate(means[0], 0.3)) == pytest.approx(0.3 * 0.5 / 3)
    bound = ucb1_play_bound(means, 100)
    c = 1 + math.pi**2 / 3
    expected = [[8 * math.log(100) / 0.09 + c, np.nan, 8 * math.log(100) / 0.04 + c],
                [np.nan, np.nan, 8 * math.log(100) / 0.09 + c]]
    np.testing.assert_allclose(bound, expected)  # NaN where the arm is a best arm (ties included)
    with pytest.raises(ValueError, match="horizon"):
        ucb1_play_bound(means, 0)
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy_regret_rate(means, 2.0)
    with pytest.raises(ValueError, match="means"):
        arm_gaps(np.zeros((2, 0)))


def test_regret_summary_by_hand():
    # two users, T = 4: mean curve R_t = [0, 1, 2, 3]; a stream run (one axis) with R_t = [0.5, 0.5, 0.5, 0.5]
    users = BanditRun(arms=np.zeros((2, 4)), rewards=np.array([[1, 0, 0, 1], [0, 0, 0, 1.0]]),
                      regret=np.array([[0.0, 1, 1, 2], [0, 1, 3, 4]]))
    stream = BanditRun(arms=np.zeros(4), rewards=np.ones(4), regret=np.full(4, 0.5))
    table = regret_summary({"users": users, "stream": stream}, tail=0.25)
    assert list(table.index) == ["users", "stream"]
    assert list(table.columns) == ["R_T", "R_T/2", "R_T − R_T/2", "second / first half",
                                   "regret per round, last 25%", "clicks per round"]
    # h = 2: R_h = R_2 = 1; the last 25% is m = 1 round: R_4 − R_3
    np.testing.assert_allclose(table.loc["users"], [3.0, 1.0, 2.0, 2.0, 1.0, 3 / 8])
    np.testing.assert_allclose(table.loc["stream"], [0.5, 0.5, 0.0, 0.0, 0.0, 1.0])
    # the whole horizon as tail: (R_T − R_0) / T with R_0 = 0
    assert regret_summary({"users": users}, tail=1.0).iloc[0, 4] == pytest.approx(3 / 4)
    # no regret in the first half: the ratio is undefined
    flat = BanditRun(np.zeros(4), np.zeros(4), np.array([0.0, 0.0, 0.1, 0.2]))
    assert np.isnan(regret_summary({"flat": flat}).loc["flat", "second / first half"])


def test_regret_summary_matches_the_played_regret():
    means = np.array([0.2, 0.35, 0.5])
    chosen = np.stack([_play(EpsilonGreedy(3, 0.2), means, 200, s) for s in range(3)])
    regret = cumulative_regret(means.max(), chosen)
    row = regret_summary({"eps": BanditRun(np.zeros_like(chosen), chosen, regret)}, tail=0.1).loc["eps"]
    r = regret.mean(0)
    assert row["R_T"] == pytest.approx(r[-1])
    assert row["second / first half"] == pytest.approx((r[-1] - r[99]) / r[99])
    assert row["regret per round, last 10%"] == pytest.approx(np.mean(means.max() - chosen[:, -20:]))
    with pytest.raises(ValueError, match="tail"):
        regret_summary({"eps": BanditRun(chosen, chosen, regret)}, tail=0.0)
    with pytest.raises(ValueError, match="T >= 2"):
        regret_summary({"one": BanditRun(np.zeros(1), np.zeros(1), np.zeros(1))})
    with pytest.raises(ValueError, match="at least one"):
        regret_summary({})
