import numpy as np
import pandas as pd
import pytest

from recnb.studies.privacy.linkage import RatingIndex, candidates, compare_adversaries, reidentification_curve

DAY = pd.Timestamp("2024-01-01")
RATINGS = pd.DataFrame({
    "user_id": [1, 1, 1, 2, 2, 3, 3, 3],
    "item_id": [10, 20, 30, 10, 20, 10, 20, 40],
    "rating": [5, 3, 4, 5, 2, 4, 3, 1],
    "timestamp": [DAY, DAY, DAY, DAY + pd.Timedelta(days=30), DAY, DAY, DAY, DAY],
})


def known(*rows):
    return pd.DataFrame(rows, columns=["item_id", "rating", "timestamp"][: len(rows[0])])


def test_candidates_by_hand():
    assert candidates(RATINGS, known((10, 5))).tolist() == [1, 2]
    assert candidates(RATINGS, known((10, 5), (20, 3))).tolist() == [1]
    assert candidates(RATINGS, known((10, 5), (20, 3)), rating_tolerance=1).tolist() == [1, 2, 3]
    # the date separates users 1 and 2 on item 10
    assert candidates(RATINGS, known((10, 5, DAY)), days_tolerance=7).tolist() == [1]
    assert candidates(RATINGS, known((10, 5, DAY)), days_tolerance=40).tolist() == [1, 2]
    assert candidates(RATINGS, known((99, 5))).tolist() == []
    assert candidates(RATINGS, known((10, 5)).iloc[:0]).tolist() == [1, 2, 3]


def test_index_matches_a_brute_force_scan():
    rng = np.random.default_rng(1)
    r = pd.DataFrame({"user_id": rng.integers(0, 40, 600), "item_id": rng.integers(0, 30, 600),
                      "rating": rng.integers(1, 6, 600)}).drop_duplicates(["user_id", "item_id"])
    index = RatingIndex(r)
    for _ in range(20):
        facts = r.sample(3, random_state=int(rng.integers(1000)))[["item_id", "rating"]]
        brute = set(r.user_id)
        for item, rating in facts.itertuples(index=False):
            brute &= set(r.user_id[(r.item_id == item) & ((r.rating - rating).abs() <= 1)])
        assert index.candidates(facts, rating_tolerance=1).tolist() == sorted(brute)


def test_curve_rises_with_knowledge():
    curve = reidentification_curve(RATINGS, [0, 1, 2], n_targets=3, seed=0)
    assert curve["reidentified"].iloc[0] == 0.0  # knowing nothing, everyone is a candidate
    assert curve["mean_candidates"].iloc[0] == 3
    assert curve["mean_candidates"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="no user has 9"):
        reidentification_curve(RATINGS, [9])


# items A..D rated by 4, 3, 2, 1 users, each always with the same rating: only the item set tells
POPULAR = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2, 3, 3, 4, 4],
                        "item_id": ["A", "B", "D", "A", "B", "C", "A", "C", "A", "B"],
                        "rating": [5, 4, 2, 5, 4, 3, 5, 3, 5, 4]})


def test_curve_with_most_and_least_popular_facts_by_hand():
    # most popular first: users 1, 2, 4 know (A), then (A, B) -> candidates {all}, then {1, 2, 4};
    # user 3 knows (A), then (A, C) -> {2, 3}: nobody is singled out
    most = reidentification_curve(POPULAR, [1, 2], n_targets=4, facts="most_popular", seed=0)
    assert most["reidentified"].tolist() == [0.0, 0.0]
    assert most["mean_candidates"].tolist() == [4.0, (3 + 3 + 2 + 3) / 4]
    # least popular first: user 1 knows (D) -> {1}; user 2 (C) -> {2, 3}, then (C, B) -> {2};
    # user 3 (C) -> {2, 3}, then (C, A) -> {2, 3}; user 4 (B) -> {1, 2, 4}, then (B, A) the same
    least = reidentification_curve(POPULAR, [1, 2], n_targets=4, facts="least_popular", seed=0)
    assert least["reidentified"].tolist() == [1 / 4, 2 / 4]
    assert least["mean_candidates"].tolist() == [(1 + 2 + 2 + 3) / 4, (1 + 1 + 2 + 3) / 4]


def test_least_popular_facts_beat_most_popular_ones_on_a_long_tail():
    rng = np.random.default_rng(0)
    n = 3000
    r = pd.DataFrame({"user_id": rng.integers(0, 150, n), "item_id": np.minimum(rng.zipf(1.6, n), 400),
                      "rating": rng.integers(1, 6, n)}).drop_duplicates(["user_id", "item_id"])
    share = {rule: reidentification_curve(r, [2], n_targets=40, facts=rule, seed=0)["reidentified"].item()
             for rule in ("most_popular", "random", "least_popular")}
    assert share["least_popular"] > share["random"] > share["most_popular"]
    assert share["least_popular"] > share["most_popular"] + 0.3


def test_curve_rejects_an_unknown_fact_rule():
    with pytest.raises(ValueError, match="facts must be one of"):
        reidentification_curve(RATINGS, [1], facts="rarest")


def test_adversaries_compared_on_the_same_facts():
    rng = np.random.default_rng(2)
    r = pd.DataFrame({"user_id": rng.integers(0, 60, 1500), "item_id": rng.integers(0, 40, 1500),
                      "rating": rng.integers(1, 6, 1500),
                      "timestamp": DAY + pd.to_timedelta(rng.integers(0, 200, 1500), unit="D")}).drop_duplicates(["user_id", "item_id"])
    adversaries = {"exact": {}, "±1": {"rating_tolerance": 1}, "date": {"days_tolerance": 10},
                   "±1, date": {"rating_tolerance": 1, "days_tolerance": 10}}
    table = compare_adversaries(r, [1, 2, 3], adversaries, seeds=[0, 1, 2], n_targets=15)
    assert len(table) == 3 * 4 * 3
    wide = table.set_index(["seed", "known_ratings", "adversary"])
    # same targets, same facts: widening the rating match only adds candidates, knowing the date only removes them
    for looser, tighter in (("±1", "exact"), ("±1, date", "date"), ("exact", "date"), ("±1", "±1, date")):
        assert (wide.xs(looser, level="adversary")["mean_candidates"]
                >= wide.xs(tighter, level="adversary")["mean_candidates"]).all()
        assert (wide.xs(looser, level="adversary")["reidentified"]
                <= wide.xs(tighter, level="adversary")["reidentified"]).all()
    # each adversary's rows are the single-adversary curve of that seed
    for seed in (0, 2):
        curve = reidentification_curve(r, [1, 2, 3], n_targets=15, seed=seed, rating_tolerance=1, days_tolerance=10)
        got = table[(table.seed == seed) & (table.adversary == "±1, date")].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[curve.columns], curve)
    with pytest.raises(ValueError, match="at least one seed"):
        compare_adversaries(r, [1], adversaries, seeds=[])
