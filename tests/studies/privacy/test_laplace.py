import math

import numpy as np
import pytest

from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate
from recnb.studies.privacy.laplace import (DPPopularityRecommender, advanced_composition, basic_composition,
                                           bounded_item_counts, composition_crossover, composition_table,
                                           laplace_mechanism)


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
