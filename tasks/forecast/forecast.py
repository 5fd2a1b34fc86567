"""`lstm-suite forecast forecast`: the next steps past the end of the data, from a checkpoint alone."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tasks.common.arguments import CommandParser, output_file, positive_int, user_path
from tasks.common.checkpoints import add_checkpoint_arguments, chosen_checkpoint, load_model
from tasks.common.errors import InputError
from tasks.forecast.model import ForecastModel
from tasks.forecast.plot import forecast_png
from tasks.forecast.series import future_times, load_series, show_time


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="lstm-suite forecast forecast",
        description="Forecast past the end of the data with a trained forecast checkpoint: prints the forecast and "
        "writes it as CSV (time, value) and as a PNG next to the recent history. The checkpoint holds the end of "
        "the series it was trained on; --data forecasts past the end of a newer file with the same columns.",
    )
    add_checkpoint_arguments(p, "forecast")
    p.add_argument("--horizon", type=positive_int, default=None,
                   help="steps to forecast (default: the model's trained horizon); beyond it, forecasts are fed back as inputs")
    p.add_argument("--data", type=user_path, default=None, help="CSV or Parquet file with the training columns: "
                   "forecast past its end (default: past the end of the training data, kept in the checkpoint)")
    p.add_argument("--out", type=user_path, default=None,
                   help="CSV to write (default: <run>/forecast.csv next to the checkpoint's folder)")
    p.add_argument("--plot", type=user_path, default=None,
                   help="PNG to write (default: the CSV's path with .png; 'none' for no plot)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads: for one window of a small LSTM, "
                   "more only wait on each other (on a busy machine, 1000x slower)")
    return p


def default_out(ckpt: Path) -> Path:
    return (ckpt.parent.parent if ckpt.parent.name == "checkpoints" else Path.cwd()) / "forecast.csv"


def history_of(model: ForecastModel, data: str | None) -> tuple[np.ndarray, pd.Index, object, str]:
    """(values (L, C), their times, the time step, where they come from): the checkpoint's or a file's."""
    info = model.hparams.series_info
    if data is None:
        kind, times = info["time_kind"], info["times"]
        index = pd.DatetimeIndex(pd.to_datetime(times)) if kind == "date" else pd.Index(times)
        return np.asarray(info["history"]), index, info["step"], f"the end of {info['name']}"
    series = load_series(data, time_column=info["time_column"], target=info["columns"][0], features=info["columns"][1:],
                         missing=info["missing"])
    for note in series.notes:
        print(f"{data}: {note}")
    if len(series) < model.hparams.timesteps:
        raise InputError(f"{data}: {len(series)} steps, but the model reads the last {model.hparams.timesteps}")
    times = series.times if info["time_column"] else pd.RangeIndex(len(series))
    return series.values, times, series.step, str(data)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    ckpt = chosen_checkpoint(args, "forecast")
    out = output_file(args.out or default_out(ckpt), "--out")
    no_plot = args.plot is not None and str(args.plot).lower() == "none"
    plot = None if no_plot else output_file(args.plot or out.with_suffix(".png"), "--plot")
    model = load_model(ForecastModel, ckpt)
    info = model.hparams.series_info
    if info is None:
        raise InputError(f"checkpoint {ckpt}: holds no series information (was it saved before training started?)")
    steps = args.horizon or model.hparams.horizon
    values, times, step, source = history_of(model, args.data)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        forecast = model.forecast(steps, values)
    finally:
        torch.set_num_threads(previous)
    future = future_times(times[-1], step, steps)
    target, time_name = info["columns"][0], info["time_column"] or "step"
    print(f"Forecast of {target}, {steps} steps past {show_time(times[-1])} ({source}; checkpoint {ckpt}):")
    width = max(len(time_name), *(len(show_time(t)) for t in future))
    print(f"  {time_name:<{width}}  {target}")
    for time, value in zip(future, forecast):
        print(f"  {show_time(time):<{width}}  {value:.4f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([time_name, target])
        writer.writerows([show_time(t), f"{v:.6f}"] for t, v in zip(future, forecast))
    written = [str(out)]
    if plot is not None:
        shown = max(model.hparams.timesteps, 3 * int(info.get("season") or 52))
        png = forecast_png(plot, times[-shown:], values[-shown:, 0],
                           {f"forecast, {steps} steps": ([times[-1], *future], np.r_[values[-1, 0], forecast])},
                           title=f"{target}: forecast past {show_time(times[-1])}", ylabel=target, split_at=times[-1])
        written.append(str(png))
    print(f"Wrote {' and '.join(written)}")
    return 0
