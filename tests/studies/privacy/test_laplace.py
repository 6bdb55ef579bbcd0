import math

import numpy as np
import pandas as pd
import pytest

from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate
from recnb.studies.privacy.laplace import (DPPopularityRecommender, advanced_composition, basic_composition,
                                           bounded_item_counts, composition_crossover, composition_table,
                                           group_privacy, laplace_mechanism, optimal_composition,
                                           optimal_composition_delta, rating_sum_sensitivity, rating_sums)


@pytest.mark.parametrize("epsilon, sensitivity", [(0.5, 1.0), (2.0, 3.0)])
def test_laplace_variance_is_two_b_squared(epsilon, sensitivity):
    n = 200_000
    noise = laplace_mechanism(np.zeros(n), epsilon, sensitivity, rng=0)
    b = sensitivity / epsilon
    # the sample variance of n Laplace draws has standard error sqrt((μ4 - σ⁴)/n) = sqrt(20 b⁴ / n)
    assert abs(noise.var() - 2 * b**2) < 4 * math.sqrt(20 * b**4 / n)
    assert abs(np.median(np.abs(noise)) - b * math.log(2)) < 0.02 * b  # median |Z| = b ln 2


def test_laplace_noise_is_fresh_by_default_and_seeded_only_on_request():
    values = np.arange(6.0).reshape(2, 3)
    # the default draws from OS entropy: two calls never share their noise (a known seed would let
    # anyone subtract it)
    first, second = laplace_mechanism(values, 1.0), laplace_mechanism(values, 1.0)
    assert first.shape == (2, 3) and not np.array_equal(first, second)
    # an explicit seed or generator reproduces it (teaching and tests only)
    a = laplace_mechanism(values, 1.0, rng=3)
    assert np.array_equal(a, laplace_mechanism(values, 1.0, rng=3))
    assert np.array_equal(a, laplace_mechanism(values, 1.0, rng=np.random.default_rng(3)))
    with pytest.raises(ValueError, match="epsilon"):
        laplace_mechanism([1.0], 0.0)
    with pytest.raises(TypeError, match="fresh entropy"):
        laplace_mechanism([1.0], 1.0, rng=0.5)


def test_composition_by_hand():
    assert basic_composition([0.1, 0.2, 0.7], [1e-6, 0, 1e-6]) == pytest.approx((1.0, 2e-6))
    eps, delta = advanced_composition(0.1, k=100, delta_prime=1e-5)
    assert eps == pytest.approx(math.sqrt(200 * math.log(1e5)) * 0.1 + 100 * 0.1 * math.expm1(0.1))
    assert delta == 1e-5
    # many small releases: advanced beats basic (10.0); a few large ones: it does not
    assert eps < basic_composition([0.1] * 100)[0]
    assert advanced_composition(1.0, k=3, delta_prime=1e-5)[0] > 3.0


def first_crossing_by_search(epsilon, delta_prime, bound=100_000):
    """The loop notebook 14 used: the first k whose advanced epsilon is below k * epsilon."""
    return next(k for k in range(1, bound) if advanced_composition(epsilon, k, delta_prime)[0] < epsilon * k)


def test_composition_crossover_by_hand_and_against_the_search():
    # eps = 0.1, delta' = 1e-6: 2 ln(1e6) / (2 - e^0.1)^2 = 27.631 / 0.80072 = 34.51 -> k* = 35
    assert composition_crossover(0.1, 1e-6) == 35
    # eps = ln 1.5 (2 - e^eps = 1/2), delta' = 0.01: 2 ln(100) / 0.25 = 36.84 -> 37
    assert composition_crossover(math.log(1.5), 0.01) == 37
    for eps in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6):
        for delta_prime in (1e-3, 1e-5, 1e-6, 1e-9):
            k = composition_crossover(eps, delta_prime)
            assert k == first_crossing_by_search(eps, delta_prime), (eps, delta_prime)
            assert advanced_composition(eps, k, delta_prime)[0] < basic_composition([eps] * k)[0]
            if k > 1:
                assert advanced_composition(eps, k - 1, delta_prime)[0] >= basic_composition([eps] * (k - 1))[0]


def test_composition_crossover_never_for_large_epsilon():
    with pytest.raises(ValueError, match="never beats basic composition for epsilon >= ln 2"):
        composition_crossover(0.7, 1e-6)
    assert all(advanced_composition(0.7, k, 1e-6)[0] > 0.7 * k for k in (1, 10, 1000, 10**6))
    with pytest.raises(ValueError, match="delta_prime"):
        composition_crossover(0.1, 0.0)


def test_composition_table_rows():
    table = composition_table(0.1, [1, 30], 1e-6)
    assert table.index.tolist() == [1, 30] and table.index.name == "releases"
    assert table.loc[30, "basic ε"] == pytest.approx(3.0)
    assert table.loc[30, "advanced ε"] == pytest.approx(math.sqrt(60 * math.log(1e6)) * 0.1 + 3 * math.expm1(0.1))
    assert table.loc[1, "advanced δ"] == 1e-6
    with pytest.raises(ValueError, match="releases"):
        composition_table(0.1, [], 1e-6)


def test_bounded_counts_and_dp_popularity():
    split = random_holdout(make_shop(n_users=80, n_items=40, n_interactions=1500, seed=0), seed=0)
    exact = split.item_counts()
    np.testing.assert_array_equal(bounded_item_counts(split), exact)
    capped = bounded_item_counts(split, max_items_per_user=2, seed=0)
    # the subsets are as secret as the noise: two default calls draw different ones, a seed repeats them
    draws = [bounded_item_counts(split, max_items_per_user=1) for _ in range(2)]
    assert not np.array_equal(*draws) and draws[0].sum() == draws[1].sum() == split.n_users - (split.user_counts() == 0).sum()
    np.testing.assert_array_equal(capped, bounded_item_counts(split, max_items_per_user=2, seed=0))
    assert capped.sum() == np.minimum(np.asarray(split.train_csr().sum(axis=1)).ravel(), 2).sum()
    assert (capped <= exact).all()
    # huge epsilon: the noisy ranking is the exact one; the noise has scale Δ/ε
    loose = DPPopularityRecommender(epsilon=1e6, noise_seed=0).fit(split)
    np.testing.assert_allclose(loose.counts_.numpy(), exact, atol=1e-3)
    tight = DPPopularityRecommender(epsilon=0.01, max_items_per_user=5, noise_seed=0).fit(split)
    assert np.abs(tight.counts_.numpy() - bounded_item_counts(split, 5, seed=0)).mean() > 50
    assert evaluate(loose, split, k=5)["ndcg@5"] > 0


def test_dp_popularity_draws_fresh_noise_unless_given_a_noise_seed():
    split = random_holdout(make_shop(n_users=80, n_items=40, n_interactions=1500, seed=0), seed=0)
    model = DPPopularityRecommender(epsilon=1.0, max_items_per_user=3)
    first = model.fit(split).counts_.clone()
    assert not np.array_equal(first.numpy(), model.fit(split).counts_.numpy())  # a refit: new noise
    assert not np.array_equal(first.numpy(), DPPopularityRecommender(epsilon=1.0, max_items_per_user=3)
                              .fit(split).counts_.numpy())
    fixed = [DPPopularityRecommender(epsilon=1.0, max_items_per_user=3, noise_seed=7).fit(split).counts_ for _ in range(2)]
    np.testing.assert_array_equal(fixed[0].numpy(), fixed[1].numpy())
    # the seeded release is the bounded counts (subsets and noise from one generator seeded 7)
    rng = np.random.default_rng(7)
    by_hand = laplace_mechanism(bounded_item_counts(split, 3, seed=rng), 1.0, 3.0, rng)
    np.testing.assert_allclose(fixed[0].numpy(), by_hand.astype(np.float32))


def randomised_response_delta(epsilon, k, epsilon_total):
    """Brute force: the hockey-stick divergence of k-fold randomised response (answer truthfully with
    probability e^ε / (1 + e^ε)) over all 2^k output sequences, between the two neighbouring inputs."""
    import itertools
    p = math.exp(epsilon) / (1 + math.exp(epsilon))
    total = 0.0
    for outputs in itertools.product((0, 1), repeat=k):
        truthful = sum(outputs)  # outputs that match input 1 (and not input 0)
        p1 = p**truthful * (1 - p) ** (k - truthful)
        p0 = (1 - p) ** truthful * p ** (k - truthful)
        total += max(0.0, p1 - math.exp(epsilon_total) * p0)
    return total


@pytest.mark.parametrize("epsilon, k", [(0.1, 1), (0.5, 3), (1.0, 6), (0.3, 10)])
def test_optimal_composition_delta_against_brute_force(epsilon, k):
    for epsilon_total in (0.0, 0.5 * epsilon, epsilon, 2.5 * epsilon, k * epsilon):
        assert optimal_composition_delta(epsilon, k, epsilon_total) == pytest.approx(
            randomised_response_delta(epsilon, k, epsilon_total), rel=1e-10, abs=1e-15)
    # one release: delta(eps_total) = [e^ε - e^{eps_total}]_+ / (1 + e^ε) by hand
    assert optimal_composition_delta(epsilon, 1, 0.0) == pytest.approx(math.expm1(epsilon) / (1 + math.exp(epsilon)))


def test_optimal_composition_lies_below_every_bound_and_the_sqrt_term_alone_is_not_a_bound():
    for epsilon, k in ((0.1, 30), (0.1, 365), (0.5, 100), (1.0, 1000)):
        opt = optimal_composition(epsilon, k, 1e-6)
        assert optimal_composition_delta(epsilon, k, opt) <= 1e-6 < optimal_composition_delta(epsilon, k, opt * (1 - 1e-6))
        assert opt <= advanced_composition(epsilon, k, 1e-6)[0] and opt <= k * epsilon
    # the advanced bound without k ε (e^ε - 1) claims less than what randomised response provably leaks
    table = composition_table(0.1, [30, 365], 1e-6)
    assert table.loc[365, "√ term only"] < table.loc[365, "optimal ε"]
    assert (table["optimal ε"] <= table[["basic ε", "advanced ε"]].min(axis=1)).all()


def test_group_privacy_by_chaining_the_definition():
    epsilon, delta = 0.5, 1e-6
    # chain P0 <= e^ε P1 + δ n times: (nε, δ Σ_{j<n} e^{jε}), which the stated bound covers
    eps_chain, delta_chain = 0.0, 0.0
    for n in range(1, 12):
        delta_chain = delta_chain * math.exp(epsilon) + delta
        eps_chain += epsilon
        eps_n, delta_n = group_privacy(epsilon, delta, n)
        assert eps_n == pytest.approx(eps_chain) and delta_chain <= delta_n * (1 + 1e-12)
        assert delta_n == pytest.approx(n * math.exp((n - 1) * epsilon) * delta)
    assert group_privacy(epsilon, delta, 1) == (epsilon, delta)
    # pure ε-DP (δ = 0): Laplace noise on a count, a group of n moves the count by n and the density
    # ratio by exactly e^{nε}
    scale = 1 / epsilon
    x = np.linspace(-20, 20, 401)
    for n in (1, 3, 7):
        ratio = np.exp(-np.abs(x) / scale) / np.exp(-np.abs(x - n) / scale)
        assert ratio.max() == pytest.approx(math.exp(group_privacy(epsilon, 0.0, n)[0]))
    with pytest.raises(ValueError, match="group_size"):
        group_privacy(1.0, 1e-5, 0)


def test_rating_sums_sensitivity_by_removing_each_user():
    rng = np.random.default_rng(4)
    ratings = pd.DataFrame({"user_id": rng.integers(0, 30, 400), "item_id": rng.integers(0, 12, 400),
                            "rating": rng.integers(1, 6, 400).astype(float)}).drop_duplicates(["user_id", "item_id"])
    ratings = pd.concat([ratings, pd.DataFrame({"user_id": 99, "item_id": range(12), "rating": 5.0})])  # a 5-star fan
    for items, cap in (([0, 1, 2, 3, 4], None), ([0, 1, 2, 3, 4], 2), (list(range(12)), 3), (list(range(12)), None)):
        delta = rating_sum_sensitivity(len(items), cap)
        full = rating_sums(ratings, items, cap, seed=0)
        worst = 0.0
        for user in ratings["user_id"].unique():
            mine = rating_sums(ratings[ratings["user_id"] == user], items, cap, seed=0)  # one user's capped part
            assert (mine > 0).sum() <= (len(items) if cap is None else cap) and mine.abs().sum() <= delta
            if cap is None:  # uncapped sums add up user by user: removing one moves them by exactly `mine`
                without = rating_sums(ratings[ratings["user_id"] != user], items)
                assert np.allclose(full - without, mine)
            worst = max(worst, float(mine.abs().sum()))
        assert worst == delta  # the 5-star fan reaches it
        # the cap keeps min(n_u, m) of each user's ratings among the items: count them with ratings of 1
        ones = ratings.assign(rating=1.0)
        per_user = ones[ones["item_id"].isin(items)].groupby("user_id").size()
        expected = per_user.sum() if cap is None else np.minimum(per_user, cap).sum()
        assert rating_sums(ones, items, cap, seed=0).sum() == expected
    assert rating_sum_sensitivity(5, 50) == 25.0 and rating_sum_sensitivity(1682, 50) == 250.0
    # uncapped by hand
    tiny = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7], "rating": [4.0, 2.0, 5.0]})
    assert rating_sums(tiny, [7, 8, 9]).tolist() == [9.0, 2.0, 0.0]
    assert rating_sums(tiny, [7, 8], max_items_per_user=1, seed=0).sum() in (7.0, 9.0)
    with pytest.raises(ValueError, match="one rating per"):
        rating_sums(pd.concat([tiny, tiny]), [7])
