"""Rating-prediction error: RMSE and MAE over (user, item, rating) pairs."""

from __future__ import annotations

from typing import Any

import torch

from recnb.data.schema import ITEM_IDX, RATING, USER_IDX, Split


def rmse(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean squared error ``sqrt(mean((r̂ - r)^2))`` over all given pairs."""
    predicted, target = _pairs(predicted, target)
    return torch.sqrt(((predicted - target) ** 2).mean()).item()


def mae(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error ``mean(|r̂ - r|)`` over all given pairs."""
    predicted, target = _pairs(predicted, target)
    return (predicted - target).abs().mean().item()


def _pairs(predicted: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.as_tensor(predicted, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(target, dtype=torch.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"predicted has {p.numel()} values, target has {t.numel()}")
    if p.numel() == 0:
        raise ValueError("no pairs to score: predicted and target are empty")
    return p, t


def rating_metrics(model: Any, split: Split) -> dict[str, float]:
    """RMSE and MAE of a rating model on ``split.test``'s explicit ratings (rows with a rating).

    Predictions come from ``model.predict(users, items)`` when the model has it, otherwise from
    ``model.score(users)`` read at each test pair (for a rating model, ``score`` is the predicted
    rating). Returns ``{"rmse": ..., "mae": ..., "pairs": n}``.
    """
    test = split.test[split.test[RATING].notna()]
    if test.empty:
        raise ValueError(f"split {split.name!r} has no explicit ratings in test (column {RATING!r} is all NaN)")
    u = torch.as_tensor(test[USER_IDX].to_numpy(), dtype=torch.long)
    i = torch.as_tensor(test[ITEM_IDX].to_numpy(), dtype=torch.long)
    target = torch.as_tensor(test[RATING].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        if hasattr(model, "predict"):
            pred = model.predict(u, i)
        else:  # score a batch of users at a time and read each test pair's entry
            uniq, inverse = torch.unique(u, return_inverse=True)
            pred = torch.empty(len(u))
            for start in range(0, len(uniq), 1024):
                rows = (inverse >= start) & (inverse < start + 1024)
                pred[rows] = model.score(uniq[start : start + 1024])[inverse[rows] - start, i[rows]]
    return {"rmse": rmse(pred, target), "mae": mae(pred, target), "pairs": float(len(test))}
