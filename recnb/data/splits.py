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

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, ITEM, ITEM_IDX, RATING, TIME, USER, USER_IDX, IdIndex, RecData, Split

#: how strongly each event kind signals interest (larger = stronger); unknown kinds count as 0
EVENT_STRENGTH: dict[str, int] = {"view": 0, "click": 1, "cart": 2, "purchase": 3, "rating": 3}


def positives(interactions: pd.DataFrame, events: Sequence[str] | None = None, dedupe: bool = True) -> pd.DataFrame:
    """The implicit positives of an interaction log (see the module docstring).

    Returns a frame with the input's columns, sorted by ``(user, timestamp, item)``, index reset.
    """
    frame = interactions
    if events is not None:
        events = [events] if isinstance(events, str) else list(events)
        unknown = sorted(set(events) - set(frame[EVENT].dropna().unique()))
        if len(unknown) == len(events):
            raise ValueError(f"none of events={events} occurs in the data; it has {sorted(frame[EVENT].dropna().unique())}")
        frame = frame[frame[EVENT].isin(events)]
    if dedupe and len(frame):
        frame = frame.sort_values([USER, ITEM, TIME], kind="stable")
        strength = frame[EVENT].map(EVENT_STRENGTH).fillna(0).to_numpy()
        groups = frame.groupby([USER, ITEM], sort=False)
        last = groups.tail(1).set_index([USER, ITEM])
        best = pd.Series(strength, index=frame.index).groupby([frame[USER], frame[ITEM]]).idxmax()
        last[EVENT] = frame.loc[best.to_numpy(), EVENT].to_numpy()
        last[RATING] = groups[RATING].last().to_numpy()  # last non-NaN rating of the pair
        frame = last.reset_index()[list(interactions.columns)]
    return frame.sort_values([USER, TIME, ITEM], kind="stable").reset_index(drop=True)


def _index(data: RecData) -> tuple[IdIndex, IdIndex, pd.DataFrame]:
    users = IdIndex.from_ids(data.users[USER])
    items = IdIndex.from_ids(data.items[ITEM])
    for name, index, ids in (("user", users, data.interactions[USER]), ("item", items, data.interactions[ITEM])):
        known = np.isin(ids.to_numpy(), index.ids)
        if not known.all():
            raise ValueError(
                f"{(~known).sum()} interactions have a {name}_id missing from the {name}s table "
                f"(first: {ids[~known].iloc[0]!r}); validate and clean the data first "
                "(recnb.data.validate / recnb.data.clean)"
            )
    items_frame = data.items.sort_values(ITEM).reset_index(drop=True)
    return users, items, items_frame


def _with_idx(frame: pd.DataFrame, users: IdIndex, items: IdIndex) -> pd.DataFrame:
    out = frame.reset_index(drop=True).copy()
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
    users, items, items_frame = _index(data)
    frame = positives(data.interactions, events, dedupe)
    key = np.random.default_rng(seed).random(len(frame))
    test = _per_user_holdout(frame, key, test_ratio, None, min_train, USER)
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
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    users, items, items_frame = _index(data)
    frame = positives(data.interactions, events, dedupe)
    key = np.arange(len(frame))  # positives() sorts by (user, timestamp, item): row order is time order
    test = _per_user_holdout(frame, key, None, n, min_train, USER)
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
    users, items, items_frame = _index(data)
    log = data.interactions
    if isinstance(at, float):
        _check_ratio("at (a quantile)", at)
        cut = pd.Timestamp(log[TIME].quantile(at))
    else:
        cut = pd.Timestamp(at)
    before = log[TIME] < cut
    train = positives(log[before], events, dedupe)
    test = positives(log[~before], events, dedupe)
    if dedupe:
        seen = pd.MultiIndex.from_frame(train[[USER, ITEM]])
        test = test[~pd.MultiIndex.from_frame(test[[USER, ITEM]]).isin(seen)]
    return Split(_with_idx(train, users, items), _with_idx(test, users, items), users, items, items_frame,
                 name=f"{data.name}: time cut at {cut}")


def holdout_validation(split: Split, ratio: float = 0.2, seed: int = 0, method: str = "random",
                       min_train: int = 1) -> Split:
    """Split ``split.train`` again: a new Split whose ``test`` is the validation part.

    ``method="random"`` holds out a random ``ratio`` of each user's training rows (seeded);
    ``method="last"`` the latest ``ratio`` of them. The test part of ``split`` is not used, so
    hyper-parameters (such as a blending α) can be chosen on it without touching the test set.
    """
    _check_ratio("ratio", ratio)
    train = split.train.reset_index(drop=True)
    if method == "random":
        key = np.random.default_rng(seed).random(len(train))
    elif method == "last":
        key = train[TIME].rank(method="first").to_numpy()
    else:
        raise ValueError(f"method must be 'random' or 'last', got {method!r}")
    val = _per_user_holdout(train, key, ratio, None, min_train, USER_IDX)
    return replace(split, train=train[~val].reset_index(drop=True), test=train[val].reset_index(drop=True),
                   name=f"{split.name} | validation {method} {ratio:g}")


def hold_out_items(split: Split, share: float = 0.1, seed: int = 0) -> tuple[Split, np.ndarray]:
    """Make a random ``share`` of the items *new*: all their training rows move to test.

    Returns ``(split_with_new_items, new_items)``. CF has no interaction with a new item, so it
    cannot score it; content can, from the item's text. Users whose training rows all move lose
    their history (they become cold users).
    """
    _check_ratio("share", share)
    rng = np.random.default_rng(seed)
    new_items = np.sort(rng.choice(split.n_items, size=max(1, round(share * split.n_items)), replace=False))
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

