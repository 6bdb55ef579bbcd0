import numpy as np
import pandas as pd
import pytest
import torch

from recnb.policies.bandits import UCB1, EpsilonGreedy, LinUCB, ThompsonSampling
from recnb.data import make_shop, random_holdout, synthetic
from recnb.data.schema import TIME, USER_IDX
from recnb.math.ranking import PAD
from recnb.models.popularity import PopularityRecommender
from recnb.policies.rerank import ItemSimilarity
from recnb.studies.simulate import (
    FeedbackLoop,
    OnboardingRecommender,
    WarmStartEmbedding,
    category_click_means,
    click_probability,
    cold_start_curve,
    compare_loops,
    epsilon_policy,
    greedy_policy,
    mmr_policy,
    onboarding_picks,
    oracle_click_rates,
    replicate_feedback_loops,
    replication_table,
    respond,
    reveal_history,
    run_contextual_bandit,
    run_feedback_loop,
    run_user_bandits,
    taste_alignment,
    truth_quality,
)


def _affinity(truth, users):
    """s_ui straight from the generator's formula (module docstring of recnb.data.synthetic)."""
    taste, beta = truth["user_taste"][users], truth["price_sensitivity"][users]
    cat = truth["item_category"]
    C = len(truth["categories"])
    return (np.clip(np.log(C * taste[:, cat] + 1e-12), -4, 2) - beta[:, None] * truth["_rel_price"][None, :]
            + truth["item_quality"][None, :])


@pytest.fixture(scope="module")
def shop():
    data = make_shop(n_users=60, n_items=40, n_categories=4, n_interactions=2500, seed=3)
    items = data.items.sort_values("item_id")
    median = items.groupby("category")["price"].transform("median").to_numpy()
    data.truth["_rel_price"] = np.log(items["price"].to_numpy() / median)
    return data


@pytest.fixture(scope="module")
def split(shop):
    return random_holdout(shop, 0.2, seed=0, events=("click", "cart", "purchase"))


def test_true_affinity_matches_the_formula(shop):
    users = np.array([0, 5, 59])
    np.testing.assert_allclose(synthetic.true_affinity(shop.truth, users), _affinity(shop.truth, users), atol=1e-5)


def test_category_click_means_by_loop(shop):
    users = np.array([1, 7])
    got = category_click_means(shop.truth, users)
    aff = _affinity(shop.truth, users)
    cat = shop.truth["item_category"]
    for r in range(2):
        for c in range(4):
            assert got[r, c] == pytest.approx(np.mean(1 / (1 + np.exp(-(aff[r, cat == c] - 1.5)))), rel=1e-5)
    many = np.arange(0, 40, 3)
    np.testing.assert_array_equal(category_click_means(shop.truth, many, batch_size=4), category_click_means(shop.truth, many))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        category_click_means(shop.truth, users, batch_size=0)


def test_oracle_click_rates_against_dense(shop):
    p = click_probability(_affinity(shop.truth, np.arange(60)))
    dense = (np.sort(p, axis=1)[:, -5:].mean(1).mean(), p.mean())
    for batch_size in (7, 60, 1024):
        np.testing.assert_allclose(oracle_click_rates(shop.truth, 5, batch_size=batch_size), dense, rtol=1e-5)
    some = np.array([3, 10, 41])
    got = oracle_click_rates(shop.truth, 1, users=some, batch_size=2)
    assert got.oracle == pytest.approx(p[some].max(1).mean(), rel=1e-5)
    assert got.random == pytest.approx(p[some].mean(), rel=1e-5)
    with pytest.raises(ValueError, match="k must"):
        oracle_click_rates(shop.truth, 41)
    with pytest.raises(ValueError, match="batch_size"):
        oracle_click_rates(shop.truth, 5, batch_size=0)


def test_truth_quality_by_hand():
    aff = np.array([[3.0, 1.5, 0.0, 2.0], [0.0, 0.0, 1.0, 5.0]])
    seen = torch.tensor([[True, False, False, False], [False, False, False, False]])
    ranked = torch.tensor([[1, 3], [3, PAD]])
    q = truth_quality(ranked, aff, seen)
    s = lambda x: 1 / (1 + np.exp(-(x - 1.5)))  # noqa: E731
    np.testing.assert_allclose(q["click_rate"], [(s(1.5) + s(2.0)) / 2, s(5.0)])
    # user 0: best unseen are items 3, 1 -> list [1, 3] holds both: NDCG 1; user 1: best 3, 2 -> [3] = 1/(1 + 1/log2 3)
    np.testing.assert_allclose(q["true_ndcg"], [1.0, 1.0 / (1.0 + 1.0 / np.log2(3))], rtol=1e-6)


def test_reveal_history_keeps_the_first_rows(split):
    users = np.array([0, 1, 2])
    out = reveal_history(split, users, 2)
    for u in users:
        mine = split.train[split.train[USER_IDX] == u].sort_values(TIME, kind="stable")
        kept = out.train[out.train[USER_IDX] == u]
        assert len(kept) == min(2, len(mine))
        assert set(kept["item_idx"]) == set(mine["item_idx"].iloc[:2])
    others = ~split.train[USER_IDX].isin(users)
    assert (~out.train[USER_IDX].isin(users)).sum() == others.sum()
    assert len(reveal_history(split, users, 0).train) == others.sum()
    with pytest.raises(ValueError, match="n must"):
        reveal_history(split, users, -1)


def test_onboarding(shop, split):
    picks = onboarding_picks(shop.truth, np.arange(split.n_users), 2, seed=1)
    assert (picks.sum(1) == 2).all()
    np.testing.assert_array_equal(picks, onboarding_picks(shop.truth, np.arange(split.n_users), 2, seed=1))
    # a category the user has (almost) no taste for is rarely ticked
    taste = shop.truth["user_taste"]
    assert taste[picks].mean() > taste[~picks].mean()
    model = OnboardingRecommender(picks, shop.truth["item_category"]).fit(split)
    top = model.recommend([0], k=5, exclude_seen=False).indices[0].numpy()
    in_picked = picks[0][shop.truth["item_category"]]
    assert in_picked[top].all()
    counts = split.item_counts()
    assert (np.diff(counts[top]) <= 0).all()  # by popularity within the picked categories
    with pytest.raises(ValueError, match="n_picks"):
        onboarding_picks(shop.truth, np.arange(3), 0)


def test_user_bandits_bookkeeping_and_seed():
    means = np.array([[0.1, 0.5, 0.3], [0.6, 0.2, 0.2]])
    make = {"ucb": lambda: UCB1(3), "ts": lambda: ThompsonSampling(3), "eps": lambda: EpsilonGreedy(3, 0.1)}
    a = run_user_bandits(make, means, 50, seed=1)
    b = run_user_bandits(make, means, 50, seed=1)
    for name in make:
        np.testing.assert_array_equal(a[name].arms, b[name].arms)
        chosen = np.take_along_axis(means, a[name].arms, axis=1)
        np.testing.assert_allclose(a[name].regret, np.cumsum(means.max(1, keepdims=True) - chosen, axis=1))
    # UCB plays every arm once first
    np.testing.assert_array_equal(a["ucb"].arms[:, :3], [[0, 1, 2], [0, 1, 2]])
    with pytest.raises(ValueError, match="arms"):
        run_user_bandits({"x": lambda: UCB1(2)}, means, 5)


def test_contextual_bandit_regret_against_per_round_best():
    rng = np.random.default_rng(0)
    contexts = np.eye(3)[rng.integers(0, 3, 30)]  # each user one of three types
    means = 0.1 + 0.7 * contexts  # the best arm is the user's type
    runs = run_contextual_bandit({"lin": lambda: LinUCB(3, 3, alpha=0.5), "ts": lambda: ThompsonSampling(3)},
                                 means, contexts, 600, seed=0)
    assert runs["lin"].regret[-1] < 0.5 * runs["ts"].regret[-1]
    # per-round regret: 0.7 when the arm is not the visitor's type, else 0
    gaps = np.diff(np.r_[0.0, runs["ts"].regret])
    assert set(np.round(gaps, 10)) <= {0.0, 0.7}


def test_respond_and_taste_alignment(shop):
    users = np.arange(10)
    ranked = torch.tensor([[0, 1, PAD]] * 10)
    rng = np.random.default_rng(0)
    draws = np.stack([respond(shop.truth, users, ranked, rng) for _ in range(400)])
    assert (draws[..., 2] == -1).all()
    p = click_probability(_affinity(shop.truth, users)[:, :2])
    np.testing.assert_allclose((draws[..., :2] >= 1).mean(0), p, atol=0.08)
    np.testing.assert_allclose((draws[..., :2] >= 2).mean(0), p**2, atol=0.08)
    cat = shop.truth["item_category"]
    taste = shop.truth["user_taste"][users]
    assert taste_alignment(torch.as_tensor(taste[:, cat]), cat, taste) == pytest.approx(1.0)
    assert taste_alignment(torch.as_tensor(-taste[:, cat]), cat, taste) == pytest.approx(-1.0)


def test_policies(split):
    model = PopularityRecommender().fit(split)
    users = np.arange(8)
    rng = np.random.default_rng(0)
    greedy = greedy_policy(model, users, 5, rng)
    torch.testing.assert_close(epsilon_policy(0.0)(model, users, 5, rng), greedy)
    mixed = epsilon_policy(1.0)(model, users, 5, rng)
    seen = model.seen_rows(users)
    for row in range(8):
        assert not set(mixed[row].tolist()) & set(greedy[row].tolist())
        assert not seen[row, mixed[row]].any()
    torch.testing.assert_close(mmr_policy(ItemSimilarity.from_categories(np.zeros(split.n_items, int)), 1.0)(model, users, 5, rng), greedy)


def test_feedback_loop_bookkeeping(shop, split):
    kwargs = dict(n_rounds=3, users_per_round=20, k=5, seed=2)
    frame, log = run_feedback_loop(split, shop.truth, PopularityRecommender, greedy_policy, **kwargs)
    again, _ = run_feedback_loop(split, shop.truth, PopularityRecommender, greedy_policy, **kwargs)
    pd.testing.assert_frame_equal(frame, again)
    assert len(log.train) == len(split.train) + frame["new_rows"].sum()
    np.testing.assert_array_equal(frame["new_rows"], frame["clicks"])
    assert (frame["oracle_utility"] >= frame["utility"]).all()
    assert not log.train.duplicated(["user_idx", "item_idx"]).any()
    # round 0's utility from the truth, directly: the same users (same generator) get popularity's list
    rng = np.random.default_rng([2, 4])
    act = shop.truth["user_activity"][: split.n_users]
    users = np.sort(rng.choice(split.n_users, size=20, replace=False, p=act / act.sum()))
    ranked = PopularityRecommender().fit(split).recommend(users, k=5).indices.numpy()
    aff = _affinity(shop.truth, users)
    assert frame["utility"].iloc[0] == pytest.approx(click_probability(np.take_along_axis(aff, ranked, 1)).mean(), rel=1e-5)
    seen = split.seen_csr()[users].toarray() > 0
    best = np.sort(np.where(seen, -np.inf, click_probability(aff)), axis=1)[:, -5:]
    assert frame["oracle_utility"].iloc[0] == pytest.approx(best.mean(), rel=1e-5)
    # popularity shows (nearly) one list to everyone: round 0's lists are alike, by a pairwise loop
    lists = [set(r) for r in ranked.tolist()]
    pairs = [(a, b) for i, a in enumerate(lists) for b in lists[i + 1:]]
    assert frame["jaccard"].iloc[0] == pytest.approx(np.mean([len(a & b) / len(a | b) for a, b in pairs]))
    with pytest.raises(ValueError, match="update"):
        run_feedback_loop(split, shop.truth, PopularityRecommender, greedy_policy, 1, 5, update="online")


def test_warm_start_fine_tunes_without_reinitialising(split):
    model = WarmStartEmbedding(embedding_dim=8, max_epochs=2, seed=0).fit(split)
    before = model.item_embedding.weight.detach().clone()
    new_rows = split.train.iloc[:30]
    model.partial_fit(split, new_rows, epochs=1)
    after = model.item_embedding.weight.detach()
    fresh = WarmStartEmbedding(embedding_dim=8, max_epochs=1, seed=1)
    fresh.build(split)
    assert not torch.equal(before, after)
    corr = lambda a, b: np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]  # noqa: E731
    assert corr(after, before) > 0.5  # fine-tuned from the old weights...
    assert abs(corr(fresh.item_embedding.weight.detach(), before)) < 0.3  # ...not re-initialised
    # only items in the new rows or drawn as negatives move; the model still excludes the whole log
    assert model.seen_.nnz == split.seen_csr().nnz


def test_incremental_loop_is_seeded(shop, split):
    make = lambda: WarmStartEmbedding(embedding_dim=8, max_epochs=2, seed=0)  # noqa: E731
    runs = [run_feedback_loop(split, shop.truth, make, epsilon_policy(0.2), 2, 15, k=5, update="incremental", replay=1.0,
                              seed=0)[0] for _ in range(2)]
    pd.testing.assert_frame_equal(*runs)
    assert runs[0]["alignment"].between(-1, 1).all()


def test_cold_start_curve(shop, split):
    users = np.flatnonzero(split.user_counts() >= 3)[:10]
    picks = onboarding_picks(shop.truth, np.arange(split.n_users), 1, seed=0)

    def fit_models(s):
        return {"popularity": PopularityRecommender().fit(s),
                "onboarding": OnboardingRecommender(picks, shop.truth["item_category"]).fit(s)}

    curve = cold_start_curve(split, shop.truth, fit_models, users, [0, 3], k=5)
    assert list(curve["model"]) == ["popularity", "onboarding"] * 2
    # n = 0, popularity: its list on the revealed split, scored straight from the truth
    revealed = reveal_history(split, users, 0)
    ranked = PopularityRecommender().fit(revealed).recommend(users, k=5).indices.numpy()
    p = click_probability(np.take_along_axis(_affinity(shop.truth, users), ranked, 1))
    assert curve["click_rate"].iloc[0] == pytest.approx(p.mean(), rel=1e-5)
    # scored 3 users at a time: the same table
    pd.testing.assert_frame_equal(cold_start_curve(split, shop.truth, fit_models, users, [0, 3], k=5, batch_size=3), curve)
    with pytest.raises(ValueError, match="history_sizes"):
        cold_start_curve(split, shop.truth, fit_models, users, [0, 1000])
    with pytest.raises(ValueError, match="batch_size"):
        cold_start_curve(split, shop.truth, fit_models, users, [0], batch_size=0)


def test_replicated_loops_summarised_over_seeds_by_hand():
    def world(seed):
        data = make_shop(n_users=50, n_items=30, n_categories=3, n_interactions=1500, seed=seed)
        return random_holdout(data, 0.2, seed=seed, events=("click", "cart", "purchase")), data.truth

    def loops(seed, truth):
        return {"popularity": FeedbackLoop(PopularityRecommender, greedy_policy),
                "explore": FeedbackLoop(PopularityRecommender, epsilon_policy(0.5))}

    frame = replicate_feedback_loops(world, loops, seeds=[0, 1, 2], n_rounds=2, users_per_round=10, k=5)
    assert len(frame) == 3 * 2 * 2 and set(frame["seed"]) == {0, 1, 2}
    # each (loop, seed) is exactly one run_feedback_loop with that seed on that seed's world
    log, truth = world(1)
    alone, _ = run_feedback_loop(log, truth, PopularityRecommender, greedy_policy, 2, 10, k=5, seed=1)
    mine = frame[(frame["loop"] == "popularity") & (frame["seed"] == 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine[alone.columns], alone)
    np.testing.assert_allclose(mine["share"], alone["utility"] / alone["oracle_utility"])

    table = replication_table(frame, ["coverage", "share"])
    last = frame[frame["round"] == 1]
    want = last.groupby("loop", sort=False)["coverage"].mean()
    np.testing.assert_allclose(table[("coverage", "mean")].to_numpy(), want.to_numpy())
    assert (table[("coverage", "low")] <= table[("coverage", "mean")]).all()
    assert table[("seeds", "")].tolist() == [3.0, 3.0]

    cmp = compare_loops(frame, "explore", "popularity", "coverage")
    a = last[last["loop"] == "explore"].set_index("seed")["coverage"]
    b = last[last["loop"] == "popularity"].set_index("seed")["coverage"]
    assert cmp["difference"] == pytest.approx((a - b).mean())
    assert cmp["wins"] == float((a > b).sum()) and cmp["seeds"] == 3.0
    with pytest.raises(ValueError, match="must both be in the frame"):
        compare_loops(frame, "explore", "nobody", "coverage")
    with pytest.raises(ValueError, match="round 7"):
        replication_table(frame, ["coverage"], round_=7)



@pytest.mark.parametrize("noise", [0.0, 0.5, 1.0])
def test_onboarding_noise_mixes_taste_with_uniform_picks(noise):
    # 3 categories, every user's taste (0.98, 0.01, 0.01): P(tick category 0) = (1 - noise) 0.98 + noise / 3
    truth = {"user_taste": np.tile([0.98, 0.01, 0.01], (4000, 1))}
    picks = onboarding_picks(truth, np.arange(4000), 1, seed=0, noise=noise)
    p = (1 - noise) * 0.98 + noise / 3
    assert picks.sum(axis=1).tolist() == [1] * 4000
    assert abs(picks[:, 0].mean() - p) < 4 * np.sqrt(p * (1 - p) / 4000)
    with pytest.raises(ValueError, match="noise"):
        onboarding_picks(truth, np.arange(3), 1, noise=1.5)
