"""PositiveSet from a CSR matrix equals the one built from pairs; negatives avoid each user's row."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recnb.data.sampling import PositiveSet, sample_negatives


def _random_csr(seed: int, n_users: int = 9, n_items: int = 13) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    dense[2] = 0.0  # a user with no positive
    return sp.csr_matrix(dense)


def test_from_csr_equals_the_set_built_from_pairs():
    for seed in range(3):
        csr = _random_csr(seed)
        u, i = csr.nonzero()
        a, b = PositiveSet.from_csr(csr), PositiveSet(torch.as_tensor(u), torch.as_tensor(i), *csr.shape)
        assert torch.equal(a.keys, b.keys) and torch.equal(a.counts, b.counts)
        users = torch.arange(9).repeat_interleave(13)
        items = torch.arange(13).repeat(9)
        assert torch.equal(a.contains(users, items), torch.from_numpy(csr.toarray().ravel() > 0))


def test_contains_answers_unsorted_repeated_queries_in_their_shape():
    """Each query is searched in its own user's run of keys; the answers come back in the query order."""
    csr = _random_csr(1)
    dense = torch.from_numpy(csr.toarray() > 0)
    rng = np.random.default_rng(0)
    users = torch.as_tensor(rng.integers(0, 9, (50, 1))).expand(50, 4)  # (B, k) like a batch of negatives
    items = torch.as_tensor(rng.integers(0, 13, (50, 4)))
    found = PositiveSet.from_csr(csr).contains(users, items)
    assert found.shape == (50, 4) and torch.equal(found, dense[users, items])
    assert found.any() and not found.all()


def test_contains_equals_a_python_set_on_a_larger_random_set_and_rejects_pairs_out_of_range():
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 300, 2000), rng.integers(0, 500, 2000)
    users[:5] = 299  # the last user, whose run ends at the last key
    positives = PositiveSet(torch.as_tensor(users), torch.as_tensor(items), 301, 500)  # user 300: no positive
    pairs = set(zip(users.tolist(), items.tolist()))
    qu, qi = rng.integers(0, 301, 5000), rng.integers(0, 500, 5000)
    qu[:2000], qi[:2000] = users, items  # every positive is asked for, and 3000 mostly absent pairs
    expected = [(a, b) in pairs for a, b in zip(qu.tolist(), qi.tolist())]
    assert positives.contains(torch.as_tensor(qu), torch.as_tensor(qi)).tolist() == expected
    with pytest.raises(ValueError, match=r"users must lie in \[0, 301\)"):
        positives.contains(torch.tensor([301]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"items must lie in \[0, 500\), got values in \[-1, -1\]"):
        positives.contains(torch.tensor([0]), torch.tensor([-1]))


def test_from_csr_accepts_unsorted_duplicated_entries():
    coo = sp.coo_matrix((np.ones(4), ([1, 1, 0, 1], [5, 2, 3, 5])), shape=(2, 6))
    csr = sp.csr_matrix((coo.data, (coo.row, coo.col)), shape=(2, 6))
    csr.has_sorted_indices = False
    s = PositiveSet.from_csr(csr)
    assert s.keys.tolist() == [3, 6 + 2, 6 + 5] and s.counts.tolist() == [1, 2]


def test_negatives_never_hit_the_users_csr_row():
    csr = _random_csr(0)
    positives = PositiveSet.from_csr(csr)
    users = torch.arange(9).repeat(50)
    neg = sample_negatives(users, 4, positives, generator=torch.Generator().manual_seed(0))
    dense = torch.from_numpy(csr.toarray() > 0)
    assert not dense[users[:, None], neg].any()
    assert neg.min() >= 0 and neg.max() < 13
