"""Learning to rank from clicks: query–item features, three Lightning rankers, inverse propensity
weights, and LightGBM's LambdaMART as the peer.

**Candidates and features.** A first stage (:meth:`QueryItemFeatures.first_stage`: the min–max
blend ``α·BM25 + (1 − α)·cosine`` of :func:`recnb.search.hybrid.hybrid_scores`, top ``depth``)
gives each query ``q`` a list of ``m`` candidate items; a ranker re-orders it from a feature vector
``x_qi`` per candidate (:data:`FEATURE_NAMES`):

==============  ==================================================================================
bm25            BM25 score of the item's text for the query (:class:`recnb.search.lexical.BM25`)
dense_cosine    cosine of query and item vectors (:class:`recnb.search.dense.DenseRetriever`)
log_popularity  ``log(1 + n_i)``, ``n_i`` the item's rows in the *training* interactions
log_price       ``log(p_i)`` from the items' ``price`` column
user_taste      the issuing user's share of training interactions in the item's category,
                ``n_{u,c_i} / n_u``; for a query without a user, the catalogue-wide share of ``c_i``
==============  ==================================================================================

Everything is read from observable data (item texts and columns, the interaction log), never from
the shop's hidden ``truth``.

**Rankers.** A scorer ``s_qi = f(standardise(x_qi))`` (linear, or one hidden ReLU layer), a
``LightningModule`` trained by :func:`recnb.training.make_trainer` on batches of query groups
(:class:`QueryGroupDataModule`), with one of three losses of :mod:`recnb.math.losses`:
:class:`RankNet` (pairwise ``-log σ(s_i - s_j)``), :class:`LambdaRank` (the same pairs weighted by
``|ΔNDCG_ij|``) and :class:`ListwiseSoftmax` (softmax cross-entropy over the group).
:class:`LambdaMART` wraps ``lightgbm.LGBMRanker`` behind the same ``fit(groups)`` /
``score(features)``.

**Clicks and position bias.** In the click log of :func:`recnb.data.queries.make_click_log` an item
at rank ``r`` is examined with probability ``p_r = r^{-η}`` (the propensity) and clicked if
examined and attractive: ``P(c = 1) = p_r · a_i``. A click is evidence of attractiveness *and* of
having been shown high. Weighting each click by ``1 / p_r`` (Joachims, Swaminathan & Schnabel 2017,
"Unbiased learning-to-rank with biased feedback") removes the position::

    E[c / p_r] = p_r a_i / p_r = a_i         (for every rank r with p_r > 0)

so a loss that sums ``w_i = c_i / p_{r_i}`` over clicked items is, in expectation, the same loss
summed over attractive items wherever they were shown. :func:`ips_weights` gives ``1 / p``
(optionally clipped); :func:`click_groups` builds training groups from the log with or without it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import skip_init
from torch.utils.data import DataLoader, Dataset

from recnb.data.queries import Queries, make_click_log, make_queries
from recnb.data.schema import ITEM, USER, RecData
from recnb.math.losses import lambdarank_loss, listwise_softmax_loss, ranknet_loss
from recnb.math.metrics import graded_ndcg_at_k
from recnb.math.ranking import PAD, Ranking, rank
from recnb.math.similarity import normalise_rows
from recnb.models.text_encoder import Encoder, TfidfEncoder
from recnb.search.dense import DenseRetriever
from recnb.search.hybrid import hybrid_scores
from recnb.search.lexical import BM25, Tokenizer
from recnb.training.trainer import make_trainer

#: the columns of a feature tensor ``(Q, m, F)``, in order
FEATURE_NAMES: tuple[str, ...] = ("bm25", "dense_cosine", "log_popularity", "log_price", "user_taste")


def ips_weights(propensity: Any, clip: float | None = None) -> np.ndarray:
    """Inverse propensity weights ``w = 1 / p`` of clicks observed with examination probability ``p``.

    ``propensity``: array-like in (0, 1]. ``clip``: cap the weights at ``clip`` (>= 1), trading a
    little bias for less variance (Strehl et al. 2010); ``None`` leaves them. Returns float64.
    """
    p = np.asarray(propensity, dtype=np.float64)
    if p.size and not (np.isfinite(p).all() and p.min() > 0 and p.max() <= 1):
        raise ValueError(f"propensity must lie in (0, 1], got values in [{np.nanmin(p)}, {np.nanmax(p)}]")
    w = 1.0 / p
    if clip is not None:
        if not clip >= 1:
            raise ValueError(f"clip must be >= 1 (a cap on 1 / propensity) or None, got {clip!r}")
        w = np.minimum(w, clip)
    return w


@dataclass(frozen=True)
class QueryGroups:
    """Query groups for learning to rank: ``Q`` queries of ``m`` candidate slots each.

    ``features`` ``(Q, m, F)`` float32 (:data:`FEATURE_NAMES`), ``labels`` ``(Q, m)`` float32
    (clicks 0/1 or grades), ``weights`` ``(Q, m)`` float32 (``1 / propensity`` or ones), ``mask``
    ``(Q, m)`` bool (True on real candidates; padded slots are zero), ``items`` ``(Q, m)`` int64
    item rows (``PAD`` on padded slots), ``query_ids`` ``(Q,)`` the rows of the queries they came from.
    Every group must hold at least one real candidate.
    """

    features: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    mask: torch.Tensor
    items: torch.Tensor
    query_ids: np.ndarray

    def __post_init__(self) -> None:
        f = self.features
        if f.ndim != 3:
            raise ValueError(f"features must be (Q, m, F), got shape {tuple(f.shape)}")
        for name in ("labels", "weights", "mask", "items"):
            if tuple(getattr(self, name).shape) != tuple(f.shape[:2]):
                raise ValueError(f"{name} must be (Q, m) = {tuple(f.shape[:2])}, got {tuple(getattr(self, name).shape)}")
        if len(self.query_ids) != f.shape[0]:
            raise ValueError(f"query_ids must hold one query row per group ({f.shape[0]}), got {len(self.query_ids)}")
        empty = np.flatnonzero(~self.mask.any(dim=1).numpy())
        if empty.size:
            raise ValueError(f"query group {int(empty[0])} (query {int(self.query_ids[empty[0]])}) is empty: "
                             f"every group needs at least one candidate ({empty.size} empty groups)")

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def n_features(self) -> int:
        return self.features.shape[2]

    def subset(self, rows: Any) -> QueryGroups:
        """The groups at ``rows`` (positions or a bool mask)."""
        r = torch.as_tensor(np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows), dtype=torch.long)
        return QueryGroups(self.features[r], self.labels[r], self.weights[r], self.mask[r], self.items[r],
                           self.query_ids[r.numpy()])


class QueryItemFeatures:
    """Query–item features (:data:`FEATURE_NAMES`) over one catalogue, from observable data.

    ``shop``: a :class:`~recnb.data.schema.RecData` whose ``items`` have ``item_id``, ``text``,
    ``category`` and a positive ``price``; item rows are the columns of the queries' relevance.
    ``interactions``: the training log (``user_id``, ``item_id`` rows; default ``shop.interactions``)
    that popularity and taste are counted from. ``encoder``: the dense side's encoder (default a
    :class:`~recnb.models.text_encoder.TfidfEncoder`; the chapter uses MiniLM's ``TextEncoder``).
    ``bm25``: an unfitted :class:`~recnb.search.lexical.BM25` (default Snowball-stemmed).
    """

    def __init__(self, shop: RecData, interactions: pd.DataFrame | None = None, encoder: Encoder | None = None,
                 bm25: BM25 | None = None) -> None:
        items = shop.items
        missing = [c for c in (ITEM, "text", "category", "price") if c not in items.columns]
        if missing:
            raise ValueError(f"shop.items lacks the columns {missing} that the features need")
        price = items["price"].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~(np.isfinite(price) & (price > 0)))
        if bad.size:
            raise ValueError(f"shop.items column 'price' must be positive and finite (log_price), "
                             f"row {int(bad[0])} holds {price[bad[0]]!r} ({bad.size} such rows): clean the items first")
        log = shop.interactions if interactions is None else interactions
        if not {USER, ITEM} <= set(log.columns) or len(log) == 0:
            raise ValueError(f"interactions must be a non-empty frame with columns {USER!r} and {ITEM!r}")
        texts = items["text"].astype(str).tolist()
        self.bm25 = (bm25 if bm25 is not None else BM25(tokenizer=Tokenizer(stem=True))).fit(texts)
        self.dense = DenseRetriever(encoder if encoder is not None else TfidfEncoder()).fit(texts)
        self.item_ids = items[ITEM].to_numpy()
        self.categories, self.item_category = np.unique(items["category"].astype(str).to_numpy(), return_inverse=True)
        self.log_price = np.log(price)
        row = pd.Series(np.arange(len(items)), index=self.item_ids)
        item_rows = row.reindex(log[ITEM].to_numpy()).to_numpy()
        if np.isnan(item_rows).any():
            at = int(np.flatnonzero(np.isnan(item_rows))[0])
            raise ValueError(f"interactions row {at}: item_id {log[ITEM].iloc[at]!r} is not in shop.items")
        item_rows = item_rows.astype(np.int64)
        counts = np.bincount(item_rows, minlength=len(items))
        self.log_popularity = np.log1p(counts)
        n_cat = len(self.categories)
        self.users, user_rows = np.unique(log[USER].to_numpy(), return_inverse=True)
        per_user = np.zeros((len(self.users), n_cat))
        np.add.at(per_user, (user_rows, self.item_category[item_rows]), 1.0)
        self.taste = per_user / per_user.sum(axis=1, keepdims=True)  # every listed user has >= 1 row
        self.prior = per_user.sum(axis=0) / per_user.sum()

    def __repr__(self) -> str:
        return (f"QueryItemFeatures({len(self.item_ids)} items, {len(self.users)} users, "
                f"{len(self.categories)} categories, {self.dense.encoder!r})")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_taste(self, user_ids: Sequence[Any]) -> np.ndarray:
        """``(Q, C)`` taste rows of the queries' issuing users (``<NA>``: the catalogue-wide prior);
        an id absent from the training interactions raises ``KeyError`` naming ``user_ids`` and the row."""
        ids = pd.Series(user_ids)
        out = np.tile(self.prior, (len(ids), 1))
        known = ids.notna().to_numpy()
        if known.any():
            raw = ids[known].to_numpy().astype(self.users.dtype)
            pos = np.clip(np.searchsorted(self.users, raw), 0, len(self.users) - 1)
            found = self.users[pos] == raw
            if not found.all():
                row = int(np.flatnonzero(known)[np.flatnonzero(~found)[0]])
                raise KeyError(f"user_ids[{row}] = {ids.iloc[row]} (a query's user_id) is not a user of the training interactions "
                               f"({len(self.users)} users): personalised features need the user's history")
            out[known] = self.taste[pos]
        return out

    def first_stage(self, queries: Queries, depth: int = 10, alpha: float = 0.5) -> Ranking:
        """The production ranker: top ``depth`` items of ``α·minmax(BM25) + (1 − α)·minmax(cosine)``
        over the whole catalogue (:func:`~recnb.search.hybrid.hybrid_scores`)."""
        if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or not 1 <= depth <= self.n_items:
            raise ValueError(f"depth must be an integer in 1..{self.n_items} (the catalogue), got {depth!r}")
        lex = self.bm25.score_dense(queries.texts)
        return rank(hybrid_scores(lex, self.dense.score(queries.texts).double(), alpha), k=int(depth))

    def features(self, queries: Queries, candidates: Any) -> torch.Tensor:
        """Features ``(Q, m, F)`` float32 of the ``(Q, m)`` ``candidates`` (item rows, ``PAD`` slots
        give zero rows) of ``queries``."""
        cand = torch.as_tensor(candidates).long()
        if cand.ndim != 2 or cand.shape[0] != len(queries):
            raise ValueError(f"candidates must be (Q, m) item rows with Q = {len(queries)} queries, got shape {tuple(cand.shape)}")
        if cand.numel() and (cand.min() < PAD or cand.max() >= self.n_items):
            raise ValueError(f"candidates must hold item rows in 0..{self.n_items - 1} (or PAD = {PAD})")
        pad = cand == PAD
        c = cand.clamp(min=0).numpy()
        q = np.arange(len(queries))[:, None]
        lex = self.bm25.score(queries.texts)
        bm25 = np.asarray(lex[np.broadcast_to(q, c.shape).ravel(), c.ravel()]).reshape(c.shape)
        qv = normalise_rows(self.dense.encode_queries(queries.texts))
        iv = normalise_rows(self.dense.item_vectors)
        cosine = (qv[:, None, :] * iv[torch.from_numpy(c)]).sum(dim=-1).numpy()
        taste = self.user_taste(queries.frame[USER].tolist())
        columns = [bm25, cosine, self.log_popularity[c], self.log_price[c],
                   np.take_along_axis(taste, self.item_category[c], axis=1)]
        x = torch.from_numpy(np.stack(columns, axis=-1).astype(np.float32))
        return x.masked_fill(pad[:, :, None], 0.0)

    def groups(self, queries: Queries, candidates: Any, labels: Any | None = None, weights: Any | None = None) -> QueryGroups:
        """:class:`QueryGroups` of ``candidates`` ``(Q, m)``; ``labels`` default to the queries' true
        grades (for evaluation), ``weights`` to ones."""
        cand = torch.as_tensor(candidates).long()
        x = self.features(queries, cand)
        mask = cand != PAD
        if labels is None:
            grades = queries.relevance
            c = cand.clamp(min=0).numpy()
            labels = np.asarray(grades[np.repeat(np.arange(len(queries)), c.shape[1]), c.ravel()]).reshape(c.shape)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.float32).masked_fill(~mask, 0.0)
        w = torch.ones_like(y) if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        return QueryGroups(x, y, w.masked_fill(~mask, 0.0), mask, cand.masked_fill(~mask, PAD),
                           queries.frame["query_id"].to_numpy())


def order_by(candidates: Any, values: Any) -> torch.Tensor:
    """Each row of ``candidates`` ``(Q, m)`` (item rows, ``PAD`` last) re-ordered by a per-item value
    ``values`` ``(n_items,)``, largest first (ties keep their order): a logging ranker that shows
    a first stage's candidates e.g. best sellers first (``values = log_popularity``)."""
    cand = torch.as_tensor(candidates).long()
    v = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if cand.ndim != 2:
        raise ValueError(f"candidates must be (Q, m) item rows, got shape {tuple(cand.shape)}")
    if v.ndim != 1 or (cand.numel() and cand.max() >= len(v)):
        raise ValueError(f"values must hold one number per item (n_items > {int(cand.max())}), got shape {tuple(v.shape)}")
    key = v[cand.clamp(min=0)].masked_fill(cand == PAD, -torch.inf)
    return torch.gather(cand, 1, torch.sort(key, dim=1, descending=True, stable=True).indices)


def click_groups(log: pd.DataFrame, features: QueryItemFeatures, queries: Queries, ips: bool = True,
                 clip: float | None = None) -> QueryGroups:
    """Training groups from a click log (:func:`recnb.data.queries.make_click_log` of ``queries``):
    one group per query that was shown something, its shown items in rank order, label = click.

    ``ips``: each *click* weighted ``1 / propensity`` of its rank (:func:`ips_weights`, capped at
    ``clip``), every other shown item 1 (the losses of :mod:`recnb.math.losses` read the weight of
    clicked items only); ``ips=False``: all weights 1, the naive estimate that takes clicks at face value."""
    need = {"query_id", "rank", "item_idx", "click", "propensity"}
    if not need <= set(log.columns):
        raise ValueError(f"log lacks the columns {sorted(need - set(log.columns))} of make_click_log")
    if len(log) == 0:
        raise ValueError("log is empty: no impression to learn from")
    qids = np.unique(log["query_id"].to_numpy())
    if qids.max() >= len(queries):
        raise ValueError(f"log holds query_id {int(qids.max())} but queries has {len(queries)} queries")
    depth = int(log["rank"].max())
    row = np.searchsorted(qids, log["query_id"].to_numpy())
    slot = log["rank"].to_numpy() - 1
    shown = np.full((len(qids), depth), PAD, dtype=np.int64)
    clicks = np.zeros((len(qids), depth), dtype=np.float32)
    weights = np.zeros((len(qids), depth), dtype=np.float64)
    shown[row, slot] = log["item_idx"].to_numpy()
    clicks[row, slot] = log["click"].to_numpy()
    click = log["click"].to_numpy().astype(bool)
    weights[row, slot] = np.where(click, ips_weights(log["propensity"].to_numpy(), clip), 1.0) if ips else 1.0
    return replace(features.groups(queries.subset(qids), shown, clicks, weights), query_ids=qids)


def rank_candidates(scores: torch.Tensor, groups: QueryGroups, k: int = 10) -> Ranking:
    """The top ``k`` item rows of each group by ``scores`` ``(Q, m)`` (padded slots never returned;
    slots beyond a short group are ``PAD``)."""
    if tuple(scores.shape) != tuple(groups.mask.shape):
        raise ValueError(f"scores must be (Q, m) = {tuple(groups.mask.shape)}, got {tuple(scores.shape)}")
    top = rank(scores.double().masked_fill(~groups.mask, -torch.inf), k=min(k, scores.shape[1]))
    items = torch.gather(groups.items, 1, top.indices.clamp(min=0)).masked_fill(top.indices == PAD, PAD)
    return Ranking(items, top.scores)


def ndcg_at_k(scores: torch.Tensor, groups: QueryGroups, grades: Any, k: int = 10) -> torch.Tensor:
    """Graded NDCG@k (gains ``2^rel − 1``, :func:`recnb.math.metrics.graded_ndcg_at_k`) ``(Q,)`` of the
    groups ranked by ``scores``, against ``grades`` ``(Q_all, n_items)`` rows ``groups.query_ids``
    (the ideal list is over the whole catalogue: relevant items the candidates missed count)."""
    return graded_ndcg_at_k(rank_candidates(scores, groups, k).indices, grades[groups.query_ids])


class _GroupSet(Dataset):
    def __init__(self, groups: QueryGroups) -> None:
        self.groups = groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        g = self.groups
        return {"features": g.features[j], "labels": g.labels[j], "weights": g.weights[j], "mask": g.mask[j]}


class QueryGroupDataModule(pl.LightningDataModule):
    """Batches of whole query groups, shuffled each epoch from ``seed``: ``{"features": (B, m, F),
    "labels": (B, m), "weights": (B, m), "mask": (B, m)}``."""

    def __init__(self, groups: QueryGroups, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.groups, self.batch_size, self.seed = groups, batch_size, seed

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_GroupSet(self.groups), batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.seed))


class GroupRanker(pl.LightningModule):
    """A scorer ``s = f((x − μ) / σ)`` of candidate features ``x`` (``μ``, ``σ``: the training
    candidates' feature means and standard deviations), trained on query groups with :meth:`loss`.

    ``hidden = 0``: ``f`` is linear, ``s = wᵀz + b``; ``hidden = h``: one ReLU layer,
    ``s = w₂ᵀ ReLU(W₁ z + b₁) + b₂``. ``lr``, ``l2``: Adam's step and (coupled) weight decay.
    Subclasses set the loss. :meth:`fit` trains with :func:`recnb.training.make_trainer`;
    :meth:`score` gives ``(Q, m)`` scores of a ``(Q, m, F)`` feature tensor.
    """

    def __init__(self, n_features: int = len(FEATURE_NAMES), hidden: int = 0, lr: float = 0.05, l2: float = 0.0,
                 max_epochs: int = 20, batch_size: int = 32, seed: int = 0, progress: bool = False) -> None:
        super().__init__()
        for name, value in (("n_features", n_features), ("max_epochs", max_epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an integer >= 0 (0: a linear scorer), got {hidden!r}")
        if not lr > 0 or not l2 >= 0:
            raise ValueError(f"need lr > 0 and l2 >= 0, got lr={lr!r}, l2={l2!r}")
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(seed)
        widths = [n_features, hidden, 1] if hidden else [n_features, 1]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [skip_init(nn.Linear, a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=g)
                    nn.init.uniform_(layer.bias, -1 / math.sqrt(layer.in_features), 1 / math.sqrt(layer.in_features), generator=g)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch of groups (``(B, m)`` each); set by each subclass."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss: use RankNet, LambdaRank or ListwiseSoftmax")

    def _check(self, features: torch.Tensor) -> None:
        n = self.hparams.n_features
        if not isinstance(features, torch.Tensor) or features.ndim != 3 or features.shape[2] != n:
            shape = tuple(features.shape) if hasattr(features, "shape") else type(features).__name__
            raise ValueError(f"features must be a (Q, m, {n}) tensor ({n} features per candidate), got {shape}")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.feature_mean) / self.feature_std).squeeze(-1)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """Scores ``(Q, m)`` of candidate features ``(Q, m, F)``."""
        self._check(features)
        with torch.no_grad():
            return self(features.float())

    def fit(self, groups: QueryGroups) -> Self:
        """Standardise on ``groups``' real candidates, then train ``max_epochs`` epochs."""
        self._check(groups.features)
        x = groups.features[groups.mask]
        with torch.no_grad():
            self.feature_mean.copy_(x.mean(dim=0))
            self.feature_std.copy_(x.std(dim=0, correction=0).clamp(min=1e-6))
        hp = self.hparams
        trainer = make_trainer(hp.max_epochs, seed=hp.seed, progress=hp.progress)
        trainer.fit(self, datamodule=QueryGroupDataModule(groups, hp.batch_size, hp.seed))
        return self

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["features"]), batch["labels"], batch["weights"], batch["mask"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["labels"]))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.l2)

    def __repr__(self) -> str:
        hp = self.hparams
        return f"{type(self).__name__}(hidden={hp.hidden}, lr={hp.lr}, max_epochs={hp.max_epochs})"


class RankNet(GroupRanker):
    """:class:`GroupRanker` with :func:`recnb.math.losses.ranknet_loss` (pairs ``y_i > y_j``)."""

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ranknet_loss(scores, labels, weights, mask)


class LambdaRank(GroupRanker):
    """:class:`GroupRanker` with :func:`recnb.math.losses.lambdarank_loss` (pairs weighted by ``|ΔNDCG|``)."""

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return lambdarank_loss(scores, labels, weights, mask)


class ListwiseSoftmax(GroupRanker):
    """:class:`GroupRanker` with :func:`recnb.math.losses.listwise_softmax_loss`."""

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return listwise_softmax_loss(scores, labels, weights, mask)


#: the Lightning rankers by name
RANKERS: dict[str, type[GroupRanker]] = {"ranknet": RankNet, "lambdarank": LambdaRank, "listwise": ListwiseSoftmax}


class LambdaMART:
    """LightGBM's LambdaMART (``lightgbm.LGBMRanker``, objective ``lambdarank``) behind the rankers'
    ``fit(groups)`` / ``score(features)``: gradient-boosted trees on the same features and labels.

    Labels must be integers (clicks, grades); ``weights`` go to LightGBM as ``sample_weight``, which
    multiplies each *row's* lambda gradient by its weight (not the pairwise estimator of
    :func:`recnb.math.losses.ranknet_loss`, which weights the preferred item of a pair).
    Deterministic (one thread, ``deterministic=True``, ``seed``). Needs ``lightgbm`` (the
    ``[search]`` extra); imported when fitted.
    """

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 20, seed: int = 0) -> None:
        self.n_estimators, self.learning_rate, self.num_leaves = n_estimators, learning_rate, num_leaves
        self.min_child_samples, self.seed = min_child_samples, seed
        self.model: Any = None
        self.n_features = 0

    def __repr__(self) -> str:
        return f"LambdaMART(n_estimators={self.n_estimators}, learning_rate={self.learning_rate}, num_leaves={self.num_leaves})"

    def fit(self, groups: QueryGroups) -> Self:
        """Fit on the real candidates of ``groups``, one LightGBM query per group."""
        try:
            import lightgbm
        except ImportError as e:
            raise ImportError("lightgbm is not installed: it comes with recnb's optional [search] extra; "
                              "install it with pip install -e \".[search]\" (or make setup)") from e
        labels = groups.labels[groups.mask].numpy()
        if not np.array_equal(labels, np.round(labels)) or labels.min() < 0:
            raise ValueError("groups.labels must be non-negative integers (clicks or grades) for LambdaMART")
        self.model = lightgbm.LGBMRanker(
            objective="lambdarank", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples, random_state=self.seed,
            n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)
        self.model.fit(groups.features[groups.mask].numpy(), labels.astype(np.int64),
                       group=groups.mask.sum(dim=1).numpy(), sample_weight=groups.weights[groups.mask].numpy())
        self.n_features = groups.n_features
        return self

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """Scores ``(Q, m)`` of candidate features ``(Q, m, F)``."""
        if self.model is None:
            raise RuntimeError("LambdaMART is not fitted: call .fit(groups) first")
        if not isinstance(features, torch.Tensor) or features.ndim != 3 or features.shape[2] != self.n_features:
            shape = tuple(features.shape) if hasattr(features, "shape") else type(features).__name__
            raise ValueError(f"features must be a (Q, m, {self.n_features}) tensor, got {shape}")
        q, m, f = features.shape
        return torch.from_numpy(self.model.predict(features.reshape(q * m, f).numpy()).reshape(q, m)).float()


@dataclass(frozen=True)
class ClickExperiment:
    """What :func:`click_experiment` built: the features, training queries and their click log,
    held-out queries and their candidate groups (labels = true grades)."""

    features: QueryItemFeatures
    train_queries: Queries
    log: pd.DataFrame
    test_queries: Queries
    test_groups: QueryGroups


def click_experiment(shop: RecData, n_train_queries: int = 1500, n_test_queries: int = 300, depth: int = 20,
                     eta: float = 1.0, noise: float = 0.02, encoder: Encoder | None = None, seed: int = 0) -> ClickExperiment:
    """Learning to rank from a simulated click log on ``shop``.

    Personalised queries (:func:`recnb.data.queries.make_queries`, seeds ``seed`` and ``seed + 1``
    for the training and held-out ones); each query's ``depth`` candidates are the hybrid first
    stage's top ``depth`` (:meth:`QueryItemFeatures.first_stage`); the logging ranker shows them best
    sellers first (:func:`order_by` the training log's popularity), so rank and popularity go
    together; the click log follows the position-based model with bias ``eta`` and noise clicks
    ``noise`` (:func:`recnb.data.queries.make_click_log`, seed ``seed``). Held-out groups are the
    first stage's candidates of the held-out queries, labelled with their true grades.
    """
    features = QueryItemFeatures(shop, encoder=encoder)
    train = make_queries(shop, n_train_queries, seed=seed, personalised=True)
    test = make_queries(shop, n_test_queries, seed=seed + 1, personalised=True)
    shown = order_by(features.first_stage(train, depth).indices, features.log_popularity)
    log = make_click_log(shop, train, shown, eta=eta, noise=noise, seed=seed)
    groups = features.groups(test, features.first_stage(test, depth).indices)
    return ClickExperiment(features, train, log, test, groups)


def compare_rankers(experiment: ClickExperiment, rankers: Sequence[str] = tuple(RANKERS), lambdamart: bool = True,
                    hidden: int = 0, max_epochs: int = 10, seed: int = 0, k: int = 10, progress: bool = False) -> pd.DataFrame:
    """NDCG@``k`` of every held-out query under each ranker, as a tidy frame ``query_id, type,
    method, ips, ndcg``.

    Methods: ``bm25`` and ``dense`` (one feature each), ``first stage`` (the hybrid order of the
    candidates), each Lightning ranker of ``rankers`` (:data:`RANKERS`) and ``lambdamart`` trained on
    the click log without (``ips=False``) and with (``ips=True``) inverse propensity weights; the
    single-feature and first-stage rows have ``ips = NaN``.
    """
    unknown = [r for r in rankers if r not in RANKERS]
    if unknown:
        raise ValueError(f"rankers must be names of {tuple(RANKERS)}, got {unknown}")
    g = experiment.test_groups
    grades = experiment.test_queries.relevance
    types = experiment.test_queries.types[g.query_ids]
    m = g.mask.shape[1]
    scores: list[tuple[str, float, torch.Tensor]] = [
        ("bm25", np.nan, g.features[:, :, FEATURE_NAMES.index("bm25")]),
        ("dense", np.nan, g.features[:, :, FEATURE_NAMES.index("dense_cosine")]),
        ("first stage", np.nan, -torch.arange(m, dtype=torch.float64).expand(len(g), m)),
    ]
    for ips in (False, True):
        train = click_groups(experiment.log, experiment.features, experiment.train_queries, ips=ips)
        for name in rankers:
            model = RANKERS[name](hidden=hidden, max_epochs=max_epochs, seed=seed, progress=progress).fit(train)
            scores.append((name, float(ips), model.score(g.features)))
        if lambdamart:
            scores.append(("lambdamart", float(ips), LambdaMART(seed=seed).fit(train).score(g.features)))
    frames = [pd.DataFrame({"query_id": g.query_ids, "type": types, "method": name, "ips": ips,
                            "ndcg": ndcg_at_k(s, g, grades, k).double().numpy()}) for name, ips, s in scores]
    return pd.concat(frames, ignore_index=True)
