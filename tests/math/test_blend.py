"""Per-user normalisation and α blending: hand values, scipy ranks, constant rows, α = 0 / 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import rankdata, zscore

from recnb.math.blend import blend, normalise
from recnb.math.ranking import rank


def test_hand_values():
    s = torch.tensor([[3.0, 1.0, 1.0, 2.0]])
    torch.testing.assert_close(normalise(s, "minmax"), torch.tensor([[1.0, 0.0, 0.0, 0.5]]))
    torch.testing.assert_close(normalise(s, "rank"), torch.tensor([[3.0, 0.5, 0.5, 2.0]]) / 3)
    torch.testing.assert_close(normalise(s, "none"), s)
    # mean 7/4, population std sqrt(11/16)
    torch.testing.assert_close(normalise(s, "zscore"), (s - 1.75) / (11 / 16) ** 0.5)


def test_constant_rows_become_zero_never_nan():
    s = torch.tensor([[5.0, 5.0, 5.0], [1.0, 2.0, 3.0]])
    for method in ("minmax", "zscore", "rank"):
        out = normalise(s, method)
        assert torch.isfinite(out).all()
        assert out[0].tolist() == [0.0, 0.0, 0.0]
    assert normalise(torch.ones(2, 1), "rank").tolist() == [[0.0], [0.0]]


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
@settings(max_examples=80, deadline=None)
@given(s=st.tuples(st.integers(1, 5), st.integers(2, 12)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.floats(-100, 100, allow_subnormal=False))
))
def test_against_numpy_scipy(s):
    t = torch.from_numpy(s)
    lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
    const = (hi == lo).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        mm = np.where(hi > lo, (s - lo) / (hi - lo), 0.0)
        z = np.where(const[:, None], 0.0, zscore(s, axis=1))
    rk = np.where(const[:, None], 0.0, (rankdata(s, axis=1) - 1) / (s.shape[1] - 1))
    np.testing.assert_allclose(normalise(t, "minmax").numpy(), mm, atol=1e-12)
    np.testing.assert_allclose(normalise(t, "rank").numpy(), rk, atol=1e-12)
    # zscore of nearly-constant rows is ill-conditioned; compare where the spread is real
    ok = (hi - lo).ravel() > 1e-6
    np.testing.assert_allclose(normalise(t, "zscore").numpy()[ok], z[ok], atol=1e-7)


def test_blend_hand_value():
    cf = torch.tensor([[10.0, 30.0, 20.0]])  # minmax -> 0, 1, .5
    cb = torch.tensor([[0.9, 0.1, 0.5]])  # minmax -> 1, 0, .5
    torch.testing.assert_close(blend(cf, cb, 0.25), torch.tensor([[0.75, 0.25, 0.5]]))
    torch.testing.assert_close(blend(cf, cb, 0.25, normalise="none"), 0.25 * cf + 0.75 * cb)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), method=st.sampled_from(["none", "minmax", "zscore", "rank"]))
def test_alpha_one_gives_cf_ranking_alpha_zero_content(data, method):
    shape = data.draw(st.tuples(st.integers(1, 4), st.integers(2, 15)))
    el = st.floats(-50, 50, allow_subnormal=False)
    # tie-free rows (distinct integers, at least 1 apart) so each has exactly one correct order,
    # the raw scores' own: no normalisation may change it
    row = st.lists(st.integers(-50, 50), min_size=shape[1], max_size=shape[1], unique=True)
    tie_free = st.lists(row, min_size=shape[0], max_size=shape[0])
    cf = torch.tensor(data.draw(tie_free), dtype=torch.float64)
    cb = torch.tensor(data.draw(tie_free), dtype=torch.float64)
    k = shape[1]
    assert torch.equal(rank(blend(cf, cb, 1.0, method), k=k).indices, rank(cf, k=k).indices)
    assert torch.equal(rank(blend(cf, cb, 0.0, method), k=k).indices, rank(cb, k=k).indices)
    cf = torch.from_numpy(data.draw(arrays(np.float64, shape, elements=el)))
    # normalisation never reverses an order within a row (rounding may create ties, never swaps)
    order = torch.sort(cf, dim=1, descending=True, stable=True).indices
    normed_in_cf_order = torch.gather(normalise(cf, method), 1, order)
    assert (normed_in_cf_order[:, :-1] >= normed_in_cf_order[:, 1:]).all()


def test_raw_blend_is_dominated_by_the_larger_scale():
    cf = torch.tensor([[40.0, 10.0, 25.0]])  # dot products
    cb = torch.tensor([[0.1, 0.9, 0.5]])  # cosines, the opposite order
    raw = rank(blend(cf, cb, 0.5, normalise="none")).indices
    assert torch.equal(raw, rank(cf).indices)  # content is drowned out
    assert blend(cf, cb, 0.5).tolist() == [[0.5, 0.5, 0.5]]  # normalised: both count equally


def test_underflowing_spread_is_treated_as_constant():
    s = torch.tensor([[1e-190, 0.0]], dtype=torch.float64)  # std**2 underflows to 0
    assert normalise(s, "zscore").tolist() == [[0.0, 0.0]]
    assert normalise(s, "minmax").tolist() == [[1.0, 0.0]]


def test_bad_input_raises_clearly():
    a = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="alpha must lie in \\[0, 1\\], got 1.5"):
        blend(a, a, 1.5)
    with pytest.raises(ValueError, match=r"s_cf \(2, 3\) and s_cb \(2, 4\)"):
        blend(a, torch.zeros(2, 4), 0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        normalise(a, "softmax")
    with pytest.raises(ValueError, match=r"2-D \(n_users, n_items\), got shape \(3,\)"):
        normalise(torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        normalise(torch.tensor([[0.0, float("nan")]]))
