"""User- and item-based kNN: similarities against numpy/scipy/sklearn, a hand prediction, the shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.metrics.pairwise import cosine_similarity

from recnb.data.schema import IdIndex, Split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.ranking import keep_top_k_per_row
from recnb.metrics import evaluate
from recnb.models.knn import (
    ItemKNN,
    UserKNN,
    corated_pearson_matrix,
    cosine_similarity_matrix,
    neighbour_category_share,
    pearson_similarity_matrix,
    shrink,
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
    assert model.weights_[0].tolist() == pytest.approx([0.0, -1.0, 0.0])
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
    assert model.weights_[0].tolist() == pytest.approx([0.0, 1.0, -1.0])
    assert model.score([0])[0, 2].item() == pytest.approx(8 / 3, abs=1e-6)
    # keeping only the single most similar neighbour (u1): 3 + 2/3
    one = UserKNN(similarity="pearson", neighbours=1, values="rating").fit(split)
    assert one.score([0])[0, 2].item() == pytest.approx(11 / 3, abs=1e-6)
    # shrinkage scales both similarities by 2/(2+2): the weighted average is unchanged
    shrunk = UserKNN(similarity="pearson", neighbours=None, shrinkage=2.0, values="rating").fit(split)
    assert shrunk.weights_[0, 1].item() == pytest.approx(0.5)
    assert shrunk.score([0])[0, 2].item() == pytest.approx(8 / 3, abs=1e-6)


def test_item_knn_prediction_matches_a_loop():
    x, mask = _random_ratings(3, n=8, d=6, density=0.7)
    split = _rating_split(x.tolist())
    model = ItemKNN(similarity="pearson", neighbours=3, values="rating").fit(split)
    w = model.weights_.numpy()
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
    w = ItemKNN(neighbours=10, shrinkage=5.0).fit(shop_split).weights_.numpy()
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
