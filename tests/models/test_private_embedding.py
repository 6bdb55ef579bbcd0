import pytest
import torch

from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.losses import bpr_loss
from recnb.evaluation import evaluate
from recnb.models.private_embedding import DPEmbeddingRecommender, per_example_row_grads, table_grad_norms
from recnb.training.accountant import dp_sgd_epsilon


def test_row_grads_and_norms_equal_per_sample_autograd_on_the_tables():
    g = torch.Generator().manual_seed(0)
    U = torch.randn(4, 3, generator=g, dtype=torch.float64)
    V = torch.randn(6, 3, generator=g, dtype=torch.float64)
    users = torch.tensor([0, 2, 3])
    items = torch.tensor([[1, 2, 2], [0, 5, 4], [3, 1, 1]])  # positive first; rows 0 and 2 repeat a negative
    gu, gi = per_example_row_grads(U[users], V[items])
    norms = table_grad_norms(gu, gi, items)
    for b in range(3):
        Ul, Vl = U.clone().requires_grad_(True), V.clone().requires_grad_(True)
        s = Vl[items[b]] @ Ul[users[b]]
        aU, aV = torch.autograd.grad(bpr_loss(s[:1], s[1:].unsqueeze(0)), (Ul, Vl))
        torch.testing.assert_close(gu[b], aU[users[b]])
        scattered = torch.zeros_like(V).index_add_(0, items[b], gi[b])
        torch.testing.assert_close(scattered, aV)
        torch.testing.assert_close(norms[b], torch.sqrt(aU.pow(2).sum() + aV.pow(2).sum()))


def test_trains_with_a_trainer_and_accounts_its_steps():
    split = random_holdout(make_shop(n_users=60, n_items=40, n_interactions=1200, seed=0), seed=0)
    common = dict(embedding_dim=8, max_epochs=2, sample_rate=0.1, lr=20.0, seed=0)
    quiet = DPEmbeddingRecommender(noise_multiplier=0.0, **common).fit(split)
    assert quiet.steps_ == 2 * 10 and quiet.trainer_.global_step == 20
    assert quiet.epsilon(1e-5) == float("inf")
    noisy = DPEmbeddingRecommender(noise_multiplier=1.0, noise_seed=5, **common).fit(split)
    assert noisy.epsilon(1e-5) == dp_sgd_epsilon(0.1, 1.0, 20, 1e-5)
    again = DPEmbeddingRecommender(noise_multiplier=1.0, noise_seed=5, **common).fit(split)
    torch.testing.assert_close(noisy.item_embedding.weight, again.item_embedding.weight, rtol=0, atol=0)
    # the noise moves the tables: with σ = 1 the model differs from the noise-free one
    assert (noisy.item_embedding.weight - quiet.item_embedding.weight).abs().max() > 1e-2
    assert 0 <= evaluate(noisy, split, k=5)["ndcg@5"] <= 1


def test_noise_is_fresh_by_default_and_the_model_seed_fixes_only_the_initialisation():
    """With the defaults two fits draw different noise (and Poisson samples): the model seed (default
    0) is public, and noise derived from it could be subtracted. ``noise_seed`` reproduces a run."""
    split = random_holdout(make_shop(n_users=60, n_items=40, n_interactions=1200, seed=0), seed=0)
    common = dict(embedding_dim=8, max_epochs=1, sample_rate=0.1, lr=20.0, noise_multiplier=1.0, seed=0)
    a = DPEmbeddingRecommender(**common).fit(split)
    b = DPEmbeddingRecommender(**common).fit(split)
    assert a.hparams.noise_seed is None
    assert not torch.equal(a.item_embedding.weight, b.item_embedding.weight)
    seeded = [DPEmbeddingRecommender(noise_seed=11, **common).fit(split) for _ in range(2)]
    assert torch.equal(seeded[0].item_embedding.weight, seeded[1].item_embedding.weight)
    assert not torch.equal(seeded[0].item_embedding.weight, DPEmbeddingRecommender(noise_seed=12, **common)
                           .fit(split).item_embedding.weight)
    # the initial tables come from `seed` alone, whatever the noise seed
    starts = []
    for noise_seed in (None, 11):
        m = DPEmbeddingRecommender(noise_seed=noise_seed, **common)
        m.build(split)
        starts.append(m.item_embedding.weight.detach().clone())
    assert torch.equal(*starts)
    with pytest.raises(ValueError, match="noise_seed must be None"):
        DPEmbeddingRecommender(noise_seed=-1)
