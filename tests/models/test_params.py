"""get_params / set_params / clone with scikit-learn's semantics, for every recommender class."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sklearn.base
import torch
from zoo import ALL, LIGHTNING, PEERS, make, recommender_classes, tiny_shop

from recnb.models.base import Recommender
from recnb.models.content import ContentRecommender
from recnb.models.ease import EASE
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.hybrid import HybridRecommender
from recnb.models.knn import ItemKNN
from recnb.models.popularity import PopularityRecommender
from recnb.models.text_encoder import TfidfEncoder
from recnb.studies.bench import peers_available
from recnb.studies.privacy.laplace import DPPopularityRecommender


@pytest.fixture(scope="module")
def shop():
    return tiny_shop()


def same(a: Any, b: Any) -> bool:
    """Equal parameter values: arrays and tensors element by element, recommenders by type and
    parameters (a clone holds new sub-models), containers item by item, anything else by ``==``."""
    if isinstance(a, Recommender) or isinstance(b, Recommender):
        return type(a) is type(b) and same(a.get_params(deep=False), b.get_params(deep=False))
    if isinstance(a, torch.Tensor | np.ndarray) or isinstance(b, torch.Tensor | np.ndarray):
        return np.asarray(a).shape == np.asarray(b).shape and bool(np.array_equal(np.asarray(a), np.asarray(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_recommender_class_is_in_the_zoo(shop):
    classes = {type(make(name, shop)) for name in ALL if name not in PEERS or peers_available()[PEERS[name][0]]}
    missing = {c.__qualname__ for c in recommender_classes()} - {c.__qualname__ for c in classes}
    if not all(peers_available().values()):
        missing -= {c.__qualname__ for c in recommender_classes() if c.__module__ == "recnb.studies.bench"}
    assert not missing, f"add these classes to tests/models/zoo.py: {sorted(missing)}"


@pytest.mark.parametrize("name", ALL)
def test_params_are_the_init_arguments_and_rebuild_the_model(name, shop):
    model = make(name, shop)
    params = model.get_params(deep=False)
    assert list(params) == model.param_names()
    rebuilt = type(model)(**params)
    assert same(rebuilt.get_params(deep=False), params)
    clone = model.clone()
    assert type(clone) is type(model) and clone is not model and clone.seen_ is None
    assert same(clone.get_params(deep=False), params)
    # sklearn's own clone builds the same unfitted model
    theirs = sklearn.base.clone(model)
    assert type(theirs) is type(model) and same(theirs.get_params(deep=False), params)


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_names_the_class_and_its_parameters(name, shop):
    model = make(name, shop)
    with pytest.raises(ValueError, match=rf"{type(model).__qualname__} has no parameter 'bogus'; its parameters are: "):
        model.set_params(bogus=1)


def test_set_params_sets_and_fit_uses_them(shop):
    model = EASE()
    assert model.set_params(l2=50.0) is model and model.get_params() == {"l2": 50.0}
    assert torch.equal(model.fit(shop.split).score(), EASE(l2=50.0).fit(shop.split).score())
    # a derived quantity follows the parameter: the DP popularity's sensitivity Δ
    dp = DPPopularityRecommender(epsilon=1.0, max_items_per_user=5, noise_seed=1).set_params(max_items_per_user=2)
    assert dp.sensitivity == 2.0
    want = DPPopularityRecommender(epsilon=1.0, max_items_per_user=2, noise_seed=1).fit(shop.split).score()
    assert torch.equal(dp.fit(shop.split).score(), want)


def test_lightning_params_live_in_hparams(shop):
    model = EmbeddingRecommender(embedding_dim=8, max_epochs=3)
    model.set_params(max_epochs=1, lr=0.5)
    assert (model.hparams.max_epochs, model.hparams.lr) == (1, 0.5)
    # item_bias is both a parameter (bool) and, after fit, a module attribute: the parameter wins
    assert model.get_params()["item_bias"] is False
    model.fit(shop.split)
    assert model.get_params()["item_bias"] is False
    # build records the sizes (for checkpoints); a clone drops them with everything else fitted
    assert (model.get_params()["n_users"], model.get_params()["n_items"]) == (shop.split.n_users, shop.split.n_items)
    clone = model.clone()
    assert clone.seen_ is None and clone.hparams.n_users is None


@pytest.mark.parametrize("name", LIGHTNING)
def test_a_clone_refits_to_the_same_model(name, shop):
    model = make(name, shop).fit(shop.split)
    again = model.clone().fit(shop.split)
    assert torch.equal(again.score(), model.score())


def test_nested_parameters_of_the_hybrid(shop):
    cf, content = ItemKNN(neighbours=10), PopularityRecommender()
    hybrid = HybridRecommender(cf, content, alpha=0.3)
    deep = hybrid.get_params(deep=True)
    assert deep["cf"] is cf and deep["cf__neighbours"] == 10 and deep["alpha"] == 0.3
    assert "cf__neighbours" not in hybrid.get_params(deep=False)
    hybrid.set_params(cf__neighbours=5, alpha=0.7)
    assert (cf.neighbours, hybrid.alpha) == (5, 0.7)
    with pytest.raises(ValueError, match="ItemKNN has no parameter 'size'"):
        hybrid.set_params(cf__size=3)
    with pytest.raises(ValueError, match="HybridRecommender.alpha is a float, which has no parameters"):
        hybrid.set_params(alpha__x=1)
    # a clone holds clones of the components, unfitted, with their parameters
    hybrid.fit(shop.split)
    twin = hybrid.clone()
    assert twin.cf is not cf and twin.cf.seen_ is None and twin.cf.neighbours == 5 and twin.alpha == 0.7
    assert cf.seen_ is not None  # cloning left the original fitted


def test_an_encoder_object_is_a_parameter_cloned_by_its_own_parameters(shop):
    encoder = TfidfEncoder(min_df=2)
    content = ContentRecommender(encoder, normalise="none")
    assert content.get_params(deep=True)["encoder__min_df"] == 2
    twin = content.clone()
    assert isinstance(twin.encoder, TfidfEncoder) and twin.encoder is not encoder
    assert twin.encoder.get_params() == {"min_df": 2}
    content.fit(shop.split)
    assert not twin.encoder.fitted and not encoder.fitted  # fit fits a copy: the parameter is never changed
    assert content.encoder_ is not encoder and content.encoder_.fitted
    assert torch.equal(twin.fit(shop.split).score(), content.score())


def test_a_clone_of_a_fitted_lightning_model_is_unfitted():
    from recnb.data.splits import random_holdout
    from recnb.data.synthetic import make_shop
    from recnb.models.embedding import EmbeddingRecommender

    split = random_holdout(make_shop(n_users=40, n_items=30, n_interactions=600, seed=0), 0.2, seed=0)
    fitted = EmbeddingRecommender(embedding_dim=4, max_epochs=1, seed=0).fit(split)
    copy = fitted.clone()
    assert copy.get_params()["n_users"] is None and copy.get_params()["embedding_dim"] == 4
    with pytest.raises(RuntimeError, match="not fitted"):
        copy.score([0])


def test_a_model_rebuilt_from_a_fitted_models_params_is_unfitted(shop):
    fitted = EmbeddingRecommender(embedding_dim=4, max_epochs=1, seed=0).fit(shop.split)
    rebuilt = EmbeddingRecommender(**fitted.get_params())  # the sizes build random tables, but nothing is fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        rebuilt.score([0])


# a bare matrix has no item texts (the content models refuse it, tests/models/test_candidates.py) and
# no shop truth (the oracles read the truth by the split's ids)
MATRIX_FREE = [name for name in ALL if not name.startswith(("content", "hybrid", "oracle"))]


@pytest.mark.parametrize("name", MATRIX_FREE)
def test_every_recommender_fits_a_sparse_matrix(name, shop):
    """fit(csr) is fit(Split.from_matrix(csr)), for every class, studies' recommenders and peers included."""
    from recnb.data.schema import Split

    csr = shop.split.train_csr()
    on_matrix = make(name, shop).fit(csr)
    on_split = make(name, shop).fit(Split.from_matrix(csr))
    assert on_matrix.n_users_ == shop.split.n_users and on_matrix.n_items_ == shop.split.n_items
    torch.testing.assert_close(on_matrix.score([0, 1, 2]), on_split.score([0, 1, 2]))
