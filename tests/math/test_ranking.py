"""rank(): descending order, deterministic ties, top-k == first k of the full sort, exclusion, threshold."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recnb.math.ranking import PAD, Ranking, indices, item_indices, keep_top_k_per_row, partition_top_k, rank


def expected_ranking(s: np.ndarray, k: int | None, excluded: np.ndarray | None = None, threshold=None) -> np.ndarray:
    """Reference: numpy's stable argsort of -s, dropping excluded/below-threshold items, PAD-padded."""
    order = np.argsort(-s, kind="stable")
    keep = np.ones(len(s), bool) if excluded is None else ~excluded
    if threshold is not None:
        keep &= s >= threshold
    order = order[keep[order]]
    k = len(s) if k is None else min(k, len(s))
    return np.concatenate([order[:k], np.full(k - min(k, len(order)), PAD)])


def test_hand_example_descending_and_ties():
    s = torch.tensor([0.2, 0.9, 0.5, 0.9, 0.1])
    r = rank(s)
    assert isinstance(r, Ranking)
    assert r.indices.tolist() == [1, 3, 2, 0, 4]  # 0.9 twice: index 1 before 3
    assert r.scores.tolist() == pytest.approx([0.9, 0.9, 0.5, 0.2, 0.1])
    assert rank(s, k=1).indices.tolist() == [1]
    assert rank(s, k=2).indices.tolist() == [1, 3]


def test_2d_exclusion_threshold_and_padding():
    s = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 0.0, 5.0, 1.0]])
    r = rank(s, k=3, exclude=[[0], [2, 3]], threshold=0.5)
    assert r.indices.tolist() == [[2, 1, PAD], [PAD, PAD, PAD]]
    assert r.scores[0, :2].tolist() == [2.0, 1.0]
    assert torch.isinf(r.scores[0, 2]) and r.scores[0, 2] < 0
    mask = torch.tensor([[True, False, False, False], [False, False, True, False]])
    assert rank(s, k=2, exclude=mask).indices.tolist() == [[2, 1], [3, 0]]
    assert rank(s, k=2, exclude=mask.numpy()).indices.tolist() == [[2, 1], [3, 0]]


def test_1d_exclusion_forms_agree():
    s = torch.tensor([0.5, 0.4, 0.3, 0.2])
    by_list = rank(s, k=2, exclude=[0, 2]).indices.tolist()
    by_mask = rank(s, k=2, exclude=torch.tensor([True, False, True, False])).indices.tolist()
    assert by_list == by_mask == [1, 3]


def test_pad_in_index_lists_is_skipped_and_bad_indices_raise():
    s = torch.tensor([[0.1, 0.2, 0.3]])
    # a Ranking's own (PAD-padded) indices can be fed back as an exclusion: -1 must not hit item 2
    assert rank(s, exclude=[[0, PAD]]).indices.tolist() == [[2, 1, PAD]]
    with pytest.raises(IndexError, match="exclude row 0 holds item index 3"):
        rank(s, exclude=[[3]])
    with pytest.raises(IndexError, match="item index -2"):
        rank(s, exclude=[[-2]])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="NaN"):
        rank(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="k must be >= 0"):
        rank(torch.tensor([0.0]), k=-1)
    with pytest.raises(ValueError, match=r"shape \(1, 1, 2\)"):
        rank(torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match=r"exclude mask has shape \(1, 2\), scores have \(1, 3\)"):
        rank(torch.zeros(1, 3), exclude=torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="exclude has 1 index lists, scores have 2 rows"):
        rank(torch.zeros(2, 3), exclude=[[0]])


def test_k_larger_than_items_and_zero():
    s = torch.tensor([[1.0, 2.0]])
    assert rank(s, k=5).indices.tolist() == [[1, 0]]
    assert rank(s, k=0).indices.shape == (1, 0)


def test_integer_scores_rank_as_float64():
    r = rank(torch.tensor([3, 7, 7, 1]), k=3)
    assert r.indices.tolist() == [1, 2, 0]
    assert r.scores.dtype == torch.float64


def test_topk_agrees_with_torch_topk_values():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(20, 300, generator=g)
    r = rank(s, k=15)
    assert torch.equal(r.scores, torch.topk(s, 15, dim=1).values)
    assert torch.equal(torch.gather(s, 1, r.indices), r.scores)


# scores from a small set of values so ties are frequent; finite floats
_scores = st.integers(1, 40).flatmap(
    lambda n: arrays(np.float64, n, elements=st.sampled_from([-2.0, -0.5, 0.0, 0.25, 0.25, 1.0, 3.0]))
)


@settings(max_examples=150, deadline=None)
@given(s=_scores, k=st.integers(0, 45))
def test_matches_numpy_stable_argsort(s, k):
    r = rank(torch.from_numpy(s), k=k)
    assert r.indices.tolist() == expected_ranking(s, k).tolist()
    full = rank(torch.from_numpy(s)).indices.tolist()
    assert r.indices.tolist() == full[: min(k, len(s))]  # top-k is a prefix of the full sort


@settings(max_examples=150, deadline=None)
@given(data=st.data(), s=_scores, k=st.integers(0, 45), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_exclusion_and_threshold_property(data, s, k, dtype):
    excluded = data.draw(arrays(np.bool_, len(s)))
    threshold = data.draw(st.none() | st.sampled_from([-1.0, 0.0, 0.25, 2.0]))
    r = rank(torch.from_numpy(s).to(dtype), k=k, exclude=torch.from_numpy(excluded), threshold=threshold)
    got = r.indices.numpy()
    assert got.tolist() == expected_ranking(s, k, excluded, threshold).tolist()
    real = got[got != PAD]
    assert not excluded[real].any()
    if threshold is not None:
        assert (s[real] >= threshold).all()


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_users=st.integers(1, 6),
    n_items=st.integers(1, 30),
    k=st.integers(0, 32),
)
def test_batched_equals_row_by_row(data, n_users, n_items, k):
    s = data.draw(arrays(np.float32, (n_users, n_items), elements=st.sampled_from([0.0, 0.5, 1.0, 1.5])))
    lists = [data.draw(st.lists(st.integers(0, n_items - 1), max_size=5)) for _ in range(n_users)]
    r = rank(torch.from_numpy(s), k=k, exclude=lists)
    rows = [u for u, items in enumerate(lists) for _ in items]
    csr = sp.csr_matrix((np.ones(len(rows)), (rows, [i for items in lists for i in items])), shape=s.shape)
    by_csr = rank(torch.from_numpy(s), k=k, exclude=csr)  # the same exclusion as a sparse matrix
    assert torch.equal(by_csr.indices, r.indices) and torch.equal(by_csr.scores, r.scores)
    for u in range(n_users):
        row = rank(torch.from_numpy(s[u]), k=k, exclude=lists[u])
        assert torch.equal(r.indices[u], row.indices)
        mask = np.zeros(n_items, bool)
        mask[lists[u]] = True
        assert r.indices[u].tolist() == expected_ranking(s[u], k, mask).tolist()


def test_same_scores_same_ranking_every_time():
    s = torch.zeros(3, 50)
    s[:, ::7] = 1.0
    first = rank(s, k=10).indices
    for _ in range(5):
        assert torch.equal(rank(s, k=10).indices, first)
    assert first[0].tolist() == [0, 7, 14, 21, 28, 35, 42, 49, 1, 2]  # 8 ones, then ties by index


def test_input_is_not_modified():
    s = torch.tensor([[0.3, 0.1, 0.2]])
    before = s.clone()
    rank(s, k=2, exclude=[[0]], threshold=0.15)
    rank(s, k=2, exclude=sp.csr_matrix(np.array([[1, 0, 0]])))
    assert torch.equal(s, before)


def test_in_place_overwrites_only_the_excluded_entries():
    s = torch.tensor([[0.3, 0.1, 0.2, 0.9], [0.5, 0.6, 0.7, 0.8]])
    seen = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 1, 0]]))
    expected = rank(s.clone(), k=2, exclude=seen)
    got = rank(s, k=2, exclude=seen, in_place=True)
    assert got.indices.tolist() == [[0, 2], [3, 1]] == expected.indices.tolist()
    assert torch.isneginf(s).nonzero().tolist() == [[0, 3], [1, 0], [1, 2]]  # by design: the caller owns s
    assert s[0, :3].tolist() == pytest.approx([0.3, 0.1, 0.2])
    mask = torch.tensor([[True, False, False, False]])
    t = torch.tensor([[0.3, 0.1, 0.2, 0.9]])
    rank(t, k=1, exclude=mask, in_place=True)
    assert t[0, 0] == -np.inf and t[0, 3] == 0.9
    with pytest.raises(ValueError, match=r"exclude matrix has shape \(1, 4\), scores have \(2, 4\)"):
        rank(s, exclude=sp.csr_matrix((1, 4)))


def test_nan_among_rankable_scores_raises_on_every_path():
    nan = float("nan")
    for k in (None, 1, 2):  # full sort; top-1; top-2 where the NaN sits beside a tie cut by the boundary
        with pytest.raises(ValueError, match="NaN"):
            rank(torch.tensor([[0.0, 0.0, 0.0], [nan, 1.0, 1.0]]), k=k)
    with pytest.raises(ValueError, match="NaN"):
        rank(torch.tensor([0.5] * 40 + [nan]), k=3)  # last of a long row
    excluded = rank(torch.tensor([[nan, 1.0, 2.0]]), k=1, exclude=[[0]])  # an excluded NaN is never compared
    assert excluded.indices.tolist() == [[2]]


def test_keep_top_k_per_row_by_hand_with_negatives_and_ties():
    sim = torch.tensor(
        [
            [1.0, -0.5, -0.2, -0.9],  # all neighbours negative: the least negative is kept, not the row itself
            [0.3, 1.0, 0.3, 0.3],  # a three-way tie: the lower indices 0 and 2 win
            [0.1, 0.7, 1.0, 0.7],  # 0.7 tie at 1 and 3
            [-0.4, 0.0, 0.0, 1.0],  # 0 entries tie: lower index 1 first
        ]
    )
    before = sim.clone()
    assert torch.equal(
        keep_top_k_per_row(sim, 1),
        torch.tensor([[0.0, 0, -0.2, 0], [0.3, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 0, 0]]),
    )
    assert torch.equal(
        keep_top_k_per_row(sim, 2),
        torch.tensor([[0.0, -0.5, -0.2, 0], [0.3, 0, 0.3, 0], [0, 0.7, 0, 0.7], [0, 0, 0, 0]]),
    )
    off_diagonal = sim - torch.diag(torch.diag(sim))
    assert torch.equal(keep_top_k_per_row(sim, None), off_diagonal)
    assert torch.equal(keep_top_k_per_row(sim, 10), off_diagonal)
    assert torch.equal(keep_top_k_per_row(sim, 0), torch.zeros(4, 4))
    # with the diagonal allowed, every row keeps itself first (1 is its largest entry)
    assert torch.equal(keep_top_k_per_row(sim, 1, exclude_diagonal=False), torch.eye(4))
    assert torch.equal(sim, before)  # input untouched
    assert keep_top_k_per_row(sim.double(), 1).dtype == torch.float64


def test_keep_top_k_per_row_matches_a_reference_loop():
    g = torch.Generator().manual_seed(0)
    sim = torch.randint(-3, 4, (9, 9), generator=g).double()  # many ties, many negatives
    for k in (1, 3, 8):
        want = torch.zeros_like(sim)
        for i in range(9):
            others = [j for j in np.argsort(-sim[i].numpy(), kind="stable") if j != i][:k]
            want[i, others] = sim[i, others]
        assert torch.equal(keep_top_k_per_row(sim, k), want)


def test_keep_top_k_per_row_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be None or >= 0"):
        keep_top_k_per_row(torch.eye(3), -1)
    with pytest.raises(ValueError, match="square"):
        keep_top_k_per_row(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="NaN"):
        keep_top_k_per_row(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), 1)


def test_item_indices_refuses_negative_and_out_of_range():
    assert item_indices(np.array([2, 0]), 3).tolist() == [2, 0]
    assert item_indices([], 3).tolist() == []
    with pytest.raises(IndexError, match=r"shelf holds item index -1, outside 0..2"):
        item_indices([0, -1], 3, "shelf")
    with pytest.raises(IndexError, match="items holds item index 3"):
        item_indices(torch.tensor([3]), 3)
    with pytest.raises(TypeError, match="integer"):
        item_indices([0.5], 3)


def test_indices_is_the_one_check_of_index_arguments():
    assert indices(np.array([[1], [0]], dtype=np.uint8), 2, "users", noun="user").tolist() == [1, 0]
    assert indices(torch.tensor([], dtype=torch.float32), 2, "users").dtype == torch.long  # empty: no index at all
    with pytest.raises(TypeError, match=r"users must hold integer user indices in 0\.\.1, got dtype <U1 "
                                        r"\(first value 'a'\); see recommend_ids"):
        indices(["a"], 2, "users", noun="user", hint="; see recommend_ids")
    with pytest.raises(TypeError, match="got dtype bool"):
        indices(np.array([True, False]), 2, "users", noun="user")  # a mask is not a list of indices
    with pytest.raises(ValueError, match="items holds item index 1 more than once; list each item once"):
        item_indices([1, 0, 1], 3, distinct=True)
    assert item_indices([1, 0, 1], 3).tolist() == [1, 0, 1]


def test_partition_top_k_equals_rank_on_distinct_scores():
    s = torch.randn(20, 300, generator=torch.Generator().manual_seed(4))  # distinct scores: no ties at the cut
    np.testing.assert_array_equal(partition_top_k(s.numpy(), 10), rank(s, k=10).indices.numpy())
    with pytest.raises(ValueError, match="1..n-1"):
        partition_top_k(s.numpy(), 300)
