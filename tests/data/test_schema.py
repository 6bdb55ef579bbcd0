"""The sparse Split: CSR matrices against a direct construction, and their dense views."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recnb.data.schema import Split, as_split, dense_rows
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop


@pytest.fixture(scope="module")
def split():
    return random_holdout(make_shop(n_users=60, n_items=40, n_interactions=1500, seed=3), test_ratio=0.25, seed=3)


def _direct(frame, n_users: int, n_items: int, values: str) -> np.ndarray:
    """The same matrix built by a Python loop over rows (the slow, obvious way)."""
    sums, counts = np.zeros((n_users, n_items)), np.zeros((n_users, n_items))
    for u, i, r in frame[["user_idx", "item_idx", "rating"]].itertuples(index=False):
        if values == "binary":
            sums[u, i], counts[u, i] = 1.0, 1.0
        elif not np.isnan(r):
            sums[u, i] += r
            counts[u, i] += 1
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


@pytest.mark.parametrize("values", ["binary", "rating"])
def test_train_csr_matches_a_direct_construction(split, values):
    csr = split.train_csr(values)
    assert csr.shape == (split.n_users, split.n_items) and csr.dtype == np.float32
    assert csr.has_canonical_format
    np.testing.assert_allclose(csr.toarray(), _direct(split.train, split.n_users, split.n_items, values), rtol=1e-6)
    assert split.train_csr(values) is csr  # cached


def test_test_csr_seen_csr_and_counts(split):
    np.testing.assert_array_equal(split.test_csr().toarray(), _direct(split.test, split.n_users, split.n_items, "binary"))
    dense = _direct(split.train, split.n_users, split.n_items, "binary")
    np.testing.assert_array_equal(split.seen_csr().toarray(), dense)
    np.testing.assert_array_equal(split.item_counts(), dense.sum(axis=0))
    np.testing.assert_array_equal(split.user_counts(), dense.sum(axis=1))
    # the dense teaching views agree with the sparse matrices
    assert torch.equal(split.seen_mask(), torch.from_numpy(dense > 0))
    assert torch.equal(split.train_matrix("rating"), torch.from_numpy(split.train_csr("rating").toarray()))


def test_unknown_values_is_a_clear_error(split):
    with pytest.raises(ValueError, match="values must be 'binary' or 'rating'"):
        split.train_csr("counts")


def test_dense_rows_picks_rows_in_the_given_order(split):
    rows = np.array([5, 0, 5, 17])
    seen, ratings = split.seen_csr().toarray(), split.train_csr("rating").toarray()
    assert torch.equal(dense_rows(split.seen_csr(), rows), torch.from_numpy(seen[rows] > 0))
    assert torch.equal(dense_rows(split.train_csr("rating"), rows, torch.float32), torch.from_numpy(ratings[rows]))


def test_relevant_csr_is_test_minus_seen(split):
    import dataclasses

    import pandas as pd

    # held-out rows that repeat training pairs (re-purchases) must not count as relevant
    repeats = dataclasses.replace(split, test=pd.concat([split.test, split.train.head(30)], ignore_index=True))
    test, seen = repeats.test_csr().toarray() > 0, repeats.seen_csr().toarray() > 0
    assert (test & seen).sum() == 30
    rel = repeats.relevant_csr()
    assert rel.has_canonical_format
    np.testing.assert_array_equal(rel.toarray() > 0, test & ~seen)
    np.testing.assert_array_equal(rel.toarray(), split.test_csr().toarray())


def test_id_index_lookup_and_index():
    from recnb.data.schema import IdIndex

    index = IdIndex.from_ids([30, 10, 20, 10])
    assert index.ids.tolist() == [10, 20, 30]
    pos, known = index.lookup(np.array([20, 99, 10, 5]))
    assert known.tolist() == [True, False, True, False]
    assert pos[known].tolist() == [1, 0]
    assert index.index([30, 10]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="unknown id 99: not among the 3 known ids"):
        index.index([10, 99])
    empty_pos, empty_known = IdIndex.from_ids([]).lookup([1, 2])
    assert not empty_known.any() and len(empty_pos) == 2


def test_split_from_matrix_keeps_the_values_and_indexes_by_position():
    m = sp.coo_matrix(([2.0, 1.0, 3.5, 0.0, 1.0], ([0, 1, 1, 2, 1], [1, 0, 2, 0, 0])), shape=(4, 3))
    split = Split.from_matrix(m)  # (1, 0) is stored twice (summed to 2), (2, 0) an explicit zero (dropped)
    assert (split.n_users, split.n_items) == (4, 3)
    np.testing.assert_array_equal(split.train_csr("rating").toarray(), [[0, 2, 0], [2, 0, 3.5], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(split.train_csr("binary").toarray(), [[0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert split.test_csr().nnz == 0 and len(split.test) == 0
    np.testing.assert_array_equal(split.users.ids, np.arange(4))
    np.testing.assert_array_equal(split.items_frame["item_id"], np.arange(3))
    assert (split.train["user_id"] == split.train["user_idx"]).all()
    assert as_split(split) is split and as_split(m).n_users == 4
    with pytest.raises(ValueError, match=r"matrix holds 1 non-finite value\(s\)"):
        Split.from_matrix(sp.csr_matrix(np.array([[np.nan, 1.0]])))
    with pytest.raises(TypeError, match="split must be a Split or a scipy.sparse"):
        as_split(np.ones((2, 2)))
