"""Hybrid α blending: the endpoints reproduce each component, α is tuned on validation, per segment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from by_hand import FixedScores, hand_split

from recnb.data.schema import Split
from recnb.data.splits import holdout_validation, random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.blend import normalise
from recnb.evaluation import evaluate, tune
from recnb.evaluation.blending import alpha_curve
from recnb.data.splits import hold_out_items
from recnb.models.hybrid import HybridRecommender
from recnb.models.knn import ItemKNN, UserKNN
from recnb.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def split() -> Split:
    data = make_shop(n_users=200, n_items=120, n_categories=6, n_interactions=4000, seed=1)
    return random_holdout(data, 0.2, seed=0)


def test_alpha_endpoints_reproduce_each_component(split):
    cf, cb = UserKNN(neighbours=20), PopularityRecommender()
    for method in ("minmax", "zscore", "rank"):
        hybrid = HybridRecommender(cf, cb, alpha=1.0, normalise=method).fit(split)
        assert torch.equal(hybrid.recommend(k=10).indices, cf.recommend(k=10).indices)
        hybrid.alpha = 0.0
        assert torch.equal(hybrid.recommend(k=10).indices, cb.recommend(k=10).indices)


def test_blend_is_the_normalised_weighted_sum(split):
    cf, cb = UserKNN(neighbours=20), ItemKNN(neighbours=20)
    hybrid = HybridRecommender(cf, cb, alpha=0.3).fit(split)
    u = torch.arange(5)
    want = 0.3 * normalise(cf.score(u), "minmax") + 0.7 * normalise(cb.score(u), "minmax")
    assert torch.allclose(hybrid.score(u), want)
    assert hybrid.score(u).min() >= 0 and hybrid.score(u).max() <= 1


def test_raw_blend_is_dominated_by_the_larger_scale(split):
    # kNN votes reach several units, popularity counts tens: unnormalised, α = 0.5 is popularity
    cf, cb = UserKNN(neighbours=20), PopularityRecommender()
    raw = HybridRecommender(cf, cb, alpha=0.5, normalise="none").fit(split)
    def spread(s):
        return s.amax(dim=1) - s.amin(dim=1)

    assert (spread(cb.score()) / spread(cf.score()).clamp(min=1e-9)).median() > 5
    overlap = (raw.recommend(k=10).indices[:, :, None] == cb.recommend(k=10).indices[:, None, :]).any(-1).float()
    assert overlap.mean() > 0.9


def test_invalid_alpha_and_unfitted_components_raise(split):
    with pytest.raises(ValueError, match="alpha must lie in"):
        HybridRecommender(PopularityRecommender(), PopularityRecommender(), alpha=1.5)
    with pytest.raises(ValueError, match="cold_alpha"):
        HybridRecommender(PopularityRecommender(), PopularityRecommender(), cold_alpha=-0.1)
    with pytest.raises(ValueError, match="normalise"):
        HybridRecommender(PopularityRecommender(), PopularityRecommender(), normalise="softmax")
    with pytest.raises(RuntimeError, match="not fitted"):
        HybridRecommender(PopularityRecommender(), PopularityRecommender()).fit(split, fit_components=False)


def test_tuning_alpha_gives_the_validation_curve(split):
    validation = holdout_validation(split, 0.25, seed=0)
    hybrid = HybridRecommender(UserKNN(neighbours=20), PopularityRecommender())
    curve = tune(hybrid, validation, validation, {"alpha": [0.0, 0.5, 0.9, 1.0]}, k=10).table
    assert list(curve["alpha"]) == [0.0, 0.5, 0.9, 1.0]
    # alpha_curve sweeps the same blend of components fitted once: the same values
    cf, pop = UserKNN(neighbours=20).fit(validation), PopularityRecommender().fit(validation)
    swept = alpha_curve(cf, pop, validation, grid=[0.0, 0.5, 0.9, 1.0], k=10)
    np.testing.assert_allclose(swept["value"], curve["value"], rtol=0, atol=1e-12)
    assert (swept["users"] == curve["users"]).all()
    # the curve's endpoints are the components' own scores on the validation split
    pop = evaluate(PopularityRecommender().fit(validation), validation, k=10, metrics=("ndcg",))["ndcg@10"]
    knn = evaluate(UserKNN(neighbours=20).fit(validation), validation, k=10, metrics=("ndcg",))["ndcg@10"]
    assert curve["value"].iloc[0] == pytest.approx(pop, abs=1e-6)
    assert curve["value"].iloc[-1] == pytest.approx(knn, abs=1e-6)


def test_tuning_picks_the_alpha_known_by_hand():
    # one user, item 3 seen, item 1 relevant. Both rows already span [0, 1] (minmax leaves them):
    #   cf = (1, .6, 0, .5), cb = (0, .6, 1, .5) -> blend(α) = (α, .6, 1 - α, excluded)
    # top 1: α = 0 -> item 2, α = .5 -> item 1 (.6 > .5), α = 1 -> item 0: only α = .5 finds item 1
    validation = hand_split(train=[(0, 3)], test=[(0, 1)], n_users=1, n_items=4)
    hybrid = HybridRecommender(FixedScores([1.0, 0.6, 0.0, 0.5]), FixedScores([0.0, 0.6, 1.0, 0.5]), alpha=0.0)
    result = tune(hybrid, validation, validation, {"alpha": [0.0, 0.5, 1.0]}, k=1)
    assert list(result.table["value"]) == [0.0, 1.0, 0.0]
    assert result.best_params_ == {"alpha": 0.5} and hybrid.alpha == 0.0
    assert torch.equal(result.refit(validation).recommend(k=1).indices, torch.tensor([[1]]))
    # a flat curve: the tie goes to the first α of the grid
    flat = HybridRecommender(FixedScores([1.0, 0.6, 0.0, 0.5]), FixedScores([0.0, 0.6, 1.0, 0.5]), alpha=1.0)
    other = hand_split([(0, 3)], [(0, 2)], 1, 4)
    result = tune(flat, other, other, {"alpha": [0.5, 1.0]}, k=1)
    assert list(result.table["value"]) == [0.0, 0.0] and result.best_params_ == {"alpha": 0.5}


def test_per_segment_alpha_known_by_hand():
    # rows cf = (1, 0, .8, .5, .5), cb = (0, 1, .8, .5, .5) for everyone -> blend(α) = (α, 1 - α, .8, .5, .5)
    # top 1 over unseen items: α = 0 -> item 1, α = .5 -> item 2, α = 1 -> item 0.
    # warm user 0 (items 3, 4 seen) wants item 0: α = 1; cold user 1 (item 4 seen) wants item 1: α = 0
    validation = hand_split(train=[(0, 3), (0, 4), (1, 4)], test=[(0, 0), (1, 1)], n_users=2, n_items=5)
    cf, cb = FixedScores([1.0, 0.0, 0.8, 0.5, 0.5]), FixedScores([0.0, 1.0, 0.8, 0.5, 0.5])
    hybrid = HybridRecommender(cf, cb, alpha=0.5, cold_alpha=0.5, cold_threshold=2)
    grid = [0.0, 0.5, 1.0]
    warm = tune(hybrid, validation, validation, {"alpha": grid}, k=1, users=[0])
    cold = tune(hybrid, validation, validation, {"cold_alpha": grid}, k=1, users=[1])
    assert warm.table["value"].tolist() == [0.0, 0.0, 1.0] and cold.table["value"].tolist() == [1.0, 0.0, 0.0]
    # the joint search over both finds the same pair: each segment's value depends on its own α only
    both = tune(hybrid, validation, validation, {"alpha": grid, "cold_alpha": grid}, k=1)
    assert both.best_params_ == {**warm.best_params_, **cold.best_params_} == {"alpha": 1.0, "cold_alpha": 0.0}
    # and the blend then serves each user their own item
    assert both.refit(validation).recommend(k=1).indices.tolist() == [[0], [1]]


def test_per_segment_alpha_uses_cold_alpha_for_light_users(split):
    cf, cb = UserKNN(neighbours=20), PopularityRecommender()
    hybrid = HybridRecommender(cf, cb, alpha=1.0, cold_alpha=0.0, cold_threshold=4).fit(split)
    cold = hybrid.is_cold().numpy()
    assert cold.any() and (~cold).any()
    assert np.array_equal(cold, split.seen_mask().sum(1).numpy() < 4)
    got = hybrid.recommend(k=10).indices
    assert torch.equal(got[~cold], cf.recommend(k=10).indices[~cold])
    assert torch.equal(got[cold], cb.recommend(k=10).indices[cold])


def test_alpha_curve_rejects_unknown_metric(split):
    cf = PopularityRecommender().fit(split)
    with pytest.raises(ValueError, match="metric"):
        alpha_curve(cf, cf, split, metric="auc")


def test_hold_out_items_moves_every_training_row_of_the_new_items(split):
    fresh, new = hold_out_items(split, share=0.1, seed=0)
    assert len(new) == 12 and len(np.unique(new)) == 12
    assert not fresh.train["item_idx"].isin(new).any()
    assert len(fresh.train) + len(fresh.test) == len(split.train) + len(split.test)
    with pytest.raises(ValueError, match="share"):
        hold_out_items(split, share=1.0)


def test_alpha_curve_relevant_items_counts_only_those(split):
    fresh, new = hold_out_items(split, share=0.1, seed=0)
    cf = ItemKNN(neighbours=20).fit(fresh)
    pop = PopularityRecommender().fit(fresh)
    curve = alpha_curve(cf, pop, fresh, grid=[1.0], relevant_items=new)
    # CF has no interaction with a new item: it scores 0, below every co-purchased item, so
    # with alpha = 1 new items reach a user's top 10 only where fewer than 10 items score > 0
    users = fresh.test_users
    rel = (fresh.test_matrix() & ~fresh.seen_mask())[users][:, new]
    assert curve["users"].iloc[0] == int(rel.any(dim=1).sum())
    assert curve["value"].iloc[0] < 0.05


def test_alpha_curve_rejects_relevant_items_out_of_range(split):
    cf = PopularityRecommender().fit(split)
    for bad in ([0, -1], [split.n_items]):
        with pytest.raises(IndexError, match="relevant_items holds item index"):
            alpha_curve(cf, cf, split, grid=[1.0], relevant_items=bad)


def test_contributions_sum_to_the_score_for_warm_and_cold_users(split):
    cf, cb = UserKNN(neighbours=20).fit(split), PopularityRecommender().fit(split)
    hybrid = HybridRecommender(cf, cb, alpha=0.7, cold_alpha=0.2, cold_threshold=15).fit(split, fit_components=False)
    cold = hybrid.is_cold()
    users = [int(torch.nonzero(cold)[0]), int(torch.nonzero(~cold)[0])]
    items = torch.arange(split.n_items)
    for user, alpha in zip(users, (0.2, 0.7)):
        terms = hybrid.contributions(user, items)
        assert terms["source"].tolist() == ["cf", "content"] * split.n_items
        total = np.bincount(terms["item"], weights=terms["contribution"], minlength=split.n_items)
        np.testing.assert_allclose(total, hybrid.score([user])[0].double().numpy(), rtol=1e-6, atol=1e-6)
        # by hand: the cf term is α_u times the user's min-max normalised CF row
        want = alpha * normalise(cf.score([user]).double(), "minmax")[0].numpy()
        np.testing.assert_allclose(terms.loc[terms["source"] == "cf", "contribution"], want, atol=1e-12)
