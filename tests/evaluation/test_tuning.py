"""tune: grid and random search over clones, scored on a validation split; refit with the best parameters."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.stats
import torch

from recnb.data.splits import holdout_validation, random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate
from recnb.evaluation.tuning import tune
from recnb.models.ease import EASE
from recnb.models.hybrid import HybridRecommender
from recnb.models.knn import ItemKNN, UserKNN
from recnb.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def splits():
    data = make_shop(n_users=60, n_items=40, n_interactions=800, seed=0)
    split = random_holdout(data, test_ratio=0.2, seed=0)
    return split, holdout_validation(split, ratio=0.25, seed=0)


def by_hand(model, validation, k=10, metric="ndcg"):
    """``metric@k`` on ``validation`` of ``model`` fitted on it: one setting, by hand."""
    return evaluate(model.fit(validation), validation, k=k, metrics=(metric,))[f"{metric}@{k}"]


def test_the_grid_table_is_each_setting_fitted_by_hand(splits):
    split, validation = splits
    grid = [5.0, 50.0, 500.0]
    result = tune(EASE(), validation, validation, {"l2": grid}, metric="ndcg", k=10)
    assert list(result.table.columns) == ["trial", "l2", "value", "users", "fit_s"]
    assert result.table["l2"].tolist() == grid and result.table["trial"].tolist() == [0, 1, 2]
    want = [by_hand(EASE(l2=l2), validation) for l2 in grid]
    np.testing.assert_allclose(result.table["value"], want, rtol=0, atol=1e-9)
    assert (result.table["fit_s"] > 0).all()
    assert result.best_params_ == {"l2": grid[int(np.argmax(want))]}
    assert result.best_value_ == max(want) and result.metric == "ndcg@10"


def test_a_grid_over_two_parameters_tries_every_combination(splits):
    _, validation = splits
    space = {"neighbours": [5, 20], "shrinkage": [0.0, 10.0]}
    result = tune(ItemKNN(), validation, validation, space, metric="recall", k=5)
    tried = list(zip(result.table["neighbours"], result.table["shrinkage"]))
    assert sorted(tried) == [(5, 0.0), (5, 10.0), (20, 0.0), (20, 10.0)]
    for (n, s), value in zip(tried, result.table["value"]):
        assert value == pytest.approx(by_hand(ItemKNN(neighbours=n, shrinkage=s), validation, 5, "recall"), abs=1e-12)


def test_refit_is_a_by_hand_fit_with_the_best_parameters(splits):
    split, validation = splits
    result = tune(EASE(), validation, validation, {"l2": [5.0, 50.0, 500.0]})
    refit = result.refit(split)
    assert torch.equal(refit.score(), EASE(**result.best_params_).fit(split).score())
    assert refit.seen_.shape == split.seen_csr().shape and (refit.seen_ != split.seen_csr()).nnz == 0


def test_the_model_passed_in_is_not_modified(splits):
    split, validation = splits
    model = EASE(l2=123.0).fit(split)
    before = model.score()
    result = tune(model, validation, validation, {"l2": [5.0, 50.0]})
    assert model.l2 == 123.0 and torch.equal(model.score(), before)
    assert (model.seen_ != split.seen_csr()).nnz == 0  # still fitted on the split, not on validation
    assert result.model is not model and result.model.seen_ is None and result.model.l2 == 123.0


def test_random_search_is_seeded(splits):
    _, validation = splits
    space = {"l2": scipy.stats.loguniform(1.0, 1000.0)}
    a = tune(EASE(), validation, validation, space, search="random", n_trials=4, seed=7)
    b = tune(EASE(), validation, validation, space, search="random", n_trials=4, seed=7)
    c = tune(EASE(), validation, validation, space, search="random", n_trials=4, seed=8)
    assert a.table["l2"].tolist() == b.table["l2"].tolist() and a.table["value"].tolist() == b.table["value"].tolist()
    assert a.table["l2"].tolist() != c.table["l2"].tolist()
    # the draws are scipy's, from numpy's generator seeded as sklearn's ParameterSampler seeds it
    want = scipy.stats.loguniform(1.0, 1000.0).rvs(size=4, random_state=np.random.RandomState(7))
    np.testing.assert_allclose(sorted(a.table["l2"]), sorted(want))
    assert all(type(v) is float for v in a.table["l2"])
    # every value a list: distinct settings
    listed = tune(EASE(), validation, validation, {"l2": [1.0, 10.0, 100.0, 1000.0]}, search="random", n_trials=3, seed=0)
    assert len(set(listed.table["l2"])) == 3


def test_ties_go_to_the_earlier_trial(splits):
    _, validation = splits
    # alpha has no effect when both components are the same model: every trial ties
    same = HybridRecommender(PopularityRecommender(), PopularityRecommender())
    result = tune(same, validation, validation, {"alpha": [0.7, 0.2, 0.9]})
    assert result.table["value"].nunique() == 1 and result.best_params_ == {"alpha": 0.7}


def test_nested_parameters_and_a_segment_of_users(splits):
    _, validation = splits
    hybrid = HybridRecommender(UserKNN(neighbours=10), PopularityRecommender())
    users = validation.test_users[::2]
    result = tune(hybrid, validation, validation, {"cf__neighbours": [3, 20], "alpha": [1.0]}, users=users)
    for n, value, scored in zip(result.table["cf__neighbours"], result.table["value"], result.table["users"]):
        knn = UserKNN(neighbours=n).fit(validation)  # alpha = 1: the CF ranking
        out = evaluate(knn, validation, users=users, metrics=("ndcg",))
        assert value == pytest.approx(out["ndcg@10"], abs=1e-6) and scored == out["users"]
    assert hybrid.cf.neighbours == 10 and hybrid.cf.seen_ is None


def test_bad_arguments_are_named(splits):
    split, validation = splits
    with pytest.raises(ValueError, match="EASE has no parameter 'lam'; its parameters are: l2"):
        tune(EASE(), validation, validation, {"lam": [1.0]})
    with pytest.raises(ValueError, match="needs search='random'"):
        tune(EASE(), validation, validation, {"l2": scipy.stats.uniform(1, 10)})
    with pytest.raises(ValueError, match="needs n_trials"):
        tune(EASE(), validation, validation, {"l2": [1.0]}, search="random")
    with pytest.raises(ValueError, match="n_trials is for search="):
        tune(EASE(), validation, validation, {"l2": [1.0]}, n_trials=3)
    with pytest.raises(ValueError, match="metric must be one of"):
        tune(EASE(), validation, validation, {"l2": [1.0]}, metric="auc")
    with pytest.raises(ValueError, match="search must be one of"):
        tune(EASE(), validation, validation, {"l2": [1.0]}, search="bayes")
    with pytest.raises(ValueError, match=r"space\['l2'\] is empty"):
        tune(EASE(), validation, validation, {"l2": []})
    other = random_holdout(make_shop(n_users=30, n_items=20, n_interactions=300, seed=1), 0.2, seed=0)
    with pytest.raises(ValueError, match="same users and items"):
        tune(EASE(), validation, other, {"l2": [1.0]})


@pytest.mark.skipif(importlib.util.find_spec("optuna") is not None, reason="optuna is installed here")
def test_tpe_without_optuna_says_how_to_install_it(splits):
    _, validation = splits
    with pytest.raises(ModuleNotFoundError, match="pip install optuna"):
        tune(EASE(), validation, validation, {"l2": [1.0, 10.0]}, search="tpe", n_trials=2)


@pytest.mark.skipif(importlib.util.find_spec("optuna") is None,
                    reason="optuna (optional) is not installed: pip install optuna to test search='tpe'")
def test_tpe_is_seeded_and_tries_values_of_the_space(splits):
    _, validation = splits
    space = {"l2": [1.0, 10.0, 100.0, 1000.0]}
    a = tune(EASE(), validation, validation, space, search="tpe", n_trials=5, seed=3)
    b = tune(EASE(), validation, validation, space, search="tpe", n_trials=5, seed=3)
    assert a.table["l2"].tolist() == b.table["l2"].tolist() and set(a.table["l2"]) <= set(space["l2"])
    for l2, value in zip(a.table["l2"], a.table["value"]):
        assert value == pytest.approx(by_hand(EASE(l2=l2), validation), abs=1e-12)
