"""The interface every recnb recommender shares.

A recommender is fitted on a :class:`~recnb.data.schema.Split`, then

- ``score(users)`` gives a ``(len(users), n_items)`` float tensor, higher = more relevant;
- ``recommend(users, k)`` ranks those scores with :func:`recnb.math.ranking.rank`, excluding
  each user's training items by default.

Trained models are ``LightningModule`` s (:class:`LightningRecommender`): ``fit`` builds the
DataModule and a seeded :func:`~recnb.training.make_trainer`, or you can drive them with your own
``Trainer`` and :class:`~recnb.data.datamodule.InteractionDataModule`.

Every recommender is also a library object, as in scikit-learn: its parameters are the arguments
of its ``__init__`` (``get_params`` / ``set_params``; ``clone`` gives an unfitted copy, and
``sklearn.base.clone`` works), and ``save(path)`` / ``Class.load(path)`` / :func:`load` write and
read it without pickle (:mod:`recnb.models.persistence`). :func:`recnb.evaluation.tuning.tune`
searches parameters over clones.
"""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import scipy.sparse as sp
import torch

from recnb.data.datamodule import InteractionDataModule
from recnb.data.schema import ITEM, USER, IdIndex, Split, SplitLike, as_split, dense_rows
from recnb.math.metrics import batch_ndcg
from recnb.math.ranking import PAD, Ranking, indices, item_indices, rank
from recnb.math.similarity import all_vs_all
from recnb.models.persistence import checkpoint_state, load_model, save_model, state_from_checkpoint
from recnb.training import make_trainer, scoped_fit_state

#: users scored at once by ``recommend`` (and ``evaluate``): peak memory is ``batch * n_items`` scores
BATCH_SIZE = 1024

Users = torch.Tensor | np.ndarray | list[int] | None
Items = torch.Tensor | np.ndarray | list[int]


def as_user_tensor(users: Users, n_users: int) -> torch.Tensor:
    """User indices as a 1-D int64 tensor; ``None`` means all users ``0..n_users-1``.

    Checked by :func:`recnb.math.ranking.indices`, as item indices are: integers in
    ``0..n_users-1`` only (a bool mask, floats or raw ids raise ``TypeError``, an index out of range
    ``IndexError``).
    """
    if users is None:
        return torch.arange(n_users)
    return indices(users, n_users, "users", noun="user", hint="; raw user ids go through recommend_ids")


def _positions(known: np.ndarray, ids: Any, name: str, noun: str) -> np.ndarray:
    """Indices of the raw ``ids`` among ``known`` (a split's sorted ids, :meth:`IdIndex.lookup`);
    ``KeyError`` naming the unknown ones (the first ten)."""
    raw = np.asarray(ids).reshape(-1)
    pos, found = IdIndex(known).lookup(raw)
    if not found.all():
        unknown = raw[~found]
        shown = ", ".join(repr(v) for v in unknown[:10].tolist()) + (", ..." if len(unknown) > 10 else "")
        raise KeyError(f"{name} holds {len(unknown)} unknown {noun} id(s): {shown} (the model knows the "
                       f"{len(known)} {noun} ids of the split it was fitted on)")
    return pos


def _id_frame(query_ids: np.ndarray, ranking: Ranking, item_ids: np.ndarray, names: tuple[str, str]) -> pd.DataFrame:
    """A ``(len(query_ids), k)`` ranking of item indices as a long frame of ids: one row per slot
    holding an item (``PAD`` slots left out), row by row, best first -- ``names[0]`` (the query's
    id), ``rank`` (1-based), ``names[1]`` (the item's id), ``score``."""
    idx = ranking.indices.numpy()
    rows, cols = np.nonzero(idx != PAD)
    return pd.DataFrame({names[0]: query_ids[rows], "rank": cols + 1, names[1]: item_ids[idx[rows, cols]],
                         "score": ranking.scores.numpy()[rows, cols]})


class Recommender(ABC):
    """Base of every recommender: ``fit`` -> ``score`` -> ``recommend``.

    Subclasses implement :meth:`fit` (which must call :meth:`remember_split`) and :meth:`score`.
    ``fit`` takes a :class:`~recnb.data.schema.Split` or a scipy sparse user-item matrix, turned into
    a Split by :func:`~recnb.data.schema.as_split` as its first step.
    """

    #: training interactions as a sparse ``(n_users, n_items)`` CSR matrix, set by :meth:`remember_split`
    seen_: sp.csr_matrix | None = None
    #: raw ids of the fitted split's users and items, sorted (index ``i`` is id ``user_ids_[i]``), set by :meth:`remember_split`
    user_ids_: np.ndarray | None = None
    item_ids_: np.ndarray | None = None

    @abstractmethod
    def fit(self, split: SplitLike) -> Self:
        """Learn from ``split.train`` (or from a sparse user-item matrix); returns ``self``."""

    @abstractmethod
    def score(self, users: Users = None) -> torch.Tensor:
        """Scores ``(len(users), n_items)``, float32, higher = more relevant.

        A new tensor that the caller owns: :meth:`recommend` writes ``-inf`` over the seen items
        of it in place, so it must not be (a view of) anything the model keeps.
        """

    def remember_split(self, split: Split) -> None:
        """Keep what ``recommend`` needs from the split: the sparse seen-item matrix (and so the
        sizes), and the raw ids of its users and items (``split.users.ids``, ``split.items.ids``)
        that :meth:`recommend_ids` looks ids up in."""
        self.seen_ = split.seen_csr()
        self.user_ids_ = split.users.ids
        self.item_ids_ = split.items.ids

    def seen_rows(self, users: Users) -> torch.Tensor:
        """Dense ``(len(users), n_items)`` bool mask of the users' training items (one batch)."""
        self._check_fitted()
        return dense_rows(self.seen_, as_user_tensor(users, self.n_users_).numpy())

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return self.seen_.shape[0]

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return self.seen_.shape[1]

    def _check_fitted(self) -> None:
        if self.seen_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call .fit(split) first")

    def recommend(
        self,
        users: Users = None,
        k: int = 10,
        *,
        items: Items | None = None,
        filter_items: Items | None = None,
        exclude_seen: bool = True,
        threshold: float | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> Ranking:
        """Top-``k`` items per user, best first (see :func:`recnb.math.ranking.rank`).

        ``users``: integer user indices ``0..n_users-1`` (``None``: all; raw ids go through
        :meth:`recommend_ids`). The candidates of user ``u`` are
        ``C_u = items ∖ filter_items ∖ seen(u)``, as in implicit's ``recommend``:
        ``items`` (distinct item indices) restricts the candidates to that set (default: every
        item), ``filter_items`` removes item indices from every user's candidates, and
        ``exclude_seen`` removes each user's training items; ``threshold`` drops items scoring
        below it. Each row ranks ``C_u`` by descending score, ties to the lower item index, and
        has ``min(k, len(items))`` (default ``min(k, n_items)``) slots, ``PAD`` where ``C_u`` runs
        out. Returns a :class:`~recnb.math.ranking.Ranking` ``(len(users), ·)`` of *global* item
        indices, restricted or not.

        Users are scored ``batch_size`` at a time; each batch's seen items are its rows of the
        sparse seen matrix (only their ``nnz`` entries are written ``-inf``), ``filter_items`` are
        ``-inf`` columns, and ``items`` selects ``(batch, len(items))`` columns (sorted, so ties
        still go to the lower item index), so peak memory is ``batch_size * n_items`` scores
        whatever the number of users.
        """
        self._check_fitted()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        u = as_user_tensor(users, self.n_users_)
        candidates = None
        if items is not None:
            candidates = torch.sort(item_indices(items, self.n_items_, "items", distinct=True)).values
            if len(candidates) == 0:
                raise ValueError("items must hold at least one item index (None: every item is a candidate)")
        banned = None if filter_items is None else item_indices(filter_items, self.n_items_, "filter_items")
        parts = []
        for start in range(0, max(len(u), 1), batch_size):
            batch = u[start : start + batch_size]
            with torch.no_grad():
                scores = self.score(batch)
            exclude = self.seen_[batch.numpy()] if exclude_seen else None  # the batch's CSR rows
            if banned is not None:
                scores[:, banned] = -torch.inf  # rank leaves -inf out
            if candidates is not None:
                scores = scores[:, candidates]  # (batch, len(items)), a copy
                exclude = None if exclude is None else exclude[:, candidates.numpy()]
            top = rank(scores, k=k, exclude=exclude, threshold=threshold, in_place=True)
            if candidates is not None:  # positions among the candidates -> item indices
                top = Ranking(torch.where(top.indices == PAD, PAD, candidates[top.indices.clamp(min=0)]), top.scores)
            parts.append(top)
        if len(parts) == 1:
            return parts[0]
        return Ranking(torch.cat([p.indices for p in parts]), torch.cat([p.scores for p in parts]))

    def recommend_ids(
        self,
        user_ids: Any,
        k: int = 10,
        *,
        items: Any = None,
        filter_items: Any = None,
        exclude_seen: bool = True,
        threshold: float | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> pd.DataFrame:
        """:meth:`recommend` in raw ids: ``user_ids``, ``items`` and ``filter_items`` are ids of the
        split the model was fitted on, looked up in its id indexes (``user_ids_``, ``item_ids_``).

        Returns a long frame, one row per recommended item, users in the order given and best
        first: ``user_id``, ``rank`` (1-based), ``item_id``, ``score``; a user with fewer than
        ``k`` candidates has fewer rows. An unknown id raises ``KeyError`` naming the unknown ones.
        """
        self._check_fitted()
        u = _positions(self.user_ids_, user_ids, "user_ids", "user")
        top = self.recommend(
            u, k,
            items=None if items is None else _positions(self.item_ids_, items, "items", "item"),
            filter_items=None if filter_items is None else _positions(self.item_ids_, filter_items, "filter_items", "item"),
            exclude_seen=exclude_seen, threshold=threshold, batch_size=batch_size,
        )
        return _id_frame(self.user_ids_[u], top, self.item_ids_, (USER, ITEM))

    # -- parameters, cloning and persistence (scikit-learn's semantics) ---------------------------
    #: fitted attributes that scoring does not need and that are neither saved nor pickled
    #: (a Trainer, a peer library's own model object, the encoder a content model used)
    _transient_attributes: tuple[str, ...] = ()

    @classmethod
    def param_names(cls) -> list[str]:
        """The parameters: the named arguments of ``__init__``, in order (as scikit-learn's ``BaseEstimator``)."""
        if cls.__init__ is object.__init__:
            return []
        names = []
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__qualname__}.__init__ takes {'*' if p.kind == p.VAR_POSITIONAL else '**'}{p.name}: "
                                "a recommender's parameters must be named arguments of __init__")
            if p.name != "self":
                names.append(p.name)
        return names

    def _get_param(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__qualname__}.__init__ takes {name!r} but the object keeps no attribute "
                                 f"{name!r}: parameters are read from same-named attributes") from None

    def _set_param(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``{name: value}`` of the :meth:`param_names`, read from same-named attributes (Lightning
        models: from ``self.hparams``). ``deep``: also ``<name>__<sub>`` for the parameters of a
        parameter that has ``get_params`` itself (the hybrid's ``cf__neighbours``)."""
        out: dict[str, Any] = {}
        for name in self.param_names():
            value = self._get_param(name)
            out[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{key}": sub for key, sub in value.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> Self:
        """Set parameters by name (``<name>__<sub>`` for a sub-model's); returns ``self``.

        As in scikit-learn nothing is validated or refitted here: call :meth:`fit` afterwards. An
        unknown name raises ``ValueError`` naming the class and its parameters.
        """
        names = self.param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, nest, sub = key.partition("__")
            if name not in names:
                raise ValueError(f"{type(self).__qualname__} has no parameter {name!r}; its parameters are: "
                                 f"{', '.join(names) or '(none)'}")
            if nest:
                nested.setdefault(name, {})[sub] = value
            else:
                self._set_param(name, value)
        for name, sub in nested.items():
            owner = self._get_param(name)
            if not hasattr(owner, "set_params"):
                raise ValueError(f"{type(self).__qualname__}.{name} is a {type(owner).__name__}, which has no parameters "
                                 f"to set: {', '.join(f'{name}__{k}' for k in sub)}")
            owner.set_params(**sub)
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same parameters: ``type(self)(**params)``, as ``sklearn.base.clone``.

        Each parameter is cloned in turn: an object with ``get_params`` (a sub-model, an encoder)
        is rebuilt from its own parameters, anything else is deep-copied. Nothing fitted is copied.
        """
        return type(self)(**{name: clone_param(value) for name, value in self.get_params(deep=False).items()})

    def __sklearn_clone__(self) -> Self:  # sklearn.base.clone(model) uses it
        return self.clone()

    def fitted_state(self) -> dict[str, Any]:
        """The fitted attributes: every attribute whose name ends in ``_`` (``seen_``, ``weights_``...),
        except the :attr:`_transient_attributes`. What :meth:`save` writes besides the parameters
        (and a Lightning model's ``state_dict``)."""
        skip = set(self._transient_attributes)
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_") and k not in skip}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Set the fitted attributes of :meth:`fitted_state` (after :meth:`load`), then rebuild what
        they imply (:meth:`_after_load`)."""
        for name, value in state.items():
            setattr(self, name, value)
        self._after_load()

    def _after_load(self) -> None:
        """Recompute attributes derived from the fitted state that are not saved (a cached transpose)."""

    def save(self, path: str | Path) -> Path:
        """Write the model into the folder ``path``: parameters and sizes as JSON (``model.json``, with
        the class as ``module:qualname`` and the recnb version), arrays and sparse matrices (by their
        CSR parts) in ``arrays.npz``, a sub-model in a sub-folder (:mod:`recnb.models.persistence`).
        Nothing is pickled. Returns the folder; ``Class.load(path)`` reads it back."""
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """The model :meth:`save` wrote into ``path``; it must be a ``cls`` (or a subclass). A loaded
        model scores and recommends as the saved one did."""
        return load_model(path, cls)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled state: the instance's attributes less the :attr:`_transient_attributes` (no Trainer)."""
        getstate = getattr(super(), "__getstate__", None)  # a LightningModule's drops its own trainer reference
        parent = getstate() if getstate is not None else None
        state = dict(parent if parent is not None else vars(self))
        for name in self._transient_attributes:
            state.pop(name, None)
        return state

    def __repr__(self) -> str:  # short, stable: notebooks print models
        return f"{type(self).__name__}()"


def clone_param(value: Any) -> Any:
    """A parameter's clone for :meth:`Recommender.clone`: rebuilt from ``get_params`` when it has
    them, element by element for a list or tuple, else ``copy.deepcopy`` (``sklearn.base.clone``'s rule)."""
    if hasattr(value, "clone") and hasattr(value, "get_params") and not isinstance(value, type):
        return value.clone()
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value)(**{k: clone_param(v) for k, v in value.get_params().items()})
    if isinstance(value, (list, tuple)):
        return type(value)(clone_param(v) for v in value)
    return copy.deepcopy(value)


def check_sizes(n_users: int | None, n_items: int | None) -> bool:
    """Whether a Lightning model's size hyper-parameters are set: both ``None`` (sized later by
    ``build``) gives ``False``, two positive integers ``True``; anything else a ``ValueError``."""
    if n_users is None and n_items is None:
        return False
    for name, value in (("n_users", n_users), ("n_items", n_items)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"n_users and n_items must both be None or both positive integers, got {name}={value!r}")
    return True


def load(path: str | Path) -> Recommender:
    """The recommender saved in ``path``, of the class ``model.json`` names (only classes of
    ``recnb`` are imported; any other name is refused with a ``ValueError``)."""
    return load_model(path, Recommender)


class SimilarItems(Recommender):
    """A recommender with an item-item similarity: :meth:`similar_items` ("more like this").

    Subclasses implement :meth:`item_similarity`; :class:`ItemVectors` does it as the cosine of
    item vectors.
    """

    @abstractmethod
    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        """``(len(items), n_items)`` float: ``sim(i, j)`` of each of ``items`` (checked int64 item
        indices) with every item ``j``, higher = more similar; ``-inf`` where ``j`` is no candidate
        neighbour of ``i``. A new tensor the caller owns (:meth:`similar_items` writes into it)."""

    def similar_items(self, items: Items, k: int = 10, filter_items: Items | None = None) -> Ranking:
        """The ``k`` items most similar to each of ``items``: a ``Ranking`` ``(len(items), min(k, n_items))``.

        Row ``r`` ranks every item ``j`` by descending ``sim(items[r], j)`` (:meth:`item_similarity`),
        ties to the lower index; the item itself is never among its neighbours, nor is any of
        ``filter_items``; ``PAD`` where the candidates run out. Item indices in and out.
        """
        self._check_fitted()
        idx = item_indices(items, self.n_items_, "items")
        banned = None if filter_items is None else item_indices(filter_items, self.n_items_, "filter_items")
        with torch.no_grad():
            sims = self.item_similarity(idx)
        sims[torch.arange(len(idx)), idx] = -torch.inf  # never its own neighbour
        if banned is not None:
            sims[:, banned] = -torch.inf
        return rank(sims, k=k, in_place=True)

    def similar_item_ids(self, item_ids: Any, k: int = 10, filter_items: Any = None) -> pd.DataFrame:
        """:meth:`similar_items` in raw ids (``item_ids`` and ``filter_items`` are item ids of the fitted
        split): a long frame, one row per neighbour, best first -- ``item_id`` (the query),
        ``rank`` (1-based), ``similar_item_id``, ``score``. Unknown ids raise ``KeyError`` naming them."""
        self._check_fitted()
        idx = _positions(self.item_ids_, item_ids, "item_ids", "item")
        banned = None if filter_items is None else _positions(self.item_ids_, filter_items, "filter_items", "item")
        top = self.similar_items(idx, k, filter_items=banned)
        return _id_frame(self.item_ids_[idx], top, self.item_ids_, (ITEM, f"similar_{ITEM}"))


class ItemVectors(SimilarItems):
    """A recommender with item vectors ``v_i`` (:meth:`item_vectors`): its item-item similarity is
    their cosine, ``sim(i, j) = <v_i, v_j> / (||v_i|| ||v_j||)`` (0 for a zero vector,
    :func:`~recnb.math.similarity.all_vs_all`)."""

    @abstractmethod
    def item_vectors(self) -> torch.Tensor:
        """``(n_items, d)`` float item vectors (detached)."""

    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        """Cosine of ``item_vectors()[items]`` ``(len(items), d)`` with every item vector: ``(len(items), n_items)``."""
        v = self.item_vectors()
        return all_vs_all(v[items], v)


class LightningRecommender(Recommender, pl.LightningModule):
    """A recommender trained by a Lightning ``Trainer``.

    Subclasses define ``build`` (parameters sized for the split), ``datamodule``, ``training_step``
    on the batches of :class:`~recnb.data.datamodule.InteractionDataModule` and ``score``; ``fit``
    does the rest, and validation (when ``fit`` is given a ``validation`` split) logs ``val_ndcg@10``.
    Hyper-parameters given to ``__init__`` are saved with ``save_hyperparameters`` and read back
    from ``self.hparams`` (``max_epochs``, ``batch_size``, ``seed``, ``progress``...); they are the
    model's :meth:`get_params`. The sizes are hyper-parameters too (``n_users``, ``n_items``, set by
    ``build``), and ``__init__`` creates the parameters when they are given, so
    ``Class.load_from_checkpoint(path)`` rebuilds the model from a ``Trainer`` checkpoint; the
    checkpoint also carries the fitted state (``seen_``, the raw ids: :meth:`on_save_checkpoint`).
    Pickling drops the Trainer (``trainer_``, whose logger holds the training curves of this process).
    """

    _transient_attributes = ("trainer_",)

    def _get_param(self, name: str) -> Any:
        hp: Any = self.hparams
        return hp[name] if name in hp else super()._get_param(name)

    def _set_param(self, name: str, value: Any) -> None:
        hp: Any = self.hparams
        if name in hp:
            hp[name] = value
        else:
            super()._set_param(name, value)

    def clone(self) -> Self:
        """An unfitted copy with the same parameters. The sizes ``n_users`` / ``n_items`` are what
        ``build`` learnt from a split, not settings, so the clone has none (and no tables): like any
        unfitted model it must be fitted before it scores."""
        params = {name: clone_param(value) for name, value in self.get_params(deep=False).items()}
        return type(self)(**{**params, **{name: None for name in ("n_users", "n_items") if name in params}})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the fitted state (:meth:`fitted_state`: ``seen_``, ids...) in the checkpoint, as tensors."""
        checkpoint["recnb_state"] = checkpoint_state(self.fitted_state(), type(self).__qualname__)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the fitted state written by :meth:`on_save_checkpoint` (before the weights are loaded)."""
        if "recnb_state" in checkpoint:
            self.restore_state(state_from_checkpoint(checkpoint["recnb_state"], f"{type(self).__qualname__} checkpoint"))

    def build(self, split: Split) -> None:
        """Create the parameters sized for ``split``, drawn from ``hparams.seed`` (before training)."""
        raise NotImplementedError

    def datamodule(self, split: Split) -> pl.LightningDataModule:
        """The DataModule ``fit`` trains on; subclasses choose batches (triples, ratings...)."""
        raise NotImplementedError

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Log ``val_ndcg@10`` of the batch's users (seen items excluded, as in ``evaluate``)."""
        value, n = batch_ndcg(self.score(batch["user"]), batch["seen"], batch["relevant"], k=10)
        if n:  # sync_dist: under DDP, the mean over ranks (each rank validates every user: the same value)
            self.log("val_ndcg@10", value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)

    def fit(self, split: SplitLike, trainer: pl.Trainer | None = None, validation: Split | None = None) -> Self:
        """Train on ``split.train`` (or a sparse user-item matrix) with ``trainer`` (default: :func:`~recnb.training.make_trainer`).

        ``validation``: a Split of the same users and items whose held-out items are validated on
        after every epoch (``val_ndcg@10`` in the logger's history), e.g. ``val =
        holdout_validation(split)`` then ``fit(val, validation=val)``; ``None`` (default): no
        validation loop. ``split.test`` is never looked at. With a multi-process ``trainer``
        (``make_trainer(devices=2)``), the trained weights of rank 0 come back to this object.
        Whatever the trainer, the process's threads, deterministic mode, global generators, warning
        filters and logger levels are as before when ``fit`` returns or raises
        (:func:`~recnb.training.scoped_fit_state`).
        """
        split = as_split(split)
        with scoped_fit_state():  # build's draws and any Trainer's run: the process comes back as it was
            self.remember_split(split)
            self.build(split)
            datamodule = self.datamodule(split)
            if validation is not None:
                if not isinstance(datamodule, InteractionDataModule):
                    raise TypeError(f"validation needs an InteractionDataModule, {type(self).__name__}.datamodule gave "
                                    f"{type(datamodule).__name__}")
                datamodule.validate_on(validation)
            hp: Any = self.hparams
            if trainer is None:
                trainer = make_trainer(
                    max_epochs=hp.get("max_epochs", 10), seed=hp.get("seed", 0), progress=hp.get("progress", False)
                )
            self.trainer_ = trainer
            trainer.fit(self, datamodule=datamodule)
        self.eval()
        return self

    def __repr__(self) -> str:
        return pl.LightningModule.__repr__(self)
