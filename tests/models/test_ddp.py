"""Lightning DDP on the CPU (gloo, 2 forked processes) through the models' own ``fit``.

Quality: a 2-process fit takes half the steps per epoch on batches of the same per-rank size (an
effective batch twice as large), with the learning rate scaled linearly
(:func:`recnb.training.parallel.scaled_lr`); after the same number of epochs both must beat popularity
clearly and land within 0.06 NDCG@10 of each other on the same test split.
"""

from __future__ import annotations

import pytest
import torch

from recnb.data import make_shop, random_holdout
from recnb.data.splits import holdout_validation
from recnb.evaluation import evaluate
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.popularity import PopularityRecommender
from recnb.training.parallel import scaled_lr
from recnb.training import make_trainer

EPOCHS, LR = 15, 0.02
KW = dict(max_epochs=EPOCHS, seed=0, batch_size=128, embedding_dim=16)


@pytest.fixture(scope="module")
def split():
    return random_holdout(make_shop(n_users=200, n_items=80, n_categories=4, n_interactions=5000, seed=0), seed=0)


def _two_processes(split, validation=None):
    model = EmbeddingRecommender(lr=scaled_lr(LR, 2), **KW)
    return model.fit(split, trainer=make_trainer(EPOCHS, seed=0, devices=2), validation=validation)


def test_one_and_two_processes_reach_comparable_quality_and_two_are_reproducible(split):
    one = EmbeddingRecommender(lr=LR, **KW).fit(split)
    two = _two_processes(split)
    again = _two_processes(split)
    assert two.trainer_.world_size == 2 and one.trainer_.world_size == 1
    # the weights trained in the worker processes came back to the calling process, identical twice
    assert torch.equal(two.user_embedding.weight, again.user_embedding.weight)
    assert torch.equal(two.item_embedding.weight, again.item_embedding.weight)
    assert not torch.equal(two.user_embedding.weight, EmbeddingRecommender(**KW).fit(split, trainer=make_trainer(0)).user_embedding.weight)
    ndcg = {name: evaluate(m, split, k=10)["ndcg@10"] for name, m in (("one", one), ("two", two))}
    popularity = evaluate(PopularityRecommender().fit(split), split, k=10)["ndcg@10"]
    assert min(ndcg.values()) > popularity + 0.08, (ndcg, popularity)
    assert abs(ndcg["one"] - ndcg["two"]) <= 0.06, ndcg


def test_two_process_history_and_validation_come_back(split):
    val = holdout_validation(split, seed=0)
    model = _two_processes(val, validation=val)
    h = model.trainer_.logger.history
    assert h["val_ndcg@10"].notna().sum() == EPOCHS and h["train_loss"].notna().sum() == EPOCHS
    # the last validation value is recnb.evaluation' NDCG of the returned weights on the validation split
    assert h["val_ndcg@10"].dropna().iloc[-1] == pytest.approx(evaluate(model, val, 10)["ndcg@10"], abs=1e-6)


def test_sparse_gradients_are_all_reduced_like_dense_ones(split):
    """Sparse embedding gradients through gloo's all-reduce give the dense run's weights (same steps)."""
    kw = {**KW, "max_epochs": 3}
    runs = [EmbeddingRecommender(lr=scaled_lr(LR, 2), sparse_gradients=sparse, **kw)
            .fit(split, trainer=make_trainer(3, seed=0, devices=2)) for sparse in (True, False)]
    assert runs[0].user_embedding.sparse and not runs[1].user_embedding.sparse
    for table in ("user_embedding", "item_embedding"):
        torch.testing.assert_close(getattr(runs[0], table).weight, getattr(runs[1], table).weight, rtol=1e-4, atol=1e-5)
