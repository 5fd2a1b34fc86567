"""Forecast data on generated series: repairs counted, bad input refused, no leakage, windows, baselines."""
import numpy as np
import pandas as pd
import pytest
import torch

from tasks.common.errors import InputError
from tasks.forecast.baselines import last_value, scores, seasonal_naive
from tasks.forecast.data import ForecastDataModule
from tasks.forecast.series import load_series, split_points

WEEKS = 260
DROPPED = (100, 150)  # weeks missing from the file: gaps in time
EMPTY, TEXT = 40, 41  # an empty cell and a non-numeric one in "value"


def truth(n: int = WEEKS) -> pd.DataFrame:
    """Weekly sine + trend + a little noise, and a feature; what the file would hold without damage."""
    i = np.arange(n)
    noise = np.random.default_rng(0).normal(0, 0.05, n)
    return pd.DataFrame({"date": pd.date_range("2000-01-01", periods=n, freq="W-SAT"),
                         "value": 10 + 0.05 * i + 2 * np.sin(2 * np.pi * i / 52) + noise,
                         "x": np.cos(2 * np.pi * i / 52)})


def damaged_csv(tmp_path) -> tuple:
    frame = truth()
    damaged = frame.astype({"value": object})
    damaged.loc[EMPTY, "value"] = None
    damaged.loc[TEXT, "value"] = "n/a?"
    damaged = damaged.drop(index=list(DROPPED))
    path = tmp_path / "series.csv"
    damaged.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path, frame


def test_gaps_and_bad_cells_are_repaired_and_counted(tmp_path):
    path, frame = damaged_csv(tmp_path)
    series = load_series(path, target="value", features=["x"])
    assert len(series) == WEEKS and series.step == "W-SAT" and not np.isnan(series.values).any()
    assert series.columns == ["value", "x"]
    notes = " | ".join(series.notes)
    assert "2 missing time steps in 'date' (first: 2001-12-01)" in notes, notes
    assert "1 non-numeric cell treated as missing (first: 'value' at 2000-10-14: 'n/a?')" in notes, notes
    assert "filled 6 missing values by interpolation" in notes, notes  # 2 gap rows x 2 columns + 2 cells
    v = frame["value"].to_numpy()
    for i in DROPPED:  # linear interpolation between the neighbours, not a NaN or a zero
        assert series.values[i, 0] == pytest.approx((v[i - 1] + v[i + 1]) / 2)
    before, after = v[EMPTY - 1], v[TEXT + 1]  # two missing in a row: a third and two thirds of the way
    assert series.values[[EMPTY, TEXT], 0] == pytest.approx([before + (after - before) / 3, before + 2 * (after - before) / 3])
    untouched = np.setdiff1d(np.arange(WEEKS), [*DROPPED, EMPTY, TEXT])
    np.testing.assert_allclose(series.values[untouched, 0], v[untouched])
    assert series.times[DROPPED[0]] == frame["date"][DROPPED[0]]


def test_parquet_and_numeric_times(tmp_path):
    frame = truth().drop(index=[7])
    frame.to_parquet(tmp_path / "series.parquet")
    series = load_series(tmp_path / "series.parquet", target="value")
    assert len(series) == WEEKS and series.notes[0].startswith("1 missing time step in 'date' (first: 2000-02-19)")
    frame.assign(date=np.arange(WEEKS).take(frame.index) * 5).to_csv(tmp_path / "steps.csv", index=False)
    series = load_series(tmp_path / "steps.csv", target="value")  # times as numbers, every 5
    assert series.step == 5 and series.times[7] == 35 and len(series) == WEEKS
    assert series.future_times(2) == [(WEEKS - 1) * 5 + 5, (WEEKS - 1) * 5 + 10]


def test_missing_values_dropped_or_refused_on_request(tmp_path):
    path, _ = damaged_csv(tmp_path)
    dropped = load_series(path, target="value", missing="drop")
    assert len(dropped) == WEEKS - 4 and "dropped 4 rows with missing values" in " ".join(dropped.notes)
    with pytest.raises(InputError, match=r"4 missing values in 4 rows \(first: 'value' at 2000-10-07\).*--data.missing"):
        load_series(path, target="value", missing="error")


def test_unusable_files_are_refused_with_the_reason(tmp_path):
    path, frame = damaged_csv(tmp_path)
    with pytest.raises(InputError, match="no column 'sales'.*columns: date, value, x"):
        load_series(path, target="sales")
    odd = frame.copy()
    odd.loc[10, "date"] += pd.Timedelta(days=3)
    odd.to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(InputError, match="not evenly spaced"):
        load_series(tmp_path / "odd.csv", target="value")
    frame.assign(value="?").to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(InputError, match="'value' holds no numbers"):
        load_series(tmp_path / "text.csv", target="value")
    with pytest.raises(InputError, match="no such file"):
        load_series(tmp_path / "none.csv")
    frame.iloc[:60].to_csv(tmp_path / "short.csv", index=False)
    data = ForecastDataModule(path=str(tmp_path / "short.csv"), target="value", timesteps=52)
    with pytest.raises(InputError, match="too short.*60 steps give the train part 42 steps"):
        data.setup()


def setup_data(path, **overrides) -> ForecastDataModule:
    options = dict(path=str(path), target="value", features=["x"], timesteps=20, horizon=3, val_fraction=0.2,
                   test_fraction=0.2, batch_size=16)
    data = ForecastDataModule(**{**options, **overrides})
    data.setup()
    return data


def test_scaler_is_fitted_on_the_training_part_only(tmp_path):
    data = setup_data(damaged_csv(tmp_path)[0])
    values = data.series.values
    val_start = data.bounds["val"][0]
    assert val_start == split_points(WEEKS, 0.2, 0.2)[0] == 156
    np.testing.assert_allclose(data.scaler.offset, values[:val_start].mean(axis=0))
    np.testing.assert_allclose(data.scaler.scale, values[:val_start].std(axis=0))
    assert abs(data.scaler.offset[0] - values[:, 0].mean()) > 1.5  # the trend: the whole series' mean is not it
    train = data.windows["train"]
    assert int(train.origins.max()) + 3 == val_start - 1  # no training target reaches the validation part


def test_windows_have_the_right_shape_and_content(tmp_path):
    data = setup_data(damaged_csv(tmp_path)[0])
    scaled = data.scaler.transform(data.series.values)
    for split, (start, end) in data.bounds.items():
        w = data.windows[split]
        count = len(w.origins)
        assert w.inputs.shape == (count, 20, 2) and w.targets.shape == (count, 3) and w.actual.shape == (count, 3)
        assert int(w.origins[0]) == max(start - 1, 19) and int(w.origins[-1]) == end - 1 - 3
        k = count // 2
        t = int(w.origins[k])
        np.testing.assert_allclose(w.inputs[k].numpy(), scaled[t - 19 : t + 1], rtol=1e-5)
        np.testing.assert_allclose(w.targets[k].numpy(), scaled[t + 1 : t + 4, 0], rtol=1e-5)
        np.testing.assert_allclose(w.actual[k].numpy(), data.series.values[t + 1 : t + 4, 0])
    assert [len(data.windows[s].origins) for s in ("train", "val", "test")] == [134, 50, 50]


def test_training_loader_serves_each_epoch_shuffled_in_batches(tmp_path):
    data = setup_data(damaged_csv(tmp_path)[0])
    loader = data.train_dataloader()
    (first,), (second,) = list(loader), list(loader)  # one item per epoch: that epoch's batches
    assert [len(x) for x, _ in first] == [16] * 8 + [6]
    assert first[0][0].shape == (16, 20, 2) and first[0][1].shape == (16, 3)
    train = data.windows["train"]
    seen = torch.cat([y for _, y in first])
    assert sorted(seen[:, 0].tolist()) == sorted(train.targets[:, 0].tolist())  # every window once
    assert not torch.equal(seen, torch.cat([y for _, y in second]))  # a new order each epoch


def test_baselines_on_a_known_series():
    values = np.array([10.0 * (i % 4) + i for i in range(20)])  # v(i): season 4 plus a trend
    origins = np.array([5, 9])
    assert last_value(values, origins, 3).tolist() == [[15, 15, 15], [19, 19, 19]]
    # k = 1..4 looks one season (4) back from t+k, k = 5..6 two seasons: always a value known at t
    assert seasonal_naive(values, origins, 6, 4).tolist() == [[22, 33, 4, 15, 22, 33], [26, 37, 8, 19, 26, 37]]
    assert np.isnan(seasonal_naive(values, np.array([1]), 2, 4)).all()  # nothing a season before
    s = scores(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 6.0]))
    assert s["mse"] == pytest.approx(10 / 3) and s["mae"] == pytest.approx(4 / 3) and s["mape"] == pytest.approx(100 / 3)
    assert scores(torch.tensor([np.nan, 4.0]), torch.tensor([1.0, 2.0]))["mse"] == pytest.approx(4.0)  # NaN left out


def test_baselines_of_the_data_module_use_the_same_windows(tmp_path):
    data = setup_data(damaged_csv(tmp_path)[0], horizon=1, season=52)
    test, target = data.windows["test"], data.series.values[:, 0]
    origins = test.origins.numpy()
    np.testing.assert_allclose(test.last[:, 0].numpy(), target[origins])
    np.testing.assert_allclose(test.seasonal[:, 0].numpy(), target[origins + 1 - 52])
    np.testing.assert_allclose(test.actual[:, 0].numpy(), target[origins + 1])


def test_co2_default_series():
    series = load_series()
    assert len(series) == 2284 and series.columns == ["co2"] and series.step == "W-SAT"
    assert series.notes == ["filled 59 missing values by interpolation"] and not np.isnan(series.values).any()
    data = ForecastDataModule()
    data.setup()
    assert [len(data.windows[s].origins) for s in ("train", "val", "test")] == [1547, 228, 457]
