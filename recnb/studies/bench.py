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

The peers' default hyper-parameters here were chosen on a *validation* split of MovieLens-100k
(``holdout_validation(random_holdout(load_movielens(), 0.25, seed=0), 0.25, seed=0)``, NDCG@10),
from small grids named in each class; recnb's models keep their library defaults, except EASE's
``λ``, chosen on the same kind of validation split by :func:`recnb.evaluation.tuning.tune`.

:func:`run_benchmark` fits each model once and times ``fit`` (``time.perf_counter``; every model,
recnb's and the peers', under the same BLAS/OpenMP thread limit, one thread by default, as recnb's
trainer uses one torch thread). :func:`peers_available` tells which peers import, so a notebook can
say where one is missing instead of failing; :func:`peer_models` and :func:`recnb_models` are the
line-ups notebook 08 and ``benchmarks/movielens.py`` share.
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

from recnb.data.schema import ITEM, USER, Split, SplitLike, as_split
from recnb.evaluation import evaluate_per_user
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.data.categories import category_distribution
from recnb.training import check_threads
from recnb.data.synthetic import true_affinity
from recnb.models.ease import EASE
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.knn import ItemKNN, UserKNN
from recnb.models.mlp import MLPRecommender
from recnb.models.popularity import PopularityRecommender

PEERS = ("implicit", "cornac")
INSTALL = 'pip install -e ".[bench]"'
#: the metrics of the benchmark table (``<metric>@k`` columns)
METRICS = ("precision", "recall", "ndcg", "map")


def peers_available() -> dict[str, bool]:
    """``{"implicit": bool, "cornac": bool}``: which peer libraries can be imported here."""
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


class CornacEASE(Recommender):
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

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_).numpy()
        return torch.from_numpy(np.asarray(self.x_[u] @ self.weights_, dtype=np.float32))

    def __repr__(self) -> str:
        return f"CornacEASE(l2={self.l2:g}, positive_only={self.positive_only})"


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


def recnb_models(seed: int = 0, ease_l2: float = 500.0, neighbours: int = 50, shrinkage: float = 10.0,
                 mlp: bool = True) -> dict[str, Callable[[], Recommender]]:
    """recnb's line-up, name -> factory: popularity, item-/user-kNN, BPR and MLP with their defaults, EASE.

    ``ease_l2``: EASE's ``λ`` (choose it on a validation split first); ``mlp=False`` leaves out
    the slowest model.
    """
    out: dict[str, Callable[[], Recommender]] = {
        "recnb popularity": PopularityRecommender,
        "recnb item-kNN": lambda: ItemKNN(neighbours=neighbours, shrinkage=shrinkage),
        "recnb user-kNN": lambda: UserKNN(neighbours=neighbours),
        "recnb BPR": lambda: EmbeddingRecommender(loss="bpr", seed=seed),
    }
    if mlp:
        out["recnb MLP"] = lambda: MLPRecommender(seed=seed)
    out["recnb EASE"] = lambda: EASE(l2=ease_l2)
    return out


def peer_models(seed: int = 0, threads: int = 1) -> tuple[dict[str, Callable[[], Recommender]], list[str]]:
    """The peers' line-up, name -> factory, for the peers installed here; and the missing peers' names."""
    available = peers_available()
    models: dict[str, Callable[[], Recommender]] = {}
    if available["implicit"]:
        models["implicit ALS"] = lambda: ImplicitALS(seed=seed, threads=threads)
        models["implicit BPR"] = lambda: ImplicitBPR(seed=seed, threads=threads)
        models["implicit item-cosine"] = lambda: ImplicitItemCosine(threads=threads)
    if available["cornac"]:
        models["cornac BPR"] = lambda: CornacBPR(seed=seed, threads=threads)
        models["cornac EASE"] = lambda: CornacEASE(seed=seed, threads=threads)
    return models, [name for name, ok in available.items() if not ok]


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
