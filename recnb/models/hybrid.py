"""Hybrid recommendation: blend a collaborative and a content model (001 §4.2.3).

The document writes ``score(u, i) = α · score_cf(u, i) + (1 - α) · score_cb(u, i)`` on the raw
scores. The two live on different scales (a kNN vote can be 30, a cosine at most 1), so the raw
blend is decided by whichever side has the larger spread and ``α`` barely matters until it is
close to 0. Each user's row is therefore normalised first (:func:`recnb.math.blend.normalise`)::

    score(u, i) = α_u · norm_u(score_cf)(i) + (1 - α_u) · norm_u(score_cb)(i),   α_u ∈ [0, 1]

``α_u`` is ``alpha`` for warm users and ``cold_alpha`` (when given) for *cold* users, those with
fewer than ``cold_threshold`` training interactions: collaborative filtering knows little about
them, so they usually want more content. Normalisation runs over the whole row, seen items
included. ``α = 1`` gives the CF ranking, ``α = 0`` the content ranking (every normalisation is
increasing per row).

``α`` and ``cold_alpha`` are parameters: choose them on a validation split with
:func:`recnb.evaluation.tuning.tune`; :func:`recnb.evaluation.blending.alpha_curve` sweeps ``α`` of
two components fitted once.
"""

from __future__ import annotations

from typing import Self, Sequence

import numpy as np
import pandas as pd
import torch

from recnb.data.schema import SplitLike, as_split
from recnb.math.blend import METHODS, blend, normalise
from recnb.math.ranking import PAD, item_indices
from recnb.models.base import Recommender, Users, as_user_tensor


def _check_alpha(name: str, alpha: float | None) -> None:
    if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {alpha}")


class HybridRecommender(Recommender):
    """Per-user normalised ``α``-blend of a CF and a content recommender (see the module docstring).

    ``cf`` and ``content`` are parameters too: ``get_params()`` holds the two models (and, deep,
    ``cf__<name>`` / ``content__<name>``), ``clone()`` clones them, and ``save`` writes them, fitted
    state included, into sub-folders.
    """

    def __init__(
        self,
        cf: Recommender,
        content: Recommender,
        alpha: float = 0.5,
        normalise: str = "minmax",
        cold_alpha: float | None = None,
        cold_threshold: int = 5,
    ) -> None:
        _check_alpha("alpha", alpha)
        _check_alpha("cold_alpha", cold_alpha)
        if normalise not in METHODS:
            raise ValueError(f"normalise must be one of {METHODS}, got {normalise!r}")
        if cold_threshold < 1:
            raise ValueError(f"cold_threshold must be >= 1, got {cold_threshold}")
        self.cf, self.content = cf, content
        self.alpha, self.normalise, self.cold_alpha, self.cold_threshold = alpha, normalise, cold_alpha, cold_threshold

    def fit(self, split: SplitLike, fit_components: bool = True) -> Self:
        """Fit both components on ``split`` (``fit_components=False``: they are already fitted on it)."""
        split = as_split(split)
        if fit_components:
            self.cf.fit(split)
            self.content.fit(split)
        for name, model in (("cf", self.cf), ("content", self.content)):
            if model.seen_ is None:
                raise RuntimeError(f"the {name} component {model!r} is not fitted; fit it or use fit_components=True")
            if model.seen_.shape != (split.n_users, split.n_items):
                raise ValueError(f"the {name} component was fitted on a split of another size: {tuple(model.seen_.shape)}")
        self.remember_split(split)
        return self

    def is_cold(self, users: Users = None) -> torch.Tensor:
        """``(U,)`` bool: fewer than ``cold_threshold`` training interactions."""
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return torch.from_numpy(self.seen_[u.numpy()].getnnz(axis=1)) < self.cold_threshold

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        s_cf, s_cb = self.cf.score(u), self.content.score(u)
        out = blend(s_cf, s_cb, self.alpha, normalise=self.normalise)
        if self.cold_alpha is not None:
            cold = self.is_cold(u)
            if cold.any():
                out[cold] = blend(s_cf[cold], s_cb[cold], self.cold_alpha, normalise=self.normalise)
        return out

    def contributions(self, user: int, items: Sequence[int] | np.ndarray | torch.Tensor) -> pd.DataFrame:
        """The two terms of ``score(user)[i]`` for each ``i`` in ``items``: ``α_u norm(s_cf)(i)`` and ``(1 − α_u) norm(s_cb)(i)``.

        ``α_u`` is ``cold_alpha`` for a cold user (when set), else ``alpha``. Returns a frame with
        two rows per item: ``item``, ``source`` (``"cf"``, ``"content"``), ``contributor``
        (``PAD``: no single item or user), ``similarity`` (NaN), ``value`` (the normalised
        component score) and ``contribution``; decompose a component itself with its own
        ``contributions`` for its evidence.
        """
        self._check_fitted()
        u = as_user_tensor([user], self.n_users_)
        idx = item_indices(items, self.n_items_, "items")
        alpha = self.cold_alpha if self.cold_alpha is not None and bool(self.is_cold(u)[0]) else self.alpha
        parts = [normalise(model.score(u).double(), self.normalise)[0, idx] for model in (self.cf, self.content)]
        value = torch.stack(parts, dim=1).reshape(-1).numpy()  # item by item: cf, content
        weight = np.tile([alpha, 1.0 - alpha], len(idx))
        return pd.DataFrame({"item": np.repeat(idx.numpy(), 2), "source": np.tile(["cf", "content"], len(idx)),
                             "contributor": PAD, "similarity": np.nan, "value": value, "contribution": weight * value})

    def __repr__(self) -> str:
        cold = "" if self.cold_alpha is None else f", cold_alpha={self.cold_alpha:g} (< {self.cold_threshold} items)"
        return f"HybridRecommender({self.cf!r}, {self.content!r}, alpha={self.alpha:g}, normalise={self.normalise!r}{cold})"

