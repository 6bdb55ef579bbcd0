"""User- and item-based kNN: similarities against numpy/scipy/sklearn, a hand prediction, the shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import pearsonr
from sklearn.metrics.pairwise import cosine_similarity

from recnb.data.schema import IdIndex, Split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.ranking import keep_top_k_per_row, rank
from recnb.evaluation import evaluate
from recnb.models.knn import (
    ItemKNN,
    UserKNN,
    corated_pearson_matrix,
    cosine_similarity_matrix,
    keep_top_k_sparse,
    neighbour_category_share,
    pearson_similarity_matrix,
    shrink,
    sparse_similarity,
)
from recnb.models.popularity import PopularityRecommender


def _rating_split(matrix: list[list[float]]) -> Split:
    """A Split whose train holds the non-zero entries of ``matrix`` (users x items) as ratings."""
    r = np.asarray(matrix, dtype=float)
    u, i = np.nonzero(r)
    train = pd.DataFrame({"user_idx": u, "item_idx": i, "rating": r[u, i], "user_id": u, "item_id": i})
    test = train.iloc[:0]
    items = pd.DataFrame({"item_id": np.arange(r.shape[1])})
    return Split(train, test, IdIndex.from_ids(np.arange(r.shape[0])), IdIndex.from_ids(np.arange(r.shape[1])), items)


def _random_ratings(seed: int, n: int = 12, d: int = 15, density: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random((n, d)) < density
    return rng.integers(1, 6, size=(n, d)).astype(float) * mask, mask


@pytest.mark.parametrize("seed", range(3))
def test_corated_pearson_equals_scipy_on_co_rated_items(seed):
    x, mask = _random_ratings(seed)
    sim = corated_pearson_matrix(torch.tensor(x), torch.tensor(mask)).numpy()
    checked = 0
    for a in range(len(x)):
        for b in range(len(x)):
            both = mask[a] & mask[b]
            xa, xb = x[a, both], x[b, both]
            if both.sum() < 2 or xa.std() == 0 or xb.std() == 0:
                assert sim[a, b] == 0.0
            else:
                assert sim[a, b] == pytest.approx(pearsonr(xa, xb).statistic, abs=1e-9)
                checked += 1
    assert checked > 50


def test_user_knn_keeps_a_negative_neighbour_not_itself():
    # u0 (4, 2, ?), mean 3; u1 (1, 5, 4), mean 10/3; u2 (2, 4, 5), mean 11/3. On co-rated {0, 1}
    # u0 deviates (1, -1), u1 (-2, 2), u2 (-1, 1): sim(0, 1) = sim(0, 2) = -1, a tie.
    # neighbours=1 keeps u1 (the lower index) -- not u0 itself with the zeroed diagonal -- so
    # r̂_02 = 3 + (-1)(4 - 10/3) / |-1| = 7/3 (the row's own mean 3 if no neighbour were kept)
    split = _rating_split([[4, 2, 0], [1, 5, 4], [2, 4, 5]])
    model = UserKNN(similarity="pearson", neighbours=1, values="rating").fit(split)
    assert model.weights_[0].toarray()[0].tolist() == pytest.approx([0.0, -1.0, 0.0])
    assert model.score([0])[0, 2].item() == pytest.approx(7 / 3, abs=1e-6)


def test_full_row_pearson_and_cosine_against_numpy_and_sklearn():
    x, _ = _random_ratings(7, density=0.4)
    x[3] = 0.0  # a zero row: cosine 0 with everything; constant row: pearson 0
    assert np.allclose(cosine_similarity_matrix(torch.tensor(x)).numpy(), cosine_similarity(x), atol=1e-12)
    got = pearson_similarity_matrix(torch.tensor(x)).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.nan_to_num(np.corrcoef(x), nan=0.0)
    assert np.allclose(got, want, atol=1e-12)


def test_shrinkage_and_neighbour_pruning():
    s = torch.tensor([[1.0, 0.5, -0.8, 0.2], [0.5, 1.0, 0.1, 0.3], [-0.8, 0.1, 1.0, 0.9], [0.2, 0.3, 0.9, 1.0]])
    n = torch.tensor([[4.0, 2, 3, 0]] * 4)
    assert torch.allclose(shrink(s, n, 2.0)[0], torch.tensor([1 * 4 / 6, 0.5 * 2 / 4, -0.8 * 3 / 5, 0.0]))
    kept = keep_top_k_per_row(s, 1)
    assert torch.equal(kept, torch.tensor([[0, 0.5, 0, 0], [0.5, 0, 0, 0], [0, 0, 0, 0.9], [0, 0, 0.9, 0]]))
    with pytest.raises(ValueError, match="shrinkage"):
        shrink(s, n, -1.0)


def test_user_knn_prediction_by_hand():
    # u0 rated (4, 2, ?), mean 3; u1 (5, 1, 4), mean 10/3; u2 (1, 5, 5), mean 11/3.
    # On co-rated items {0, 1}: deviations u0 (1, -1), u1 (2, -2), u2 (-2, 2) -> sim(0,1) = 1, sim(0,2) = -1.
    # r̂_02 = 3 + [1 (4 - 10/3) + (-1)(5 - 11/3)] / (1 + 1) = 3 + (2/3 - 4/3) / 2 = 8/3.
    split = _rating_split([[4, 2, 0], [5, 1, 4], [1, 5, 5]])
    model = UserKNN(similarity="pearson", neighbours=None, values="rating").fit(split)
    assert model.weights_[0].toarray()[0].tolist() == pytest.approx([0.0, 1.0, -1.0])
    assert model.score([0])[0, 2].item() == pytest.approx(8 / 3, abs=1e-6)
    # keeping only the single most similar neighbour (u1): 3 + 2/3
    one = UserKNN(similarity="pearson", neighbours=1, values="rating").fit(split)
    assert one.score([0])[0, 2].item() == pytest.approx(11 / 3, abs=1e-6)
    # shrinkage scales both similarities by 2/(2+2): the weighted average is unchanged
    shrunk = UserKNN(similarity="pearson", neighbours=None, shrinkage=2.0, values="rating").fit(split)
    assert shrunk.weights_[0, 1] == pytest.approx(0.5)
    assert shrunk.score([0])[0, 2].item() == pytest.approx(8 / 3, abs=1e-6)


def test_item_knn_prediction_matches_a_loop():
    x, mask = _random_ratings(3, n=8, d=6, density=0.7)
    split = _rating_split(x.tolist())
    model = ItemKNN(similarity="pearson", neighbours=3, values="rating").fit(split)
    w = model.weights_.toarray()
    means = np.array([x[mask[:, j], j].mean() for j in range(x.shape[1])])
    pred = model.score().numpy()
    for u in range(x.shape[0]):
        for i in range(x.shape[1]):
            js = [j for j in range(x.shape[1]) if mask[u, j] and w[i, j] != 0]
            den = sum(abs(w[i, j]) for j in js)
            want = means[i] + (sum(w[i, j] * (x[u, j] - means[j]) for j in js) / den if den > 0 else 0.0)
            assert pred[u, i] == pytest.approx(want, abs=1e-5)


def test_binary_scores_are_similarity_weighted_votes():
    r = torch.tensor([[1.0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]])
    split = _rating_split(r.tolist())
    user = UserKNN(neighbours=None).fit(split)
    sim = torch.tensor(cosine_similarity(r.numpy()), dtype=torch.float32).fill_diagonal_(0)
    assert torch.allclose(user.score(), sim @ r, atol=1e-6)
    item = ItemKNN(neighbours=None).fit(split)
    isim = torch.tensor(cosine_similarity(r.T.numpy()), dtype=torch.float32).fill_diagonal_(0)
    assert torch.allclose(item.score(), r @ isim.T, atol=1e-6)


def test_neighbour_category_share_by_hand():
    # labels 0 0 1 1 1, complement 0 <-> 1. Row 0's nearest other rows: 2 (0.9), then 1 and 3 tie
    # at 0.5 -> the lower index 1 wins; row 4 has only one positive neighbour, so it is not counted.
    sim = torch.tensor([
        [1.0, 0.5, 0.9, 0.5, 0.0],
        [0.5, 1.0, 0.2, 0.1, 0.0],
        [0.9, 0.2, 1.0, 0.4, 0.0],
        [0.5, 0.1, 0.4, 1.0, 0.3],
        [0.0, 0.0, 0.0, 0.3, 1.0],
    ])
    labels = np.array([0, 0, 1, 1, 1])
    # k = 2 neighbours: row 0 -> {2, 1}: same 1/2; row 1 -> {0, 2}: 1/2; row 2 -> {0, 3}: 1/2;
    # row 3 -> {0, 2}: 1/2 (self excluded although sim[3, 3] = 1 is the largest)
    assert neighbour_category_share(sim, labels, 2) == pytest.approx(0.5)
    # complement: row 0 -> {2, 1}: label 1 once, 1/2; row 1 -> {0, 2}: 1/2; row 2 -> {0, 3}: 1/2; row 3 -> {0, 2}: 1/2
    assert neighbour_category_share(sim, labels, 2, complement=np.array([1, 0])) == pytest.approx(0.5)
    # k = 1: row 0 -> 2 (other), row 1 -> 0 (same), row 2 -> 0 (other), row 3 -> 0 (other), row 4 -> 3 (same)
    assert neighbour_category_share(sim, labels, 1) == pytest.approx(2 / 5)
    assert neighbour_category_share(sim, labels, 1, complement=[1, 0]) == pytest.approx(3 / 5)
    assert np.isnan(neighbour_category_share(torch.eye(3), [0, 1, 2], 1))
    with pytest.raises(ValueError, match="k must"):
        neighbour_category_share(sim, labels, 5)
    with pytest.raises(ValueError, match="labels has"):
        neighbour_category_share(sim, labels[:4], 2)


def test_neighbour_category_share_matches_a_loop(shop_split):
    data = make_shop(n_users=300, n_items=150, n_categories=6, n_interactions=6000, seed=0)
    category = np.asarray(data.truth["item_category"])
    complement = np.asarray(data.truth["complement"])
    w = ItemKNN(neighbours=10, shrinkage=5.0).fit(shop_split).weights_.toarray()
    n, k = len(w), 5
    same, comp = [], []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        if sum(w[i, j] > 0 for j in others) < k:
            continue
        nearest = sorted(others, key=lambda j: (-w[i, j], j))[:k]  # descending, ties to the lower index
        same.append(np.mean(category[nearest] == category[i]))
        comp.append(np.mean(category[nearest] == complement[category[i]]))
    assert len(same) > 100
    assert neighbour_category_share(w, category, k) == pytest.approx(np.mean(same))
    assert neighbour_category_share(sp.csr_matrix(w), category, k) == pytest.approx(np.mean(same))
    assert neighbour_category_share(w, category, k, complement) == pytest.approx(np.mean(comp))
    assert neighbour_category_share(w, category, k) > 0.5  # co-purchases recover the planted categories


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="similarity"):
        UserKNN(similarity="jaccard")
    with pytest.raises(ValueError, match="neighbours"):
        ItemKNN(neighbours=0)
    with pytest.raises(ValueError, match="values"):
        ItemKNN(values="counts")


@pytest.fixture(scope="module")
def shop_split() -> Split:
    data = make_shop(n_users=300, n_items=150, n_categories=6, n_interactions=6000, seed=0)
    return random_holdout(data, 0.2, seed=0)


def test_knn_beats_popularity_on_the_synthetic_shop(shop_split):
    # users buy within their few preferred categories (Dirichlet tastes, concentration 0.3), so
    # neighbours share categories and should find held-out items popularity cannot.
    pop = evaluate(PopularityRecommender().fit(shop_split), shop_split, k=10)["ndcg@10"]
    for model in (UserKNN(neighbours=30), ItemKNN(neighbours=30, shrinkage=5)):
        got = evaluate(model.fit(shop_split), shop_split, k=10)["ndcg@10"]
        assert got > pop + 0.1, (model, got, pop)


# ---------------------------------------------------------------------------------------------
# The former dense implementation (every matrix (n_users, n_items) or (n, n)), kept here ONLY as
# the reference the sparse models must reproduce exactly on small data.


def _dense_similarity(x, mask, method, values, shrinkage):
    if method == "cosine":
        sim = cosine_similarity_matrix(x)
    elif values == "rating":
        sim = corated_pearson_matrix(x, mask)
    else:
        sim = pearson_similarity_matrix(x)
    m = mask.double()
    # the one change to the former code: round like sparse_similarity, so that equal similarities
    # tie exactly in both (the matrix product's summation order otherwise decides such ties)
    return torch.from_numpy(np.round(shrink(sim, m @ m.T, shrinkage).numpy(), 12))


class _DenseKNN:
    def __init__(self, kind, similarity="cosine", neighbours=50, shrinkage=0.0, values="binary"):
        self.kind, self.similarity, self.neighbours, self.shrinkage, self.values = kind, similarity, neighbours, shrinkage, values

    def fit(self, split):
        self.seen = split.seen_mask()
        self.ratings_ = split.train_matrix(self.values).double()
        self.observed_ = split.train_matrix("binary").bool()
        if self.values == "rating":
            self.observed_ = split.train_matrix("rating") > 0
        x, m = (self.ratings_, self.observed_) if self.kind == "user" else (self.ratings_.T, self.observed_.T)
        sim = _dense_similarity(x, m, self.similarity, self.values, self.shrinkage)
        self.weights_ = keep_top_k_per_row(sim, self.neighbours)
        if self.values == "rating":
            dim = 1 if self.kind == "user" else 0
            mm = self.observed_.double()
            total, count = (self.ratings_ * mm).sum(dim=dim), mm.sum(dim=dim)
            mu = (self.ratings_ * mm).sum() / mm.sum()
            self.means_ = torch.where(count > 0, total / count.clamp(min=1), mu)
            means = self.means_[:, None] if self.kind == "user" else self.means_[None, :]
            self.deviations_ = (self.ratings_ - means) * self.observed_
        return self

    def score(self, u):
        if self.kind == "user":
            w = self.weights_[u]
            if self.values == "binary":
                return (w @ self.ratings_).float()
            num, den = w @ self.deviations_, w.abs() @ self.observed_.double()
            mean = self.means_[u, None].expand_as(num)
        else:
            if self.values == "binary":
                return (self.ratings_[u] @ self.weights_.T).float()
            num = self.deviations_[u] @ self.weights_.T
            den = self.observed_[u].double() @ self.weights_.abs().T
            mean = self.means_[None, :].expand_as(num)
        return torch.where(den > 0, mean + num / den.where(den > 0, torch.ones_like(den)), mean).float()

    def recommend(self, u, k):
        return rank(self.score(u), k=k, exclude=self.seen[u])


def _rated_shop(seed):
    data = make_shop(n_users=70, n_items=45, n_categories=4, n_interactions=5000, seed=seed)
    return random_holdout(data, 0.2, seed=seed)


@pytest.fixture(scope="module")
def small_splits():
    return {seed: _rated_shop(seed) for seed in (0, 1)}


@pytest.mark.parametrize("kind", ["user", "item"])
@pytest.mark.parametrize("similarity, values, neighbours, shrinkage", [
    ("cosine", "binary", 5, 0.0),
    ("cosine", "binary", None, 3.0),
    ("pearson", "binary", 7, 0.0),
    ("pearson", "binary", 4, 2.0),
    ("cosine", "rating", 6, 0.0),
    ("pearson", "rating", 3, 0.0),
    ("pearson", "rating", 8, 5.0),
    ("pearson", "rating", None, 0.0),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_knn_ranks_exactly_as_the_dense_implementation(small_splits, kind, similarity, values, neighbours,
                                                             shrinkage, seed):
    split = small_splits[seed]
    params = dict(similarity=similarity, neighbours=neighbours, shrinkage=shrinkage, values=values)
    dense = _DenseKNN(kind, **params).fit(split)
    sparse = (UserKNN if kind == "user" else ItemKNN)(**params).fit(split)
    assert sp.issparse(sparse.weights_)
    if neighbours is not None:
        assert sparse.weights_.getnnz(axis=1).max() <= neighbours
    np.testing.assert_allclose(sparse.weights_.toarray(), dense.weights_.numpy(), atol=1e-12)
    users = np.arange(split.n_users)
    np.testing.assert_allclose(sparse.score(users).numpy(), dense.score(torch.as_tensor(users)).numpy(), atol=1e-5)
    got = sparse.recommend(users, k=10, batch_size=16)  # several batches
    want = dense.recommend(torch.as_tensor(users), k=10)
    assert torch.equal(got.indices, want.indices)


def test_sparse_similarity_blocks_change_nothing(small_splits):
    r = small_splits[0].train_csr("rating")
    whole = sparse_similarity(r.T, "pearson", "rating", 2.0, 5, block_entries=10**9)
    for budget in (1, 50, 700):  # one row per block, a few rows, many rows
        blocked = sparse_similarity(r.T, "pearson", "rating", 2.0, 5, block_entries=budget)
        assert (blocked != whole).nnz == 0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [None, 1, 2, 4, 9])
def test_keep_top_k_sparse_equals_the_dense_rule(seed, k):
    # integers in -2..2 with many zeros: ties, zero rows, negatives kept only when a row is short
    rng = np.random.default_rng(seed)
    dense = rng.integers(-2, 3, size=(9, 9)) * (rng.random((9, 9)) < 0.4)
    want = keep_top_k_per_row(torch.tensor(dense, dtype=torch.float64), k).numpy()
    got = keep_top_k_sparse(sp.csr_matrix(dense.astype(float)), k).toarray()
    np.testing.assert_array_equal(got, want)
    rows = keep_top_k_sparse(sp.csr_matrix(dense[3:6].astype(float)), k, row_offset=3).toarray()
    np.testing.assert_array_equal(rows, want[3:6])


def test_fit_on_a_split_without_training_rows_is_refused(small_splits):
    from dataclasses import replace

    empty = replace(small_splits[0], train=small_splits[0].train.iloc[:0])
    with pytest.raises(ValueError, match="has no training rows: ItemKNN has nothing to learn from"):
        ItemKNN().fit(empty)


def _summed(model, user: int, n_items: int) -> torch.Tensor:
    """Each item's contributions from ``model.contributions``, summed: ``(n_items,)`` float64."""
    terms = model.contributions(user, range(n_items))
    total = torch.zeros(n_items, dtype=torch.float64)
    total.index_add_(0, torch.as_tensor(terms["item"].to_numpy()), torch.as_tensor(terms["contribution"].to_numpy()))
    return total


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("values, similarity", [("binary", "cosine"), ("rating", "pearson"), ("rating", "cosine")])
@pytest.mark.parametrize("seed", range(2))
def test_contributions_sum_to_the_score(cls, values, similarity, seed):
    r, _ = _random_ratings(seed, n=10, d=12, density=0.4)
    split = _rating_split(r)
    model = cls(similarity=similarity, values=values, neighbours=4, shrinkage=1.0).fit(split)
    for user in range(split.n_users):
        score = model.score([user])[0].double()
        assert torch.allclose(_summed(model, user, split.n_items), score, rtol=1e-6, atol=1e-6)


def test_user_knn_rating_contributions_by_hand():
    # user 1 alone rated item 2; cosine of the rating rows (5, 3, 0) and (4, 2, 1): 26 / (sqrt(34) sqrt(21))
    split = _rating_split([[5, 3, 0], [4, 2, 1], [0, 4, 0]])
    model = UserKNN(values="rating", neighbours=None).fit(split)
    terms = model.contributions(0, [2])  # item 2: only user 1 rated it
    w01 = 26 / (np.sqrt(34) * np.sqrt(21))
    assert terms["source"].tolist() == ["user_mean", "neighbour"]
    assert terms["contribution"].iloc[0] == pytest.approx(4.0)  # r̄_0 = (5 + 3) / 2
    assert terms["contributor"].iloc[1] == 1 and terms["similarity"].iloc[1] == pytest.approx(w01)
    # one neighbour: W (r_12 − r̄_1) / |W| = 1 − 7/3
    assert terms["value"].iloc[1] == pytest.approx(1 - 7 / 3)
    assert terms["contribution"].iloc[1] == pytest.approx(1 - 7 / 3)
    with pytest.raises(IndexError, match="items"):
        model.contributions(0, [3])
