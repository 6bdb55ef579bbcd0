from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recnb.data import holdout_validation, leave_last_out, make_shop, positives, random_holdout, split_summary, time_cut
from recnb.data.schema import RecData


def pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["user_id"], df["item_id"]))


def test_positives_one_row_per_pair_latest_time_strongest_event_last_rating(tiny):
    p = positives(tiny.interactions)
    assert len(p) == 7  # 10 rows, 7 distinct (user, item) pairs
    row = p[(p.user_id == 1) & (p.item_id == 10)].iloc[0]
    assert row["timestamp"] == pd.Timestamp("2024-01-05 12:00")  # the latest
    assert row["event"] == "purchase"  # the strongest
    assert row["rating"] == 4.0  # the last rating, though the latest row has none
    assert row["session_id"] == 3  # the session of the latest row
    assert list(p.columns) == list(tiny.interactions.columns)


def test_positives_event_filter_and_no_dedupe(tiny):
    p = positives(tiny.interactions, events=("click", "cart", "purchase"))
    assert pairs(p) == {(1, 10), (1, 30), (2, 40), (2, 30)}
    assert len(positives(tiny.interactions, dedupe=False)) == 10
    with pytest.raises(ValueError, match="none of events"):
        positives(tiny.interactions, events=["like"])


def test_random_holdout_partitions_the_positives(tiny):
    s = random_holdout(tiny, test_ratio=0.5, seed=0)
    assert pairs(s.train) | pairs(s.test) == pairs(positives(tiny.interactions))
    assert not pairs(s.train) & pairs(s.test)
    # user 1 has 3 pairs -> round_half_up(1.5) = 2 test; user 2 has 3 -> 2; user 3 has 1 -> 0 (min_train)
    assert s.test.groupby("user_id").size().to_dict() == {1: 2, 2: 2}
    assert s.train.groupby("user_id").size().to_dict() == {1: 1, 2: 1, 3: 1}


def test_split_indexes_all_users_and_items_in_id_order(tiny):
    s = random_holdout(tiny, test_ratio=0.5)
    assert s.n_items == 5 and s.n_users == 3  # item 50 has no interaction and is still indexed
    assert s.items_frame["item_id"].tolist() == [10, 20, 30, 40, 50]
    assert s.items_frame["title"].tolist() == ["a", "b", "c", "d", "e"]
    both = pd.concat([s.train, s.test])
    assert (both["item_idx"] == both["item_id"] // 10 - 1).all()
    assert (both["user_idx"] == both["user_id"] - 1).all()


def test_random_holdout_is_seeded():
    data = make_shop(n_users=40, n_items=30, n_categories=4, n_interactions=1500, seed=0)
    a, b, c = random_holdout(data, seed=1), random_holdout(data, seed=1), random_holdout(data, seed=2)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert pairs(a.test) != pairs(c.test)
    per_user = positives(data.interactions).groupby("user_id").size()
    expected = np.minimum(np.floor(0.2 * per_user + 0.5), per_user - 1).astype(int)
    got = a.test.groupby("user_id").size().reindex(per_user.index, fill_value=0)
    assert (got == expected).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 50)), min_size=1, max_size=60),
    st.floats(0.05, 0.95),
    st.integers(0, 3),
)
def test_random_holdout_property(make_frame, rows, ratio, min_train):
    inter = make_frame([(u, i, pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h), "view", np.nan, 1) for u, i, h in rows])
    items = pd.DataFrame({"item_id": range(1, 9), "title": "t", "category": "c", "text": "t"})
    data = RecData("h", inter, items, pd.DataFrame({"user_id": range(1, 7)}))
    total = positives(inter).groupby("user_id").size()
    n_test = np.clip(np.minimum(np.floor(ratio * total + 0.5), total - min_train), 0, None)
    if (total - n_test).sum() == 0:  # min_train=0 can send every row to test: refused, not an empty train
        with pytest.raises(ValueError, match=r"random_holdout\(.*\) leaves no training rows"):
            random_holdout(data, test_ratio=ratio, seed=0, min_train=min_train)
        return
    s = random_holdout(data, test_ratio=ratio, seed=0, min_train=min_train)
    assert pairs(s.train) | pairs(s.test) == pairs(inter) and not pairs(s.train) & pairs(s.test)
    train_n = s.train.groupby("user_id").size()
    assert (train_n.reindex(total.index, fill_value=0) >= np.minimum(total, min_train)).all()
    if min_train >= 1:
        assert len(s.cold_users) == 0


def test_leave_last_out_holds_out_each_users_latest(tiny):
    s = leave_last_out(tiny)
    assert pairs(s.test) == {(1, 30), (2, 30)}  # user 3 has one positive: kept for training
    s2 = leave_last_out(tiny, n=2)
    assert pairs(s2.test) == {(1, 30), (1, 10), (2, 30), (2, 40)}
    with pytest.raises(ValueError, match="n must be at least 1"):
        leave_last_out(tiny, n=0)


def test_time_cut_by_timestamp_and_quantile(tiny):
    s = time_cut(tiny, at="2024-01-05")
    assert (s.train["timestamp"] < pd.Timestamp("2024-01-05")).all()
    assert (s.test["timestamp"] >= pd.Timestamp("2024-01-05")).all()
    # (1,10) was seen before the cut: its repeat view is no new discovery
    assert pairs(s.test) == {(1, 30), (2, 30), (3, 40)}
    assert s.cold_users.tolist() == [2]  # user 3 (index 2) first appears after the cut
    assert s.cold_items.tolist() == [2]  # item 30 (index 2) is first interacted with after the cut
    q = time_cut(tiny, at=0.5)
    cut = tiny.interactions["timestamp"].quantile(0.5)
    # 10 timestamps: the median lies halfway between the 5th (Jan 3 08:00) and 6th (Jan 4 08:00)
    assert cut == pd.Timestamp("2024-01-03 20:00")
    assert (q.train["timestamp"] < cut).all() and (q.test["timestamp"] >= cut).all()
    # before the cut 5 events, 3 pairs; after it 5 events, 5 pairs, of which (1, 10) is a repeat
    assert pairs(q.train) == {(1, 10), (1, 20), (2, 20)} and len(q.train) == 3
    assert pairs(q.test) == {(1, 30), (2, 30), (2, 40), (3, 40)} and len(q.test) == 4
    assert len(q.train) + len(q.test) == len(positives(tiny.interactions))  # 7 pairs, each on one side
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        time_cut(tiny, at=1.5)


def test_holdout_validation_splits_train_only():
    data = make_shop(n_users=40, n_items=30, n_categories=4, n_interactions=1500, seed=0)
    s = random_holdout(data, seed=0)
    v = holdout_validation(s, ratio=0.25, seed=0)
    assert pairs(v.train) | pairs(v.test) == pairs(s.train)
    assert not pairs(v.test) & pairs(s.test)
    assert v.users is s.users and v.items is s.items and v.n_items == s.n_items
    last = holdout_validation(s, ratio=0.25, method="last")
    # the validation rows of each user are their latest training rows
    for u, rows in last.test.groupby("user_id"):
        assert rows["timestamp"].min() >= last.train[last.train.user_id == u]["timestamp"].max()
    with pytest.raises(ValueError, match="method must be"):
        holdout_validation(s, method="middle")


def test_split_summary(tiny):
    summary = split_summary(time_cut(tiny, at="2024-01-05"))
    assert summary["cold users"] == 1 and summary["test rows"] == 3 and summary["items"] == 5
    assert summary["cold items"] == 1
    assert summary["items never seen in train"] == 2  # items 30 and 50


def test_unknown_ids_are_refused(tiny):
    bad = RecData("bad", tiny.interactions.assign(item_id=tiny.interactions["item_id"].replace(40, 99)), tiny.items,
                  tiny.users)
    with pytest.raises(ValueError, match="2 interactions have a item_id missing from the items table"):
        random_holdout(bad)


def _positives_by_pandas(interactions: pd.DataFrame) -> pd.DataFrame:
    """The former pandas group-by implementation of positives(dedupe=True): the reference."""
    from recnb.data.splits import EVENT_STRENGTH

    frame = interactions.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    strength = frame["event"].map(EVENT_STRENGTH).fillna(0).to_numpy()
    groups = frame.groupby(["user_id", "item_id"], sort=False)
    last = groups.tail(1).set_index(["user_id", "item_id"])
    best = pd.Series(strength, index=frame.index).groupby([frame["user_id"], frame["item_id"]]).idxmax()
    last["event"] = frame.loc[best.to_numpy(), "event"].to_numpy()
    last["rating"] = groups["rating"].last().to_numpy()
    frame = last.reset_index()[list(interactions.columns)]
    return frame.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(0, 6),
                          st.sampled_from(["view", "click", "cart", "purchase", "rating", "wish"]),
                          st.sampled_from([np.nan, 1.0, 3.0, 5.0])), min_size=1, max_size=40))
def test_vectorised_positives_equal_the_pandas_group_by(make_frame, rows):
    # few distinct hours: many ties in time, so the row-order rules are exercised
    inter = make_frame([(u, i, pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h), e, r, k)
                        for k, (u, i, h, e, r) in enumerate(rows)])
    pd.testing.assert_frame_equal(positives(inter), _positives_by_pandas(inter))
    no_dedupe = inter.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(positives(inter, dedupe=False), no_dedupe)


def test_empty_log_and_empty_train_are_named(tiny):
    empty = RecData("empty", tiny.interactions.iloc[:0], tiny.items, tiny.users)
    for split in (random_holdout, leave_last_out, time_cut):
        with pytest.raises(ValueError, match="data.interactions of 'empty' is empty"):
            split(empty)
    with pytest.raises(ValueError, match=r"time_cut\(at='2020-01-01'\) cuts at 2020-01-01 00:00:00, before the first"):
        time_cut(tiny, at="2020-01-01")
    with pytest.raises(ValueError, match=r"time_cut\(at='2024-01-02', events=\('cart',\)\) leaves no training rows"):
        time_cut(tiny, at="2024-01-02", events=("cart",))  # the only cart is on Jan 4, after the cut
    with pytest.raises(ValueError, match=r"leave_last_out\(n=5, min_train=0\) leaves no training rows"):
        leave_last_out(tiny, n=5, min_train=0)


@pytest.mark.parametrize("at, message", [
    ("yesterday-ish", r"at='yesterday-ish' cannot be parsed as a timestamp"),
    (3, r"at must be a timestamp \(e.g. '2024-03-01'\) or a float quantile in \(0, 1\), got 3 \(int\)"),
    (None, r"at must be a timestamp .* got None"),
])
def test_unparseable_time_cut_is_named(tiny, at, message):
    with pytest.raises(ValueError, match=message):
        time_cut(tiny, at=at)


@pytest.mark.parametrize("seed", [1.5, "0", None, -1, True])
def test_non_integer_seed_is_named(tiny, seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        random_holdout(tiny, seed=seed)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        holdout_validation(random_holdout(tiny), seed=seed)


@pytest.mark.parametrize("column, values, message", [
    ("user_id", lambda s: s.astype(str), r"interactions column 'user_id' must hold integer ids \(int64\), got dtype object \(e.g. '1'\)"),
    ("item_id", lambda s: s.astype(float), r"interactions column 'item_id' must hold integer ids \(int64\), got dtype float64"),
    ("user_id", lambda s: s.astype("Int64").mask(s == 2), r"interactions column 'user_id' holds 3 missing ids"),
])
def test_ids_of_the_wrong_type_are_named(tiny, column, values, message):
    bad = RecData("bad", tiny.interactions.assign(**{column: values(tiny.interactions[column])}), tiny.items, tiny.users)
    with pytest.raises(ValueError, match=message):
        random_holdout(bad)
    items = tiny.items.assign(item_id=tiny.items["item_id"].astype(str))
    with pytest.raises(ValueError, match=r"items table column 'item_id' must hold integer ids \(int64\), got dtype object"):
        random_holdout(RecData("bad", tiny.interactions, items, tiny.users))
