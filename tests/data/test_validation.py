from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnb.data import make_shop
from recnb.data.schema import RecData
from recnb.data.validation import (
    DataValidationError,
    Problem,
    coerce_numeric,
    coerce_time,
    problems_table,
    time_bounds,
    validate,
)


def test_clean_data_has_no_problem(tiny):
    assert validate(tiny) == []
    assert validate(make_shop(n_users=30, n_items=40, n_categories=4, n_interactions=500)) == []


def test_every_problem_is_reported_at_once(tiny):
    inter = tiny.interactions.copy()
    inter["rating"] = inter["rating"].astype(object)
    inter.loc[2, "rating"] = "four"  # not a number
    inter.loc[8, "rating"] = 7.0  # out of range
    inter.loc[3, "timestamp"] = pd.Timestamp("1970-01-01 00:00:05")
    inter.loc[4, "timestamp"] = pd.Timestamp("2099-01-01")
    inter.loc[5, "event"] = None
    inter.loc[6, "item_id"] = 99  # unknown item
    inter = pd.concat([inter, inter.iloc[[0]]])  # a duplicate row, index label 0 again
    items = pd.concat([tiny.items, tiny.items.iloc[[1]]], ignore_index=True)  # item 40 twice, row 5
    users = pd.DataFrame({"user_id": [1.0, 2.0, np.nan, 3.0]})
    with pytest.raises(DataValidationError) as caught:
        validate(RecData("broken", inter, items, users))
    error = caught.value
    assert isinstance(error, ValueError)
    found = {(p.source, p.column, p.rows, p.expected) for p in error.problems}
    assert found == {
        ("broken users", "user_id", (2,), "an id (missing here)"),
        ("broken items", "item_id", (5,), "unique ids (duplicate key)"),
        ("broken interactions", "rating", (2,), "a number"),
        ("broken interactions", "rating", (8,), "a rating in 1..5"),
        ("broken interactions", "timestamp", (3, 4), f"a time between 1990-01-01 and {(pd.Timestamp.now().normalize() + pd.Timedelta(days=1)).date()}"),
        ("broken interactions", "event", (5,), "an event name (missing here)"),
        ("broken interactions", None, (0,), "no exact duplicate of an earlier row"),
        ("broken interactions", "item_id", (6,), "an id listed in broken items"),
    }
    message = str(error)
    assert message.startswith("8 problem(s) in broken:")
    assert "broken interactions, column 'rating', row 2: expected a number; found 'four'" in message
    assert "found 7.0" in message


def test_missing_columns_and_wrong_separator_are_named():
    frames = {
        "interactions": pd.DataFrame({"user_id\titem_id\trating\ttimestamp": ["1\t2\t3\t4"]}),
        "items": pd.DataFrame({"item_id": [1], "title": ["a"]}),
    }
    problems = validate(frames, source={"interactions": "u.data", "items": "u.item"},
                        formats={"interactions": "tab-separated"}, raise_errors=False)
    assert [str(p) for p in problems] == [
        "u.item, column 'category, text': expected columns item_id, title, category, text; found columns item_id, title",
        "u.data: expected tab-separated with columns user_id, item_id, timestamp, event, rating; "
        "found a single column 'user_id\\titem_id\\trating\\ttimestamp': wrong separator?",
    ]


def test_non_integer_ids_missing_texts_and_bad_prices():
    items = pd.DataFrame({"item_id": ["1", "x", "3", "4"], "title": ["a", "", None, "d"], "category": "c",
                          "text": "t", "price": [1.0, -2.0, np.nan, 3.0]})
    problems = validate({"items": items}, raise_errors=False, line_numbers=True)
    assert [(p.column, p.rows, p.expected) for p in problems] == [
        ("item_id", (1,), "an integer id"),
        ("title", (1, 2), "a non-empty text"),
        ("price", (2,), "a price (missing here)"),
        ("price", (1,), "a price >= 0"),
    ]
    assert str(problems[1]) == "items, column 'title', lines 1, 2: expected a non-empty text"


def test_string_dtype_columns_are_reported_by_column_and_row():
    got = coerce_numeric(pd.Series(["1.5", "x", None, "4"], dtype="string"))
    assert got.dtype == np.float64
    assert got[0] == 1.5 and np.isnan(got[1]) and np.isnan(got[2]) and got[3] == 4.0
    items = pd.DataFrame({"item_id": ["1", "x", "3"], "title": "a", "category": "c", "text": "t",
                          "price": ["1.0", "2.5", "cheap"]}).astype({"item_id": "string", "price": "string"})
    problems = validate({"items": items}, raise_errors=False)
    assert [(p.column, p.rows, p.expected, p.found) for p in problems] == [
        ("item_id", (1,), "an integer id", "'x'"),
        ("price", (2,), "a number", "'cheap'"),
    ]
    inter = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 3], "timestamp": ["2024-01-01", "2024-01-02"],
                          "event": "rate", "rating": pd.array(["4", "five"], dtype="string")})
    with pytest.raises(DataValidationError, match=r"column 'rating', row 1: expected a number; found 'five'"):
        validate({"interactions": inter})


def test_problem_table_and_message_shorten_long_row_lists():
    p = Problem("f", "c", tuple(range(10, 22)), "x", "y", unit="line")
    assert str(p) == "f, column 'c', lines 10, 11, 12, 13, 14, ... (12 in all): expected x; found y"
    table = problems_table([p])
    assert table.loc[0, "rows"] == 12 and table.loc[0, "first rows"] == "10, 11, 12, 13, 14"


def test_dirty_shop_reports_each_kind_of_dirt():
    dirty = make_shop(n_users=60, n_items=50, n_categories=4, n_interactions=2000, dirt=0.05)
    problems = validate(dirty, raise_errors=False)
    kinds = {(p.source.split()[-1], p.column, p.expected.split(" (")[0].split(" between")[0]) for p in problems}
    assert {
        ("interactions", "user_id", "an id"),
        ("interactions", "timestamp", "a timestamp"),
        ("interactions", "timestamp", "a time"),
        ("interactions", "event", "an event name"),
        ("interactions", "rating", "a rating in 1..5"),
        ("interactions", None, "no exact duplicate of an earlier row"),
        ("interactions", "user_id", "an id listed in synthetic users"),
        ("interactions", "item_id", "an id listed in synthetic items"),
        ("items", "price", "a price >= 0"),
        ("items", "title", "a non-empty text"),
    } <= kinds
    dup = next(p for p in problems if p.expected.startswith("no exact duplicate"))
    assert len(dup.rows) == dirty.truth["dirt"]["duplicates"]


def test_coerce_time_reads_seconds_and_text():
    got = coerce_time(pd.Series(["881250949", "x", None]))
    assert got[0] == pd.Timestamp("1997-12-04 15:55:49") and got[1:].isna().all()
    assert coerce_time(pd.Series(["2024-01-02", "nope"])).tolist()[0] == pd.Timestamp("2024-01-02")


def test_time_bounds_default_to_the_start_of_tomorrow():
    before = pd.Timestamp.now().normalize()
    lo, hi = time_bounds(("2000-01-01", None))
    after = pd.Timestamp.now().normalize()  # the two differ only if midnight passed in between
    assert lo == pd.Timestamp("2000-01-01")
    assert hi in {before + pd.Timedelta(days=1), after + pd.Timedelta(days=1)}
    assert time_bounds((None, "2024-05-06")) == (pd.Timestamp.min, pd.Timestamp("2024-05-06"))


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="unknown table"):
        validate({"ratings": pd.DataFrame()})
