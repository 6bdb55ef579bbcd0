"""Train/test splits: random holdout, leave-last-out, time cut -> :class:`~recnb.data.schema.Split`.

Implicit positives
------------------
Ranking models learn from *which* items a user interacted with, so by default a split first turns
the event log into **one positive per user-item pair** (:func:`positives`):

- ``events`` picks the event kinds that count (``None``: all of them; e.g.
  ``("click", "cart", "purchase")`` drops bare views);
- ``dedupe=True`` keeps one row per ``(user, item)`` pair: the pair's **latest** timestamp and
  session, its **strongest** event (``view < click < cart < purchase``; ``rating`` ranks with
  ``purchase``) and its latest explicit rating (NaN if it has none). With ``dedupe=False`` every
  event row stays (a pair may then appear in both train and test).

The split then assigns whole rows to train or test. Every split indexes **all** users and items
of the data (items nobody interacted with included), so ``split.n_items == len(data.items)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, ITEM, ITEM_IDX, RATING, TIME, USER, USER_IDX, IdIndex, RecData, Split
from recnb.data.validation import check_seed

#: how strongly each event kind signals interest (larger = stronger); unknown kinds count as 0
EVENT_STRENGTH: dict[str, int] = {"view": 0, "click": 1, "cart": 2, "purchase": 3, "rating": 3}


def positives(interactions: pd.DataFrame, events: Sequence[str] | None = None, dedupe: bool = True) -> pd.DataFrame:
    """The implicit positives of an interaction log (see the module docstring).

    Returns a frame with the input's columns, sorted by ``(user, timestamp, item)``, index reset.
    Vectorised with numpy (one ``lexsort`` and segment reductions, no pandas group-by), so it runs
    in seconds on millions of rows. ``user_id`` and ``item_id`` must hold integer ids.
    """
    frame = interactions if events is None else interactions[_event_rows(interactions, events)]
    u, i = _int_ids(frame[USER], USER), _int_ids(frame[ITEM], ITEM)
    t = _time_key(frame[TIME])
    if not (dedupe and len(frame)):
        return frame.iloc[np.lexsort((i, t, u))].reset_index(drop=True)
    order = np.lexsort((t, i, u))  # by (user, item, time), ties in row order
    us, is_ = u[order], i[order]
    start = np.flatnonzero(np.r_[True, (us[1:] != us[:-1]) | (is_[1:] != is_[:-1])])
    size = np.diff(np.r_[start, len(order)])
    last = start + size - 1  # each pair's latest row
    pos = np.arange(len(order))
    codes, kinds = pd.factorize(frame[EVENT].to_numpy()[order], use_na_sentinel=True)
    strength = np.array([EVENT_STRENGTH.get(k, 0) for k in kinds] + [0], dtype=np.int64)[codes]  # NA (-1) -> 0
    best = np.maximum.reduceat(strength, start)
    strongest = np.minimum.reduceat(np.where(strength == np.repeat(best, size), pos, len(pos)), start)  # first of them
    rating = frame[RATING].to_numpy(np.float64, na_value=np.nan)[order]
    last_rated = np.maximum.reduceat(np.where(np.isnan(rating), -1, pos), start)
    # the pairs, then sorted by (user, timestamp, item)
    final = np.lexsort((is_[last], t[order][last], us[last]))
    rows = order[last][final]
    out = frame.iloc[rows].reset_index(drop=True)
    out[EVENT] = frame[EVENT].to_numpy()[order[strongest[final]]]
    lr = last_rated[final]
    out[RATING] = np.where(lr >= 0, rating[np.maximum(lr, 0)], np.nan)
    return out


def _event_rows(frame: pd.DataFrame, events: Sequence[str] | str) -> np.ndarray:
    """Bool mask of the rows whose event is in ``events``; an error if none of the kinds occurs at all."""
    events = [events] if isinstance(events, str) else list(events)
    present = set(frame[EVENT].dropna().unique())
    if not set(events) & present:
        raise ValueError(f"none of events={events} occurs in the data; it has {sorted(present)}")
    return frame[EVENT].isin(events).to_numpy()


def _int_ids(values: pd.Series, column: str) -> np.ndarray:
    """``values`` as int64; a ``ValueError`` naming ``column`` for non-integer or missing ids."""
    dtype = values.dtype
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(dtype):
        if values.isna().any():
            raise ValueError(f"interactions column {column!r} holds {int(values.isna().sum())} missing ids; "
                             "validate and clean the data first (recnb.data.validate / recnb.data.clean)")
        return values.to_numpy(np.int64)
    if not pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        example = values.iloc[0] if len(values) else None
        raise ValueError(f"interactions column {column!r} must hold integer ids (int64), got dtype {dtype} "
                         f"(e.g. {example!r}); validate and clean the data first (recnb.data.validate / recnb.data.clean)")
    return values.to_numpy(np.int64)


def _time_key(values: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds for sorting, missing ones last (as pandas sorts them)."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        raise ValueError(f"interactions column {TIME!r} must hold timestamps (datetime64[ns]), got dtype {values.dtype}")
    key = values.to_numpy("datetime64[ns]").view(np.int64).copy()
    key[values.isna().to_numpy()] = np.iinfo(np.int64).max
    return key


def _check_log(data: RecData) -> None:
    """A clear error for an interaction log that cannot be split (empty)."""
    if len(data.interactions) == 0:
        raise ValueError(f"data.interactions of {data.name!r} is empty: there is no interaction to split")


def _check_train(train: pd.DataFrame, how: str) -> None:
    if len(train) == 0:
        raise ValueError(f"{how} leaves no training rows: every model needs some interactions to learn from")


def _index(data: RecData) -> tuple[IdIndex, IdIndex, pd.DataFrame]:
    for table, column in ((data.users, USER), (data.items, ITEM)):
        name = "users" if column == USER else "items"
        if column not in table.columns:
            raise ValueError(f"the {name} table has no {column!r} column")
        if not pd.api.types.is_integer_dtype(table[column].dtype) or table[column].isna().any():
            raise ValueError(f"{name} table column {column!r} must hold integer ids (int64), got dtype {table[column].dtype}; "
                             "validate and clean the data first (recnb.data.validate / recnb.data.clean)")
    users = IdIndex.from_ids(data.users[USER].to_numpy(np.int64))
    items = IdIndex.from_ids(data.items[ITEM].to_numpy(np.int64))
    for name, index, column in (("user", users, USER), ("item", items, ITEM)):
        ids = _int_ids(data.interactions[column], column)
        _, known = index.lookup(ids)
        if not known.all():
            raise ValueError(
                f"{(~known).sum()} interactions have a {name}_id missing from the {name}s table "
                f"(first: {ids[~known][0]!r}); validate and clean the data first "
                "(recnb.data.validate / recnb.data.clean)"
            )
    items_frame = data.items.sort_values(ITEM).reset_index(drop=True)
    return users, items, items_frame


def _with_idx(frame: pd.DataFrame, users: IdIndex, items: IdIndex) -> pd.DataFrame:
    out = frame.reset_index(drop=True)
    out[USER_IDX] = users.index(out[USER].to_numpy()).astype(np.int64)
    out[ITEM_IDX] = items.index(out[ITEM].to_numpy()).astype(np.int64)
    return out


def _n_test(counts: np.ndarray, ratio: float | None, n: int | None, min_train: int) -> np.ndarray:
    """Held-out rows per user: ``round_half_up(ratio * count)`` (or ``n``), keeping ``min_train``."""
    want = np.floor(ratio * counts + 0.5).astype(np.int64) if ratio is not None else np.full(len(counts), n)
    return np.clip(np.minimum(want, counts - min_train), 0, None)


def _per_user_holdout(frame: pd.DataFrame, key: np.ndarray, ratio: float | None, n: int | None, min_train: int,
                      user_col: str) -> np.ndarray:
    """Bool mask of test rows: in each user's rows ordered by ``key``, the last ``n_test`` ones."""
    order = np.lexsort((key, frame[user_col].to_numpy()))
    users_sorted = frame[user_col].to_numpy()[order]
    _, start, counts = np.unique(users_sorted, return_index=True, return_counts=True)
    n_test = _n_test(counts, ratio, n, min_train)
    position = np.arange(len(order)) - np.repeat(start, counts)  # rank of the row inside its user
    is_test_sorted = position >= np.repeat(counts - n_test, counts)
    mask = np.zeros(len(frame), bool)
    mask[order[is_test_sorted]] = True
    return mask


def _check_ratio(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")


def random_holdout(
    data: RecData,
    test_ratio: float = 0.2,
    seed: int = 0,
    min_train: int = 1,
    events: Sequence[str] | None = None,
    dedupe: bool = True,
) -> Split:
    """Per user, hold out a random ``round_half_up(test_ratio * n_u)`` of their positives.

    Each user keeps at least ``min_train`` rows in train (users with ``n_u <= min_train`` have no
    test rows), so with ``min_train >= 1`` there are no cold users. ``seed`` fixes the choice.
    """
    _check_ratio("test_ratio", test_ratio)
    seed = check_seed(seed)
    _check_min_train(min_train)
    _check_log(data)
    users, items, items_frame = _index(data)
    frame = positives(data.interactions, events, dedupe)
    key = np.random.default_rng(seed).random(len(frame))
    test = _per_user_holdout(frame, key, test_ratio, None, min_train, USER)
    _check_train(frame[~test], f"random_holdout(test_ratio={test_ratio}, min_train={min_train})")
    return Split(_with_idx(frame[~test], users, items), _with_idx(frame[test], users, items), users, items,
                 items_frame, name=f"{data.name}: random holdout {test_ratio:g}")


def leave_last_out(
    data: RecData,
    n: int = 1,
    min_train: int = 1,
    events: Sequence[str] | None = None,
    dedupe: bool = True,
) -> Split:
    """Per user, hold out the ``n`` latest positives (ties by row order); keep ``min_train``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    _check_min_train(min_train)
    _check_log(data)
    users, items, items_frame = _index(data)
    frame = positives(data.interactions, events, dedupe)
    key = np.arange(len(frame))  # positives() sorts by (user, timestamp, item): row order is time order
    test = _per_user_holdout(frame, key, None, n, min_train, USER)
    _check_train(frame[~test], f"leave_last_out(n={n}, min_train={min_train})")
    return Split(_with_idx(frame[~test], users, items), _with_idx(frame[test], users, items), users, items,
                 items_frame, name=f"{data.name}: leave last {n} out")


def time_cut(
    data: RecData,
    at: str | pd.Timestamp | float = 0.8,
    events: Sequence[str] | None = None,
    dedupe: bool = True,
) -> Split:
    """One global cut in time: interactions before ``at`` train, the rest test.

    ``at`` is a timestamp, or a float in (0, 1): the quantile of the interaction timestamps. The
    log is cut first, then each side turned into positives; with ``dedupe`` a test pair the user
    already had in train is dropped (a repeat is not a new discovery). Test users absent before
    the cut are *cold users*, test items absent before it *cold items*.
    """
    _check_log(data)
    users, items, items_frame = _index(data)
    log = data.interactions
    _time_key(log[TIME])  # a clear error unless the column holds timestamps
    cut = _cut_time(at, log[TIME])
    before = (log[TIME] < cut).to_numpy()
    if not before.any():
        raise ValueError(f"time_cut(at={at!r}) cuts at {cut}, before the first interaction ({log[TIME].min()}): "
                         "it leaves no training rows")
    if events is not None:  # filtered on the whole log, so an event kind absent on one side is no error
        chosen = _event_rows(log, events)
        log, before = log[chosen], before[chosen]
    train = positives(log[before], None, dedupe)
    test = positives(log[~before], None, dedupe)
    _check_train(train, f"time_cut(at={at!r}, events={events!r})")
    if dedupe and len(test):
        n_items = int(max(train[ITEM].max(), test[ITEM].max())) + 1
        seen = np.unique(train[USER].to_numpy(np.int64) * n_items + train[ITEM].to_numpy(np.int64))
        test = test[~np.isin(test[USER].to_numpy(np.int64) * n_items + test[ITEM].to_numpy(np.int64), seen)]
    return Split(_with_idx(train, users, items), _with_idx(test, users, items), users, items, items_frame,
                 name=f"{data.name}: time cut at {cut}")


def _cut_time(at: object, times: pd.Series) -> pd.Timestamp:
    """The cut of :func:`time_cut`: ``at`` parsed as a timestamp, or the ``at`` quantile of ``times``."""
    if isinstance(at, float):
        _check_ratio("at (a quantile)", at)
        return pd.Timestamp(times.quantile(at))
    if isinstance(at, bool | int | np.integer) or not isinstance(at, str | pd.Timestamp | np.datetime64 | date):
        raise ValueError(f"at must be a timestamp (e.g. '2024-03-01') or a float quantile in (0, 1), "
                         f"got {at!r} ({type(at).__name__})")
    try:
        cut = pd.Timestamp(at)
    except (TypeError, ValueError) as err:
        raise ValueError(f"at={at!r} cannot be parsed as a timestamp (e.g. '2024-03-01'): {err}") from None
    if cut is pd.NaT:
        raise ValueError(f"at={at!r} cannot be parsed as a timestamp (e.g. '2024-03-01')")
    if cut.tzinfo is not None and times.dt.tz is None:
        raise ValueError(f"at={at!r} has a time zone, the timestamps have none: give a naive time")
    return cut


def _check_min_train(min_train: object) -> None:
    if isinstance(min_train, bool) or not isinstance(min_train, int | np.integer) or min_train < 0:
        raise ValueError(f"min_train must be a non-negative integer, got {min_train!r}")


def holdout_validation(split: Split, ratio: float = 0.2, seed: int = 0, method: str = "random",
                       min_train: int = 1) -> Split:
    """Split ``split.train`` again: a new Split whose ``test`` is the validation part.

    ``method="random"`` holds out a random ``ratio`` of each user's training rows (seeded);
    ``method="last"`` the latest ``ratio`` of them. The test part of ``split`` is not used, so
    hyper-parameters (such as a blending α) can be chosen on it without touching the test set.
    """
    _check_ratio("ratio", ratio)
    seed = check_seed(seed)
    _check_min_train(min_train)
    train = split.train.reset_index(drop=True)
    if method == "random":
        key = np.random.default_rng(seed).random(len(train))
    elif method == "last":
        key = train[TIME].rank(method="first").to_numpy()
    else:
        raise ValueError(f"method must be 'random' or 'last', got {method!r}")
    val = _per_user_holdout(train, key, ratio, None, min_train, USER_IDX)
    _check_train(train[~val], f"holdout_validation(ratio={ratio}, min_train={min_train})")
    return replace(split, train=train[~val].reset_index(drop=True), test=train[val].reset_index(drop=True),
                   name=f"{split.name} | validation {method} {ratio:g}")


def hold_out_items(split: Split, share: float = 0.1, seed: int = 0,
                   among: np.ndarray | None = None) -> tuple[Split, np.ndarray]:
    """Make a random ``share`` of the items *new*: all their training rows move to test.

    Returns ``(split_with_new_items, new_items)``. CF has no interaction with a new item, so it
    cannot score it; content can, from the item's text. Users whose training rows all move lose
    their history (they become cold users). ``among``: draw the ``share`` from these item indices
    only (e.g. the items with training rows, for a validation split whose own new items must have
    something to hold out); default every item.
    """
    _check_ratio("share", share)
    rng = np.random.default_rng(check_seed(seed))
    pool = np.arange(split.n_items) if among is None else np.unique(np.asarray(among, dtype=np.int64))
    if len(pool) == 0 or pool[0] < 0 or pool[-1] >= split.n_items:
        raise ValueError(f"among must hold item indices in 0..{split.n_items - 1}, got {len(pool)} values"
                         + (f" from {pool[0]} to {pool[-1]}" if len(pool) else ""))
    new_items = np.sort(rng.choice(pool, size=max(1, round(share * len(pool))), replace=False))
    moved = split.train[ITEM_IDX].isin(new_items)
    test = pd.concat([split.test, split.train[moved]], ignore_index=True)
    return replace(split, train=split.train[~moved].reset_index(drop=True), test=test,
                   name=f"{split.name} | {len(new_items)} new items"), new_items


def split_summary(split: Split) -> pd.Series:
    """Sizes of a split: rows, users, items, test users, cold users and cold items."""
    return pd.Series(
        {
            "users": split.n_users,
            "items": split.n_items,
            "train rows": len(split.train),
            "test rows": len(split.test),
            "train users": split.train[USER_IDX].nunique(),
            "test users": len(split.test_users),
            "cold users": len(split.cold_users),
            "cold items": len(split.cold_items),
            "items never seen in train": split.n_items - split.train[ITEM_IDX].nunique(),
        },
        name=split.name,
    )

