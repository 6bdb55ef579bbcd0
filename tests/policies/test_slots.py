"""Reserved slots for new items: the merge by hand, slot counts, and the policy through evaluate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from by_hand import FixedScores, hand_split

from recnb.evaluation import evaluate
from recnb.math.ranking import PAD, Ranking
from recnb.policies.slots import ReservedSlots, reserve_slots


def ranking(rows: list[list[int]]) -> Ranking:
    idx = torch.tensor(rows)
    return Ranking(idx, torch.where(idx == PAD, -torch.inf, -torch.arange(idx.shape[1], dtype=torch.float32)))


def test_reserve_slots_by_hand():
    main = ranking([[5, 3, 8, 1], [2, 4, 6, 7]])
    reserved = ranking([[9, 3], [0, PAD]])
    got = reserve_slots(main, reserved, k=4, slots=2)
    # row 0: 9 and 3 from the pool last, main's first two others (5, 8) first;
    # row 1: the pool has one item for this user, so main keeps three places
    assert got.indices.tolist() == [[5, 8, 9, 3], [2, 4, 6, 0]]
    assert got.scores[0].tolist() == [0.0, -2.0, 0.0, -1.0]  # each item keeps its source's score
    assert reserve_slots(main, reserved, k=4, slots=0).indices.tolist() == main.indices.tolist()
    with pytest.raises(ValueError, match="slots must lie in"):
        reserve_slots(main, reserved, k=4, slots=5)


def test_reserve_slots_pads_when_main_runs_out():
    got = reserve_slots(ranking([[1, PAD, PAD]]), ranking([[4]]), k=3, slots=1)
    assert got.indices.tolist() == [[1, 4, PAD]]


def test_reserved_slots_policy_takes_r_from_the_new_items():
    # items 3 and 4 have no training interactions: the pool; CF likes 0 > 1 > 2 (3, 4 score 0),
    # content likes 4 > 3 > the rest
    train = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 0)]
    split = hand_split(train, [(2, 4), (2, 1)], n_users=3, n_items=5)
    cf = FixedScores([3.0, 2.0, 1.0, 0.0, 0.0]).fit(split)
    content = FixedScores([0.1, 0.2, 0.3, 0.8, 0.9]).fit(split)
    policy = ReservedSlots(cf, content, slots=1)
    assert policy.pool().tolist() == [3, 4]
    lists = policy.recommend([0, 2], k=3).indices.tolist()
    # user 0 saw 0 and 1: CF's next is 2, then one slot for the best new item, 4
    assert lists[0] == [2, 4, PAD]
    # user 2 saw 0: CF gives 1, 2; the last slot is 4
    assert lists[1] == [1, 2, 4]
    two = ReservedSlots(cf, content, slots=2).recommend([2], k=3).indices.tolist()
    assert two == [[1, 4, 3]]
    # through the one evaluation path: user 2 holds out 4 and 1, both in the list of 3
    ndcg = evaluate(policy, split, k=3, users=[2], metrics=("ndcg",))["ndcg@3"]
    ideal = 1 + 1 / np.log2(3)
    assert ndcg == pytest.approx((1 + 1 / np.log2(4)) / ideal)
    # a shelf restricts both sources
    assert policy.recommend([2], k=3, items=[1, 2, 3]).indices.tolist() == [[1, 2, 3]]


def test_reserved_slots_needs_fitted_models_and_r_at_most_k():
    split = hand_split([(0, 0)], [(0, 1)], n_users=1, n_items=2)
    with pytest.raises(RuntimeError, match="fitted"):
        ReservedSlots(FixedScores([0.0, 1.0]), FixedScores([0.0, 1.0]))
    policy = ReservedSlots(FixedScores([0.0, 1.0]).fit(split), FixedScores([1.0, 0.0]).fit(split), slots=3)
    with pytest.raises(ValueError, match="must not exceed k"):
        policy.recommend([0], k=2)
