"""Descriptive analysis of an interaction log: sparsity, the long tail, activity, cold start.

Notation: ``U`` users, ``I`` items, ``P`` the set of distinct ``(user, item)`` pairs.

- **Sparsity** ``1 - |P| / (U · I)`` (density is ``|P| / (U · I)``).
- **Item popularity** ``x_i`` = number of distinct users of item ``i`` (``by="users"``) or of its
  events (``by="events"``), items without interactions counted as 0.
- **Gini coefficient** of ``x`` sorted ascending ``x_(1) <= ... <= x_(n)``:
  ``G = Σ_i (2i - n - 1) x_(i) / (n Σ_i x_i)``, equal to the mean absolute difference
  ``Σ_i Σ_j |x_i - x_j| / (2 n² mean(x))``; 0 when every item is equally popular, ``1 - 1/n``
  when one item has everything.
- **Lorenz curve**: the share of interactions held by the least popular fraction of items; ``G``
  is twice the area between it and the diagonal.
- **Category share** of user ``u`` in category ``c``: ``|{i in N_u : cat(i) = c}| / |N_u|`` with
  ``N_u`` the user's distinct training items of a :class:`~recnb.data.schema.Split`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, ITEM, ITEM_IDX, TIME, USER, USER_IDX, RecData, Split


def sparsity(data: RecData) -> float:
    """``1 - |P| / (U · I)`` with ``U``, ``I`` the sizes of the users and items tables."""
    pairs = data.interactions[[USER, ITEM]].drop_duplicates()
    return 1.0 - len(pairs) / (len(data.users) * len(data.items))


def item_popularity(data: RecData, by: str = "users") -> pd.Series:
    """Popularity of every item of ``data.items`` (index ``item_id``), 0 for items never used."""
    if by == "users":
        counts = data.interactions.groupby(ITEM)[USER].nunique()
    elif by == "events":
        counts = data.interactions.groupby(ITEM).size()
    else:
        raise ValueError(f"by must be 'users' or 'events', got {by!r}")
    return counts.reindex(data.items[ITEM], fill_value=0).rename("popularity")


def gini(counts: np.ndarray | pd.Series) -> float:
    """Gini coefficient ``Σ_i (2i - n - 1) x_(i) / (n Σ x)`` of non-negative ``counts``."""
    x = np.sort(np.asarray(counts, dtype=float))
    if x.size == 0 or (x < 0).any():
        raise ValueError("gini needs a non-empty array of non-negative counts")
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.size
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def lorenz_curve(counts: np.ndarray | pd.Series) -> pd.DataFrame:
    """Points of the Lorenz curve: ``item_share`` (least popular first) vs ``interaction_share``."""
    x = np.sort(np.asarray(counts, dtype=float))
    return pd.DataFrame(
        {
            "item_share": np.r_[0.0, np.arange(1, x.size + 1) / x.size],
            "interaction_share": np.r_[0.0, np.cumsum(x) / max(x.sum(), 1e-300)],
        }
    )


def popularity_curve(counts: np.ndarray | pd.Series) -> pd.DataFrame:
    """Items by decreasing popularity: ``rank`` (1 = most popular), ``count``, ``cumulative_share``."""
    x = np.sort(np.asarray(counts, dtype=float))[::-1]
    return pd.DataFrame(
        {"rank": np.arange(1, x.size + 1), "count": x, "cumulative_share": np.cumsum(x) / max(x.sum(), 1e-300)}
    )


def head_share(counts: np.ndarray | pd.Series, top: float = 0.2) -> float:
    """Share of all interactions held by the ``top`` fraction (``ceil(top · n)``) of most popular items."""
    x = np.sort(np.asarray(counts, dtype=float))[::-1]
    k = int(np.ceil(top * x.size))
    return float(x[:k].sum() / x.sum()) if x.sum() else 0.0


def user_activity(data: RecData) -> pd.Series:
    """Events per user of ``data.users`` (index ``user_id``), 0 for users without events."""
    return data.interactions.groupby(USER).size().reindex(data.users[USER], fill_value=0).rename("events")


def cold_start_counts(data: RecData, min_interactions: int = 5) -> pd.Series:
    """How many users and items have no, or fewer than ``min_interactions``, distinct partners."""
    users = data.interactions.groupby(USER)[ITEM].nunique().reindex(data.users[USER], fill_value=0)
    items = item_popularity(data, by="users")
    k = min_interactions
    return pd.Series(
        {
            "users without interactions": int((users == 0).sum()),
            f"users with < {k} items": int((users < k).sum()),
            "items without interactions": int((items == 0).sum()),
            f"items with < {k} users": int((items < k).sum()),
        },
        name="count",
    )


def activity_over_time(data: RecData, freq: str = "D", window: int | None = None) -> pd.DataFrame:
    """Events per period (``freq`` a pandas offset alias: ``"D"``, ``"W"``...), one column per event.

    ``window``: replace each count by the mean over the last ``window`` periods (a moving average,
    the "time smoothing" of 002 §9 Q3); the first ``window - 1`` periods become NaN.
    """
    inter = data.interactions
    period = inter[TIME].dt.to_period(freq).dt.start_time
    counts = inter.groupby([period, EVENT]).size().unstack(fill_value=0).rename_axis(index=TIME, columns=EVENT)
    if len(counts):  # every period from the first to the last, empty ones as 0: rolling never spans a gap
        periods = pd.period_range(counts.index.min(), counts.index.max(), freq=freq)
        counts = counts.reindex(periods.start_time.rename(TIME), fill_value=0)
    return counts.rolling(window).mean() if window else counts


def join_tables(data: RecData) -> pd.DataFrame:
    """Integration: every interaction with its item's and user's columns (a left join on the ids).

    Item columns that clash with interaction columns get the suffix ``_item``; the join is checked
    to be many-to-one (each id once in its table), so it never duplicates an interaction.
    """
    joined = data.interactions.merge(data.items, on=ITEM, how="left", validate="many_to_one", suffixes=("", "_item"))
    return joined.merge(data.users, on=USER, how="left", validate="many_to_one", suffixes=("", "_user"))


def funnel_rates(interactions: pd.DataFrame, by: str | None = None,
                 steps: tuple[str, ...] = ("view", "click", "cart", "purchase")) -> pd.DataFrame:
    """Events per funnel step and the step-to-step rates, overall or per group ``by``.

    ``rate <b>/<a>`` = (number of ``b`` events) / (number of ``a`` events), e.g. the click-through
    rate ``click/view`` and the conversion rate ``purchase/view``.
    """
    keys = [by] if by else []
    counts = interactions.groupby(keys + [EVENT]).size().unstack(fill_value=0) if by else \
        interactions[EVENT].value_counts().to_frame().T
    counts = counts.reindex(columns=list(steps), fill_value=0)
    out = counts.copy()
    for a, b in zip(steps, steps[1:]):
        out[f"{b}/{a}"] = counts[b] / counts[a].where(counts[a] > 0)
    out[f"{steps[-1]}/{steps[0]}"] = counts[steps[-1]] / counts[steps[0]].where(counts[steps[0]] > 0)
    out.columns.name = None
    return out.reset_index(drop=not by)


def quality_report(data: RecData) -> pd.DataFrame:
    """One row per table and column: dtype, rows, missing (count and %), distinct values, min, max."""
    rows = []
    for table, frame in (("interactions", data.interactions), ("items", data.items), ("users", data.users)):
        for column in frame.columns:
            values = frame[column]
            numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)
            rows.append(
                {
                    "table": table,
                    "column": column,
                    "dtype": str(values.dtype),
                    "rows": len(values),
                    "missing": int(values.isna().sum()),
                    "missing %": round(100 * values.isna().mean(), 2) if len(values) else 0.0,
                    "distinct": int(values.nunique()),
                    "min": values.min() if numeric and values.notna().any() else "",
                    "max": values.max() if numeric and values.notna().any() else "",
                }
            )
    return pd.DataFrame(rows)


def overview(data: RecData) -> pd.Series:
    """Headline sizes: users, items, interactions, distinct pairs, density, sparsity, time span."""
    pairs = len(data.interactions[[USER, ITEM]].drop_duplicates())
    t = data.interactions[TIME]
    return pd.Series(
        {
            "users": len(data.users),
            "items": len(data.items),
            "interactions": len(data.interactions),
            "distinct user-item pairs": pairs,
            "density": pairs / (len(data.users) * len(data.items)),
            "sparsity": sparsity(data),
            "first event": t.min(),
            "last event": t.max(),
        },
        name=data.name,
    )


def category_share(split: Split, category: str, column: str = "category") -> pd.Series:
    """Share of each user's distinct training items whose ``column`` equals ``category``.

    ``|{i in N_u : items_frame[column][i] == category}| / |N_u|`` for every user with at least
    one training item (index ``user_idx``, sorted); users without training items are left out
    (their share is undefined). Repeated interactions with one item count once.
    """
    if column not in split.items_frame.columns:
        raise ValueError(f"items_frame has no column {column!r}; it has {list(split.items_frame.columns)}")
    pairs = split.train[[USER_IDX, ITEM_IDX]].drop_duplicates()
    in_cat = split.items_frame[column].to_numpy()[pairs[ITEM_IDX].to_numpy()] == category
    return pd.Series(in_cat, index=pairs[USER_IDX].to_numpy()).groupby(level=0).mean().rename("share")


def users_mostly_in(split: Split, category: str, share: float = 0.5, column: str = "category") -> np.ndarray:
    """Sorted ``user_idx`` of the users whose :func:`category_share` in ``category`` is ``>= share``.

    ``share`` must lie in ``(0, 1]`` (with 0 every user would qualify, whatever they bought).
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    s = category_share(split, category, column)
    return s.index[s.to_numpy() >= share].to_numpy(dtype=np.int64)
