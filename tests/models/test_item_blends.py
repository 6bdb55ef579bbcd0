"""Per-item blends (support-weighted, switching, learned): α_i by hand, the blend it gives, the learned
blend's gradient against autograd, and validation splits with new items of their own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recnb.data.splits import hold_out_items, holdout_validation, random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate, tune
from recnb.math.blend import blend, logistic_alpha, support_alpha, switch_alpha
from recnb.models.content import ContentRecommender
from recnb.models.hybrid import BlendWeights, LearnedBlend, SupportHybrid, SwitchingHybrid
from recnb.models.knn import ItemKNN
from test_hybrid import FixedScores, hand_split


def test_support_alpha_by_hand():
    # α_i = n_i / (n_i + β), β = 5: 0/5, 1/6, 5/10, 20/25
    got = support_alpha(np.array([0, 1, 5, 20]), beta=5.0)
    torch.testing.assert_close(got, torch.tensor([0.0, 1 / 6, 0.5, 0.8]))
    # the same as the logistic weight of log n with w = 1, b = -log β (n > 0)
    n = torch.tensor([1.0, 3.0, 40.0])
    torch.testing.assert_close(support_alpha(n, 5.0), torch.sigmoid(torch.log(n) - math.log(5.0)))
    with pytest.raises(ValueError, match="beta must be positive"):
        support_alpha(n, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        support_alpha(np.array([1, -1]), 1.0)


def test_switch_and_logistic_alpha_by_hand():
    torch.testing.assert_close(switch_alpha(np.array([0, 1, 2, 7]), threshold=2), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        switch_alpha(np.array([0, 1]), 0)
    counts = np.array([0, 1, 9])
    want = 1 / (1 + np.exp(-(0.5 * np.log1p(counts) - 1.0)))  # σ(w log(1 + n) + b)
    np.testing.assert_allclose(logistic_alpha(counts, 0.5, -1.0).numpy(), want, rtol=1e-6)


def test_blend_takes_one_alpha_per_item():
    s_cf, s_cb = torch.tensor([[0.0, 2.0, 4.0]]), torch.tensor([[3.0, 1.0, 2.0]])
    # min-max: cf -> [0, .5, 1], content -> [1, 0, .5]; α = [0, .5, .75]
    got = blend(s_cf, s_cb, torch.tensor([0.0, 0.5, 0.75]))
    torch.testing.assert_close(got, torch.tensor([[1.0, 0.25, 0.875]]))
    with pytest.raises(ValueError, match=r"shape \(n_items,\)"):
        blend(s_cf, s_cb, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="lie in"):
        blend(s_cf, s_cb, torch.tensor([0.0, 1.5, 0.2]))


def three_item_split():
    # item supports in training: item 0 none (new), item 1 one user, item 2 three users
    train = [(0, 1), (0, 2), (1, 2), (2, 2)]
    return hand_split(train, [(3, 0)], n_users=4, n_items=3)


def test_support_hybrid_scores_by_hand():
    split = three_item_split()
    model = SupportHybrid(FixedScores([0.0, 2.0, 4.0]), FixedScores([3.0, 1.0, 2.0]), beta=1.0).fit(split)
    # α = n / (n + 1) = [0, 1/2, 3/4]: the blend of test_blend_takes_one_alpha_per_item
    torch.testing.assert_close(model.item_alpha_, torch.tensor([0.0, 0.5, 0.75]))
    torch.testing.assert_close(model.score([3]), torch.tensor([[1.0, 0.25, 0.875]]))
    # the new item, placed by content alone, tops user 3's list
    assert model.recommend([3], k=3).indices.tolist() == [[0, 2, 1]]


def test_switching_hybrid_scores_by_hand():
    split = three_item_split()
    model = SwitchingHybrid(FixedScores([0.0, 2.0, 4.0]), FixedScores([3.0, 1.0, 2.0]), threshold=2).fit(split)
    # n = [0, 1, 3] and threshold 2: content, content, CF -> [1, 0, 1]
    torch.testing.assert_close(model.score([3]), torch.tensor([[1.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        SwitchingHybrid(FixedScores([0.0]), FixedScores([0.0]), threshold=0)


def test_blend_weights_gradient_matches_autograd_and_the_hand_formula():
    g = torch.Generator().manual_seed(0)
    n_users, n_items = 3, 5
    counts = np.array([0, 1, 2, 5, 30])
    c, q = torch.rand(n_users, n_items, generator=g), torch.rand(n_users, n_items, generator=g)
    module = BlendWeights(counts, c, q)
    with torch.no_grad():
        module.weight.fill_(0.7), module.bias.fill_(-0.4), module.scale.fill_(2.0), module.offset.fill_(0.3)
    batch = {"user": torch.tensor([0, 1, 2]), "pos": torch.tensor([0, 3, 4]), "neg": torch.tensor([[1, 2], [0, 4], [1, 3]])}
    module.loss(batch).backward()
    # by hand: ℓ = γ (q + α (c − q)) + δ, α = σ(w x + b), x = log(1 + n); L = mean_rows[−log σ(ℓ+) − Σ log σ(−ℓ−)]
    w, b, gamma, delta = 0.7, -0.4, 2.0, 0.3
    x = np.log1p(counts)
    sig = lambda z: 1 / (1 + np.exp(-z))
    grad = np.zeros(4)
    for row, u in enumerate(batch["user"].tolist()):
        entries = [(batch["pos"][row].item(), -1.0)] + [(j, 1.0) for j in batch["neg"][row].tolist()]
        for i, sign in entries:
            a = sig(w * x[i] + b)
            cu, qu = c[u, i].item(), q[u, i].item()
            s = qu + a * (cu - qu)
            ell = gamma * s + delta
            dl = sig(ell) - 1.0 if sign < 0 else sig(ell)  # d/dℓ of −log σ(ℓ) and of −log σ(−ℓ)
            dz = gamma * (cu - qu) * a * (1 - a)
            grad += dl * np.array([dz * x[i], dz, s, 1.0])
    grad /= len(batch["user"])
    got = np.array([module.weight.grad.item(), module.bias.grad.item(), module.scale.grad.item(), module.offset.grad.item()])
    np.testing.assert_allclose(got, grad, rtol=1e-5, atol=1e-7)
    # and autograd of the loss written out in torch, independently of the module
    p = torch.tensor([w, b, gamma, delta], dtype=torch.float64, requires_grad=True)
    xt = torch.log1p(torch.as_tensor(counts, dtype=torch.float64))
    alpha = torch.sigmoid(p[0] * xt + p[1])
    s_all = q.double() + alpha * (c.double() - q.double())
    ell = p[2] * s_all + p[3]
    u = batch["user"]
    loss = (-torch.nn.functional.logsigmoid(ell[u, batch["pos"]])
            - torch.nn.functional.logsigmoid(-ell[u.unsqueeze(1), batch["neg"]]).sum(1)).mean()
    loss.backward()
    np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def shop():
    data = make_shop(n_users=150, n_items=80, n_categories=5, n_interactions=3000, seed=2)
    return random_holdout(data, 0.2, seed=0)


def test_hold_out_items_among_draws_only_from_the_given_items(shop):
    among = np.arange(10, 50)
    fresh, new = hold_out_items(shop, share=0.25, seed=3, among=among)
    assert len(new) == 10 and np.isin(new, among).all()
    assert fresh.item_counts()[new].sum() == 0 and len(fresh.train) + len(fresh.test) == len(shop.train) + len(shop.test)
    with pytest.raises(ValueError, match="among must hold item indices"):
        hold_out_items(shop, among=np.array([0, 80]))


def test_learned_blend_fits_w_and_b_and_blends_with_them(shop):
    fresh, _ = hold_out_items(shop, share=0.1, seed=0)
    model = LearnedBlend(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"), max_epochs=3,
                         batch_size=128, seed=0).fit(fresh)
    w, b = model.blend_weights_.tolist()
    assert (w, b) != (0.0, 0.0)  # trained away from the zero start
    torch.testing.assert_close(model.item_alpha_, logistic_alpha(fresh.item_counts(), w, b))
    u = torch.arange(4)
    want = blend(model.cf.score(u), model.content.score(u), model.item_alpha_)
    torch.testing.assert_close(model.score(u), want)
    # the same seed gives the same weights
    again = LearnedBlend(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"), max_epochs=3,
                         batch_size=128, seed=0).fit(fresh)
    torch.testing.assert_close(again.blend_weights_, model.blend_weights_)


def test_tune_with_a_shelf_scores_the_shelf_only(shop):
    validation = holdout_validation(shop, ratio=0.25, seed=0)
    shelf = np.arange(0, 60)
    model = SupportHybrid(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"))
    search = tune(model, validation, validation, {"beta": [1.0, 20.0]}, k=5, items=shelf)
    for beta, value in zip(search.table["beta"], search.table["value"]):
        fitted = model.clone().set_params(beta=beta).fit(validation)
        assert value == pytest.approx(evaluate(fitted, validation, k=5, metrics=("ndcg",), items=shelf)["ndcg@5"])
