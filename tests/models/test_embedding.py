"""EmbeddingRecommender: scores, losses, logs, determinism, overfitting, and the positive-only failure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnb.data.splits import holdout_validation, random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.losses import negative_sampling_loss, positive_only_loss
from recnb.math.ranking import rank
from recnb.evaluation import evaluate, ndcg_at_k
from recnb.models.embedding import EmbeddingRecommender, row_gradient, top_direction_share
from recnb.models.popularity import PopularityRecommender, RandomRecommender


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train many times faster on one thread than on two competing ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return random_holdout(make_shop(n_users=60, n_items=40, n_interactions=1500, seed=0), 0.2, seed=0)


@pytest.fixture(scope="module")
def medium():
    return random_holdout(make_shop(n_users=300, n_items=200, n_interactions=8000, seed=0), 0.2, seed=0)


def test_score_is_dot_product_plus_bias(tiny):
    m = EmbeddingRecommender(embedding_dim=4, item_bias=True, max_epochs=1, batch_size=64).fit(tiny)
    U, V, b = m.user_embedding.weight, m.item_embedding.weight, m.item_bias.weight
    assert b.abs().sum() > 0  # the bias was trained
    users = torch.tensor([3, 0, 7])
    torch.testing.assert_close(m.score(users), (U[users] @ V.T + b.T).detach())
    assert m.score().shape == (tiny.n_users, tiny.n_items) and not m.score().requires_grad
    items = torch.tensor([[1, 2], [5, 0], [9, 9]])
    torch.testing.assert_close(m.pair_scores(users, items).detach(), torch.gather(m.score(users), 1, items))


def test_loss_dispatch_matches_recnb_math():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(8, generator=g), torch.randn(8, 3, generator=g)
    ns = EmbeddingRecommender(loss="negative_sampling").loss(pos, neg)
    assert ns.item() == pytest.approx(negative_sampling_loss(pos, neg).item())
    # BCE averages the 1 + k terms of each row that negative sampling sums
    assert EmbeddingRecommender(loss="bce").loss(pos, neg).item() == pytest.approx(ns.item() / 4, rel=1e-6)
    assert EmbeddingRecommender(loss="positive_only").loss(pos, neg).item() == pytest.approx(positive_only_loss(pos).item())
    # BPR (the default): -mean over the B x 3 pairs of log σ(s_pos - s_neg), by hand in numpy
    diff = pos.numpy()[:, None] - neg.numpy()
    bpr = -np.mean(np.log(1.0 / (1.0 + np.exp(-diff))))
    assert EmbeddingRecommender(loss="bpr").loss(pos, neg).item() == pytest.approx(bpr, rel=1e-5)
    assert EmbeddingRecommender().loss(pos, neg).item() == pytest.approx(bpr, rel=1e-5)


def test_history_has_the_curves_notebook_02_plots(tiny):
    val = holdout_validation(tiny, seed=0)
    m = EmbeddingRecommender(max_epochs=3, batch_size=64).fit(val, validation=val)
    h = m.trainer_.logger.history
    for column in ("train_loss", "user_norm", "item_norm", "pos_score", "neg_score", "val_ndcg@10"):
        assert h[column].notna().sum() == 3, column
    assert m.hparams.max_epochs == 3 and m.hparams.loss == "bpr"
    # the logged validation NDCG is recnb.evaluation' NDCG of the final model (validation users, seen excluded)
    assert h["val_ndcg@10"].iloc[-1] == pytest.approx(evaluate(m, val, 10)["ndcg@10"], abs=1e-6)


def test_same_seed_same_scores(tiny):
    kw = dict(max_epochs=2, batch_size=64, n_negatives=2, sampler="popularity")
    a = EmbeddingRecommender(seed=3, **kw).fit(tiny).score()
    b = EmbeddingRecommender(seed=3, **kw).fit(tiny).score()
    c = EmbeddingRecommender(seed=4, **kw).fit(tiny).score()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_bpr_overfits_tiny_data(tiny):
    m = EmbeddingRecommender(loss="bpr", embedding_dim=16, lr=0.05, l2=0.0, max_epochs=60, batch_size=64)
    m.fit(tiny)
    train = tiny.train_matrix().bool()
    ndcg = ndcg_at_k(rank(m.score(), k=10).indices, train).nanmean().item()  # training items not excluded
    assert ndcg > 0.95


def random_ndcg(split, n: int = 10) -> tuple[float, float]:
    """Mean and std of test NDCG@10 of uniformly random scores (RandomRecommender), over ``n`` seeds."""
    values = [evaluate(RandomRecommender(seed=s).fit(split), split, 10, metrics=("ndcg",))["ndcg@10"] for s in range(n)]
    return float(np.mean(values)), float(np.std(values))


def test_positive_only_loss_says_nothing_about_the_ranking(medium):
    """The documented loss ends near 0 from either init, yet its ranking is chance from nn.Embedding's
    N(0, 1) init and good from a small one: what it learns is an accident of the starting point.
    BPR with its defaults, whose loss compares a positive with a negative, beats both."""
    chance, spread = random_ndcg(medium)
    popularity = evaluate(PopularityRecommender().fit(medium), medium, 10)["ndcg@10"]
    kw = dict(max_epochs=30, batch_size=256, lr=0.01, optimizer="adam", l2=0.0)
    runs = {}
    for name, init in (("standard", 1.0), ("small", 0.1)):
        m = EmbeddingRecommender(loss="positive_only", init_std=init, **kw).fit(medium)
        runs[name] = (m.trainer_.logger.history.train_loss.iloc[-1], evaluate(m, medium, 10)["ndcg@10"])
    bpr = EmbeddingRecommender(loss="bpr").fit(medium)  # recnb's defaults
    runs["bpr"] = (bpr.trainer_.logger.history.train_loss.iloc[-1], evaluate(bpr, medium, 10)["ndcg@10"])
    assert runs["standard"][0] < 0.06 and runs["small"][0] < 0.06
    assert abs(runs["standard"][1] - chance) < 3 * spread + 0.015
    assert runs["small"][1] > popularity + 0.05
    assert runs["bpr"][1] > runs["small"][1] + 0.03


def test_positive_only_raises_every_score(medium):
    """From a small init: norms and *all* scores grow; sampled non-items end up 'relevant' (σ > 0.8)."""
    kw = dict(init_std=0.1, l2=0.0, max_epochs=30, batch_size=256, optimizer="adam", lr=0.01)
    h = EmbeddingRecommender(loss="positive_only", **kw).fit(medium).trainer_.logger.history
    assert h.item_norm.iloc[-1] > 3 * h.item_norm.iloc[0]
    assert h.user_norm.iloc[-1] > 3 * h.user_norm.iloc[0]
    assert h.pos_score.is_monotonic_increasing and h.neg_score.iloc[-1] > h.neg_score.iloc[0]
    assert torch.sigmoid(torch.tensor(h.neg_score.iloc[-1])) > 0.8
    h_ns = EmbeddingRecommender(loss="negative_sampling", **kw).fit(medium).trainer_.logger.history
    assert torch.sigmoid(torch.tensor(h_ns.neg_score.iloc[-1])) < 0.2


def test_positive_only_optimum_is_degenerate(tiny):
    """Identical embeddings for everyone reach a lower documented loss than training does, while
    ranking every item the same for every user: the loss cannot tell a good model from a useless one."""
    m = EmbeddingRecommender(loss="positive_only", init_std=0.1, l2=0.0, max_epochs=20, batch_size=64)
    m.fit(tiny)
    u = torch.as_tensor(tiny.train.user_idx.to_numpy())
    i = torch.as_tensor(tiny.train.item_idx.to_numpy())
    trained = positive_only_loss(m.pair_scores(u, i)).item()
    with torch.no_grad():
        m.user_embedding.weight.fill_(1.0)
        m.item_embedding.weight.fill_(1.0)  # s_ug = d = 32 for every pair
    useless = positive_only_loss(m.pair_scores(u, i)).item()
    assert useless < trained and useless < 1e-13
    lists = m.recommend(k=10, exclude_seen=False).indices
    assert (lists == torch.arange(10)).all()  # all ties: item order, whoever the user


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loss="hinge"), "loss must be one of"),
        (dict(n_negatives=0), "n_negatives must be >= 1, got 0"),
        (dict(embedding_dim=0), "embedding_dim must be >= 1"),
        (dict(lr=0.0), "lr must be > 0, got 0.0"),
        (dict(l2=-1.0), "l2 must be >= 0, got -1.0"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingRecommender(**kwargs)


def test_unfitted_score_raises():
    with pytest.raises(RuntimeError, match="not fitted yet"):
        EmbeddingRecommender().score([0])


def test_top_direction_share_against_numpy_svd():
    rng = np.random.default_rng(0)
    for shape in ((50, 8), (5, 12), (30, 1)):
        E = rng.normal(size=shape)
        sigma = np.linalg.svd(E, compute_uv=False)
        assert top_direction_share(torch.tensor(E, dtype=torch.float32)) == pytest.approx(
            sigma[0] ** 2 / (sigma**2).sum(), rel=1e-5
        )
    # by hand: rows along one vector -> 1; two orthogonal rows of norms 3 and 4 -> 16 / 25
    assert top_direction_share(np.outer([1.0, -2.0, 0.5], [3.0, 4.0])) == pytest.approx(1.0)
    assert top_direction_share(np.array([[3.0, 0.0], [0.0, 4.0]])) == pytest.approx(16 / 25)
    assert top_direction_share(np.eye(4)) == pytest.approx(1 / 4)  # evenly spread: 1/d
    with pytest.raises(ValueError, match="all zeros"):
        top_direction_share(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        top_direction_share(np.ones(3))


def test_row_gradient_sums_duplicate_rows_into_a_coalesced_sparse_gradient():
    index = torch.tensor([4, 1, 4, 0, 4])
    grads = torch.arange(10.0).reshape(5, 2)
    g = row_gradient(index, grads, n_rows=6)
    assert g.is_sparse and g.is_coalesced() and g.indices().tolist() == [[0, 1, 4]]
    expected = torch.zeros(6, 2)
    for i, row in zip(index.tolist(), grads):  # the sum, by hand
        expected[i] += row
    torch.testing.assert_close(g.to_dense(), expected)
    gathered = torch.zeros(6, 2, requires_grad=True)
    (gathered[index] * grads).sum().backward()  # autograd's gradient of the gathered rows
    torch.testing.assert_close(g.to_dense(), gathered.grad)


def _one_batch(model, split):
    dm = model.datamodule(split)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("loss", ["bpr", "negative_sampling", "bce", "positive_only"])
def test_backward_rows_is_autograds_gradient_of_the_dense_loss(tiny, loss):
    """The sparse path's gradient (scores by autograd, rows by the chain rule by hand) equals autograd's
    through the dense embedding lookups, on every table, for every loss; untouched rows get none."""
    kw = dict(embedding_dim=8, item_bias=True, batch_size=64, n_negatives=3, loss=loss, l2=0.05)
    sparse = EmbeddingRecommender(sparse_gradients=True, **kw)
    dense = EmbeddingRecommender(sparse_gradients=False, **kw)
    sparse.build(tiny)
    dense.build(tiny)  # same seed: same tables
    batch = _one_batch(sparse, tiny)
    assert batch["neg"].shape == (64, 3)
    loss_rows, pos, neg = sparse.backward_rows(batch)
    pos_d, neg_d = dense.pair_scores(batch["user"], batch["pos"]), dense.pair_scores(batch["user"], batch["neg"])
    loss_dense = dense.loss(pos_d, neg_d) + 0.05 * dense.batch_norms(batch)
    loss_dense.backward()
    assert loss_rows.item() == pytest.approx(loss_dense.item(), rel=1e-6)
    torch.testing.assert_close(pos, pos_d.detach())
    torch.testing.assert_close(neg, neg_d.detach())
    for s, d in zip(sparse.parameters(), dense.parameters()):
        assert s.grad.is_sparse and s.grad.is_coalesced() and not d.grad.is_sparse
        torch.testing.assert_close(s.grad.to_dense(), d.grad, rtol=1e-5, atol=1e-7)
    touched = torch.zeros(tiny.n_users, dtype=torch.bool)
    touched[batch["user"]] = True
    assert sparse.user_embedding.weight.grad.indices()[0].tolist() == touched.nonzero().squeeze(1).tolist()


def test_sparse_adagrad_step_equals_the_dense_step_and_leaves_untouched_rows(tiny):
    """Two Adagrad steps on the sparse gradient of backward_rows move the weights as dense Adagrad does
    on the dense gradient (the second step reads the accumulators the first left); rows no batch used
    keep their values."""
    kw = dict(embedding_dim=8, item_bias=True, batch_size=64)
    sparse, dense = EmbeddingRecommender(sparse_gradients=True, **kw), EmbeddingRecommender(sparse_gradients=False, **kw)
    sparse.build(tiny)
    dense.build(tiny)
    batch = _one_batch(sparse, tiny)
    initial = sparse.user_embedding.weight.detach().clone()
    opts = [torch.optim.Adagrad(m.parameters(), lr=0.1) for m in (sparse, dense)]
    for _ in range(2):
        for opt in opts:
            opt.zero_grad()
        sparse.backward_rows(batch)
        (dense.loss(dense.pair_scores(batch["user"], batch["pos"]), dense.pair_scores(batch["user"], batch["neg"]))
         + dense.hparams.l2 * dense.batch_norms(batch)).backward()
        for opt in opts:
            opt.step()
    for s, d in zip(sparse.parameters(), dense.parameters()):
        torch.testing.assert_close(s.detach(), d.detach(), rtol=1e-6, atol=1e-7)
    untouched = torch.ones(tiny.n_users, dtype=torch.bool)
    untouched[batch["user"]] = False
    after = sparse.user_embedding.weight.detach()
    assert untouched.any() and torch.equal(after[untouched], initial[untouched])
    assert not torch.equal(after[~untouched], initial[~untouched])


def test_sparse_training_is_reproducible_and_matches_dense_training(tiny):
    """Whole fits through the Trainer: the same seed gives the same metrics on the sparse path, and
    the sparse and dense paths train the same model (up to float rounding) for any n_negatives."""
    for n_negatives in (1, 3):
        kw = dict(embedding_dim=8, batch_size=64, max_epochs=3, n_negatives=n_negatives, seed=5)
        a = EmbeddingRecommender(sparse_gradients=True, **kw).fit(tiny)
        b = EmbeddingRecommender(sparse_gradients=True, **kw).fit(tiny)
        d = EmbeddingRecommender(sparse_gradients=False, **kw).fit(tiny)
        assert a.user_embedding.sparse and not d.user_embedding.sparse
        assert evaluate(a, tiny, 10) == evaluate(b, tiny, 10)
        assert a.trainer_.global_step == d.trainer_.global_step == 3 * -(-tiny.train_csr().nnz // 64)
        torch.testing.assert_close(a.score(), d.score(), rtol=1e-4, atol=1e-5)


def test_sparse_gradients_automatic_rule_and_bad_combination(tiny):
    """Sparse when the tables (here 60 + 40 rows) exceed SPARSE_FACTOR x the rows a batch can touch."""
    from recnb.models.embedding import SPARSE_FACTOR

    n = tiny.n_users + tiny.n_items
    big_batch = EmbeddingRecommender(batch_size=64, n_negatives=4)  # 64 * 6 * 2 = 768 touchable rows > 100
    small_batch = EmbeddingRecommender(batch_size=4, n_negatives=1)  # 4 * 3 * 2 = 24 < 100
    assert SPARSE_FACTOR * 64 * 6 > n > SPARSE_FACTOR * 4 * 3
    assert not big_batch.uses_sparse_gradients(tiny.n_users, tiny.n_items)
    assert small_batch.uses_sparse_gradients(tiny.n_users, tiny.n_items)
    assert not EmbeddingRecommender(batch_size=4, n_negatives=1, optimizer="adam").uses_sparse_gradients(10**6, 10**6)
    assert EmbeddingRecommender(sparse_gradients=True).uses_sparse_gradients(1, 1)
    small_batch.build(tiny)
    assert small_batch.user_embedding.sparse and small_batch.item_embedding.sparse
    with pytest.raises(ValueError, match="sparse_gradients=True needs optimizer='adagrad'"):
        EmbeddingRecommender(optimizer="adam", sparse_gradients=True)


def test_sgd_fit_is_the_per_triple_loop_over_the_datamodules_batches(tiny):
    """optimizer='sgd' through the Trainer makes exactly bpr_sgd_step's updates on the batches its
    DataModule gives (same seed: same tables, same batches, same negatives), epoch after epoch, and
    the same seed gives the same model; the penalty-free loss it logs falls as it trains."""
    from recnb.training.bpr_sgd import bpr_sgd_step

    kw = dict(embedding_dim=8, item_bias=True, batch_size=64, n_negatives=2, optimizer="sgd", lr=0.05,
              l2=0.01, max_epochs=3, seed=4)
    fitted = EmbeddingRecommender(**kw).fit(tiny)
    again = EmbeddingRecommender(**kw).fit(tiny)
    by_hand = EmbeddingRecommender(**kw)
    by_hand.build(tiny)
    dm = by_hand.datamodule(tiny)
    dm.setup("fit")
    loader = dm.train_dataloader()
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            bpr_sgd_step(by_hand.user_embedding.weight.data, by_hand.item_embedding.weight.data,
                         by_hand.item_bias.weight.data.view(-1), batch["user"], batch["pos"], batch["neg"], 0.05, 0.01)
    for a, b, c in zip(fitted.parameters(), again.parameters(), by_hand.parameters()):
        assert torch.equal(a, b)
        torch.testing.assert_close(a.detach(), c.detach(), rtol=0, atol=0)
    losses = fitted.trainer_.logger.history["train_loss"].dropna().tolist()
    assert len(losses) == 3 and losses[0] > losses[-1]
    assert fitted.trainer_.global_step == 3 * -(-tiny.train_csr().nnz // 64)


def test_sgd_learns_a_ranking_and_refuses_what_it_cannot_do(tiny):
    m = EmbeddingRecommender(embedding_dim=16, optimizer="sgd", lr=0.05, max_epochs=20, batch_size=256, seed=0).fit(tiny)
    assert evaluate(m, tiny, 10)["ndcg@10"] > evaluate(RandomRecommender(seed=0).fit(tiny), tiny, 10)["ndcg@10"] + 0.05
    assert not m.user_embedding.sparse
    with pytest.raises(ValueError, match="optimizer='sgd' is BPR's per-triple step .* needs loss='bpr', got loss='bce'"):
        EmbeddingRecommender(optimizer="sgd", loss="bce")
    with pytest.raises(ValueError, match="sparse_gradients=True needs optimizer='adagrad'"):
        EmbeddingRecommender(optimizer="sgd", sparse_gradients=True)
