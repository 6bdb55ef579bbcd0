"""BPR's per-triple SGD loop equals autograd's SGD steps taken one triple at a time."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recnb.training.bpr_sgd import bpr_sgd_step


def _tables(seed: int, n_users: int = 5, n_items: int = 7, d: int = 6, bias: bool = True):
    g = torch.Generator().manual_seed(seed)
    U, V = torch.randn(n_users, d, generator=g) * 0.5, torch.randn(n_items, d, generator=g) * 0.5
    b = torch.randn(n_items, generator=g) * 0.5 if bias else None
    return U, V, b


def _autograd_steps(U, V, b, users, pos, neg, lr, l2):
    """SGD on ℓ = −log σ(x) + λ(‖e_u‖² + ‖e_i‖² + ‖e_j‖² [+ b_i² + b_j²]) for each triple in order."""
    U, V = U.clone().requires_grad_(), V.clone().requires_grad_()
    b = None if b is None else b.clone().requires_grad_()
    losses = []
    for r in range(len(users)):
        for j in neg[r].tolist():
            u, i = int(users[r]), int(pos[r])
            x = U[u] @ (V[i] - V[j])
            penalty = U[u] @ U[u] + V[i] @ V[i] + V[j] @ V[j]
            if b is not None:
                x = x + b[i] - b[j]
                penalty = penalty + b[i] ** 2 + b[j] ** 2
            loss = -F.logsigmoid(x) + l2 * penalty
            losses.append(float(-F.logsigmoid(x.detach())))
            params = [p for p in (U, V, b) if p is not None]
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, gr in zip(params, grads):
                    p -= lr * gr
    return U.detach(), V.detach(), None if b is None else b.detach(), sum(losses)


@pytest.mark.parametrize("bias", [True, False])
def test_the_loop_equals_sequential_autograd_steps_with_repeated_rows(bias):
    """Users, positives and negatives repeat within and across rows (and a negative equals another
    row's positive), so each step must read what the previous one wrote."""
    U, V, b = _tables(0, bias=bias)
    users = torch.tensor([0, 3, 0, 4, 3])
    pos = torch.tensor([1, 2, 1, 6, 5])
    neg = torch.tensor([[2, 5], [1, 1], [6, 0], [2, 3], [1, 4]])
    lr, l2 = 0.3, 0.05
    want_U, want_V, want_b, want_loss = _autograd_steps(U, V, b, users, pos, neg, lr, l2)
    sums = bpr_sgd_step(U, V, b, users, pos, neg, lr=lr, l2=l2)  # in place
    torch.testing.assert_close(U, want_U, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(V, want_V, rtol=1e-5, atol=1e-6)
    if bias:
        torch.testing.assert_close(b, want_b, rtol=1e-5, atol=1e-6)
    assert sums[0].item() == pytest.approx(want_loss, rel=1e-5)
    assert sums.dtype == torch.float64 and sums.shape == (3,)


def test_sums_are_the_scores_before_each_step_and_untouched_rows_stay():
    U, V, b = _tables(1, bias=False)
    users, pos, neg = torch.tensor([2]), torch.tensor([3]), torch.tensor([[4]])
    s_pos, s_neg = float(U[2] @ V[3]), float(U[2] @ V[4])
    before_U, before_V = U.clone(), V.clone()
    sums = bpr_sgd_step(U, V, None, users, pos, neg, lr=0.1, l2=0.0)
    assert sums[1].item() == pytest.approx(s_pos, rel=1e-6) and sums[2].item() == pytest.approx(s_neg, rel=1e-6)
    assert sums[0].item() == pytest.approx(float(F.softplus(torch.tensor(s_neg - s_pos))), rel=1e-6)
    keep_u, keep_i = [0, 1, 3, 4], [0, 1, 2, 5, 6]
    assert torch.equal(U[keep_u], before_U[keep_u]) and torch.equal(V[keep_i], before_V[keep_i])
    assert not torch.equal(U[2], before_U[2]) and not torch.equal(V[3], before_V[3])


def test_a_saturated_triple_gives_a_finite_loss_and_no_step():
    """x = 1000: σ(−x) underflows to 0 (no data step); x = −1000: −log σ(x) = 1000, computed without overflow."""
    U, V = torch.zeros(1, 1), torch.tensor([[10.0], [-10.0]])
    U[0, 0] = 50.0
    sums = bpr_sgd_step(U, V, None, torch.tensor([0]), torch.tensor([0]), torch.tensor([[1]]), lr=0.1, l2=0.0)
    assert sums[0].item() == pytest.approx(0.0, abs=1e-30) and U[0, 0].item() == 50.0
    U[0, 0] = -50.0
    sums = bpr_sgd_step(U, V, None, torch.tensor([0]), torch.tensor([0]), torch.tensor([[1]]), lr=0.0, l2=0.0)
    assert sums[0].item() == pytest.approx(1000.0, rel=1e-6)


def test_bad_input_names_the_argument():
    U, V, b = _tables(2)
    ok = dict(users=torch.tensor([0]), pos=torch.tensor([1]), neg=torch.tensor([[2]]), lr=0.1, l2=0.0)
    with pytest.raises(ValueError, match="users_table must be a contiguous float32 tensor, got torch.float64"):
        bpr_sgd_step(U.double(), V, b, **ok)
    with pytest.raises(ValueError, match=r"items_table must be a contiguous float32 tensor, got torch.float32 \(not contiguous\)"):
        bpr_sgd_step(U, V.T.contiguous().T, b, **ok)
    with pytest.raises(ValueError, match="same width"):
        bpr_sgd_step(U, V[:, :3].contiguous(), b, **ok)
    with pytest.raises(ValueError, match=r"bias must have shape \(7,\)"):
        bpr_sgd_step(U, V, b[:3].contiguous(), **ok)
    with pytest.raises(ValueError, match=r"neg \(B, k\)"):
        bpr_sgd_step(U, V, b, **{**ok, "neg": torch.tensor([2])})
    with pytest.raises(ValueError, match=r"neg must hold row indices in \[0, 7\), got values in \[7, 7\]"):
        bpr_sgd_step(U, V, b, **{**ok, "neg": torch.tensor([[7]])})
    with pytest.raises(ValueError, match=r"users must hold row indices in \[0, 5\)"):
        bpr_sgd_step(U, V, b, **{**ok, "users": torch.tensor([-1])})


def test_float_indices_and_a_negative_equal_to_its_positive_are_refused():
    U, V, b = _tables(3)
    with pytest.raises(ValueError, match="pos must hold integer row indices, got dtype torch.float32"):
        bpr_sgd_step(U, V, b, torch.tensor([0]), torch.tensor([1.0]), torch.tensor([[2]]), lr=0.1, l2=0.0)
    with pytest.raises(ValueError, match="neg must never equal its row's pos"):
        bpr_sgd_step(U, V, b, torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[3, 4], [5, 2]]), lr=0.1, l2=0.0)
