"""The two forecasts a model has to beat, and the scores every forecast gets, on the original scale.

Shapes: N steps, W windows, H horizon. A window's origin t is the index of its last input; its forecast
covers t+1..t+H.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error


def last_value(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Persistence: every step ahead is the last value seen. values (N,), origins (W,) -> (W, H)."""
    return np.repeat(values[origins][:, None], horizon, axis=1)


def seasonal_naive(values: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Step t+k is the value one season before it (52 weeks: the same week last year), from the last
    season seen when k > season. values (N,), origins (W,) -> (W, H); NaN where the series is too short."""
    k = np.arange(1, horizon + 1)
    back = season * np.ceil(k / season).astype(int)  # whole seasons, so that the value is known at t
    index = origins[:, None] + k - back  # (W, H)
    return np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)


def scores(predicted: Tensor, actual: Tensor) -> dict[str, float]:
    """MSE, MAE and MAPE (in %) over every step of every window; forecasts that are NaN are left out."""
    predicted, actual = torch.as_tensor(predicted).double().flatten(), torch.as_tensor(actual).double().flatten()
    known = torch.isfinite(predicted)
    if not known.any():
        return {}
    predicted, actual = predicted[known], actual[known]
    return {
        "mse": float(mean_squared_error(predicted, actual)),
        "mae": float(mean_absolute_error(predicted, actual)),
        "mape": 100 * float(mean_absolute_percentage_error(predicted, actual)),
    }
