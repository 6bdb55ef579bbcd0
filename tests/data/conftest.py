from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnb.data.schema import RecData


def frame(rows: list[tuple], with_session: bool = True) -> pd.DataFrame:
    """Interactions from ``(user, item, 'YYYY-mm-dd HH:MM', event, rating, session)`` tuples."""
    out = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event", "rating", "session_id"])
    out["timestamp"] = pd.to_datetime(out["timestamp"])
    out["rating"] = out["rating"].astype(float)
    out[["user_id", "item_id", "session_id"]] = out[["user_id", "item_id", "session_id"]].astype(np.int64)
    return out if with_session else out.drop(columns="session_id")


@pytest.fixture
def make_frame():
    """The :func:`frame` helper, for tests that build their own logs."""
    return frame


@pytest.fixture
def tiny() -> RecData:
    """3 users, 5 items (item 50 never interacted with), a small hand-checkable event log."""
    nan = np.nan
    inter = frame(
        [
            (1, 10, "2024-01-01 10:00", "view", nan, 1),
            (1, 10, "2024-01-01 10:01", "click", nan, 1),
            (1, 10, "2024-01-01 10:02", "purchase", 4, 1),
            (1, 20, "2024-01-02 09:00", "view", nan, 2),
            (1, 10, "2024-01-05 12:00", "view", nan, 3),  # a later repeat view of 10
            (1, 30, "2024-01-06 12:00", "click", nan, 4),
            (2, 20, "2024-01-03 08:00", "view", nan, 5),
            (2, 40, "2024-01-04 08:00", "cart", nan, 6),
            (2, 30, "2024-01-07 08:00", "purchase", 2, 7),
            (3, 40, "2024-01-08 08:00", "view", nan, 8),
        ]
    )
    items = pd.DataFrame(
        {
            "item_id": [50, 40, 30, 20, 10],  # deliberately not sorted
            "title": ["e", "d", "c", "b", "a"],
            "category": ["x", "y", "x", "y", "x"],
            "text": ["e", "d", "c", "b", "a"],
        }
    )
    users = pd.DataFrame({"user_id": [1, 2, 3]})
    return RecData("tiny", inter, items, users)
