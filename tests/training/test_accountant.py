"""The RDP accountant against published values.

TensorFlow Privacy's ``rdp_accountant_test.py`` (tensorflow/privacy, privacy/analysis) asserts
``compute_rdp(0.1, 2, 10, 5) = 0.07737``, the sequence below, and, for ``q = 0.01, σ = 4,
10,000 steps, δ = 1e-5`` over orders 2..32, ``ε = 1.258575`` at order 20 with Mironov's
conversion -- the setting of Abadi et al. (2016), whose moments accountant reported ε ≈ 1.26.
Opacus 1.6.0 (``opacus.accountants.analysis.rdp``, improved conversion of Balle et al. 2020)
gives 1.0354900660 at order 17 for the same setting, and 2.5965558690 at order 8.1 over its
default orders for the MNIST tutorial setting (N = 60,000, batch 256, σ = 1.1, 60 epochs).
"""

import numpy as np
import pytest

from recnb.training.accountant import DEFAULT_ORDERS, dp_sgd_epsilon, rdp_to_epsilon, subsampled_gaussian_rdp


def test_rdp_matches_tensorflow_privacy():
    assert subsampled_gaussian_rdp(0.1, 2, 10, [5])[0] == pytest.approx(0.07737, abs=1e-5)
    got = subsampled_gaussian_rdp(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100, np.inf])
    want = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307, np.inf]
    np.testing.assert_allclose(got[:-1], want[:-1], atol=1e-5)
    assert got[-1] == np.inf


def test_epsilon_matches_published_values():
    orders = list(range(2, 33))
    rdp = subsampled_gaussian_rdp(0.01, 4, 10_000, orders)
    assert rdp_to_epsilon(orders, rdp, 1e-5, "mironov") == pytest.approx((1.258575, 20.0), abs=1e-5)
    assert rdp_to_epsilon(orders, rdp, 1e-5, "balle") == pytest.approx((1.0354900660, 17.0), abs=1e-8)
    assert dp_sgd_epsilon(256 / 60_000, 1.1, 60 * 60_000 // 256, 1e-5) == pytest.approx(2.5965558690, abs=1e-8)


def test_limits_and_monotonicity():
    # q = 1: the Gaussian mechanism, RDP(α) = α / (2σ²) per step
    np.testing.assert_allclose(subsampled_gaussian_rdp(1.0, 2.0, 3, [2, 4.5]), [3 * 2 / 8, 3 * 4.5 / 8])
    assert (subsampled_gaussian_rdp(0.0, 1.0, 100, DEFAULT_ORDERS) == 0).all()
    eps = [dp_sgd_epsilon(0.01, s, 1000, 1e-5) for s in (0.8, 1.0, 2.0)]
    assert eps[0] > eps[1] > eps[2]
    assert dp_sgd_epsilon(0.01, 1.0, 2000, 1e-5) > eps[1]
    with pytest.raises(ValueError, match="noise_multiplier"):
        subsampled_gaussian_rdp(0.1, 0.0, 1)
