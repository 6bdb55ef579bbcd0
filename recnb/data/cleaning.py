"""Audited cleaning: every step says what it changed and why; nothing is dropped silently.

:func:`clean` runs the steps below in order and returns the cleaned data with an **audit**
(one row per step and table: ``step, table, rows_before, rows_after, changed, why``):

=====================  ======================================================================
``duplicates``         drop interaction rows that copy an earlier row exactly; drop later
                       rows of a duplicated item or user id
``missing``            drop interactions missing a user, item, timestamp or event (nothing to
                       repair them from); repair items: missing title -> the text up to its first
                       ``". "`` (or ``"item <id>"``), category -> ``"unknown"``; users: missing
                       text fields -> ``"unknown"``
``out_of_range``       drop interactions with a rating outside ``rating_range`` or a timestamp
                       outside ``time_range``; a missing or negative price is replaced by the
                       median price of the item's category
``unknown_ids``        drop interactions whose user or item is not in the users / items table
``bots``               drop users whose busiest clock hour holds more than
                       ``max_events_per_hour`` events (:func:`flag_bots`), and their events
=====================  ======================================================================

Ids come back as int64 and timestamps as datetime64[ns], so the result is canonical.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, ITEM, RATING, TIME, USER, RecData
from recnb.data.validation import EARLIEST, coerce_numeric, coerce_time, time_bounds

STEPS = ("duplicates", "missing", "out_of_range", "unknown_ids", "bots")
AUDIT_COLUMNS = ["step", "table", "rows_before", "rows_after", "changed", "why"]


def busiest_hour(interactions: pd.DataFrame) -> pd.Series:
    """Per user (index ``user_id``): the most events they produced within one clock hour."""
    t = coerce_time(interactions[TIME])
    known = interactions[USER].notna() & t.notna()
    per_hour = pd.DataFrame({USER: interactions.loc[known, USER], "hour": t[known].dt.floor("h")})
    return per_hour.groupby([USER, "hour"]).size().groupby(level=0).max().rename("busiest hour")


def flag_bots(interactions: pd.DataFrame, max_events_per_hour: int = 100) -> np.ndarray:
    """Sorted ids of users with more than ``max_events_per_hour`` events in one clock hour.

    A person browsing a shop produces a few events a minute at most; hundreds within an hour is
    a crawler or a script. (The rule is deliberately simple and explainable.)
    """
    busiest = busiest_hour(interactions)
    return np.sort(busiest[busiest > max_events_per_hour].index.to_numpy())


class _Audit:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, step: str, table: str, before: int, after: int, changed: int, why: str) -> None:
        self.rows.append(dict(step=step, table=table, rows_before=before, rows_after=after, changed=changed, why=why))

    def drop(self, step: str, table: str, frame: pd.DataFrame, mask: pd.Series | np.ndarray, why: str) -> pd.DataFrame:
        mask = np.asarray(mask, bool)
        self.add(step, table, len(frame), int(len(frame) - mask.sum()), int(mask.sum()), why)
        return frame.loc[~mask]

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=AUDIT_COLUMNS)


def clean(
    data: RecData,
    steps: Sequence[str] = STEPS,
    rating_range: tuple[float, float] = (1.0, 5.0),
    time_range: tuple[pd.Timestamp | str | None, pd.Timestamp | str | None] = (EARLIEST, None),
    max_events_per_hour: int = 100,
) -> tuple[RecData, pd.DataFrame]:
    """Clean ``data`` with ``steps`` (a subset of :data:`STEPS`, run in that order).

    Returns ``(cleaned, audit)``; ``audit`` has one row per step and table (see the module
    docstring), ``changed`` counting dropped rows (or repaired values when the row count stays).
    """
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown cleaning step(s) {unknown}: expected some of {list(STEPS)}")
    inter, items, users = data.interactions.copy(), data.items.copy(), data.users.copy()
    audit = _Audit()
    lo, hi = time_bounds(time_range)

    if "duplicates" in steps:
        inter = audit.drop("duplicates", "interactions", inter, inter.duplicated(), "exact copy of an earlier event")
        items = audit.drop("duplicates", "items", items, items[ITEM].notna() & items[ITEM].duplicated(),
                           "item_id already listed (first row kept)")
        users = audit.drop("duplicates", "users", users, users[USER].notna() & users[USER].duplicated(),
                           "user_id already listed (first row kept)")
    if "missing" in steps:
        required = [c for c in (USER, ITEM, TIME, EVENT) if c in inter.columns]
        inter = audit.drop("missing", "interactions", inter, inter[required].isna().any(axis=1),
                           f"missing {' / '.join(required)}: nothing to repair it from")
        items = audit.drop("missing", "items", items, items[ITEM].isna(), "missing item_id")
        users = audit.drop("missing", "users", users, users[USER].isna(), "missing user_id")
        items = _repair_items(items, audit)
        text_columns = [c for c in users.columns if c != USER and users[c].dtype == object]
        gaps = users[text_columns].isna()
        users[text_columns] = users[text_columns].fillna("unknown")
        audit.add("missing", "users", len(users), len(users), int(gaps.any(axis=1).sum()),
                  f"missing {', '.join(text_columns) or 'text fields'} set to 'unknown'")
    if "out_of_range" in steps:
        if RATING in inter.columns:
            r = coerce_numeric(inter[RATING])
            inter = audit.drop("out_of_range", "interactions", inter, r.notna() & ~r.between(*rating_range),
                               f"rating outside {rating_range[0]:g}..{rating_range[1]:g}")
        t = coerce_time(inter[TIME])
        inter = audit.drop("out_of_range", "interactions", inter, t.isna() | (t < lo) | (t > hi),
                           f"timestamp outside {lo.date()} .. {hi.date()}")
        if "price" in items.columns:
            items = _repair_prices(items, audit)
    if "unknown_ids" in steps:
        inter = audit.drop("unknown_ids", "interactions", inter,
                           ~inter[USER].isin(users[USER]) | ~inter[ITEM].isin(items[ITEM]),
                           "user_id or item_id not in the users / items table")
    if "bots" in steps:
        bots = flag_bots(inter, max_events_per_hour)
        inter = audit.drop("bots", "interactions", inter, inter[USER].isin(bots),
                           f"events of {len(bots)} bot user(s): > {max_events_per_hour} events in one hour")
        users = audit.drop("bots", "users", users, users[USER].isin(bots),
                           f"bot user(s): > {max_events_per_hour} events in one hour")

    inter = inter.reset_index(drop=True)
    if inter[USER].notna().all() and inter[ITEM].notna().all():
        inter[USER] = inter[USER].astype("int64")
        inter[ITEM] = inter[ITEM].astype("int64")
    inter[TIME] = coerce_time(inter[TIME])
    items = items.reset_index(drop=True).astype({ITEM: "int64"})
    users = users.reset_index(drop=True).astype({USER: "int64"})
    return RecData(data.name, inter, items, users, dict(data.truth)), audit.frame


def _repair_items(items: pd.DataFrame, audit: _Audit) -> pd.DataFrame:
    items = items.copy()
    if "title" in items.columns:
        gap = items["title"].isna()
        from_text = items.get("text", pd.Series(np.nan, index=items.index)).str.split(". ", n=1, regex=False).str[0]
        items.loc[gap, "title"] = from_text[gap].fillna("item " + items[ITEM].astype(str))[gap]
        audit.add("missing", "items", len(items), len(items), int(gap.sum()),
                  "missing title rebuilt from the text (up to its first '. ')")
    if "category" in items.columns:
        gap = items["category"].isna()
        items.loc[gap, "category"] = "unknown"
        audit.add("missing", "items", len(items), len(items), int(gap.sum()), "missing category set to 'unknown'")
    return items


def _repair_prices(items: pd.DataFrame, audit: _Audit) -> pd.DataFrame:
    items = items.copy()
    price = coerce_numeric(items["price"])
    bad = price.isna() | (price < 0)
    median = price.where(~bad).groupby(items["category"]).transform("median").fillna(price.where(~bad).median())
    items["price"] = price.where(~bad, median)
    audit.add("out_of_range", "items", len(items), len(items), int(bad.sum()),
              "missing or negative price replaced by its category's median price")
    return items
