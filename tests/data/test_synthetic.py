from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from recnb.data import load, make_shop
from recnb.data.synthetic import CATEGORIES, DIRT_KINDS, _sample_items, true_affinity

SMALL = dict(n_users=150, n_items=120, n_categories=8, n_interactions=6000)


@pytest.fixture(scope="module")
def shop():
    return make_shop(**SMALL, seed=3)


def test_same_seed_same_frames_other_seed_differs(shop):
    again = make_shop(**SMALL, seed=3)
    for a, b in ((shop.interactions, again.interactions), (shop.items, again.items), (shop.users, again.users)):
        pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(shop.truth["user_taste"], again.truth["user_taste"])
    other = make_shop(**SMALL, seed=4)
    assert not other.interactions.head(200).equals(shop.interactions.head(200))
    assert not np.allclose(other.truth["user_taste"], shop.truth["user_taste"])


def test_load_synthetic_is_make_shop(shop):
    pd.testing.assert_frame_equal(load("synthetic", **SMALL, seed=3).interactions, shop.interactions)
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        load("nope")


def test_canonical_columns_and_dtypes(shop):
    i = shop.interactions
    assert list(i.columns) == ["user_id", "item_id", "timestamp", "event", "rating", "session_id"]
    assert i.dtypes["user_id"] == np.int64 and i.dtypes["item_id"] == np.int64 and i.dtypes["session_id"] == np.int64
    assert i.dtypes["timestamp"] == "datetime64[ns]"
    assert set(i["event"]) == {"view", "click", "cart", "purchase"}
    assert i["timestamp"].is_monotonic_increasing
    # a rating exactly on purchases, whole stars 1..5
    assert (i["rating"].notna() == (i["event"] == "purchase")).all()
    r = i["rating"].dropna()
    assert set(r.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0} and r.nunique() >= 4
    assert shop.items["item_id"].tolist() == list(range(1, SMALL["n_items"] + 1))
    assert shop.users["user_id"].tolist() == list(range(1, SMALL["n_users"] + 1))
    assert {"title", "category", "text", "brand", "price", "description"} <= set(shop.items.columns)
    assert (shop.items["price"] > 0).all()
    assert (shop.items["text"] == shop.items["title"] + ". " + shop.items["description"]).all()


def test_size_close_to_target_and_every_user_active(shop):
    assert SMALL["n_interactions"] <= len(shop.interactions) < SMALL["n_interactions"] + 40  # whole sessions
    assert shop.interactions["user_id"].nunique() == SMALL["n_users"]


def test_funnel_never_skips_a_step(shop):
    counts = shop.interactions.groupby(["session_id", "item_id", "event"]).size().unstack(fill_value=0)
    assert (counts["view"] >= counts["click"]).all()
    assert (counts["click"] >= counts["cart"]).all()
    assert (counts["cart"] >= counts["purchase"]).all()
    # steps happen in order in time
    first = shop.interactions.groupby(["session_id", "item_id", "event"])["timestamp"].min().unstack()
    both = first.dropna(subset=["purchase"])
    assert (both["view"] <= both["purchase"]).all()


def test_truth_shapes_and_consistency(shop):
    t = shop.truth
    assert t["user_taste"].shape == (SMALL["n_users"], SMALL["n_categories"])
    np.testing.assert_allclose(t["user_taste"].sum(axis=1), 1.0)
    assert t["categories"] == list(CATEGORIES[: SMALL["n_categories"]])
    assert (np.array(t["categories"])[t["item_category"]] == shop.items["category"].to_numpy()).all()
    assert "affinity" not in t  # never stored: (n_users, n_items); true_affinity computes rows on demand
    assert t["item_log_price_ratio"].shape == (SMALL["n_items"],)
    assert t["complement"].tolist() == [1, 0, 3, 2, 5, 4, 7, 6]


def test_interactions_follow_the_user_taste(shop):
    views = shop.interactions[shop.interactions["event"] == "view"]
    cat = shop.truth["item_category"][views["item_id"].to_numpy() - 1]
    empirical = np.zeros_like(shop.truth["user_taste"])
    np.add.at(empirical, (views["user_id"].to_numpy() - 1, cat), 1.0)
    empirical /= empirical.sum(axis=1, keepdims=True)
    taste = shop.truth["user_taste"]
    tv = 0.5 * np.abs(empirical - taste).sum(axis=1)  # total variation distance, per user
    tv_other = 0.5 * np.abs(empirical - taste[np.random.default_rng(0).permutation(len(taste))]).sum(axis=1)
    assert tv.mean() < 0.6 * tv_other.mean()
    assert np.corrcoef(empirical.ravel(), taste.ravel())[0, 1] > 0.6


def test_ratings_follow_the_true_affinity(shop):
    buys = shop.interactions.dropna(subset=["rating"])
    rows = true_affinity(shop.truth, buys["user_id"].to_numpy() - 1)
    aff = rows[np.arange(len(buys)), buys["item_id"].to_numpy() - 1]
    assert spearmanr(aff, buys["rating"]).statistic > 0.5


def test_true_affinity_is_the_formula_by_hand(shop):
    t, items = shop.truth, shop.items.set_index("item_id")
    C = len(t["categories"])
    got = true_affinity(t, np.array([0, 7, 42]))
    assert got.shape == (3, SMALL["n_items"]) and got.dtype == np.float32
    for row, u in enumerate([0, 7, 42]):
        for i in (0, 5, 99):
            c = t["item_category"][i]
            prices = items["price"][items["category"] == t["categories"][c]]
            expected = (np.clip(np.log(C * t["user_taste"][u, c]), -4, 2)
                        - t["price_sensitivity"][u] * np.log(items["price"].iloc[i] / np.median(prices))
                        + t["item_quality"][i])
            assert got[row, i] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("users, message", [(np.array([0.5]), "users must be integer"),
                                            (np.array([SMALL["n_users"]]), r"users must lie in 0\.\.149")])
def test_true_affinity_bad_users(shop, users, message):
    with pytest.raises(ValueError, match=message):
        true_affinity(shop.truth, users)


def test_item_sampler_draws_the_exact_price_fit_distribution():
    # P(i | u, c) ∝ pi_i exp(-beta_u r_i) over the items of c, for users of very different beta
    rng = np.random.default_rng(0)
    item_cat = np.repeat([0, 1], [6, 9])
    pop, r = np.exp(rng.normal(0, 1.2, 15)), rng.normal(0, 0.6, 15)
    beta = np.array([0.0, 0.4, 2.2, 5.0])
    users, cats = np.repeat(np.arange(4), 2 * 20_000), np.tile(np.repeat([0, 1], 20_000), 4)
    drawn = _sample_items(np.random.default_rng(1), users, cats, beta, item_cat, pop, r)
    for u in range(4):
        for c in (0, 1):
            members = np.flatnonzero(item_cat == c)
            got = drawn[(users == u) & (cats == c)]
            assert np.isin(got, members).all()
            w = pop[members] * np.exp(-beta[u] * r[members])
            freq = (got[:, None] == members[None, :]).mean(axis=0)
            # 20,000 draws: each frequency within 5 standard errors of its probability
            p = w / w.sum()
            assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / 20_000) + 1e-12)


def test_category_choice_tracks_the_taste_of_a_heavy_user():
    data = make_shop(n_users=5, n_items=200, n_categories=6, n_interactions=30_000, seed=2)
    views = data.interactions[data.interactions["event"] == "view"]
    sessions = views.drop_duplicates("session_id")
    u = int(sessions["user_id"].value_counts().index[0])  # the most active user: hundreds of sessions
    mine = sessions[sessions["user_id"] == u]
    cats = data.truth["item_category"][mine["item_id"].to_numpy() - 1]
    freq = np.bincount(cats, minlength=6) / len(cats)
    taste = data.truth["user_taste"][u - 1]
    assert len(mine) > 300
    assert np.abs(freq - taste).max() < 4 * np.sqrt(0.25 / len(mine))


def test_price_sensitive_users_view_cheaper_items():
    data = make_shop(n_users=400, n_items=300, n_categories=4, n_interactions=40_000, seed=5)
    views = data.interactions[data.interactions["event"] == "view"]
    ratio = data.truth["item_log_price_ratio"][views["item_id"].to_numpy() - 1]
    beta = data.truth["price_sensitivity"][views["user_id"].to_numpy() - 1]
    per_user = pd.Series(ratio).groupby(views["user_id"].to_numpy()).mean()
    b = pd.Series(beta).groupby(views["user_id"].to_numpy()).first()
    assert spearmanr(b, per_user).statistic < -0.3  # the more sensitive, the cheaper (relative to the category)


def test_text_alone_reveals_the_category():
    data = make_shop(n_users=20, n_items=600, n_categories=10, n_interactions=100, seed=1)
    x = TfidfVectorizer().fit_transform(data.items["text"])
    y = data.items["category"]
    model = LogisticRegression(max_iter=500).fit(x[:400], y[:400])
    assert model.score(x[400:], y[400:]) > 0.95


def test_item_popularity_is_long_tailed(shop):
    counts = np.sort(shop.interactions.groupby("item_id").size().to_numpy())
    top = counts[::-1][: len(counts) // 10].sum() / counts.sum()
    assert top > 0.3  # the top 10% of items hold well over 10% of the events


def test_complementary_categories_are_bought_together():
    data = make_shop(n_users=300, n_items=200, n_categories=10, n_interactions=20_000, seed=0)
    buys = data.interactions[data.interactions["event"] == "purchase"]
    cat = data.truth["item_category"][buys["item_id"].to_numpy() - 1]
    baskets = pd.crosstab(buys["session_id"], cat) > 0
    together = (baskets[0] & baskets[1]).sum() / baskets[0].sum()  # phones -> phone cases
    unrelated = (baskets[0] & baskets[3]).sum() / baskets[0].sum()  # phones -> laptop bags
    assert together > 0.15 and together > 5 * unrelated


def test_dirt_adds_what_it_reports():
    clean = make_shop(**SMALL, seed=3)
    dirty = make_shop(**SMALL, seed=3, dirt=0.02)
    added = dirty.truth["dirt"]
    assert set(added) >= {"duplicates", "unknown_ids", "bad_timestamps", "bad_prices", "bad_ratings", "bots"}
    i = dirty.interactions
    assert i.duplicated().sum() >= added["duplicates"]
    unknown = ~i["user_id"].isin(dirty.users["user_id"]) & i["user_id"].notna()
    unknown |= ~i["item_id"].isin(dirty.items["item_id"])
    assert unknown.sum() == added["unknown_ids"]
    ts = i["timestamp"]
    assert ((ts.dt.year == 1970) | (ts > clean.interactions["timestamp"].max())).sum() == added["bad_timestamps"]
    assert (dirty.items["price"] < 0).sum() == added["bad_prices"]
    r = i["rating"].dropna()
    assert (~r.between(1, 5)).sum() == added["bad_ratings"]
    assert i["user_id"].isna().sum() == added["missing_user_id"] > 0
    assert dirty.items["title"].isna().sum() == added["missing_item_title"] > 0
    bots = dirty.truth["bot_users"]
    assert len(bots) == added["bots"] == 3
    assert set(bots) <= set(dirty.users["user_id"])
    assert (i[i["user_id"].isin(bots)].groupby("user_id").size() >= 300).all()


def test_dirt_dict_adds_only_the_named_kind():
    n = len(make_shop(**SMALL, seed=3).interactions)
    dirty = make_shop(**SMALL, seed=3, dirt={"duplicates": 0.1})
    assert dirty.truth["dirt"] == {"duplicates": round(0.1 * n)}
    assert len(dirty.interactions) == n + round(0.1 * n)
    assert dirty.interactions.duplicated().sum() == round(0.1 * n)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_categories=17), "n_categories must lie in 1..16"),
        (dict(n_users=0), "n_users must be at least 1"),
        (dict(n_items=3, n_categories=5), "n_items"),
        (dict(dirt={"dust": 0.1}), r"unknown dirt kind\(s\) \['dust'\]"),
        (dict(dirt=1.5), r"dirt rates must lie in \[0, 1\]"),
        (dict(seed=1.5), r"seed must be a non-negative integer, got 1\.5 \(float\)"),
        (dict(seed="0"), r"seed must be a non-negative integer, got '0' \(str\)"),
        (dict(seed=None), "seed must be a non-negative integer, got None"),
        (dict(n_users=10.0), r"n_users must be an integer, got 10\.0"),
        (dict(start="not a date"), "start must be a date such as '2024-01-01', got 'not a date'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_shop(**{**SMALL, **kwargs})


def test_dirt_kinds_documented():
    assert set(DIRT_KINDS) == {"duplicates", "missing", "unknown_ids", "bad_timestamps", "bad_prices", "bad_ratings", "bots"}
