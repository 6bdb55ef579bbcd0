"""Data: the synthetic shop, MovieLens-100k, validation, cleaning, splits and the DataModule.

``load(name, **kwargs)`` is the one entry point notebooks need: ``load("synthetic", n_users=...)``
calls :func:`~recnb.data.synthetic.make_shop`, ``load("movielens", path=...)``
:func:`~recnb.data.movielens.load_movielens`. The DataModule lives in
:mod:`recnb.data.datamodule` (not imported here: it pulls in Lightning); descriptive statistics
in :mod:`recnb.data.analysis`.
"""

from __future__ import annotations

from typing import Any

from recnb.data.cleaning import clean
from recnb.data.schema import IdIndex, RecData, Split
from recnb.data.splits import (
    hold_out_items,
    holdout_validation,
    leave_last_out,
    positives,
    random_holdout,
    split_summary,
    time_cut,
)
from recnb.data.synthetic import make_shop
from recnb.data.validation import DataValidationError, validate
from recnb.data.movielens import load_movielens


def load(name: str = "synthetic", **kwargs: Any) -> RecData:
    """A data set by name: ``"synthetic"`` (:func:`make_shop`) or ``"movielens"`` (MovieLens-100k)."""
    if name == "synthetic":
        return make_shop(**kwargs)
    if name in ("movielens", "movielens-100k", "ml-100k"):
        return load_movielens(**kwargs)
    raise ValueError(f"unknown data set {name!r}: expected 'synthetic' or 'movielens'")


__all__ = [
    "DataValidationError",
    "IdIndex",
    "RecData",
    "Split",
    "clean",
    "hold_out_items",
    "holdout_validation",
    "leave_last_out",
    "load",
    "make_shop",
    "positives",
    "random_holdout",
    "split_summary",
    "time_cut",
    "validate",
]
