"""A linkage attack on ratings: a few known (item, rating, date) facts single out a user.

Narayanan & Shmatikov (2008) re-identified Netflix-prize subscribers from a handful of movies an
adversary knew they had rated (from public IMDb reviews, say), with approximate ratings and dates.
The small version here: the adversary knows ``m`` of a target's ratings, each as
``(item, rating ± rating_tolerance, date ± days_tolerance)``; the *candidates* are the users of
the released, pseudonymous data whose ratings agree with all ``m`` facts:

.. math::  C(K) = \\{u : \\forall (i, r, t) \\in K\\; \\exists (u, i, r', t'),\\; |r' - r| \\le τ_r,\\; |t' - t| \\le τ_t\\}.

The target is **re-identified** when ``C(K)`` holds the target alone. Pseudonymous ids do not help:
the id *is* the link to everything else the user did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recnb.data.schema import ITEM, RATING, TIME, USER


def _check_ratings(ratings: pd.DataFrame, need_time: bool) -> None:
    need = [USER, ITEM, RATING] + ([TIME] if need_time else [])
    missing = [c for c in need if c not in ratings.columns]
    if missing:
        raise KeyError(f"ratings lacks column(s) {missing}; expected {need}")


class RatingIndex:
    """The released ratings grouped by item, for fast candidate look-ups.

    ``ratings``: ``user_id, item_id, rating[, timestamp]`` (the timestamp is needed only when
    matching dates).
    """

    def __init__(self, ratings: pd.DataFrame) -> None:
        _check_ratings(ratings, False)
        self.has_time = TIME in ratings.columns
        cols = [USER, RATING] + ([TIME] if self.has_time else [])
        self.all_users = np.unique(ratings[USER].to_numpy())
        self.by_item = {item: {c: g[c].to_numpy() for c in cols} for item, g in ratings.groupby(ITEM)}

    def candidates(self, known: pd.DataFrame, rating_tolerance: float = 0.0,
                   days_tolerance: float | None = None) -> np.ndarray:
        """Sorted ids of the users consistent with every known fact (see the module docstring).

        ``known``: ``item_id, rating[, timestamp]``, one row per fact; ``days_tolerance=None``
        ignores dates.
        """
        if days_tolerance is not None and not self.has_time:
            raise KeyError(f"days_tolerance needs a {TIME!r} column in the ratings")
        _check_ratings(known.assign(**{USER: 0}), days_tolerance is not None)
        times = known[TIME].to_numpy() if days_tolerance is not None else [None] * len(known)
        alive = self.all_users
        for item, rating, time in zip(known[ITEM].to_numpy(), known[RATING].to_numpy(), times):
            alive = self.narrow(alive, item, rating, time, rating_tolerance, days_tolerance)
            if len(alive) == 0:
                break
        return alive

    def narrow(self, alive: np.ndarray, item: object, rating: float, time: object, rating_tolerance: float,
               days_tolerance: float | None) -> np.ndarray:
        """The users of ``alive`` (sorted ids) consistent with one fact ``(item, rating, time)``."""
        rows = self.by_item.get(item)
        if rows is None:
            return alive[:0]
        ok = np.abs(rows[RATING] - rating) <= rating_tolerance
        if days_tolerance is not None:
            window = np.timedelta64(int(days_tolerance * 86400), "s")
            ok &= np.abs(rows[TIME] - np.datetime64(time)) <= window
        return np.intersect1d(alive, rows[USER][ok], assume_unique=True)


def candidates(ratings: pd.DataFrame, known: pd.DataFrame, rating_tolerance: float = 0.0,
               days_tolerance: float | None = None) -> np.ndarray:
    """:meth:`RatingIndex.candidates` of ``known`` against ``ratings`` (builds the index once)."""
    return RatingIndex(ratings).candidates(known, rating_tolerance, days_tolerance)


FACTS = ("random", "most_popular", "least_popular")


def draw_targets(ratings: pd.DataFrame, n_known: list[int], n_targets: int = 100, facts: str = "random",
                 seed: int = 0) -> list[tuple[object, pd.DataFrame]]:
    """The attack's targets and what the adversary knows of each: ``n_targets`` users drawn at random
    (seeded) among those with at least ``max(n_known)`` ratings, each with *all* their ratings in the
    order the adversary learns them (the ``m`` known are the first ``m``): ``facts="random"`` (a
    seeded permutation), ``"most_popular"`` / ``"least_popular"`` (by the items' numbers of ratings,
    descending / ascending, ties in random order)."""
    if not n_known or min(n_known) < 0:
        raise ValueError(f"n_known must list numbers of known ratings >= 0, got {n_known}")
    if facts not in FACTS:
        raise ValueError(f"facts must be one of {FACTS}, got {facts!r}")
    rng = np.random.default_rng(seed)
    per_user = ratings.groupby(USER).size()
    eligible = per_user.index[per_user >= max(n_known)].to_numpy()
    if len(eligible) == 0:
        raise ValueError(f"no user has {max(n_known)} ratings (max(n_known))")
    targets = rng.choice(eligible, size=min(n_targets, len(eligible)), replace=False)
    by_user = {u: g for u, g in ratings[ratings[USER].isin(targets)].groupby(USER)}
    popularity = ratings.groupby(ITEM).size()
    drawn = []
    for u in targets:
        mine = by_user[u].iloc[rng.permutation(len(by_user[u]))]
        if facts != "random":
            pop = mine[ITEM].map(popularity).to_numpy()
            mine = mine.iloc[np.argsort(-pop if facts == "most_popular" else pop, kind="stable")]
        drawn.append((u, mine))
    return drawn


def attack(index: RatingIndex, targets: list[tuple[object, pd.DataFrame]], n_known: list[int],
           rating_tolerance: float = 0.0, days_tolerance: float | None = None) -> pd.DataFrame:
    """The linkage attack on ``targets`` (from :func:`draw_targets`) for each ``m`` in ``n_known``:
    one row per ``m`` with ``reidentified`` (share of targets whose candidate set is exactly
    themselves), ``median_candidates``, ``mean_candidates``. Widening a tolerance can only add
    candidates, so on the same targets a fuzzier adversary never re-identifies more."""
    if days_tolerance is not None and not index.has_time:
        raise KeyError(f"days_tolerance needs a {TIME!r} column in the ratings")
    steps = sorted(set(n_known))
    found: dict[int, list[int]] = {m: [] for m in steps}
    hit: dict[int, list[bool]] = {m: [] for m in steps}
    for u, mine in targets:
        items, stars = mine[ITEM].to_numpy(), mine[RATING].to_numpy()
        times = mine[TIME].to_numpy() if days_tolerance is not None else [None] * len(mine)
        alive, done = index.all_users, 0
        for m in steps:  # C(first m facts) = C(first m - 1 facts) narrowed by fact m
            for f in range(done, m):
                alive = index.narrow(alive, items[f], stars[f], times[f], rating_tolerance, days_tolerance)
            done = m
            found[m].append(len(alive))
            hit[m].append(len(alive) == 1 and alive[0] == u)
    return pd.DataFrame({"known_ratings": n_known,
                         "reidentified": [float(np.mean(hit[m])) for m in n_known],
                         "median_candidates": [float(np.median(found[m])) for m in n_known],
                         "mean_candidates": [float(np.mean(found[m])) for m in n_known]})


def reidentification_curve(ratings: pd.DataFrame, n_known: list[int], n_targets: int = 100,
                           rating_tolerance: float = 0.0, days_tolerance: float | None = None,
                           facts: str = "random", seed: int = 0) -> pd.DataFrame:
    """How often ``m`` known ratings re-identify a user, for each ``m`` in ``n_known``.

    ``n_targets`` users are drawn at random (seeded) among those with at least ``max(n_known)``
    ratings; for each target and ``m`` the adversary knows ``m`` of the target's ratings, exactly
    as recorded (the tolerances then widen the match), the same ordering of them for every ``m``
    (the ``m`` known are its first ``m``). ``facts`` chooses the ordering: ``"random"`` (a seeded
    permutation), ``"most_popular"`` / ``"least_popular"`` (the target's items by their number of
    ratings in ``ratings``, descending / ascending, ties in random order). Returns one row per
    ``m``: ``reidentified`` (share of targets whose candidate set is exactly themselves),
    ``median_candidates``, ``mean_candidates``. (:func:`draw_targets`, then :func:`attack`.)
    """
    _check_ratings(ratings, days_tolerance is not None)
    targets = draw_targets(ratings, n_known, n_targets, facts, seed)
    return attack(RatingIndex(ratings), targets, n_known, rating_tolerance, days_tolerance)


def compare_adversaries(ratings: pd.DataFrame, n_known: list[int], adversaries: dict[str, dict[str, Any]],
                        seeds: list[int], n_targets: int = 100, facts: str = "random") -> pd.DataFrame:
    """Several adversaries on **the same facts**: for each seed, one draw of targets and of the order
    of their ratings (:func:`draw_targets`), attacked by every adversary; ``adversaries`` maps a name
    to :func:`attack`'s tolerances (``{"rating_tolerance": 1, "days_tolerance": 14}``; ``{}`` for
    exact ratings, dates unknown). Returns :func:`attack`'s rows with ``seed`` and ``adversary``."""
    if not seeds or not adversaries:
        raise ValueError(f"need at least one seed and one adversary, got seeds={seeds}, adversaries={list(adversaries)}")
    _check_ratings(ratings, any(a.get("days_tolerance") is not None for a in adversaries.values()))
    index = RatingIndex(ratings)
    frames = []
    for seed in seeds:
        targets = draw_targets(ratings, n_known, n_targets, facts, seed)
        for name, tolerances in adversaries.items():
            frames.append(attack(index, targets, n_known, **tolerances).assign(seed=seed, adversary=name))
    return pd.concat(frames, ignore_index=True)[["seed", "adversary", "known_ratings", "reidentified",
                                                 "median_candidates", "mean_candidates"]]
