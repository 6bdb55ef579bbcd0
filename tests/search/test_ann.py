"""recnb.search.ann: exact top-k, k-means and the IVF index by hand, MIPS augmentation, FAISS/hnswlib, retrieve-then-rank."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.ranking import PAD, Ranking
from recnb.models.embedding import EmbeddingRecommender
from recnb.search.ann import (
    METRICS,
    AnnIndex,
    ExactIndex,
    FaissFlat,
    FaissHNSW,
    FaissIVF,
    FaissIVFPQ,
    Hnswlib,
    IVFIndex,
    RetrieveThenRank,
    augment_queries,
    available,
    clustered_vectors,
    exact_top_k,
    factor_tables,
    kmeans,
    mips_augment,
    recall_at_k,
    require,
)

INSTALL = 'is not installed: pip install -e ".[ann]" (the optional [ann] extra of faiss-cpu and hnswlib)'
needs_faiss = pytest.mark.skipif(not available("faiss"), reason=f"faiss {INSTALL}")
needs_hnswlib = pytest.mark.skipif(not available("hnswlib"), reason=f"hnswlib {INSTALL}")


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """2,000 items and 40 queries in 8 dimensions, float64 (no float ties between batched products)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(2000, 8, generator=g, dtype=torch.float64), torch.randn(40, 8, generator=g, dtype=torch.float64)


def brute_force(q: np.ndarray, x: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Reference top-k by numpy: the score of every pair, stable argsort."""
    if metric == "cosine":
        q, x = q / np.linalg.norm(q, axis=1, keepdims=True), x / np.linalg.norm(x, axis=1, keepdims=True)
    s = -((q[:, None, :] - x[None, :, :]) ** 2).sum(-1) if metric == "l2" else q @ x.T
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", METRICS)
def test_exact_top_k_matches_numpy(data, metric):
    x, q = data
    r = exact_top_k(q, x, 7, metric, batch_size=16)  # several batches
    assert r.indices.tolist() == brute_force(q.numpy(), x.numpy(), 7, metric).tolist()
    i = r.indices[3, 0].item()
    expected = {"ip": q[3] @ x[i], "l2": -((q[3] - x[i]) ** 2).sum(),
                "cosine": q[3] @ x[i] / (q[3].norm() * x[i].norm())}[metric]
    assert r.scores[3, 0].item() == pytest.approx(expected.item(), rel=1e-12)


def test_kmeans_by_hand_on_a_tiny_2d_example():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [10.0, 10.0], [10.0, 11.0], [11.0, 10.0]], dtype=torch.float64)
    # one Lloyd step from given centroids: (0,0) takes the first three points, (10,11) the last three
    one = kmeans(x, 2, n_iter=1, init=torch.tensor([[0.0, 0.0], [10.0, 11.0]]))
    assert one.assignment.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(one.centroids, torch.tensor([[1 / 3, 1 / 3], [31 / 3, 31 / 3]], dtype=torch.float64))
    # inertia: each point's squared distance to its group mean, 4/3 per group
    assert one.inertia == pytest.approx(8 / 3)
    # a bad start, both centroids in the first group: (0,1) first takes the far group, its mean
    # (7.75, 8) then lets (0,1) go back, and the second step changes no assignment
    bad = kmeans(x, 2, n_iter=10, init=torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert bad.n_iter == 2 and bad.inertia == pytest.approx(8 / 3)
    for init in ("k-means++", "random"):
        for seed in range(5):
            km = kmeans(x, 2, seed=seed, init=init)
            assert km.inertia == pytest.approx(8 / 3), (init, seed)
    a = kmeans(x, 3, seed=1)
    assert torch.equal(a.centroids, kmeans(x, 3, seed=1).centroids)  # seeded


def test_kmeans_leaves_an_empty_cell_in_place():
    x = torch.tensor([[0.0], [1.0], [2.0]])
    km = kmeans(x, 2, n_iter=3, init=torch.tensor([[1.0], [100.0]]))
    assert km.centroids.tolist() == [[1.0], [100.0]] and km.assignment.tolist() == [0, 0, 0]


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_with_every_cell_probed_is_exact(data, metric):
    x, q = data
    ivf = IVFIndex(n_cells=16, nprobe=16, metric=metric, batch_size=16).build(x)
    assert int(ivf.cell_sizes().sum()) == 2000 and (ivf.cell_sizes() > 0).all()
    exact = exact_top_k(q, x, 10, metric)
    got = ivf.search(q, 10)
    assert torch.equal(got.indices, exact.indices)
    assert torch.allclose(got.scores, exact.scores, rtol=1e-12, atol=1e-12)
    # each item is filed under its nearest centroid
    d = ((x if metric != "cosine" else x / x.norm(dim=1, keepdim=True))[:, None, :] - ivf.centroids_[None]).pow(2).sum(-1)
    assert torch.equal(ivf.cell_of_, d.argmin(dim=1))


@pytest.mark.parametrize("k", [1, 10, 37])
def test_ivf_breaks_ties_to_the_lower_item_index(k):
    """Small-integer vectors, each drawn 5 times over: exact ties everywhere, also across the top-k boundary."""
    g = torch.Generator().manual_seed(1)
    base = torch.randint(-3, 4, (60, 4), generator=g).double()
    x = base[torch.randint(0, 60, (300,), generator=g)]
    q = torch.randint(-3, 4, (25, 4), generator=g).double()
    ivf = IVFIndex(n_cells=12, nprobe=12, batch_size=8).build(x)
    got = ivf.search(q, k)
    s = q.numpy() @ x.numpy().T
    expected = np.argsort(-s, axis=1, kind="stable")[:, :k]
    assert got.indices.tolist() == expected.tolist()
    assert np.array_equal(got.scores.numpy(), np.take_along_axis(s, expected, 1))
    boundary = np.take_along_axis(s, np.argsort(-s, axis=1, kind="stable")[:, k : k + 1], 1)[:, 0]
    assert (boundary == got.scores.numpy()[:, -1]).any()  # some rows have a tie cut by the boundary


def test_ivf_recall_grows_with_nprobe(data):
    x, q = data
    exact = exact_top_k(q, x, 10).indices
    ivf = IVFIndex(n_cells=32, metric="l2").build(x)
    recalls = []
    for nprobe in (1, 2, 4, 8, 16, 32):
        ivf.nprobe = nprobe
        recalls.append(recall_at_k(ivf.search(q, 10).indices, exact_top_k(q, x, 10, "l2").indices))
    assert recalls == sorted(recalls) and recalls[0] < 0.6 and recalls[-1] == 1.0
    assert recall_at_k(exact, exact) == 1.0


def test_recall_at_k_by_hand():
    found = torch.tensor([[1, 2, 3], [4, 5, PAD]])
    exact = torch.tensor([[3, 9, 1], [6, 7, 8]])
    assert recall_at_k(found, exact) == pytest.approx((2 / 3 + 0) / 2)


def test_mips_augmentation_gives_the_inner_product_top_k(data):
    x, q = data
    x = x * torch.linspace(0.1, 3.0, len(x), dtype=x.dtype).unsqueeze(1)  # varied norms: ip and l2 disagree raw
    aug, m = mips_augment(x)
    assert aug.shape == (2000, 9) and m == pytest.approx(x.norm(dim=1).max().item())
    assert torch.allclose(aug.norm(dim=1), torch.full((2000,), m, dtype=x.dtype))
    aq = augment_queries(q)
    assert aq.shape == (40, 9) and (aq[:, -1] == 0).all()
    ip = exact_top_k(q, x, 10, "ip").indices
    assert not torch.equal(exact_top_k(q, x, 10, "l2").indices, ip)  # without the trick L2 is not MIPS
    assert torch.equal(exact_top_k(aq, aug, 10, "l2").indices, ip)
    assert torch.equal(exact_top_k(aq, aug, 10, "cosine").indices, ip)
    with pytest.raises(ValueError, match="max_norm must be at least"):
        mips_augment(x, max_norm=1.0)


def test_clustered_vectors_are_a_seeded_mixture():
    x, q = clustered_vectors(3000, 40, 8, seed=1)
    assert x.shape == (3000, 8) and q.shape == (40, 8) and x.dtype == torch.float32
    assert torch.allclose(x.norm(dim=1), torch.ones(3000)) and torch.allclose(q.norm(dim=1), torch.ones(40))
    again = clustered_vectors(3000, 40, 8, seed=1)
    assert torch.equal(x, again[0]) and torch.equal(q, again[1])
    assert not torch.equal(x, clustered_vectors(3000, 40, 8, seed=2)[0])
    # no noise: every vector is one of the n_items // 1000 = 3 centres, and queries come from the same ones
    x0, q0 = clustered_vectors(3000, 40, 8, seed=1, spread=0.0, normalise=False)
    centres = torch.unique(x0, dim=0)
    assert len(centres) == 3 and set(map(tuple, torch.unique(q0, dim=0).tolist())) <= set(map(tuple, centres.tolist()))
    # the noise has standard deviation `spread` around the item's nearest centre
    x1, _ = clustered_vectors(3000, 40, 8, seed=1, spread=0.1, normalise=False)
    assert torch.equal(torch.cdist(x1, centres).argmin(dim=1), torch.cdist(x0, centres).argmin(dim=1))
    assert (x1 - x0).std().item() == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="spread must be >= 0"):
        clustered_vectors(10, 1, 2, spread=-1.0)
    with pytest.raises(ValueError, match="n_centres must be an integer >= 1"):
        clustered_vectors(10, 1, 2, n_centres=0)


@needs_faiss
@pytest.mark.parametrize("metric", METRICS)
def test_faiss_flat_and_full_ivf_equal_exact(data, metric):
    x, q = data[0].float(), data[1].float()
    exact = exact_top_k(q, x, 10, metric)
    for index in (FaissFlat(metric), FaissIVF(nlist=8, nprobe=8, metric=metric)):
        got = index.build(x).search(q, 10)
        assert torch.equal(got.indices, exact.indices), index
        assert torch.allclose(got.scores, exact.scores, atol=1e-4)
        assert index.memory_bytes() >= 2000 * 8 * 4


@needs_faiss
def test_faiss_ivfpq_trains_its_sub_quantizers_as_asked(data):
    faiss = require("faiss")
    x, q = data[0].float(), data[1].float()
    default = FaissIVFPQ(nlist=4, m=4, nbits=4, nprobe=4).build(x)
    quick = FaissIVFPQ(nlist=4, m=4, nbits=4, nprobe=4, pq_n_iter=3, pq_max_points_per_centroid=40).build(x)
    assert (default.index_.pq.cp.niter, default.index_.pq.cp.max_points_per_centroid) == (25, 256)  # FAISS's
    assert (quick.index_.pq.cp.niter, quick.index_.pq.cp.max_points_per_centroid) == (3, 40)
    # 3 iterations on 40 · 16 of the 2,000 residuals give other codebooks, still a working index
    assert not np.allclose(faiss.vector_to_array(default.index_.pq.centroids), faiss.vector_to_array(quick.index_.pq.centroids))
    assert recall_at_k(quick.search(q, 100).indices, exact_top_k(q, x, 10).indices) >= 0.8
    with pytest.raises(ValueError, match="pq_n_iter must be an integer >= 1, got 0"):
        FaissIVFPQ(4, m=4, pq_n_iter=0)


@needs_faiss
@needs_hnswlib
@pytest.mark.parametrize("index", [FaissHNSW(M=16, ef_construction=80, ef_search=100), Hnswlib(M=16, ef_search=100, threads=1)])
def test_hnsw_recall_and_scores(data, index):
    x, q = data[0].float(), data[1].float()
    exact = exact_top_k(q, x, 10)
    got = index.build(x).search(q, 10)
    assert recall_at_k(got.indices, exact.indices) >= 0.95
    found = got.indices.clamp(min=0)
    assert torch.allclose(got.scores, (q.unsqueeze(1) * x[found]).sum(-1), atol=1e-4)  # scores are inner products


def test_require_names_the_extra():
    with pytest.raises(ValueError, match="library must be one of"):
        require("annoy")
    if not available("faiss"):
        with pytest.raises(ImportError, match=r'pip install -e "\.\[ann\]"'):
            require("faiss")


@pytest.mark.parametrize("make", [lambda: ExactIndex(), lambda: IVFIndex(4), lambda: FaissFlat(), lambda: Hnswlib()])
def test_bad_input_errors(data, make):
    x, q = data
    index = make()
    with pytest.raises(RuntimeError, match="not built yet"):
        index.search(q, 5)
    if isinstance(index, (FaissFlat, Hnswlib)) and not available("faiss" if isinstance(index, FaissFlat) else "hnswlib"):
        return
    index.build(x.float())
    with pytest.raises(ValueError, match=r"queries must have dimension d = 8 .* got vectors of dimension 5"):
        index.search(q[:, :5], 5)
    with pytest.raises(ValueError, match=r"k must be an integer in 1\.\.2000 .* got 2001"):
        index.search(q, 2001)
    with pytest.raises(ValueError, match="k must be an integer"):
        index.search(q, 0)
    with pytest.raises(TypeError, match="floating-point"):
        index.search(q.long(), 5)


def test_nprobe_and_other_arguments_are_checked(data):
    x, q = data
    with pytest.raises(ValueError, match="nprobe must be an integer >= 1, got 0"):
        IVFIndex(4, nprobe=0)
    ivf = IVFIndex(4).build(x)
    ivf.nprobe = 5
    with pytest.raises(ValueError, match=r"nprobe must be an integer in 1\.\.4 \(n_cells\), got 5"):
        ivf.search(q, 3)
    with pytest.raises(ValueError, match="nprobe must be an integer >= 1, got 0"):
        FaissIVF(nlist=4, nprobe=0)
    with pytest.raises(ValueError, match="metric must be one of"):
        ExactIndex("dot")
    with pytest.raises(ValueError, match="n_cells must be at most the number of vectors 2000"):
        IVFIndex(3000).build(x)


@pytest.fixture(scope="module")
def shop_model() -> EmbeddingRecommender:
    """An (untrained, randomly initialised) embedding model with an item bias: the scores are what matter."""
    split = random_holdout(make_shop(n_users=80, n_items=300, n_interactions=4000, seed=0), 0.2, seed=0)
    model = EmbeddingRecommender(embedding_dim=8, item_bias=True, init_std=1.0)
    model.remember_split(split)
    model.build(split)
    with torch.no_grad():
        model.item_bias.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return model


def test_factor_tables_fold_the_item_bias(shop_model):
    users, items = factor_tables(shop_model)
    assert users.shape == (80, 9) and items.shape == (300, 9)
    assert torch.allclose(users @ items.T, shop_model.score(), atol=1e-5)
    with pytest.raises(TypeError, match="must be a factor model"):
        factor_tables(object())
    als_like = SimpleNamespace(user_factors_=torch.ones(3, 2), item_factors_=torch.zeros(4, 2))  # ALS's attributes
    assert [t.shape for t in factor_tables(als_like)] == [(3, 2), (4, 2)]
    with pytest.raises(RuntimeError, match="not fitted yet"):
        factor_tables(SimpleNamespace(user_factors_=None, item_factors_=None))


@pytest.mark.parametrize("index", [ExactIndex(), IVFIndex(8, nprobe=8), IVFIndex(8, nprobe=8, metric="l2")])
def test_retrieve_then_rank_with_a_complete_index_is_recommend(shop_model, index):
    rtr = RetrieveThenRank(shop_model, index, n_candidates=20).fit()
    got, expected = rtr.recommend(k=10, batch_size=32), shop_model.recommend(k=10)
    assert torch.equal(got.indices, expected.indices)
    assert torch.allclose(got.scores, expected.scores, atol=1e-5)
    seen = shop_model.seen_.toarray()[np.arange(80)[:, None], got.indices.numpy()]
    assert seen.sum() == 0  # no training item recommended
    assert torch.equal(rtr.recommend(k=10, exclude_seen=False).indices, shop_model.recommend(k=10, exclude_seen=False).indices)
    banned = expected.indices[:, 0].unique()  # every user's best item, banned for all
    assert torch.equal(rtr.recommend(k=10, filter_items=banned).indices, shop_model.recommend(k=10, filter_items=banned).indices)


class _WorstFirst(AnnIndex):
    """An exact inner-product index that returns its candidates in the *wrong* order (lowest first)."""

    def _build(self, x: torch.Tensor) -> None:
        self._x = x

    def _search(self, q: torch.Tensor, k: int) -> Ranking:
        scores = q @ self._x.T
        order = torch.argsort(scores, dim=1, stable=True)[:, :k]
        return Ranking(order, scores.gather(1, order))

    def memory_bytes(self) -> int:
        return self._x.numel() * self._x.element_size()


def test_retrieve_then_rank_re_ranks_the_first_n_candidates_of_the_index(shop_model):
    # the index's first 10 unseen candidates per user are its 10 *lowest* scores: re-ranked, they are
    # exactly those 10 items in descending order, whatever the length of the user's history
    got = RetrieveThenRank(shop_model, _WorstFirst(), n_candidates=10).fit().recommend(k=5)
    scores = shop_model.score().masked_fill(torch.as_tensor(shop_model.seen_.toarray(), dtype=torch.bool), torch.inf)
    lowest = torch.argsort(scores, dim=1, stable=True)[:, :10]
    expected = torch.gather(scores, 1, lowest).argsort(dim=1, descending=True, stable=True)[:, :5]
    assert torch.equal(got.indices, lowest.gather(1, expected))
    # a larger budget lets better items in
    wide = RetrieveThenRank(shop_model, _WorstFirst(), n_candidates=300).fit().recommend(k=5)
    assert torch.equal(wide.indices, shop_model.recommend(k=5).indices)


def test_retrieve_then_rank_with_one_cell_loses_items(shop_model):
    rtr = RetrieveThenRank(shop_model, IVFIndex(8, nprobe=1), n_candidates=10).fit()
    got, exact = rtr.recommend(k=10), shop_model.recommend(k=10)
    recall = recall_at_k(got.indices, exact.indices)
    assert 0.0 < recall < 1.0
    with pytest.raises(ValueError, match="k must be at most n_candidates = 10, got 11"):
        rtr.recommend(k=11)
    with pytest.raises(ValueError, match="items must be None"):
        rtr.recommend(k=5, items=[1, 2, 3])
    with pytest.raises(RuntimeError, match="not fitted yet"):
        RetrieveThenRank(shop_model, ExactIndex()).recommend()
