"""Forecasting: a thin LightningModule over ForecastNet; a checkpoint alone forecasts past the end of its data."""
from __future__ import annotations

from typing import Literal, Optional

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanMetric

from tasks.common.distributed import gather_objects
from tasks.common.errors import InputError
from tasks.common.optim import check_optimiser_settings
from tasks.forecast.baselines import scores
from tasks.forecast.data import Windows
from tasks.forecast.network import ForecastNet
from tasks.forecast.series import Scaler

HISTORY_SEASONS = 3  # the checkpoint keeps this many seasons of the series' end (or the window, if longer)


class ForecastModel(L.LightningModule):
    """The seed's Keras example by default: LSTM(50) -> Linear, Adam at 1e-3, mean squared error.

    Every batch the data serves is a whole epoch of mini-batches (see ForecastDataModule), so optimisation
    is manual here: one optimiser step per mini-batch, with none of Lightning's per-step cost. Metrics
    besides val/loss (scaled MSE, the checkpoint criterion) are on the original scale: val/mse, val/mae,
    val/mape (%), and at test also the last-value and seasonal-naive baselines on the same windows.

    Args:
        input_size: linked from the data (the target plus extra features).
        horizon: linked from the data (steps forecast per window).
        timesteps: linked from the data (inputs per window); forecasting reads this many last steps.
        hidden_size, num_layers, dropout: the LSTM (50, 1, 0: the seed's).
        strategy: direct (a linear output per step ahead) or recursive (one step, fed back).
        relative: read each window relative to its last value and predict the change from it.
        lr, weight_decay: Adam (the seed's: 1e-3, none).
        grad_clip: clip the gradient norm to this (0: off, as the seed).
        series_info: set from the data when training starts (column names, the scaler, the series' last
            rows and time step), so that a checkpoint alone forecasts; do not set by hand.
    """

    monitor, monitor_mode = "val/loss", "min"

    def __init__(
        self,
        *,
        input_size: int = 1,
        horizon: int = 1,
        timesteps: int = 52,
        hidden_size: int = 50,
        num_layers: int = 1,
        dropout: float = 0.0,
        strategy: Literal["direct", "recursive"] = "direct",
        relative: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        grad_clip: float = 0.0,
        series_info: Optional[dict] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_optimiser_settings(lr, weight_decay)
        self.automatic_optimization = False  # see the class docstring
        try:
            self.net = ForecastNet(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                                   dropout=dropout, horizon=horizon, strategy=strategy, relative=relative)
        except ValueError as error:
            raise InputError(str(error)) from None
        self.outputs: list[tuple[Tensor, Windows]] = []  # of the current evaluation epoch
        self.train_loss = MeanMetric()
        self.test_result: dict[str, np.ndarray] = {}  # original-scale forecasts of the last test, for the plot

    # ---- what the model keeps from its data ----

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is not None and getattr(datamodule, "series", None) is not None:
            self.hparams.series_info = series_info(datamodule, max(self.hparams.timesteps,
                                                                   HISTORY_SEASONS * datamodule.hparams.season))

    def on_test_start(self) -> None:
        if self.hparams.series_info is None:
            self.on_fit_start()

    def unscale(self, scaled: Tensor) -> Tensor:
        """Target values from the scaled space back to the original scale (float64), by the checkpoint's scaler."""
        info = self.hparams.series_info
        return Scaler(np.asarray(info["offset"]), np.asarray(info["scale"])).inverse_target(scaled.double())

    # ---- training and evaluation ----

    def training_step(self, batches: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        optimizer = self.optimizers()
        total, count = 0.0, 0
        for inputs, targets in batches:  # (B, T, C), (B, H): one epoch
            loss = F.mse_loss(self.net(inputs), targets)
            optimizer.zero_grad()
            self.manual_backward(loss)
            if self.hparams.grad_clip:
                self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
            optimizer.step()
            total, count = total + loss.detach() * len(inputs), count + len(inputs)
        if not torch.isfinite(total):  # the data has no NaN left, so this is divergence: say so, do not train on
            raise InputError(f"train/loss became {float(total)} in epoch {self.current_epoch + 1}: lower --model.lr "
                             f"(now {self.hparams.lr}) or set --model.grad_clip")
        self.train_loss.update(total / count, count)  # a metric: the mean over every process's windows
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)

    def validation_step(self, batch: Windows, batch_idx: int) -> None:
        self.outputs.append((self.net(batch.inputs).cpu(), Windows(*(part.cpu() for part in batch))))

    test_step = validation_step

    def on_validation_epoch_start(self) -> None:
        self.outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def _score(self, split: str) -> dict[str, Tensor]:
        # Every process forecast its share of the windows: scores over all of them, the same on every rank.
        outputs = [output for part in gather_objects(self.outputs) for output in part]
        predicted = torch.cat([p for p, _ in outputs])  # (W, H) scaled
        windows = Windows(*(torch.cat(parts) for parts in zip(*(w for _, w in outputs))))
        order = windows.origins.argsort()  # back in time order, however the shares were dealt
        predicted, windows = predicted[order].to(self.device), Windows(*(part[order].to(self.device) for part in windows))
        forecast = self.unscale(predicted)
        metrics = {f"{split}/loss": F.mse_loss(predicted, windows.targets)}
        metrics.update({f"{split}/{k}": v for k, v in scores(forecast, windows.actual).items()})
        if split == "test":
            for name, baseline in (("baseline_last", windows.last), ("baseline_seasonal", windows.seasonal)):
                metrics.update({f"test/{name}/{k}": v for k, v in scores(baseline, windows.actual).items()})
            self.test_result = {"forecast": forecast.cpu().numpy(), "actual": windows.actual.cpu().numpy(),
                                "origins": windows.origins.cpu().numpy()}
        self.outputs = []
        return metrics

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self._score("val"), prog_bar=False, sync_dist=True)  # equal on every rank: a no-op average

    def on_test_epoch_end(self) -> None:
        self.log_dict(self._score("test"), sync_dist=True)

    def configure_optimizers(self):
        # fused: one kernel for all parameters, 0.06 ms a step instead of 0.2 on CPU (a tenth of a 50-unit LSTM step)
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                fused=self.device.type in ("cpu", "cuda"))

    # ---- forecasting ----

    @torch.no_grad()
    def forecast(self, steps: Optional[int] = None, history: Optional[np.ndarray] = None) -> np.ndarray:
        """The next `steps` target values (default: the horizon) after `history` (L, C) on the original scale,
        default: the end of the training data. Beyond the horizon, forecasts are fed back as inputs, which
        needs the target to be the only input (the future of extra features is unknown)."""
        info, h = self.hparams.series_info, self.hparams
        if info is None:
            raise InputError("this model holds no series information (was it saved before training started?)")
        steps = steps or h.horizon
        if steps < 1:
            raise InputError(f"the horizon must be at least 1 step, got {steps}")
        if steps > h.horizon and h.input_size > 1 and h.strategy == "direct":
            raise InputError(f"the model also reads {', '.join(info['columns'][1:])}, whose future is unknown: it "
                             f"forecasts at most its trained horizon of {h.horizon} steps, not {steps}")
        history = np.asarray(info["history"] if history is None else history, dtype=np.float64)
        if history.ndim != 2 or history.shape[1] != h.input_size or len(history) < h.timesteps:
            raise InputError(f"forecasting needs the last {h.timesteps} steps of {', '.join(info['columns'])}; "
                             f"got an array of shape {history.shape}")
        self.eval()
        scaled = (history[-h.timesteps:] - np.asarray(info["offset"])) / np.asarray(info["scale"])
        window = torch.as_tensor(scaled, dtype=torch.float32, device=self.device)[None]  # (1, T, C)
        if h.strategy == "recursive":
            return self.unscale(self.net(window, steps=steps))[0].cpu().numpy()
        ahead = [self.net(window)[0]]  # (H,) each
        while len(ahead) * h.horizon < steps:  # direct: slide the window over its own forecasts (target only)
            window = torch.cat([window, ahead[-1].view(1, -1, 1)], dim=1)[:, -h.timesteps:]
            ahead.append(self.net(window)[0])
        return self.unscale(torch.cat(ahead)[:steps]).cpu().numpy()


def series_info(datamodule, keep: int) -> dict:
    """What a checkpoint needs to forecast without its data: plain lists and strings (weights_only loading)."""
    series, scaler = datamodule.series, datamodule.scaler
    times = series.times[-keep:]
    return {
        "name": series.name,
        "columns": list(series.columns),
        "offset": [float(v) for v in scaler.offset],
        "scale": [float(v) for v in scaler.scale],
        "history": series.values[-keep:].tolist(),
        "times": [t.isoformat() if hasattr(t, "isoformat") else t.item() if hasattr(t, "item") else t for t in times],
        "time_kind": "date" if hasattr(times[0], "isoformat") else "number" if datamodule.hparams.time_column else "row",
        "step": series.step,
        "time_column": datamodule.hparams.time_column,
        "missing": datamodule.hparams.missing,
        "season": datamodule.hparams.season,
    }
