"""Forecast end to end on a generated series: it learns, beats the baselines, and a checkpoint alone forecasts."""
import csv

import numpy as np
import pandas as pd
import pytest
import torch

from learning import RECORD, assert_beats, recorded
from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.training import train
from tasks.forecast.model import ForecastModel
from tasks.registry import get_task
from wandb_records import history

WEEKS = 320
PERIOD = 13  # a quarterly cycle: persistence is far from the truth, so learning shows


def wave(i: np.ndarray) -> np.ndarray:
    """A cycle on a rising trend, like CO2 (without the noise: what the model should continue)."""
    return 10 + 0.04 * i + 2 * np.sin(2 * np.pi * i / PERIOD) + 0.6 * np.sin(4 * np.pi * i / PERIOD)


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory):
    i = np.arange(WEEKS)
    frame = pd.DataFrame({"date": pd.date_range("2001-01-06", periods=WEEKS, freq="W-SAT").strftime("%Y-%m-%d"),
                          "value": wave(i) + np.random.default_rng(1).normal(0, 0.05, WEEKS),
                          "x": np.cos(2 * np.pi * i / 52)})
    frame = frame.astype({"value": object})
    frame.loc[30, "value"] = "oops"  # a bad cell and a missing week: repaired, counted, never a NaN loss
    path = tmp_path_factory.mktemp("series") / "series.csv"
    frame.drop(index=60).to_csv(path, index=False)
    return path


def tiny(series_csv, root, *more):
    return ["--data.path", str(series_csv), "--data.target=value", "--data.timesteps=26", "--data.val_fraction=0.15",
            "--data.test_fraction=0.15", "--data.season=13", f"--run.root={root}", "--trainer.enable_progress_bar=false", *more]


@pytest.fixture(scope="module")
def trained(series_csv, tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    return train(get_task("forecast"), tiny(series_csv, root, "--trainer.max_epochs=15", "--run.name=tiny",
                                            "--run.wandb=offline", RECORD))


def last_value_mse(data) -> float:
    """MSE on the test windows of persistence (every step ahead is the window's last value), from the series itself."""
    windows = data.windows["test"]
    last = data.series.values[windows.origins.numpy(), 0]
    return float(((windows.actual.numpy() - last[:, None]) ** 2).mean())


def assert_beats_baselines(result, share: float) -> None:
    """Test MSE at most `share` of the last-value and the seasonal-naive baselines' on the same windows."""
    m = recorded(result).test
    assert m["test/baseline_last/mse"] == pytest.approx(last_value_mse(result.trainer.datamodule))
    for name, key in (("last value", "test/baseline_last/mse"), ("seasonal naive", "test/baseline_seasonal/mse")):
        assert_beats(m["test/mse"], {name: m[key]}, margin=(1 - share) * m[key])


def test_tiny_run_learns_and_beats_the_baselines(trained):
    # measured: 0.008-0.017 against 0.64 and 0.28 (seasonal naive misses the trend that moves each season)
    assert_beats_baselines(trained, share=0.2)
    record = recorded(trained)
    losses = [epoch["train/loss"] for epoch in record.train]
    assert len(losses) == 15 and losses[-1] < 0.1 * losses[0], losses
    m = record.test
    assert m["test/mape"] == pytest.approx(100 * m["test/mae"] / 22, rel=0.2)  # in percent, of values near 22
    assert (trained.run_dir / "forecast_test.png").stat().st_size > 10_000


def test_wandb_offline_run_holds_the_metrics(trained):
    keys = {k for r in history(trained.wandb_dir) for k in r}
    wanted = {"train/loss", "val/loss", "val/mse", "val/mae", "val/mape", "test/mse", "test/mae", "test/mape",
              "test/baseline_last/mse", "test/baseline_last/mape", "test/baseline_seasonal/mse",
              "test/baseline_seasonal/mae", "test/forecast_plot/_type"}
    assert wanted <= keys, sorted(wanted - keys)


def test_checkpoint_alone_forecasts_past_the_end(trained, series_csv, tmp_path, capsys):
    model = load_model(ForecastModel, trained.best_checkpoint)
    info = model.hparams.series_info
    assert info["columns"] == ["value"] and info["times"][-1] == "2007-02-17T00:00:00" and info["step"] == "W-SAT"
    ahead = model.forecast(8)
    assert ahead.shape == (8,)
    error = np.abs(ahead - wave(np.arange(WEEKS, WEEKS + 8)))
    assert error.mean() < 0.5, (ahead, error)  # continues the cycle (amplitude ~2.6 around the trend); measured ~0.2

    out = tmp_path / "ahead.csv"
    assert main(["forecast", "forecast", "--ckpt", str(trained.best_checkpoint), "--horizon", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Forecast of value, 8 steps past 2007-02-17" in printed and "2007-02-24" in printed
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["date", "value"] and len(rows) == 9
    assert rows[1][0] == "2007-02-24" and rows[8][0] == "2007-04-14"
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], ahead, rtol=1e-5)
    assert out.with_suffix(".png").stat().st_size > 10_000

    assert main(["forecast", "forecast", "--ckpt", str(trained.best_checkpoint), "--horizon", "8", "--data",
                 str(series_csv), "--out", str(tmp_path / "again.csv"), "--plot", "none"]) == 0
    again = [float(r[1]) for r in list(csv.reader((tmp_path / "again.csv").open()))[1:]]
    np.testing.assert_allclose(again, ahead, rtol=1e-5)  # the file's end is the checkpoint's end
    assert "1 missing time step" in capsys.readouterr().out


def test_checkpoint_is_weights_only_and_self_contained(trained):
    checkpoint = torch.load(trained.best_checkpoint, weights_only=True)
    info = checkpoint["hyper_parameters"]["series_info"]
    assert len(info["history"]) == 3 * PERIOD and len(info["offset"]) == 1 and info["time_column"] == "date"


def test_multi_step_strategies_and_features(series_csv, tmp_path, capsys):
    recursive = train(get_task("forecast"), tiny(series_csv, tmp_path, "--trainer.max_epochs=15", "--run.wandb=off",
                                                 "--run.name=recursive", "--data.horizon=4", "--model.strategy=recursive",
                                                 RECORD))
    assert_beats_baselines(recursive, share=0.5)  # 4 steps ahead, measured 0.07 against 3.4 and 0.28
    model = load_model(ForecastModel, recursive.best_checkpoint)
    assert model.forecast(4).shape == (4,) and np.isfinite(model.forecast(30)).all()

    direct = train(get_task("forecast"), tiny(series_csv, tmp_path, "--trainer.max_epochs=2", "--run.wandb=off",
                                              "--run.name=features", "--data.horizon=3", "--data.features=[x]",
                                              "--run.test=false"))
    model = load_model(ForecastModel, direct.best_checkpoint)
    assert model.net.encoder.lstm.input_size == 2 and model.forecast(3).shape == (3,)
    capsys.readouterr()
    assert main(["forecast", "forecast", "--ckpt", str(direct.best_checkpoint), "--horizon", "5"]) == 2
    assert "reads x, whose future is unknown: it forecasts at most its trained horizon of 3 steps" in capsys.readouterr().err

    assert main(["train", "forecast", "--model.strategy=recursive", "--data.features=[x]", "--run.wandb=off",
                 f"--run.root={tmp_path}"]) == 2
    assert "the target must be the only input" in capsys.readouterr().err


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["train", "forecast", f"--data.path={tmp_path / 'none.csv'}", "--run.wandb=off",
                 f"--run.root={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().endswith("none.csv: no such file")
    assert main(["forecast", "forecast", "--horizon", "0"]) == 2
    assert "--horizon must be at least 1" in capsys.readouterr().err
    assert main(["forecast", "forecast", "--runs-root", str(tmp_path)]) == 2
    assert "no best.ckpt under" in capsys.readouterr().err
