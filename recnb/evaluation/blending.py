"""The quality of a hybrid blend against its weight ``α``, through the one evaluation path.

:func:`alpha_curve` takes a CF and a content model fitted once on a split and evaluates
:class:`~recnb.models.hybrid.HybridRecommender` ``(cf, content, α)`` for every ``α`` of a grid with
:func:`recnb.evaluation.protocol.evaluate` -- the lists, the users left out and the formulas are
those of every other evaluation. Changing ``α`` refits nothing (the blend is computed at scoring
time), so a curve costs one scoring per ``α``. To *choose* ``α`` (or ``cold_alpha``) use
:func:`recnb.evaluation.tuning.tune`, which refits clones and keeps the chosen model apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recnb.data.schema import Split
from recnb.evaluation.protocol import evaluate, evaluated_users
from recnb.math.metrics import RANKING_METRICS
from recnb.models.base import Recommender
from recnb.models.hybrid import HybridRecommender

#: α from 0 (content only) to 1 (CF only) in steps of 0.1
DEFAULT_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def alpha_curve(
    cf: Recommender,
    content: Recommender,
    split: Split,
    grid: Iterable[float] = DEFAULT_GRID,
    k: int = 10,
    metric: str = "ndcg",
    normalise_method: str = "minmax",
    users: np.ndarray | None = None,
    relevant_items: np.ndarray | None = None,
) -> pd.DataFrame:
    """Mean ``metric@k`` of the blend for each ``α`` in ``grid`` (sorted), on ``split``'s test part.

    For each ``α``: :func:`~recnb.evaluation.protocol.evaluate` of ``HybridRecommender(cf, content,
    α, normalise=normalise_method)``, whose score is ``α · norm_u(s_cf) + (1 − α) · norm_u(s_cb)``.
    ``cf`` and ``content`` must be fitted on ``split`` (its train part); they are not changed.
    ``users``: which users (default ``split.test_users``); users with no relevant item are left out
    and seen items excluded, as ``evaluate`` does. ``relevant_items``: count only these items as
    relevant (e.g. new items, to ask how well the blend surfaces them); the ranking still spans the
    whole catalogue. Returns a frame with columns ``alpha``, ``value``, ``users`` (``value`` NaN and
    ``users`` 0 when no user has a relevant item).
    """
    if metric not in RANKING_METRICS:
        raise ValueError(f"metric must be one of {RANKING_METRICS}, got {metric!r}")
    grid = sorted(float(a) for a in grid)
    outside = [a for a in grid if not 0.0 <= a <= 1.0]
    if outside:
        raise ValueError(f"every alpha in grid must lie in [0, 1], got {outside}")
    hybrid = HybridRecommender(cf, content, normalise=normalise_method)
    kept = evaluated_users(split, users, relevant_items=relevant_items)
    if len(kept) == 0:
        return pd.DataFrame({"alpha": grid, "value": np.nan, "users": 0})
    hybrid.fit(split, fit_components=False)
    values = []
    for a in grid:
        hybrid.set_params(alpha=a)
        out = evaluate(hybrid, split, k=k, users=kept, metrics=(metric,), relevant_items=relevant_items)
        values.append(out[f"{metric}@{k}"])
    return pd.DataFrame({"alpha": grid, "value": values, "users": len(kept)})
