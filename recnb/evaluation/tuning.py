"""One hyper-parameter search for every recommender: fit clones on a validation split, keep the table.

:func:`tune` searches a space of parameters (names of the model's ``get_params(deep=True)``, so
``"l2"`` for EASE or ``"cf__neighbours"`` for a hybrid's CF component):

- ``search="grid"``: every combination of the lists (``sklearn.model_selection.ParameterGrid``:
  keys in sorted order, the last one varying fastest);
- ``search="random"``: ``n_trials`` draws (``sklearn.model_selection.ParameterSampler``, seeded by
  ``seed``): a list is drawn uniformly, a ``scipy.stats`` distribution by its ``rvs``; when every
  value is a list, the draws are distinct settings (at most the grid's size);
- ``search="tpe"``: ``n_trials`` of Optuna's tree-structured Parzen estimator (``TPESampler(seed)``),
  only where the optional ``optuna`` package is installed; values are lists (categorical) or Optuna
  distributions.

Each trial is ``model.clone().set_params(**params)``, fitted on ``train_split`` and scored by
:func:`recnb.evaluation.protocol.evaluate` (``metric@k`` on ``validation_split``'s held-out part,
seen items excluded). Trials are discarded after scoring: no model is left fitted on validation
data, and ``model`` itself is never changed. :class:`TuneResult` holds the table (one row per trial:
the parameters, ``value``, ``users``, ``fit_s``) and ``best_params_``; :meth:`TuneResult.refit`
fits a fresh model with them on the split you choose (the full training data). Ties go to the
earlier trial (for a grid over one parameter: its first value in the order given).

Choose on a validation split carved out of the training data
(:func:`recnb.data.splits.holdout_validation`), never on the test split: the best of several noisy
estimates is biased upwards (notebook 07, 7.6).
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import ParameterGrid, ParameterSampler

from recnb.data.schema import Split
from recnb.evaluation.protocol import evaluate
from recnb.math.metrics import RANKING_METRICS
from recnb.models.base import Recommender

SEARCHES = ("grid", "random", "tpe")


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    ``table``: one row per trial, in the order tried: ``trial`` (0, 1, ...), one column per searched
    parameter, ``value`` (``metric@k`` on the validation split), ``users`` (users scored) and
    ``fit_s`` (seconds of ``fit``). ``best_params_``: the parameters of the trial with the highest
    ``value`` (the earliest on ties), ``best_value_`` its value. ``metric``: ``"<metric>@<k>"``.
    ``model``: an unfitted clone of the model searched (its parameters as they were given).
    """

    table: pd.DataFrame
    best_params_: dict[str, Any]
    best_value_: float
    metric: str
    model: Recommender

    def refit(self, split: Split, **fit_options: Any) -> Recommender:
        """A fresh model with :attr:`best_params_`, fitted on ``split`` (``fit_options`` go to ``fit``)."""
        return self.model.clone().set_params(**self.best_params_).fit(split, **fit_options)

    def __repr__(self) -> str:
        return (f"TuneResult({len(self.table)} trials of {type(self.model).__name__}, best {self.metric} "
                f"{self.best_value_:.4f} at {self.best_params_})")


def tune(
    model: Recommender,
    train_split: Split,
    validation_split: Split,
    space: Mapping[str, Any],
    metric: str = "ndcg",
    k: int = 10,
    search: str = "grid",
    n_trials: int | None = None,
    seed: int = 0,
    users: np.ndarray | list[int] | None = None,
    items: np.ndarray | list[int] | None = None,
) -> TuneResult:
    """Search ``space`` for the parameters of ``model`` maximising ``metric@k`` on ``validation_split``.

    ``train_split``: what each trial is fitted on; ``validation_split``: whose held-out pairs score
    it -- usually the same split, ``holdout_validation(split)``, passed twice (its train part
    excludes the validation pairs). ``space``: parameter name -> list of values (or, for
    ``search="random"``, a ``scipy.stats`` distribution). ``search``: ``"grid"``, ``"random"`` (needs
    ``n_trials``, seeded by ``seed``) or ``"tpe"`` (Optuna, if installed). ``users``: score only these
    users (e.g. one segment; default every validation user with a held-out item). ``items``: a
    shelf for :func:`~recnb.evaluation.protocol.evaluate` (e.g. the items listed when the
    validation data was logged, leaving out items that arrive only later). Returns a
    :class:`TuneResult`; see the module docstring.
    """
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if metric not in RANKING_METRICS:
        raise ValueError(f"metric must be one of {RANKING_METRICS}, got {metric!r}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    sizes = {(s.n_users, s.n_items) for s in (train_split, validation_split)}
    if len(sizes) != 1:
        raise ValueError(f"train_split and validation_split must index the same users and items, got sizes {sorted(sizes)}")
    _check_space(model, space, search)
    if search == "grid":
        if n_trials is not None:
            raise ValueError(f"n_trials is for search='random' or 'tpe'; a grid tries every combination (got {n_trials})")
    elif isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer) or n_trials < 1:
        raise ValueError(f"search={search!r} needs n_trials, a positive integer, got {n_trials!r}")
    prototype = model.clone()

    def run(params: dict[str, Any]) -> dict[str, Any]:
        trial = prototype.clone().set_params(**params)
        start = time.perf_counter()
        trial.fit(train_split)
        fit_s = time.perf_counter() - start
        out = evaluate(trial, validation_split, k=k, users=users, metrics=(metric,), items=items)
        return {**params, "value": out[f"{metric}@{k}"], "users": int(out["users"]), "fit_s": fit_s}

    if search == "tpe":
        rows = _tpe(space, int(n_trials), seed, run)
    else:
        settings = ParameterGrid(dict(space)) if search == "grid" else \
            ParameterSampler(dict(space), n_iter=int(n_trials), random_state=seed)
        rows = [run({name: _plain(v) for name, v in params.items()}) for params in settings]
    table = pd.DataFrame(rows, columns=[*space, "value", "users", "fit_s"])
    table.insert(0, "trial", np.arange(len(table)))
    values = table["value"].to_numpy(dtype=np.float64)
    if np.isnan(values).all():
        raise ValueError(f"every trial's {metric}@{k} is NaN (no validation user has a relevant item?): nothing to choose")
    best = int(np.nanargmax(values))  # the first maximum, NaN trials skipped: ties to the earlier trial
    best_params = {name: _plain(table[name].iloc[best]) for name in space}
    return TuneResult(table, best_params, float(table["value"].iloc[best]), f"{metric}@{k}", prototype)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (what ``set_params`` and JSON want)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_space(model: Recommender, space: Mapping[str, Any], search: str) -> None:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict: parameter name -> values, got {space!r}")
    known = model.get_params(deep=True)
    unknown = [name for name in space if name not in known]
    if unknown:
        raise ValueError(f"{type(model).__qualname__} has no parameter {', '.join(map(repr, unknown))}; its "
                         f"parameters are: {', '.join(known)}")
    for name, values in space.items():
        listed = isinstance(values, Sequence | np.ndarray) and not isinstance(values, str)
        if listed and len(values) == 0:
            raise ValueError(f"space[{name!r}] is empty: give at least one value")
        if search == "grid" and not listed:
            raise ValueError(f"space[{name!r}] must be a list of values for search='grid', got {values!r} "
                             f"(a distribution needs search='random')")
        if search == "random" and not listed and not callable(getattr(values, "rvs", None)):
            raise ValueError(f"space[{name!r}] must be a list or a scipy.stats distribution (with rvs), got {values!r}")


def _tpe(space: Mapping[str, Any], n_trials: int, seed: int, run: Any) -> list[dict[str, Any]]:
    """``n_trials`` of Optuna's TPE (ask and tell), maximising the trials' ``value``."""
    if importlib.util.find_spec("optuna") is None:
        raise ModuleNotFoundError("search='tpe' uses Optuna, which is not installed: pip install optuna "
                                  "(or use search='grid' or 'random')")
    optuna = importlib.import_module("optuna")
    distributions = {}
    for name, values in space.items():
        if isinstance(values, optuna.distributions.BaseDistribution):
            distributions[name] = values
        elif isinstance(values, Sequence | np.ndarray) and not isinstance(values, str):
            distributions[name] = optuna.distributions.CategoricalDistribution([_plain(v) for v in values])
        else:
            raise ValueError(f"space[{name!r}] must be a list or an Optuna distribution for search='tpe', got {values!r}")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial; restored below
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        rows = []
        for _ in range(n_trials):
            trial = study.ask(distributions)
            row = run(dict(trial.params))
            study.tell(trial, row["value"])
            rows.append(row)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return rows
