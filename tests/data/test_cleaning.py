from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnb.data import make_shop
from recnb.data.cleaning import AUDIT_COLUMNS, STEPS, busiest_hour, clean, flag_bots
from recnb.data.schema import RecData
from recnb.data.validation import validate

SMALL = dict(n_users=80, n_items=60, n_categories=4, n_interactions=3000, seed=2)


@pytest.fixture(scope="module")
def dirty():
    return make_shop(**SMALL, dirt=0.03)


def test_cleaning_the_dirty_shop_leaves_valid_canonical_data(dirty):
    cleaned, audit = clean(dirty)
    assert validate(cleaned) == []
    assert cleaned.interactions.dtypes["user_id"] == np.int64
    assert list(audit.columns) == AUDIT_COLUMNS


def test_the_audit_accounts_for_every_row(dirty):
    cleaned, audit = clean(dirty)
    for table in ("interactions", "items", "users"):
        rows = audit[audit.table == table]
        # each step starts where the previous one ended, and the ends match the frames
        assert (rows["rows_before"].iloc[1:].to_numpy() == rows["rows_after"].iloc[:-1].to_numpy()).all()
        assert rows["rows_before"].iloc[0] == len(getattr(dirty, table))
        assert rows["rows_after"].iloc[-1] == len(getattr(cleaned, table))
        dropped = rows[rows.rows_before != rows.rows_after]
        assert (dropped["changed"] == dropped["rows_before"] - dropped["rows_after"]).all()


def test_each_step_removes_exactly_the_dirt_that_was_added(dirty):
    added = dirty.truth["dirt"]
    _, audit = clean(dirty)
    changed = audit.set_index(["step", "table", "why"])["changed"]

    def count(step: str, table: str, why_starts: str) -> int:
        return int(sum(v for (s, t, w), v in changed.items() if s == step and t == table and w.startswith(why_starts)))

    # two views of one item in one session whose timestamps were both blanked become copies too
    assert count("duplicates", "interactions", "exact copy") == dirty.interactions.duplicated().sum()
    assert added["duplicates"] <= dirty.interactions.duplicated().sum() <= added["duplicates"] + 3
    deduped = dirty.interactions.drop_duplicates()
    n_missing = deduped[["user_id", "item_id", "timestamp", "event"]].isna().any(axis=1).sum()
    assert count("missing", "interactions", "missing") == n_missing
    assert 0 <= added["missing_user_id"] + added["missing_timestamp"] + added["missing_event"] - n_missing <= 3
    assert count("out_of_range", "interactions", "rating") == added["bad_ratings"]
    assert count("out_of_range", "interactions", "timestamp") == added["bad_timestamps"]
    assert count("unknown_ids", "interactions", "user_id") == added["unknown_ids"]
    assert count("bots", "users", "bot") == added["bots"]
    assert count("bots", "interactions", "events") == added["bot_rows"]
    assert count("missing", "items", "missing title") == added["missing_item_title"]
    assert count("out_of_range", "items", "missing or negative price") == added["bad_prices"] + added["missing_item_price"]


def test_repairs_use_the_text_and_category_median():
    items = pd.DataFrame({"item_id": [1, 2, 3, 4], "title": ["A", None, "C", "D"], "category": ["x", "x", "x", None],
                          "text": ["A. a", "Blue mug. Holds tea.", "C. c", "D. d"], "price": [2.0, 4.0, -1.0, 5.0]})
    inter = pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": pd.to_datetime(["2024-01-01"]),
                          "event": ["view"], "rating": [np.nan]})
    cleaned, audit = clean(RecData("r", inter, items, pd.DataFrame({"user_id": [1]})))
    out = cleaned.items.set_index("item_id")
    assert out.loc[2, "title"] == "Blue mug"
    assert out.loc[4, "category"] == "unknown"
    assert out.loc[3, "price"] == 3.0  # median of category x's valid prices 2 and 4
    assert out.loc[4, "price"] == 5.0


def test_flag_bots_by_events_per_clock_hour():
    t = pd.Timestamp("2024-01-01 10:00")
    inter = pd.DataFrame({
        "user_id": [1] * 5 + [2] * 3,
        "timestamp": [t + pd.Timedelta(minutes=m) for m in (0, 1, 2, 3, 4)] + [t, t + pd.Timedelta(hours=1), t + pd.Timedelta(hours=2)],
    })
    assert flag_bots(inter, max_events_per_hour=4).tolist() == [1]
    assert flag_bots(inter, max_events_per_hour=5).tolist() == []
    assert flag_bots(inter, max_events_per_hour=0).tolist() == [1, 2]


def test_steps_can_be_chosen_and_unknown_steps_are_named(dirty):
    _, audit = clean(dirty, steps=["duplicates"])
    assert set(audit["step"]) == {"duplicates"}
    with pytest.raises(ValueError, match=r"unknown cleaning step\(s\) \['scrub'\]"):
        clean(dirty, steps=["scrub"])
    assert STEPS == ("duplicates", "missing", "out_of_range", "unknown_ids", "bots")


def test_clean_data_is_left_alone():
    data = make_shop(**SMALL)
    cleaned, audit = clean(data)
    pd.testing.assert_frame_equal(cleaned.interactions, data.interactions)
    assert audit["changed"].sum() == 0


def test_busiest_hour_by_hand():
    t = pd.Timestamp("2024-01-01 10:59")
    inter = pd.DataFrame({"user_id": [1, 1, 1, 2], "timestamp": [t, t + pd.Timedelta(minutes=2), t + pd.Timedelta(minutes=3), t]})
    # 10:59 falls in hour 10, 11:01 and 11:02 in hour 11
    assert busiest_hour(inter).to_dict() == {1: 2, 2: 1}
