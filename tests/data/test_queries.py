"""Queries over the synthetic shop: types, graded relevance by the documented rule, determinism, click log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnb.data.queries import QUERY_TYPES, SYNONYMS, judge, make_click_log, make_queries, misspell, round_price
from recnb.data.synthetic import CATEGORY_WORDS, make_shop, true_affinity


@pytest.fixture(scope="module")
def shop():
    return make_shop(n_users=120, n_items=400, n_categories=12, n_interactions=2000, seed=7)


def test_item_attributes_are_what_the_text_says(shop):
    """truth["item_attributes"] names the adjective in the title and the two features in the description."""
    for i in range(0, len(shop.items), 7):
        c = shop.truth["item_category"][i]
        a, f1, f2 = shop.truth["item_attributes"][i]
        words = CATEGORY_WORDS[c]
        assert f" {words['adjectives'][a]} " in shop.items["title"].iloc[i]
        desc = shop.items["description"].iloc[i]
        assert f"with {words['features'][f1]} and {words['features'][f2]}." in desc and f1 != f2
        assert shop.items["brand"].iloc[i] in words["brands"]


def test_queries_follow_the_grading_rule(shop):
    q = make_queries(shop, 120, seed=0)
    f = q.frame
    assert list(f["type"][:6]) == list(QUERY_TYPES) and len(q) == 120
    assert q.relevance.shape == (120, 400) and q.relevance.dtype == np.int8
    cat, attrs = shop.truth["item_category"], shop.truth["item_attributes"]
    price, brand = shop.items["price"].to_numpy(), shop.items["brand"].to_numpy()
    for j, row in f.iterrows():
        rel = q.relevance[j].toarray()[0]
        in_cat = cat == row.category_code
        assert (rel[~in_cat] == 0).all() and (rel[in_cat] >= 1).all() and (rel == 2).any()
        words = CATEGORY_WORDS[row.category_code]
        if row.base_type in ("category", "synonym"):
            holds = np.ones(len(cat), bool)
        elif row.base_type == "brand":
            holds = brand == row.brand
            assert row.intended.startswith(row.brand)
        elif row.base_type == "price":
            holds = price <= row.max_price
            assert row.text.endswith(f"under {row.max_price:g}")
        else:
            feats = [w.split(" ", 1)[1] if w.split()[0] in ("a", "an") else w for w in words["features"]]
            if row.attribute in words["adjectives"]:
                holds = attrs[:, 0] == words["adjectives"].index(row.attribute)
            else:
                k = feats.index(row.attribute)
                holds = (attrs[:, 1] == k) | (attrs[:, 2] == k)
        np.testing.assert_array_equal(rel, np.where(in_cat, np.where(holds, 2, 1), 0))
        if row.type == "synonym":  # no item text uses a synonym
            assert row.text in SYNONYMS[row.category]
            assert not shop.items["text"].str.lower().str.contains(row.text).any()
        if row.type == "misspelling":
            assert row.text != row.intended and row.base_type in ("category", "attribute", "brand")
        else:
            assert row.text == row.intended
    assert f["user_id"].isna().all()


def test_queries_are_deterministic(shop):
    a, b, c = make_queries(shop, 60, seed=3), make_queries(shop, 60, seed=3), make_queries(shop, 60, seed=4)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert (a.relevance != b.relevance).nnz == 0
    assert a.texts != c.texts


def test_personalised_queries_follow_taste(shop):
    q = make_queries(shop, 600, seed=1, personalised=True)
    users = q.frame["user_id"].to_numpy(dtype=np.int64)
    assert users.min() >= 1 and users.max() <= 120
    taste = shop.truth["user_taste"][users - 1, q.frame["category_code"].to_numpy()]
    # a category drawn from the user's taste has, on average, far more than the uniform share
    assert taste.mean() > 3 / 12


def test_misspell_and_round_price():
    rng = np.random.default_rng(0)
    out = [misspell("espresso machine", rng, 1) for _ in range(50)]
    lengths = {len(o) for o in out}
    assert lengths <= {15, 16, 17} and all(o[0] == "e" for o in out)
    assert misspell("4K tv", rng) == "4K tv"  # no word of four letters or more
    assert [round_price(x) for x in (12.4, 17.6, 140.0, 1234.0, 1.0)] == [10.0, 20.0, 140.0, 1250.0, 5.0]


def test_judge_rejects_an_unknown_attribute(shop):
    with pytest.raises(ValueError, match="neither an adjective nor a feature"):
        judge(shop, 0, attribute="purple")


def test_bad_arguments(shop):
    with pytest.raises(ValueError, match="n_queries must be a positive integer"):
        make_queries(shop, 0)
    with pytest.raises(ValueError, match="types must be"):
        make_queries(shop, 5, types=("category", "haiku"))
    with pytest.raises(ValueError, match="shop.truth lacks"):
        make_queries(type(shop)("x", shop.interactions, shop.items, shop.users, {}), 5)


def test_click_log_position_based_model(shop):
    q = make_queries(shop, 3000, seed=2, personalised=True)
    shown = np.tile(np.arange(10), (len(q), 1))
    shown[:, :] = np.argsort(-q.relevance.toarray(), axis=1, kind="stable")[:, :10]
    shown[0, 5:] = -1
    log = make_click_log(shop, q, shown, eta=1.0, noise=0.02, seed=0)
    assert len(log) == 3000 * 10 - 5 and (log["propensity"] == 1.0 / log["rank"]).all()
    row = log.iloc[123]
    s = true_affinity(shop.truth, [row.user_id - 1])[0, row.item_idx]
    expected = 0.02 + 0.98 * (2 ** row.relevance - 1) / 3 / (1 + np.exp(-s))
    assert row.attractiveness == pytest.approx(expected, rel=1e-6)
    assert (log["relevance"] == np.asarray(q.relevance[log["query_id"], log["item_idx"]]).ravel()).all()
    # the click rate at each rank is propensity × attractiveness, within sampling error
    for r in (1, 2, 5, 10):
        at = log[log["rank"] == r]
        p = (at["propensity"] * at["attractiveness"]).mean()
        assert abs(at["click"].mean() - p) < 4 * np.sqrt(p * (1 - p) / len(at))
    assert log["click"].sum() > 0 and make_click_log(shop, q, shown, seed=0).equals(log)


def test_click_log_bad_input(shop):
    q = make_queries(shop, 10, seed=0)
    with pytest.raises(ValueError, match="queries must be personalised"):
        make_click_log(shop, q, np.zeros((10, 3), dtype=int))
    qp = make_queries(shop, 10, seed=0, personalised=True)
    with pytest.raises(ValueError, match=r"shown must be \(Q, k\)"):
        make_click_log(shop, qp, np.zeros((9, 3), dtype=int))
    with pytest.raises(ValueError, match="item positions in 0..399"):
        make_click_log(shop, qp, np.full((10, 3), 400))
    with pytest.raises(ValueError, match="eta must be > 0"):
        make_click_log(shop, qp, np.zeros((10, 3), dtype=int), eta=0)
