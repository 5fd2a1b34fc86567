"""Forecast data: a series -> scaled windows, held in memory as tensors and served in fast batches.

Shapes: W windows, T timesteps (inputs per window), C inputs per step (the target, then extra features),
H horizon (targets per window).

A few thousand windows fit in one tensor, and an LSTM this small trains in ~2.5 ms per batch on a CPU, so
Lightning's own cost per step (hooks, logging, a DataLoader fetch: ~0.7 ms) would add a quarter.
The training loader therefore yields one item per epoch: the epoch's batches, freshly shuffled, which the
model steps through (see ForecastModel.training_step). Validation and test are one batch each (one per
process when several train together: each serves its share, see tasks/common/sharding.py).
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from tasks.common.errors import InputError
from tasks.common.sharding import ShardedBatches, replica, resume_point, shuffled_batches
from tasks.forecast.baselines import last_value, seasonal_naive
from tasks.forecast.series import (MISSING, SCALINGS, Scaler, Series, load_series, make_windows, show_time,
                                   split_points, window_origins)

SPLITS = ("train", "val", "test")


class Windows(NamedTuple):
    """Evaluation windows with what scoring needs on the original scale."""

    inputs: Tensor  # (W, T, C) float32, scaled
    targets: Tensor  # (W, H) float32, the scaled target
    actual: Tensor  # (W, H) float64, the target on the original scale
    last: Tensor  # (W, H) float64, last-value baseline
    seasonal: Tensor  # (W, H) float64, seasonal-naive baseline (NaN where the series is too short for it)
    origins: Tensor  # (W,) long, index of each window's last input in the series


class EpochOfBatches(Dataset):
    """One item, drawn once per epoch: this process's share of the training windows, in a new seeded order
    every epoch, cut into batches.

    item -> [(inputs (B, T, C), targets (B, H)), ...]
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batches: ShardedBatches, epoch: int = 0):
        self.inputs, self.targets, self.sampler, self.epoch = inputs, targets, batches, epoch

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> list[tuple[Tensor, Tensor]]:
        parts = self.sampler.batches(self.epoch)
        self.epoch += 1
        return [(self.inputs[part], self.targets[part]) for part in parts]


class ForecastDataModule(L.LightningDataModule):
    """A series (the statsmodels CO2 data by default, or a CSV/Parquet file) cut into scaled windows.

    The split is chronological (train, then validation, then test); the scaler is fitted on the training
    part only. A window's targets always lie inside its split; its inputs may reach back into the split
    before (the observed past), so no split loses its first `timesteps` steps.

    Args:
        path: a CSV (.csv, .tsv) or Parquet file; null: the Mauna Loa weekly CO2 series shipped with statsmodels.
        time_column: the column of dates or numbers; missing time steps become missing values. null: rows
            are consecutive steps.
        target: the column to forecast.
        features: extra numeric input columns (their future is unknown, so forecasts reach at most `horizon`).
        missing: missing values (empty, NaN or non-numeric cells, missing time steps): interpolate, drop
            the rows, or error. Each repair is counted when the data is loaded.
        timesteps: inputs per window.
        horizon: steps forecast per window (1: the seed's example).
        val_fraction: share of the series (its middle part) for validation.
        test_fraction: share of the series (its end) for the test; 0 for none.
        scaling: standard (mean 0, sd 1) or minmax (0..1, as the Keras notebook), fitted on the training part.
        season: the seasonal-naive baseline repeats the value this many steps earlier (52: last year's week).
        batch_size: training windows per optimiser step.
        seed: the training order.
    """

    def __init__(
        self,
        *,
        path: Optional[str] = None,
        time_column: Optional[str] = "date",
        target: str = "co2",
        features: list[str] = [],
        missing: Literal["interpolate", "drop", "error"] = "interpolate",
        timesteps: int = 52,
        horizon: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        scaling: Literal["standard", "minmax"] = "standard",
        season: int = 52,
        batch_size: int = 32,
        seed: int = 1234,
    ):
        super().__init__()
        self.save_hyperparameters()
        for key, value in (("timesteps", timesteps), ("horizon", horizon), ("season", season), ("batch_size", batch_size)):
            if value < 1:
                raise InputError(f"--data.{key} must be at least 1, got {value}")
        if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise InputError(f"--data.val_fraction ({val_fraction}) must be in (0, 1), --data.test_fraction "
                             f"({test_fraction}) in [0, 1), and together below 1: training needs the rest")
        if missing not in MISSING or scaling not in SCALINGS:
            raise InputError(f"--data.missing must be one of {MISSING}, --data.scaling one of {SCALINGS}")
        self.series: Optional[Series] = None
        self.scaler: Optional[Scaler] = None
        self.bounds: dict[str, tuple[int, int]] = {}
        self.windows: dict[str, Windows] = {}

    # ---- what the model needs before any data is read (LightningCLI links these) ----

    @property
    def input_size(self) -> int:
        return 1 + len(self.hparams.features)

    @property
    def horizon(self) -> int:
        return self.hparams.horizon

    @property
    def timesteps(self) -> int:
        return self.hparams.timesteps

    @property
    def has_test(self) -> bool:
        return self.hparams.test_fraction > 0

    # ---- loading ----

    def setup(self, stage: Optional[str] = None) -> None:
        if self.series is not None:
            return
        h = self.hparams
        series = load_series(h.path, time_column=h.time_column, target=h.target, features=h.features, missing=h.missing)
        val_start, test_start = split_points(len(series), h.val_fraction, h.test_fraction)
        bounds = {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, len(series))}
        if not self.has_test:
            del bounds["test"]
        origins = {split: window_origins(start, end, h.timesteps, h.horizon) for split, (start, end) in bounds.items()}
        short = [split for split, found in origins.items() if len(found) == 0]
        if short:
            split = short[0]
            start, end = bounds[split]
            raise InputError(
                f"{series.name}: too short for these windows: {len(series)} steps give the {split} part "
                f"{end - start} steps (of {h.timesteps} inputs + {h.horizon} targets per window), and it has no "
                f"whole window; use a longer series, smaller --data.timesteps or --data.horizon, or other fractions")
        self.scaler = Scaler.fit(series.values[:val_start], h.scaling)  # the training part only: no leakage
        scaled = self.scaler.transform(series.values).astype(np.float32)
        self.series, self.bounds = series, bounds
        for split, found in origins.items():
            inputs, targets = make_windows(scaled, found, h.timesteps, h.horizon)
            actual = make_windows(series.values, found, h.timesteps, h.horizon)[1]
            target = series.values[:, 0]
            self.windows[split] = Windows(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(actual),
                                          torch.from_numpy(last_value(target, found, h.horizon)),
                                          torch.from_numpy(seasonal_naive(target, found, h.horizon, h.season)),
                                          torch.from_numpy(found))
        rank_zero_info(self.describe())

    def describe(self) -> str:
        series, h = self.series, self.hparams
        span = f"{show_time(series.times[0])}..{show_time(series.times[-1])}" if h.time_column else "no time column"
        parts = ", ".join(f"{split} {end - start} steps / {len(self.windows[split].inputs)} windows"
                          for split, (start, end) in self.bounds.items())
        fixed = "; ".join(series.notes) if series.notes else "nothing to repair"
        return (f"{series.name}: {len(series)} steps ({span}), {', '.join(series.columns)}; {fixed}\n"
                f"  {parts} ({h.timesteps} inputs -> {h.horizon} targets each)")

    def train_dataloader(self) -> DataLoader:
        train, h = self.windows["train"], self.hparams
        rank, world = replica(self.trainer)
        batches = ShardedBatches(shuffled_batches(len(train.inputs), h.batch_size, h.seed), rank=rank, world=world,
                                 train=True)
        epoch, _ = resume_point(self.trainer)  # a resumed run goes on, not over (an epoch is one step here)
        epochs = EpochOfBatches(train.inputs, train.targets, batches, epoch)
        return DataLoader(epochs, batch_size=None, num_workers=0)  # in memory: workers would only add latency

    def _one_batch(self, split: str) -> DataLoader:
        """All windows of the split as one batch; this process's share of them when several evaluate."""
        if split not in self.windows:
            raise InputError(f"{self.series.name} has no {split} split (--data.test_fraction is 0)")
        windows = self.windows[split]
        rank, world = replica(self.trainer)
        everything = [list(range(len(windows.inputs)))]
        shares = ShardedBatches(lambda epoch: everything, rank=rank, world=world, train=False).batches()
        return DataLoader([Windows(*(part[share] for part in windows)) for share in shares], batch_size=None,
                          num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._one_batch("val")

    def test_dataloader(self) -> DataLoader:
        return self._one_batch("test")
