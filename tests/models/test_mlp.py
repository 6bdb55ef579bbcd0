"""The MLP scorer: learns, beats popularity on the synthetic shop, and its single-layer form cannot personalise."""

from __future__ import annotations

import pytest
import torch

from recnb.data.schema import Split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.losses import bce_loss
from recnb.evaluation import evaluate
from recnb.models.mlp import MLPRecommender
from recnb.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def shop_split() -> Split:
    data = make_shop(n_users=300, n_items=150, n_categories=6, n_interactions=6000, seed=0)
    return random_holdout(data, 0.2, seed=0)


def test_mlp_beats_popularity_and_its_loss_decreases(shop_split):
    model = MLPRecommender(embedding_dim=16, hidden=(32,), lr=0.01, n_negatives=8, max_epochs=25, batch_size=128).fit(shop_split)
    pop = evaluate(PopularityRecommender().fit(shop_split), shop_split)["ndcg@10"]
    got = evaluate(model, shop_split)["ndcg@10"]
    assert got > pop + 0.05, (got, pop)
    loss = model.trainer_.logger.history["train_loss"].dropna()
    assert loss.iloc[-1] < 0.75 * loss.iloc[0]


def test_training_step_is_bce_over_positive_and_negatives(shop_split):
    model = MLPRecommender(embedding_dim=4, hidden=(8,), max_epochs=1, batch_size=512).fit(shop_split)
    batch = {"user": torch.tensor([0, 1]), "pos": torch.tensor([2, 3]), "neg": torch.tensor([[4, 5], [6, 7]])}
    logits = torch.stack([model.logits(torch.tensor([u] * 3), torch.tensor(items)) for u, items in
                          ((0, [2, 4, 5]), (1, [3, 6, 7]))])
    labels = torch.tensor([[1.0, 0, 0], [1.0, 0, 0]])
    with torch.no_grad():
        model.log = lambda *a, **k: None  # no trainer attached for a bare call
        assert model.training_step(batch, 0).item() == pytest.approx(bce_loss(logits, labels).item(), abs=1e-6)
    assert model.score([0, 1])[1, 6].item() == pytest.approx(logits[1, 1].item(), abs=1e-5)


def test_single_layer_ranks_items_identically_for_every_user(shop_split):
    # s_ui = w_u·e_u + w_i·e_i + b: the user term shifts a row, the order of items never changes
    model = MLPRecommender(embedding_dim=8, hidden=(), max_epochs=2, batch_size=512).fit(shop_split)
    s = model.score([0, 1, 2])
    order = torch.argsort(s, dim=1)
    assert torch.equal(order[0], order[1]) and torch.equal(order[0], order[2])
    assert torch.allclose(s[0] - s[1], (s[0] - s[1])[0].expand(s.shape[1]), atol=1e-5)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="n_negatives"):
        MLPRecommender(n_negatives=0)
    with pytest.raises(ValueError, match="hidden"):
        MLPRecommender(hidden=(0,))


def test_build_is_seeded_locally_and_leaves_the_global_rng_alone(shop_split):
    def params(seed):
        model = MLPRecommender(embedding_dim=4, hidden=(8,), seed=seed)
        model.build(shop_split)
        return [p.detach().clone() for p in model.parameters()]

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = params(7)
    assert torch.equal(torch.rand(3), expected_next)  # build neither reset nor consumed the global RNG
    b, c = params(7), params(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    # embeddings ~ N(0, 0.1²); Linear weights and biases within PyTorch's default ±1/sqrt(fan_in)
    user, item, w1, b1, w2, b2 = a
    assert 0.05 < float(user.std()) < 0.15 and 0.05 < float(item.std()) < 0.15
    assert float(w1.abs().max()) <= 1 / 8**0.5 and float(b1.abs().max()) <= 1 / 8**0.5
    assert float(w2.abs().max()) <= 1 / 8**0.5 and float(w2.abs().max()) > 0


def test_same_seed_same_scores(shop_split):
    kw = dict(embedding_dim=4, hidden=(8,), max_epochs=1, batch_size=512)
    a = MLPRecommender(seed=1, **kw).fit(shop_split).score([0, 1, 2])
    b = MLPRecommender(seed=1, **kw).fit(shop_split).score([0, 1, 2])
    c = MLPRecommender(seed=2, **kw).fit(shop_split).score([0, 1, 2])
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
