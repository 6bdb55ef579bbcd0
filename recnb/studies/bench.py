"""Benchmark recnb against the libraries readers reach for, on one protocol and one set of metrics.

The peers (``implicit``, ``cornac``) are an optional extra (``pip install -e ".[bench]"``). Each is
wrapped as a recnb :class:`~recnb.models.base.Recommender` that trains through the peer's own
public API on ``split.train_csr()`` and scores every item for a batch of users, so every model is
ranked and scored by the same code (:func:`recnb.evaluation.evaluate_per_user`: full ranking of each
user's unseen items). Adapters:

- ``implicit``: :class:`ImplicitALS` (``implicit.als.AlternatingLeastSquares``),
  :class:`ImplicitBPR` (``implicit.bpr.BayesianPersonalizedRanking``), :class:`ImplicitItemCosine`
  (``implicit.nearest_neighbours.CosineRecommender``);
- ``cornac``: :class:`CornacBPR` (``cornac.models.BPR``) and :class:`CornacEASE`
  (``cornac.models.EASE``; why not cornac's item-kNN: see :class:`CornacEASE`).
- ``lenskit``: :class:`LenskitEASE` (``lenskit.knn.EASEScorer``), :class:`LenskitItemKNN`
  (``lenskit.knn.ItemKNNScorer``, implicit feedback) and :class:`LenskitALS`
  (``lenskit.als.ImplicitMFScorer``).

The fair benchmark (issue 19) is :func:`run_protocol`: every model of :func:`protocol_models` gets
the same seeded random search over its space in :data:`SEARCH_SPACES` on a validation split carved
out of each training part, is refit and tested, over several random splits;
:func:`protocol_table` and :func:`paired_protocol` summarise it (``benchmarks/movielens.py`` runs it
on MovieLens-100k). The adapters' default hyper-parameters below are only starting points.

The peers' default hyper-parameters here were chosen on a *validation* split of MovieLens-100k
(``holdout_validation(random_holdout(load_movielens(), 0.25, seed=0), 0.25, seed=0)``, NDCG@10),
from small grids named in each class; recnb's models keep their library defaults, except EASE's
``λ``, chosen on the same kind of validation split by :func:`recnb.evaluation.tuning.tune`.

:func:`run_benchmark` fits each model once and times ``fit`` (``time.perf_counter``; every model,
recnb's and the peers', under the same BLAS/OpenMP thread limit, one thread by default, as recnb's
trainer uses one torch thread). :func:`peers_available` tells which peers import, so a notebook can
say where one is missing instead of failing; :func:`protocol_models` is the line-up notebook 08 and
``benchmarks/movielens.py`` share.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sklearn.model_selection import ParameterGrid

from recnb.data.schema import ITEM, USER, RecData, Split, SplitLike, as_split
from recnb.data.splits import holdout_validation, random_holdout
from recnb.evaluation import evaluate_per_user
from recnb.evaluation.tuning import TuneResult, tune
from recnb.evaluation.uncertainty import bootstrap_ci, paired_bootstrap, wilcoxon
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.data.categories import category_distribution
from recnb.training import check_threads, torch_threads
from recnb.data.synthetic import true_affinity
from recnb.models.als import ALSRecommender
from recnb.models.dlae import DLAE
from recnb.models.ease import EASE, ItemWeights
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.knn import ItemKNN

PEERS = ("implicit", "cornac", "lenskit")
INSTALL = 'pip install -e ".[bench]"'
#: the metrics of the benchmark table (``<metric>@k`` columns)
METRICS = ("precision", "recall", "ndcg", "map")


def peers_available() -> dict[str, bool]:
    """``{"implicit": bool, "cornac": bool, "lenskit": bool}``: which peer libraries can be imported here."""
    return {name: importlib.util.find_spec(name) is not None for name in PEERS}


def require(peer: str) -> None:
    """Raise a ``ModuleNotFoundError`` that says how to install ``peer`` when it is missing."""
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
    if not peers_available()[peer]:
        raise ModuleNotFoundError(f"{peer} is not installed; install the benchmark extra: {INSTALL}")


def thread_limit(threads: int) -> AbstractContextManager:
    """Context manager holding BLAS and OpenMP pools (numpy, scipy, implicit, cornac) to ``threads``."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=check_threads(threads))


class _FactorRecommender(Recommender):
    """A peer whose scores are ``U_users @ V.T (+ b)``; subclasses set the factor arrays in ``fit``.

    Every adapter keeps the peer's fitted model as ``model_`` (to call its own API, e.g. in tests);
    it is transient: ``save`` and pickling leave it out, the factors score without it. The
    adapters' ``__init__`` arguments are their parameters (``get_params``, ``clone``), kept in
    same-named attributes.

    ``user_factors_`` ``(n_users, d)``, ``item_factors_`` ``(n_items, d)`` and the optional
    ``item_bias_`` ``(n_items,)`` are in recnb's index order.
    """

    _transient_attributes = ("model_",)
    user_factors_: np.ndarray | None = None
    item_factors_: np.ndarray | None = None
    item_bias_: np.ndarray | None = None

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        s = self.user_factors_[u] @ self.item_factors_.T
        if self.item_bias_ is not None:
            s = s + self.item_bias_[None, :]
        return torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32))


class _ImplicitFactors(_FactorRecommender):
    """An ``implicit`` factor model: ``model_class()`` built with ``params`` (the peer's own
    hyper-parameters among the adapter's parameters), fitted on the binary CSR."""

    @property
    def params(self) -> dict[str, Any]:
        """The peer's own hyper-parameters: the adapter's parameters less ``seed`` and ``threads``."""
        return {k: v for k, v in self.get_params(deep=False).items() if k not in ("seed", "threads")}

    def model_class(self) -> type:
        raise NotImplementedError

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        with thread_limit(self.threads):  # implicit checks the BLAS pool when the model is built
            model = self.model_class()(**self.params, random_state=self.seed, num_threads=self.threads)
            model.fit(split.train_csr(), show_progress=False)
        self.model_ = model
        self.user_factors_, self.item_factors_ = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


class ImplicitALS(_ImplicitFactors):
    """``implicit``'s alternating least squares on the binary training matrix (Hu, Koren, Volinsky 2008).

    Confidence ``1 + alpha * x_ui``; scores ``U V^T``. Defaults chosen on validation (NDCG@10
    0.259) from factors {32, 64, 128} x regularization {0.05, 1, 3, 5, 10, 30, 100} x alpha
    {0.5, 1, 2, 5, 10} (not every combination); implicit's own defaults (100 factors,
    regularization 0.01) reach about 0.20 there.
    """

    def __init__(self, factors: int = 32, regularization: float = 10.0, alpha: float = 1.0, iterations: int = 15,
                 seed: int = 0, threads: int = 1) -> None:
        require("implicit")
        self.factors, self.regularization, self.alpha, self.iterations = factors, regularization, alpha, iterations
        self.seed, self.threads = seed, threads

    def model_class(self) -> type:
        from implicit.als import AlternatingLeastSquares

        return AlternatingLeastSquares


class ImplicitBPR(_ImplicitFactors):
    """``implicit``'s Bayesian personalised ranking (Rendle et al. 2009), Cython SGD.

    implicit stores the item bias as the last item-factor column, with a constant 1 in the user
    factors, so ``U V^T`` already includes it. Defaults chosen on validation (NDCG@10 0.205) from
    learning rate {0.001, 0.003, 0.01, 0.05, 0.1} x iterations {30, 50, 100, 200, 300} x
    regularization {0.001, 0.01, 0.1} (not every combination; 0.07 to 0.20 across them: more
    iterations or a larger rate often did worse).
    """

    def __init__(self, factors: int = 64, learning_rate: float = 0.003, regularization: float = 0.01,
                 iterations: int = 200, seed: int = 0, threads: int = 1) -> None:
        require("implicit")
        self.factors, self.learning_rate, self.regularization, self.iterations = (factors, learning_rate,
                                                                                  regularization, iterations)
        self.seed, self.threads = seed, threads

    def model_class(self) -> type:
        from implicit.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking


class ImplicitItemCosine(Recommender):
    """``implicit``'s item–item cosine neighbours: ``s_u = x_u S`` with ``S`` its pruned cosine matrix.

    ``S`` ``(n_items, n_items)`` keeps each item's ``neighbours`` most similar items
    (``CosineRecommender(K=neighbours).similarity``).
    """

    _transient_attributes = ("model_",)

    def __init__(self, neighbours: int = 50, threads: int = 1) -> None:
        require("implicit")
        self.neighbours, self.threads = neighbours, threads
        self.similarity_: sp.csr_matrix | None = None

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        from implicit.nearest_neighbours import CosineRecommender

        self.remember_split(split)
        with thread_limit(self.threads), warnings.catch_warnings():
            # implicit 0.7.3 normalises to a COO matrix itself, then warns that it wanted CSR
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model = CosineRecommender(K=self.neighbours, num_threads=self.threads)
            model.fit(split.train_csr(), show_progress=False)
        self.model_ = model
        self.similarity_ = sp.csr_matrix(model.similarity, dtype=np.float32)
        self.x_ = split.train_csr()
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        return torch.from_numpy((self.x_[u] @ self.similarity_).toarray().astype(np.float32))

    def __repr__(self) -> str:
        return f"ImplicitItemCosine(neighbours={self.neighbours})"


def _cornac_dataset(split: Split, seed: int):
    """A cornac ``Dataset`` of the binary training pairs whose raw ids are recnb's indices (as strings)."""
    from cornac.data import Dataset

    coo = split.train_csr().tocoo()
    triples = list(zip(coo.row.astype(str), coo.col.astype(str), np.ones(coo.nnz)))
    return Dataset.from_uir(triples, seed=seed)


def _cornac_order(mapping: Mapping[str, int], n: int) -> np.ndarray:
    """Cornac's inner index of each recnb index ``0..n-1`` (-1 where cornac never saw it)."""
    out = np.full(n, -1, dtype=np.int64)
    for raw, inner in mapping.items():
        out[int(raw)] = inner
    return out


def _gather(table: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows of ``table`` in recnb order (``order[i]`` = cornac's row of recnb index ``i``; -1 -> zeros)."""
    table = np.asarray(table)
    out = np.zeros((len(order), table.shape[1]), dtype=np.float32)
    seen = order >= 0
    out[seen] = table[order[seen]]
    return out


class CornacBPR(_FactorRecommender):
    """``cornac``'s BPR (Cython SGD with item bias): ``s_ui = u_u · v_i + b_i``.

    Users or items cornac never saw score 0. Defaults chosen on validation (NDCG@10 0.240) from
    factors 64 x iterations {100, 200} x learning rate {0.01, 0.05}; cornac's own defaults
    (``k=10``, ``max_iter=100``, ``learning_rate=0.001``) were not tried.
    """

    def __init__(self, factors: int = 64, iterations: int = 200, learning_rate: float = 0.01,
                 regularization: float = 0.01, seed: int = 0, threads: int = 1) -> None:
        require("cornac")
        self.factors, self.iterations, self.learning_rate, self.regularization = (factors, iterations, learning_rate,
                                                                                  regularization)
        self.seed, self.threads = seed, threads

    @property
    def params(self) -> dict[str, Any]:
        """The parameters in cornac's names."""
        return dict(k=self.factors, max_iter=self.iterations, learning_rate=self.learning_rate,
                    lambda_reg=self.regularization)

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        from cornac.models import BPR

        self.remember_split(split)
        data = _cornac_dataset(split, self.seed)
        model = BPR(**self.params, seed=self.seed, num_threads=self.threads, verbose=False)
        with thread_limit(self.threads):
            model.fit(data)
        self.model_ = model
        users = _cornac_order(data.uid_map, split.n_users)
        items = _cornac_order(data.iid_map, split.n_items)
        self.user_factors_ = _gather(model.u_factors, users)
        self.item_factors_ = _gather(model.i_factors, items)
        self.item_bias_ = _gather(np.asarray(model.i_biases)[:, None], items)[:, 0]
        return self

    def __repr__(self) -> str:
        return f"CornacBPR({', '.join(f'{k}={v}' for k, v in self.params.items())})"


class CornacEASE(ItemWeights):
    """``cornac``'s EASE (``cornac.models.EASE``, Steck 2019), with cornac's default ``posB=True``.

    cornac computes ``B`` with the zero-diagonal closed form of :mod:`recnb.models.ease` and, by
    default, sets its negative weights to 0 (``posB``); ``positive_only=False`` is the plain model.
    Scores are ``x_u B`` (what cornac's ``score`` computes), with ``B`` re-indexed to recnb's item
    order; items cornac never saw score 0.

    Why EASE and not ``cornac.models.ItemKNN``: cornac's item-kNN is a rating predictor, the
    similarity-weighted *average* ``Σ_j s_ij r_uj / Σ_j |s_ij|`` of the user's ratings of the
    neighbours. On binary data every ``r_uj = 1``, so every item with a neighbour in the user's
    profile scores exactly 1: the top-10 is a tie broken by item index (NDCG@10 0.08 on
    MovieLens-100k), which says nothing about item-kNN (:class:`ImplicitItemCosine` and recnb's
    ``ItemKNN`` sum the similarities instead). Of cornac's other top-N models for implicit data,
    HPF and VAECF took minutes to fit on MovieLens-100k; EASE fits in seconds.
    """

    _transient_attributes = ("model_",)

    def __init__(self, l2: float = 500.0, positive_only: bool = True, seed: int = 0, threads: int = 1) -> None:
        require("cornac")
        if not l2 > 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2, self.positive_only, self.seed, self.threads = float(l2), positive_only, seed, threads

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        from cornac.models import EASE

        self.remember_split(split)
        data = _cornac_dataset(split, self.seed)
        model = EASE(lamb=self.l2, posB=self.positive_only, seed=self.seed, verbose=False)
        with thread_limit(self.threads):
            model.fit(data)
        self.model_ = model
        order = _cornac_order(data.iid_map, split.n_items)
        known = np.flatnonzero(order >= 0)
        weights = np.zeros((split.n_items, split.n_items), dtype=np.float32)
        weights[np.ix_(known, known)] = np.asarray(model.B)[np.ix_(order[known], order[known])]
        self.weights_ = weights  # B (n_items, n_items) in recnb's item order
        self.x_ = split.train_csr()
        return self

    def __repr__(self) -> str:
        return f"CornacEASE(l2={self.l2:g}, positive_only={self.positive_only})"


def _lenskit_dataset(split: Split):
    """A LensKit ``Dataset`` of the binary training pairs whose user and item ids are recnb's indices."""
    from lenskit.data import from_interactions_df

    coo = split.train_csr().tocoo()
    frame = pd.DataFrame({"user_id": coo.row.astype(np.int64), "item_id": coo.col.astype(np.int64)})
    return from_interactions_df(frame, users=np.arange(split.n_users), items=np.arange(split.n_items))


def _lenskit_threads(threads: int) -> AbstractContextManager:
    """Set LensKit's process-wide parallelism to ``threads`` (once per process; torch's count is restored)
    and return :func:`thread_limit` ``(threads)`` for the fit.

    LensKit configures its thread pools once (``lenskit.parallel.initialize``): a later call with
    another count raises instead of silently running with the first one.
    """
    from lenskit.parallel import config as lk_config

    threads = check_threads(threads)
    if lk_config._config is None:
        with torch_threads(torch.get_num_threads()):  # initialize sets torch's global count: put it back
            lk_config.initialize(processes=1, threads=threads, backend_threads=threads)
    configured = lk_config.get_parallel_config()
    if (configured.threads, configured.backend_threads) != (threads, threads):
        raise RuntimeError(f"LensKit's thread pools were set up for {configured.threads} thread(s) in this process; "
                           f"threads={threads} needs a new process")
    return thread_limit(threads)


class LenskitEASE(ItemWeights):
    """LensKit's EASE (``lenskit.knn.EASEScorer``, Steck 2019): the plain zero-diagonal closed form.

    ``l2``: LensKit's ``regularization`` (``λ``). Scores ``x_u B`` with ``B`` (LensKit's ``weights``)
    re-indexed to recnb's item order; LensKit solves on the CPU here (``device="cpu"``).
    """

    _transient_attributes = ("model_",)

    def __init__(self, l2: float = 500.0, threads: int = 1) -> None:
        require("lenskit")
        if not l2 > 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2, self.threads = float(l2), threads

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        from lenskit.knn import EASEScorer
        from lenskit.training import TrainingOptions

        self.remember_split(split)
        data = _lenskit_dataset(split)
        model = EASEScorer(regularization=self.l2)
        with _lenskit_threads(self.threads), torch_threads(self.threads):
            model.train(data, TrainingOptions(device="cpu"))
        self.model_ = model
        order = model.items.numbers(np.arange(split.n_items))
        self.weights_ = np.ascontiguousarray(np.asarray(model.weights)[np.ix_(order, order)], dtype=np.float32)
        self.x_ = split.train_csr()
        return self

    def __repr__(self) -> str:
        return f"LenskitEASE(l2={self.l2:g})"


class LenskitALS(_FactorRecommender):
    """LensKit's implicit-feedback ALS (``lenskit.als.ImplicitMFScorer``, Hu et al. 2008): ``U V^T``.

    ``embedding_dim``: ``embedding_size``; ``regularization``: ``λ``; ``weight``: the confidence
    weight of a positive (LensKit factorises ``1 + w R``, implicit's ``alpha``); ``epochs``. The
    factors are LensKit's trained user and item embeddings in recnb's order (scored without
    LensKit's re-fit of a user embedding from a query's items).
    """

    def __init__(self, embedding_dim: int = 64, regularization: float = 0.1, weight: float = 40.0, epochs: int = 10,
                 seed: int = 0, threads: int = 1) -> None:
        require("lenskit")
        self.embedding_dim, self.regularization, self.weight, self.epochs = embedding_dim, regularization, weight, epochs
        self.seed, self.threads = seed, threads

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        from lenskit.als import ImplicitMFScorer
        from lenskit.training import TrainingOptions

        self.remember_split(split)
        data = _lenskit_dataset(split)
        model = ImplicitMFScorer(embedding_size=self.embedding_dim, regularization=self.regularization,
                                 weight=self.weight, epochs=self.epochs)
        with _lenskit_threads(self.threads), torch_threads(self.threads):
            model.train(data, TrainingOptions(device="cpu", rng=self.seed))
        self.model_ = model
        users, items = model.users.numbers(np.arange(split.n_users)), model.items.numbers(np.arange(split.n_items))
        self.user_factors_ = np.asarray(model.user_embeddings, dtype=np.float32)[users]
        self.item_factors_ = np.asarray(model.item_embeddings, dtype=np.float32)[items]
        return self

    def __repr__(self) -> str:
        return (f"LenskitALS(embedding_dim={self.embedding_dim}, regularization={self.regularization:g}, "
                f"weight={self.weight:g}, epochs={self.epochs})")


class LenskitItemKNN(Recommender):
    """LensKit's item–item kNN for implicit feedback (``lenskit.knn.ItemKNNScorer(feedback="implicit")``).

    For each candidate item LensKit sums the similarities of its (at most ``neighbours``) most
    similar items among the user's, keeping similarities of at least ``min_similarity``. Scored by
    LensKit itself, one user at a time (its ``__call__`` with the user's training items); items it
    cannot score (no neighbour in the profile) get ``-inf``. LensKit's trained scorer is not saved:
    :meth:`save` and pickling keep the training matrix ``x_``, and the first :meth:`score` after a
    load retrains the scorer from it (deterministic: the same similarities).
    """

    _transient_attributes = ("model_",)

    def __init__(self, neighbours: int = 20, min_similarity: float = 1e-6, threads: int = 1) -> None:
        require("lenskit")
        self.neighbours, self.min_similarity, self.threads = neighbours, min_similarity, threads

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        self.remember_split(split)
        self.x_ = split.train_csr()
        self.model_ = self._train()
        return self

    def _train(self) -> Any:
        """LensKit's scorer trained on ``x_``."""
        from lenskit.knn import ItemKNNScorer
        from lenskit.training import TrainingOptions

        model = ItemKNNScorer(max_nbrs=self.neighbours, min_sim=self.min_similarity, feedback="implicit")
        with _lenskit_threads(self.threads), torch_threads(self.threads):
            model.train(_lenskit_dataset(Split.from_matrix(self.x_)), TrainingOptions(device="cpu"))
        return model

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        from lenskit.data import ItemList, RecQuery

        if getattr(self, "model_", None) is None:  # loaded or unpickled: retrain from the kept matrix
            self.model_ = self._train()
        u = as_user_tensor(users, self.n_users_).numpy()
        candidates = ItemList(item_ids=np.arange(self.n_items_))
        out = np.full((len(u), self.n_items_), -np.inf, dtype=np.float32)
        with torch_threads(self.threads):
            for row, user in enumerate(u):
                history = ItemList(item_ids=self.x_[user].indices.astype(np.int64))
                scored = self.model_(RecQuery(user_id=int(user), history_items=history), candidates)
                values = np.asarray(scored.scores(), dtype=np.float32)
                out[row, np.asarray(scored.ids(), dtype=np.int64)] = np.where(np.isnan(values), -np.inf, values)
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return f"LenskitItemKNN(neighbours={self.neighbours}, min_similarity={self.min_similarity:g})"


class TrueTasteOracle(Recommender):
    """The synthetic shop's ceiling: rank items by the *true* affinity that generated the data.

    ``truth``: ``make_shop(...).truth``. Scores are :func:`recnb.data.synthetic.true_affinity` of the
    split's users, with the shop's ids ``1..n`` mapped to truth rows ``id − 1`` for users and items.
    No model trained on the interactions can know more about a user's taste than this.
    """

    def __init__(self, truth: Mapping[str, Any]) -> None:
        self.truth = truth

    def fit(self, split: Split) -> Self:
        self.remember_split(split)
        self.user_rows_ = split.users.ids.astype(np.int64) - 1
        self.item_rows_ = split.items.ids.astype(np.int64) - 1
        n_items = len(self.truth["item_quality"])
        if self.item_rows_.min() < 0 or self.item_rows_.max() >= n_items:
            raise ValueError(f"the split's item ids must lie in 1..{n_items} (the shop's items)")
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        affinity = true_affinity(dict(self.truth), self.user_rows_[u])
        return torch.from_numpy(np.ascontiguousarray(affinity[:, self.item_rows_], dtype=np.float32))


def true_view_probability(truth: Mapping[str, Any], users: Any) -> np.ndarray:
    """``(len(users), n_items)``: the probability that one view of each user lands on each item.

    The shop's sessions (:mod:`recnb.data.synthetic`) pick a category ``c ~ θ_u``, then items of
    it with ``P(i | u, c) ∝ π_i exp(−β_u r_i)`` (popularity times price fit, ``r_i`` the log price
    ratio)::

        P(i | u) = θ_{u,c_i} · π_i exp(−β_u r_i) / Z_{u,c_i},    Z_{u,c} = Σ_{j ∈ c} π_j exp(−β_u r_j)

    Each row sums to 1. ``users``: truth row positions (``user_id − 1``). Ranking by it is the best
    anyone can do at predicting which items a user will have *viewed* (up to the bundle purchases,
    a few percent of the rows), whereas :func:`recnb.data.synthetic.true_affinity` is what the user
    *likes*: popularity drives views but is no part of taste.
    """
    u = np.asarray(users, dtype=np.int64).reshape(-1)
    taste, beta = np.asarray(truth["user_taste"])[u], np.asarray(truth["price_sensitivity"])[u]
    cat = np.asarray(truth["item_category"])
    weight = np.asarray(truth["item_popularity"])[None, :] * np.exp(
        -beta[:, None] * np.asarray(truth["item_log_price_ratio"])[None, :])  # (U, I)
    z = weight @ category_distribution(cat, taste.shape[1]).numpy()  # (U, C): Z_{u,c}
    return taste[:, cat] * weight / z[:, cat]


class TrueViewOracle(TrueTasteOracle):
    """The synthetic shop's ceiling for predicting interactions: rank by :func:`true_view_probability`."""

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        p = true_view_probability(self.truth, self.user_rows_[u])
        return torch.from_numpy(np.ascontiguousarray(p[:, self.item_rows_], dtype=np.float32))


class Benchmark(NamedTuple):
    """What :func:`run_benchmark` returns.

    ``table``: one row per model (index = name): ``library``, ``fit_s``, ``eval_s`` and the mean
    ``<metric>@<k>``; ``per_user``: name -> :func:`~recnb.evaluation.evaluate_per_user` frame (the
    sample bootstrap intervals and paired tests resample); ``models``: name -> the fitted model.
    """

    table: pd.DataFrame
    per_user: dict[str, pd.DataFrame]
    models: dict[str, Recommender]


def run_benchmark(
    models: Mapping[str, Callable[[], Recommender]],
    split: Split,
    k: int = 10,
    metrics: tuple[str, ...] = METRICS,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
    users: np.ndarray | None = None,
) -> Benchmark:
    """Fit every model on ``split`` once and score it on the full ranking of each user's unseen items.

    ``models``: name -> a factory returning an unfitted recommender (built outside the timer).
    ``fit_s`` is the wall time of ``fit``; ``eval_s`` of scoring, ranking and scoring the lists of
    every test user (:func:`~recnb.evaluation.evaluate_per_user`); both run under
    :func:`thread_limit` ``(threads)``. The table's metric columns are the per-user frames' column
    means (= :func:`recnb.evaluation.evaluate`). ``library`` is the name's first word. ``users``: the
    users to evaluate (default: every test user), e.g. the warm users of a time split.
    """
    if not models:
        raise ValueError("models is empty: pass at least one name -> factory")
    rows, per_user, fitted = {}, {}, {}
    for name, factory in models.items():
        if progress is not None:
            progress(name)
        model = factory()
        with thread_limit(threads):
            start = time.perf_counter()
            model.fit(split)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            frame = evaluate_per_user(model, split, k=k, metrics=metrics, users=users)
            eval_s = time.perf_counter() - start
        per_user[name], fitted[name] = frame, model
        rows[name] = {"library": name.split()[0], "fit_s": fit_s, "eval_s": eval_s, **frame.mean().to_dict()}
    return Benchmark(pd.DataFrame.from_dict(rows, orient="index"), per_user, fitted)


def ratio_check(table: pd.DataFrame, ours: str, peer: str, metric: str = "ndcg@10",
                max_time_ratio: float = 2.0) -> dict[str, Any]:
    """Is ``ours`` at least as good as ``peer`` on ``metric`` in at most ``max_time_ratio`` x its fit time?

    Returns ``metric_ours``, ``metric_peer``, ``time_ratio`` (= fit_s ours / fit_s peer), and the
    booleans ``quality_ok`` (``metric_ours >= metric_peer``) and ``time_ok``
    (``time_ratio <= max_time_ratio``).
    """
    for name in (ours, peer):
        if name not in table.index:
            raise KeyError(f"{name!r} is not a row of the benchmark table (rows: {list(table.index)})")
    if metric not in table.columns:
        raise KeyError(f"{metric!r} is not a column of the benchmark table (columns: {list(table.columns)})")
    a, b = float(table.loc[ours, metric]), float(table.loc[peer, metric])
    ratio = float(table.loc[ours, "fit_s"] / table.loc[peer, "fit_s"])
    return {"metric_ours": a, "metric_peer": b, "time_ratio": ratio, "quality_ok": a >= b,
            "time_ok": ratio <= max_time_ratio}


def write_split(split: Split, path: str | Path) -> Path:
    """Write ``split`` as CSV, columns ``user_id, item_id, set`` (``train``/``test``), so others can reuse it.

    One row per distinct (user, item, set), raw ids (not recnb's indices), train rows first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [split.train[[USER, ITEM]].assign(set="train"), split.test[[USER, ITEM]].assign(set="test")]
    pd.concat(parts, ignore_index=True).drop_duplicates().to_csv(path, index=False)
    return path


def eval_latency(model: Recommender, n_users: int, k: int = 10, repeats: int = 5) -> float:
    """Best-of-``repeats`` seconds for ``model.recommend`` of users ``0..n_users-1`` (score, mask, top-``k``).

    One untimed warm-up call first. The minimum over repeats is the least noisy estimate of the
    cost on a shared machine (noise only ever adds time).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    users = np.arange(n_users)
    model.recommend(users, k=k)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.recommend(users, k=k)
        best = min(best, time.perf_counter() - start)
    return best


# -- the tuning protocol (issue 19): one search budget for every model -----------------------------

#: EASE's ``λ`` values, shared by the three EASE implementations (recnb's, cornac's, LensKit's)
EASE_L2 = [10.0, 20.0, 50.0, 100.0, 200.0, 300.0, 500.0, 700.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0]
_BPR_SPACE = {"factors": [32, 64, 128], "learning_rate": [0.003, 0.01, 0.03, 0.05, 0.1],
              "regularization": [0.001, 0.01, 0.1], "iterations": [50, 100, 200]}

#: The search space of every model of the protocol: name -> {parameter: values}. Every model's
#: parameters not named here keep the factory's values (:func:`protocol_models`). Each space holds
#: at least as many settings as the largest budget used (the random search draws distinct settings).
#: implicit's and cornac's BPR share one space (and parameter names), so they see the same draws.
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "recnb EASE": {"l2": EASE_L2},
    "recnb EDLAE": {"dropout": [0.1, 0.25, 0.5, 0.67, 0.8], "l2": [10.0, 50.0, 100.0, 200.0, 500.0]},
    "recnb ALS": {"embedding_dim": [32, 64, 128], "l2": [3.0, 10.0, 30.0, 100.0, 300.0], "alpha": [0.0, 1.0, 3.0, 10.0, 30.0]},
    "recnb item-kNN": {"neighbours": [10, 20, 50, 100, 200, 400], "shrinkage": [0.0, 10.0, 50.0, 100.0, 200.0]},
    "recnb BPR": {"embedding_dim": [32, 64, 128], "lr": [0.03, 0.1, 0.3], "l2": [0.001, 0.01, 0.1], "max_epochs": [6, 12, 24]},
    "implicit ALS": {"factors": [32, 64, 128], "regularization": [0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                     "alpha": [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]},
    "implicit BPR": dict(_BPR_SPACE),
    "cornac EASE": {"l2": EASE_L2},
    "cornac BPR": dict(_BPR_SPACE),
    "lenskit EASE": {"l2": EASE_L2},
    "lenskit item-kNN": {"neighbours": [5, 10, 20, 50, 100, 200], "min_similarity": [1e-6, 0.01, 0.05, 0.1]},
    "lenskit ALS": {"embedding_dim": [32, 64, 128], "regularization": [0.1, 1.0, 3.0, 10.0, 30.0, 100.0],
                    "weight": [1.0, 2.0, 5.0, 10.0, 20.0, 40.0]},
}


def protocol_models(seed: int = 0, threads: int = 1, bpr: bool = True) -> dict[str, Callable[[], Recommender]]:
    """The protocol's line-up, name -> factory of the model with its fixed settings (the searched ones
    are :data:`SEARCH_SPACES`'): recnb's EASE, EDLAE, ALS, item-kNN and (``bpr``) BPR embedding, and
    the installed peers' models. ``threads``: every model's thread count (recnb's ALS fits on
    ``threads`` workers; the rest run under :func:`thread_limit`)."""
    out: dict[str, Callable[[], Recommender]] = {
        "recnb EASE": EASE,
        "recnb EDLAE": DLAE,
        "recnb ALS": lambda: ALSRecommender(seed=seed, threads=threads),
        "recnb item-kNN": ItemKNN,
    }
    if bpr:
        out["recnb BPR"] = lambda: EmbeddingRecommender(loss="bpr", seed=seed)
    available = peers_available()
    if available["implicit"]:
        out["implicit ALS"] = lambda: ImplicitALS(seed=seed, threads=threads)
        out["implicit BPR"] = lambda: ImplicitBPR(seed=seed, threads=threads)
    if available["cornac"]:
        out["cornac EASE"] = lambda: CornacEASE(seed=seed, threads=threads)  # posB=True: as cornac ships it
        out["cornac BPR"] = lambda: CornacBPR(seed=seed, threads=threads)
    if available["lenskit"]:
        out["lenskit EASE"] = lambda: LenskitEASE(threads=threads)
        out["lenskit item-kNN"] = lambda: LenskitItemKNN(threads=threads)
        out["lenskit ALS"] = lambda: LenskitALS(seed=seed, threads=threads)
    return out


class Protocol(NamedTuple):
    """What :func:`run_protocol` returns.

    ``runs``: one row per (split, model): ``split``, ``model``, ``library``, ``trials``,
    ``best_params`` (a dict), ``validation`` (the best trial's ``metric@k`` on validation),
    ``search_s`` (seconds of the whole search), ``fit_s`` (the refit on the full training part),
    ``test`` (``metric@k`` on the test part); ``per_user``: model -> frame of per-user test values,
    index the raw user id, one column per split; ``searches``: ``(split, model)`` ->
    :class:`~recnb.evaluation.tuning.TuneResult`; ``metric``: ``"<metric>@<k>"``.
    """

    runs: pd.DataFrame
    per_user: dict[str, pd.DataFrame]
    searches: dict[tuple[int, str], TuneResult]
    metric: str


def run_protocol(
    data: RecData,
    models: Mapping[str, Callable[[], Recommender]],
    spaces: Mapping[str, Mapping[str, Any]] = SEARCH_SPACES,
    n_splits: int = 5,
    n_trials: int = 8,
    test_ratio: float = 0.25,
    validation_ratio: float = 0.25,
    k: int = 10,
    metric: str = "ndcg",
    seed: int = 0,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Protocol:
    """Tune, refit and test every model on ``n_splits`` random splits with the same search budget.

    For split ``s = 0 .. n_splits − 1``: ``split = random_holdout(data, test_ratio, seed + s)``
    (per user), ``validation = holdout_validation(split, validation_ratio, seed + s)`` (carved out
    of the training part). Each model gets the *same* search: ``n_trials`` distinct settings drawn
    from its space by :func:`~recnb.evaluation.tuning.tune` (``search="random"``, seeded by
    ``seed + s``), each fitted on the validation split's training part and scored by ``metric@k``
    on its held-out part; the best setting is refit on the full training part (timed: ``fit_s``)
    and scored on the test part (:func:`~recnb.evaluation.evaluate_per_user`). Everything runs
    under :func:`thread_limit` ``(threads)``. A space with fewer than ``n_trials`` settings is
    refused (that model would get a smaller budget). ``progress`` receives one line per search.
    """
    missing = [name for name in models if name not in spaces]
    if missing:
        raise KeyError(f"no search space for {missing}: add them to spaces (known: {sorted(spaces)})")
    for name in models:
        size = len(ParameterGrid(dict(spaces[name])))
        if size < n_trials:
            raise ValueError(f"spaces[{name!r}] holds {size} settings, fewer than n_trials={n_trials}: every model "
                             f"must get the same budget")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 1:
        raise ValueError(f"n_splits must be a positive integer, got {n_splits!r}")
    column = f"{metric}@{k}"
    rows, per_user, searches = [], {name: {} for name in models}, {}
    for s in range(n_splits):
        split = random_holdout(data, test_ratio=test_ratio, seed=seed + s)
        validation = holdout_validation(split, ratio=validation_ratio, seed=seed + s)
        for name, factory in models.items():
            with thread_limit(threads):
                start = time.perf_counter()
                search = tune(factory(), validation, validation, spaces[name], metric=metric, k=k, search="random",
                              n_trials=n_trials, seed=seed + s)
                search_s = time.perf_counter() - start
                start = time.perf_counter()
                model = search.refit(split)
                fit_s = time.perf_counter() - start
                frame = evaluate_per_user(model, split, k=k, metrics=(metric,))
            values = pd.Series(frame[column].to_numpy(), index=split.users.ids[frame.index.to_numpy()])
            per_user[name][s], searches[(s, name)] = values, search
            rows.append({"split": s, "model": name, "library": name.split()[0], "trials": len(search.table),
                         "best_params": search.best_params_, "validation": search.best_value_,
                         "search_s": search_s, "fit_s": fit_s, "test": float(values.mean())})
            if progress is not None:
                progress(f"split {s + 1}/{n_splits} {name}: {len(search.table)} trials in {search_s:.0f} s, best "
                         f"{search.best_params_} ({column} {search.best_value_:.4f} on validation, "
                         f"{values.mean():.4f} on test)")
    frames = {name: pd.DataFrame(by_split) for name, by_split in per_user.items()}
    return Protocol(pd.DataFrame(rows), frames, searches, column)


def protocol_table(result: Protocol, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per model (index = name), best first: ``library``, ``mean`` (of the per-split test
    means), ``low`` / ``high`` (95 % BCa bootstrap interval over *users* of each user's mean over
    the splits, :func:`~recnb.evaluation.uncertainty.bootstrap_ci`), ``split_std`` / ``split_min``
    / ``split_max`` (of the per-split means), ``fit_s`` and ``search_s`` (means over splits),
    ``trials`` (per split) and ``splits``."""
    rows = {}
    for name, group in result.runs.groupby("model", sort=False):
        interval = bootstrap_ci(result.per_user[name].mean(axis=1), n_resamples=n_resamples, seed=seed)
        trials = group["trials"].unique()
        rows[name] = {"library": group["library"].iloc[0], "mean": group["test"].mean(), "low": interval.low,
                      "high": interval.high, "split_std": group["test"].std(ddof=1) if len(group) > 1 else 0.0,
                      "split_min": group["test"].min(), "split_max": group["test"].max(),
                      "fit_s": group["fit_s"].mean(), "search_s": group["search_s"].mean(),
                      "trials": int(trials[0]) if len(trials) == 1 else -1, "splits": len(group)}
    return pd.DataFrame.from_dict(rows, orient="index").sort_values("mean", ascending=False)


def paired_protocol(result: Protocol, a: str, b: str, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The paired test of model ``a`` against model ``b`` over the protocol's splits.

    The unit is the user: ``d_u`` = the mean over splits of ``a``'s minus ``b``'s test value for
    user ``u`` (both models scored on the same test items in every split). Returns ``a``, ``b``,
    ``mean_diff``, ``low``, ``high``, ``p_value`` (:func:`~recnb.evaluation.uncertainty.paired_bootstrap`
    of the per-user means), ``wilcoxon_p`` (:func:`~recnb.evaluation.uncertainty.wilcoxon`),
    ``users``, ``split_diffs`` (the per-split mean differences) and ``splits_ahead`` (how many of
    them are > 0).
    """
    for name in (a, b):
        if name not in result.per_user:
            raise KeyError(f"{name!r} is not a model of this protocol run (models: {list(result.per_user)})")
    mean_a, mean_b = result.per_user[a].mean(axis=1), result.per_user[b].mean(axis=1)
    test = paired_bootstrap(mean_a, mean_b, n_resamples=n_resamples, seed=seed)
    split_diffs = (result.per_user[a] - result.per_user[b]).mean(axis=0).to_numpy()
    return {"a": a, "b": b, "mean_diff": test.mean_diff, "low": test.low, "high": test.high, "p_value": test.p_value,
            "wilcoxon_p": wilcoxon(mean_a, mean_b).p_value, "users": test.n,
            "split_diffs": [float(v) for v in split_diffs], "splits_ahead": int((split_diffs > 0).sum())}
