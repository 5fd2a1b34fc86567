"""What forecasting shows while and after it trains: one line per epoch, and the test forecast as a plot."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from tasks.forecast.baselines import scores
from tasks.forecast.plot import forecast_png


class EpochLine(Callback):
    """One printed line per epoch (instead of a progress bar over a single step): losses, validation
    scores on the original scale and the epoch's wall time (training and validation); `*` marks a new
    best val/loss. Times are kept: `seconds` per epoch, and `fit_seconds` for all of fit() (with the
    sanity check and checkpoint writing), which the benchmark reads."""

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = every_n_epochs
        self.seconds: list[float] = []
        self.fit_seconds = 0.0
        self.best = float("inf")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.fit_started = time.perf_counter()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.fit_seconds = time.perf_counter() - self.fit_started

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # after validation
        self.seconds.append(time.perf_counter() - self.started)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        improved = metrics.get("val/loss", float("inf")) < self.best
        self.best = min(self.best, metrics.get("val/loss", float("inf")))
        epoch = trainer.current_epoch + 1
        if trainer.is_global_zero and (epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs or improved):
            shown = "  ".join(f"{k} {metrics[k]:.4g}" for k in ("train/loss", "val/loss", "val/mse", "val/mae", "val/mape")
                              if k in metrics)
            print(f"epoch {epoch:>3}/{trainer.max_epochs}  {shown}  ({self.seconds[-1]:.2f} s){' *' if improved else ''}",
                  flush=True)


class Threads(Callback):
    """Torch's intra-op threads while this trainer runs. A 50-unit LSTM on batches of 32 does tiny matrix
    products: splitting them over threads costs more in synchronisation than it gains, badly so when
    other work shares the cores. The previous setting comes back when the trainer is done."""

    def __init__(self, num: int = 1):
        self.num = num
        self.previous = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.num > 0:
            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.num)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.previous is not None:
            torch.set_num_threads(self.previous)
            self.previous = None


class LogForecastPlot(Callback):
    """After testing: the test part of the series against the model's forecasts (one step ahead, and the
    last step of the horizon when it is longer), as <run>/forecast_test.png and a wandb image."""

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        result, data = pl_module.test_result, trainer.datamodule
        if not result or not trainer.is_global_zero or getattr(data, "series", None) is None:
            return
        times, origins, horizon = data.series.times, result["origins"], result["forecast"].shape[1]
        start, end = data.bounds["test"]
        lines = {"forecast, 1 step ahead": (times[origins + 1], result["forecast"][:, 0])}
        if horizon > 1:
            lines[f"forecast, {horizon} steps ahead"] = (times[origins + horizon], result["forecast"][:, -1])
        mse = scores(torch.from_numpy(result["forecast"]), torch.from_numpy(result["actual"]))["mse"]
        target = data.series.columns[0]
        title = f"{data.series.name}: test part, MSE {mse:.4g} on the original scale"
        path = forecast_png(Path(trainer.default_root_dir) / "forecast_test.png", times[start:end],
                            data.series.values[start:end, 0], lines, title=title, ylabel=target)
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.log_image("test/forecast_plot", [str(path)], caption=[title])
        print(f"Test forecast plot: {path}", flush=True)
