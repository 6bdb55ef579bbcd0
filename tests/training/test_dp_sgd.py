import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recnb.training.dp_sgd import clip_per_example, noisy_clipped_mean, per_example_grads, per_example_norms


def _loss(params, x, y):
    """Squared error of a tiny two-layer model on ONE example."""
    h = torch.tanh(params["W"] @ x + params["b"])
    return (params["v"] @ h - y) ** 2


def _params(g):
    return {"W": torch.randn(3, 4, generator=g, dtype=torch.float64), "b": torch.randn(3, generator=g, dtype=torch.float64),
            "v": torch.randn(3, generator=g, dtype=torch.float64)}


def test_per_example_grads_equal_a_per_sample_autograd_loop():
    g = torch.Generator().manual_seed(0)
    params = _params(g)
    x, y = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    got = per_example_grads(_loss, params, x, y)
    for b in range(5):
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        auto = torch.autograd.grad(_loss(leaves, x[b], y[b]), list(leaves.values()))
        for (name, _), a in zip(leaves.items(), auto):
            torch.testing.assert_close(got[name][b], a, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(scale=st.floats(1e-6, 1e4), max_norm=st.floats(1e-3, 10.0), seed=st.integers(0, 2**16), batch=st.integers(1, 6))
def test_clipped_norm_never_exceeds_the_bound(scale, max_norm, seed, batch):
    g = torch.Generator().manual_seed(seed)
    grads = {"a": torch.randn(batch, 3, 2, generator=g, dtype=torch.float64) * scale,
             "b": torch.randn(batch, 5, generator=g, dtype=torch.float64) * scale}
    norms = per_example_norms(grads)
    clipped = clip_per_example(grads, max_norm)
    after = per_example_norms(clipped)
    assert (after <= max_norm * (1 + 1e-9)).all()
    # gradients already inside the ball are untouched, the others land on its surface
    inside = norms <= max_norm
    torch.testing.assert_close(after[inside], norms[inside])
    torch.testing.assert_close(after[~inside], torch.full_like(after[~inside], max_norm))


def test_noisy_mean_without_noise_is_the_clipped_mean_and_noise_has_std_sigma_c():
    grads = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)}  # norms 5 and 0.5
    g = torch.Generator().manual_seed(0)
    out = noisy_clipped_mean(grads, max_norm=1.0, noise_multiplier=0.0, expected_batch_size=2.0, generator=g)
    torch.testing.assert_close(out["w"], torch.tensor([(0.6 + 0.3) / 2, (0.8 + 0.4) / 2], dtype=torch.float64))
    big = {"w": torch.zeros(1, 100_000, dtype=torch.float64)}
    noisy = noisy_clipped_mean(big, max_norm=2.0, noise_multiplier=1.5, expected_batch_size=1.0, generator=g)["w"]
    assert noisy.std().item() == pytest.approx(3.0, rel=0.02)
