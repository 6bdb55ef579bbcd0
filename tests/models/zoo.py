"""Every recommender class of recnb, each with fast settings for a tiny shop (tests/models/test_params.py,
test_persistence.py): one entry per concrete class, so a class added to the package without an entry
here fails ``test_every_recommender_class_is_in_the_zoo``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import recnb
from recnb.data.schema import Split
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.models.als import ALSRecommender
from recnb.models.base import Recommender
from recnb.models.content import ContentRecommender
from recnb.models.dlae import DLAE
from recnb.models.ease import EASE
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.hybrid import HybridRecommender, LearnedBlend, SupportHybrid, SwitchingHybrid
from recnb.models.knn import ItemKNN, UserKNN
from recnb.models.mf import BiasedMF, GlobalMean
from recnb.models.mlp import MLPRecommender
from recnb.models.popularity import PopularityRecommender, RandomRecommender
from recnb.models.private_embedding import DPEmbeddingRecommender
from recnb.studies import bench
from recnb.studies.privacy.federated import FedAvgRecommender
from recnb.studies.privacy.laplace import DPPopularityRecommender
from recnb.studies.simulate import OnboardingRecommender, WarmStartEmbedding


@dataclass(frozen=True)
class Shop:
    split: Split
    truth: dict[str, Any]


def tiny_shop() -> Shop:
    """60 users, 40 items, about 800 events: every model fits in seconds."""
    data = make_shop(n_users=60, n_items=40, n_interactions=800, seed=0)
    return Shop(random_holdout(data, test_ratio=0.2, seed=0), data.truth)


def _onboarding(shop: Shop) -> OnboardingRecommender:
    categories = np.asarray(shop.truth["item_category"])[shop.split.items.ids.astype(np.int64) - 1]
    picks = np.random.default_rng(0).random((shop.split.n_users, len(shop.truth["categories"]))) < 0.3
    return OnboardingRecommender(picks, categories)


#: name -> factory of an unfitted model (given the tiny shop)
MODELS: dict[str, Callable[[Shop], Recommender]] = {
    "popularity": lambda shop: PopularityRecommender(),
    "random": lambda shop: RandomRecommender(seed=3),
    "ease": lambda shop: EASE(l2=50.0),
    "dlae": lambda shop: DLAE(dropout=0.3, l2=20.0),
    "item-knn": lambda shop: ItemKNN(neighbours=10, shrinkage=2.0),
    "item-knn-rating": lambda shop: ItemKNN(similarity="pearson", values="rating"),
    "user-knn": lambda shop: UserKNN(neighbours=10),
    "user-knn-rating": lambda shop: UserKNN(similarity="pearson", values="rating"),
    "content": lambda shop: ContentRecommender("tfidf"),
    "content-pruned": lambda shop: ContentRecommender("tfidf", neighbours=5, normalise="similarity"),
    "hybrid": lambda shop: HybridRecommender(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"),
                                             alpha=0.3, cold_alpha=0.8, cold_threshold=8),
    "hybrid-support": lambda shop: SupportHybrid(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"), beta=3.0),
    "hybrid-switching": lambda shop: SwitchingHybrid(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"),
                                                     threshold=2, normalise="rank"),
    "hybrid-learned": lambda shop: LearnedBlend(ItemKNN(neighbours=10), ContentRecommender("tfidf", normalise="none"),
                                               max_epochs=2, batch_size=64),
    "global-mean": lambda shop: GlobalMean(),
    "mf": lambda shop: BiasedMF(embedding_dim=8, max_epochs=2, implicit_pooling=True),
    "mlp": lambda shop: MLPRecommender(embedding_dim=8, hidden=(16,), max_epochs=1),
    "embedding": lambda shop: EmbeddingRecommender(embedding_dim=8, max_epochs=2, item_bias=True),
    "dp-embedding": lambda shop: DPEmbeddingRecommender(embedding_dim=8, max_epochs=1, sample_rate=0.1, noise_seed=1),
    "warm-start": lambda shop: WarmStartEmbedding(embedding_dim=8, max_epochs=1),
    "als": lambda shop: ALSRecommender(embedding_dim=8, iterations=2),
    "dp-popularity": lambda shop: DPPopularityRecommender(epsilon=1.0, max_items_per_user=5, noise_seed=1),
    "fedavg": lambda shop: FedAvgRecommender(n_clients=2, rounds=2, embedding_dim=8),
    "onboarding": _onboarding,
    "oracle-taste": lambda shop: bench.TrueTasteOracle(shop.truth),
    "oracle-view": lambda shop: bench.TrueViewOracle(shop.truth),
}
#: the peer adapters, present where their library is installed (``pip install -e ".[bench]"``)
PEERS: dict[str, tuple[str, Callable[[Shop], Recommender]]] = {
    "implicit-als": ("implicit", lambda shop: bench.ImplicitALS(factors=8, iterations=2)),
    "implicit-bpr": ("implicit", lambda shop: bench.ImplicitBPR(factors=8, iterations=5)),
    "implicit-cosine": ("implicit", lambda shop: bench.ImplicitItemCosine(neighbours=10)),
    "cornac-bpr": ("cornac", lambda shop: bench.CornacBPR(factors=8, iterations=5)),
    "cornac-ease": ("cornac", lambda shop: bench.CornacEASE(l2=50.0)),
    "lenskit-ease": ("lenskit", lambda shop: bench.LenskitEASE(l2=50.0)),
    "lenskit-als": ("lenskit", lambda shop: bench.LenskitALS(embedding_dim=8, epochs=2)),
    "lenskit-knn": ("lenskit", lambda shop: bench.LenskitItemKNN(neighbours=10)),
}
LIGHTNING = ("mf", "mlp", "embedding", "dp-embedding", "warm-start")
ALL = (*MODELS, *PEERS)


def make(name: str, shop: Shop) -> Recommender:
    """The unfitted model ``name`` of :data:`ALL` (``pytest.skip`` for a peer whose library is missing)."""
    if name in MODELS:
        return MODELS[name](shop)
    library, factory = PEERS[name]
    if not bench.peers_available()[library]:
        pytest.skip(f"{library} is not installed: {bench.INSTALL}")
    return factory(shop)


def recommender_classes() -> set[type]:
    """Every concrete ``Recommender`` subclass defined in the recnb package (all modules imported)."""
    for info in pkgutil.walk_packages(recnb.__path__, "recnb."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, todo = set(), [Recommender]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("recnb.") and not getattr(sub, "__abstractmethods__", None) \
                    and not sub.__name__.startswith("_"):
                found.add(sub)
    return found
