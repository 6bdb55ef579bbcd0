from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recnb.data.analysis import (
    activity_over_time,
    category_share,
    cold_start_counts,
    gini,
    head_share,
    funnel_rates,
    item_popularity,
    join_tables,
    lorenz_curve,
    overview,
    popularity_curve,
    quality_report,
    sparsity,
    user_activity,
    users_mostly_in,
)
from recnb.data.splits import random_holdout


def test_gini_by_hand():
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)  # (2*4-4-1)*1 / (4*1) = 3/4 = 1 - 1/n
    # x = 1, 2, 3: (-2*1 + 0*2 + 2*3) / (3*6) = 4/18
    assert gini([3, 1, 2]) == pytest.approx(4 / 18)
    assert gini([0, 0]) == 0.0
    with pytest.raises(ValueError):
        gini([])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=1, max_size=40).filter(lambda xs: sum(xs) > 0))
def test_gini_is_the_mean_absolute_difference_and_twice_the_lorenz_gap(xs):
    x = np.array(xs, dtype=float)
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert gini(x) == pytest.approx(mad)
    curve = lorenz_curve(x)
    area = np.trapezoid(curve["interaction_share"], curve["item_share"])
    assert gini(x) == pytest.approx(1 - 2 * area)


def test_popularity_curve_and_head_share():
    curve = popularity_curve([1, 6, 3])
    assert curve["count"].tolist() == [6, 3, 1] and curve["rank"].tolist() == [1, 2, 3]
    assert curve["cumulative_share"].tolist() == pytest.approx([0.6, 0.9, 1.0])
    assert head_share([1, 6, 3, 0, 0], top=0.2) == pytest.approx(0.6)  # ceil(0.2*5) = 1 item
    assert head_share([1, 6, 3, 0, 0], top=0.4) == pytest.approx(0.9)


def test_counts_on_the_tiny_log(tiny):
    # 7 distinct pairs among 3 users x 5 items
    assert sparsity(tiny) == pytest.approx(1 - 7 / 15)
    assert item_popularity(tiny).to_dict() == {50: 0, 40: 2, 30: 2, 20: 2, 10: 1}
    assert item_popularity(tiny, by="events").to_dict() == {50: 0, 40: 2, 30: 2, 20: 2, 10: 4}
    assert user_activity(tiny).to_dict() == {1: 6, 2: 3, 3: 1}
    counts = cold_start_counts(tiny, min_interactions=2)
    assert counts.to_dict() == {"users without interactions": 0, "users with < 2 items": 1,
                                "items without interactions": 1, "items with < 2 users": 2}
    ov = overview(tiny)
    assert ov["distinct user-item pairs"] == 7 and ov["density"] == pytest.approx(7 / 15)


def test_activity_over_time_counts_events_per_day(tiny):
    daily = activity_over_time(tiny, "D")
    assert daily.loc[pd.Timestamp("2024-01-01")].to_dict() == {"cart": 0, "click": 1, "purchase": 1, "view": 1}
    assert daily.to_numpy().sum() == len(tiny.interactions)
    assert len(daily) == 8  # Jan 1..8, days without events included as 0
    smooth = activity_over_time(tiny, "D", window=2)
    assert np.isnan(smooth.iloc[0, 0])
    assert smooth.loc[pd.Timestamp("2024-01-02"), "view"] == pytest.approx((1 + 1) / 2)


def test_activity_over_time_fills_empty_weeks_before_smoothing(make_frame, tiny):
    nan = np.nan
    # weeks start on Monday; 2024-01-01 is a Monday. Views: week of Jan 1: 3, Jan 8: none, Jan 15: 1,
    # Jan 22: 2.
    inter = make_frame(
        [
            (1, 10, "2024-01-01 10:00", "view", nan, 1),
            (1, 20, "2024-01-03 10:00", "view", nan, 1),
            (2, 10, "2024-01-07 23:00", "view", nan, 2),
            (2, 20, "2024-01-16 10:00", "view", nan, 3),
            (3, 10, "2024-01-22 10:00", "view", nan, 4),
            (3, 20, "2024-01-28 10:00", "view", nan, 4),
        ]
    )
    data = type(tiny)("gap", inter, tiny.items, tiny.users)
    weekly = activity_over_time(data, "W")
    assert list(weekly.index) == list(pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]))
    assert weekly["view"].tolist() == [3, 0, 1, 2]  # the empty week is a row of 0
    smooth = activity_over_time(data, "W", window=2)["view"].tolist()
    assert np.isnan(smooth[0])
    assert smooth[1:] == pytest.approx([(3 + 0) / 2, (0 + 1) / 2, (1 + 2) / 2])  # never across the gap


def test_quality_report_counts_missing_values(tiny):
    inter = tiny.interactions.copy()
    inter.loc[[0, 1], "event"] = None
    report = quality_report(type(tiny)("q", inter, tiny.items, tiny.users)).set_index(["table", "column"])
    assert report.loc[("interactions", "event"), "missing"] == 2
    assert report.loc[("interactions", "event"), "missing %"] == 20.0
    assert report.loc[("interactions", "rating"), "missing"] == 8
    assert report.loc[("items", "item_id"), "max"] == 50


def test_join_tables_adds_item_and_user_columns_without_duplicating(tiny):
    users = tiny.users.assign(region=["n", "s", "e"])
    data = type(tiny)("j", tiny.interactions, tiny.items, users)
    joined = join_tables(data)
    assert len(joined) == len(tiny.interactions)
    assert joined.loc[0, "title"] == "a" and joined.loc[0, "region"] == "n"  # user 1, item 10
    assert joined.groupby("item_id")["category"].first().to_dict() == {10: "x", 20: "y", 30: "x", 40: "y"}
    doubled = type(tiny)("d", tiny.interactions, pd.concat([tiny.items, tiny.items.head(1)]), users)
    with pytest.raises(pd.errors.MergeError):
        join_tables(doubled)


def test_funnel_rates_by_hand(tiny):
    overall = funnel_rates(tiny.interactions)
    # 5 views, 2 clicks, 1 cart, 2 purchases
    assert overall.loc[0, ["view", "click", "cart", "purchase"]].tolist() == [5, 2, 1, 2]
    assert overall.loc[0, "click/view"] == pytest.approx(0.4) and overall.loc[0, "purchase/view"] == pytest.approx(0.4)
    per_user = funnel_rates(tiny.interactions, by="user_id").set_index("user_id")
    assert per_user.loc[3, "view"] == 1 and per_user.loc[3, "click/view"] == 0.0
    assert np.isnan(per_user.loc[3, "purchase/cart"])  # no cart: the rate is undefined


def _split_all_train(tiny):
    """``tiny`` as a split with every interaction moved back into training."""
    split = random_holdout(tiny, test_ratio=0.5, seed=0)
    return replace(split, train=pd.concat([split.train, split.test], ignore_index=True), test=split.test.iloc[:0])


def test_category_share_and_users_mostly_in_by_hand(tiny):
    split = _split_all_train(tiny)
    # distinct training items: user 1 -> {10 x, 20 y, 30 x}; user 2 -> {20 y, 40 y, 30 x}; user 3 -> {40 y}
    uid = {u: int(split.users.index([u])[0]) for u in (1, 2, 3)}
    share = category_share(split, "x")
    assert share[uid[1]] == pytest.approx(2 / 3)  # item 10's four events count once
    assert share[uid[2]] == pytest.approx(1 / 3)
    assert share[uid[3]] == 0.0
    assert users_mostly_in(split, "x").tolist() == [uid[1]]
    assert users_mostly_in(split, "y").tolist() == sorted([uid[2], uid[3]])
    assert users_mostly_in(split, "y", share=1.0).tolist() == [uid[3]]
    assert users_mostly_in(split, "z").tolist() == []


def test_users_mostly_in_skips_users_without_training_items_and_checks_arguments(tiny):
    split = _split_all_train(tiny)
    uid3 = int(split.users.index([3])[0])
    no3 = replace(split, train=split.train[split.train["user_idx"] != uid3])
    assert uid3 not in category_share(no3, "y").index
    assert uid3 not in users_mostly_in(no3, "y")
    with pytest.raises(ValueError, match="share"):
        users_mostly_in(split, "x", share=0)
    with pytest.raises(ValueError, match="colour"):
        category_share(split, "x", column="colour")
