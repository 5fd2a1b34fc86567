"""Time series in, windows out: reading CSV/Parquet (or statsmodels' CO2), repairing gaps, splitting, scaling.

Shapes: N steps, C columns (the target first, then extra input features), W windows, T timesteps (inputs
per window), H horizon (outputs per window). A window's *origin* t is the index of its last input: it
reads steps t-T+1..t and predicts the target at t+1..t+H.

Nothing here is silent: every repair (missing time steps, empty or non-numeric cells) is counted in
Series.notes, and what cannot be repaired is an InputError that says what to change.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from tasks.common.errors import InputError, plural

MISSING = ("interpolate", "drop", "error")
SCALINGS = ("standard", "minmax")
CO2_NAME = "Mauna Loa weekly CO2 (statsmodels)"


@dataclass
class Series:
    """A regular series, repaired and checked: no NaN left in values."""

    values: np.ndarray  # (N, C) float64, original scale; the target is column 0
    columns: list[str]  # C names, target first
    times: pd.Index  # (N,) DatetimeIndex, numbers, or a RangeIndex (positions) without a time column
    step: Optional[str | float]  # between rows: a pandas frequency ("W-SAT", "7D"), a number, or None
    name: str  # where it came from, for messages
    notes: list[str] = field(default_factory=list)  # what was repaired, with counts

    def __len__(self) -> int:
        return len(self.values)

    def future_times(self, steps: int, last=None) -> list:
        """The `steps` time stamps after `last` (default: the series' last time)."""
        last = self.times[-1] if last is None else last
        return future_times(last, self.step, steps)


def future_times(last, step, steps: int) -> list:
    if isinstance(last, pd.Timestamp) and step is not None:
        return list(pd.date_range(last, periods=steps + 1, freq=step)[1:])
    increment = 1 if step is None else step
    return [last + increment * k for k in range(1, steps + 1)]


def co2_frame() -> pd.DataFrame:
    """statsmodels' Mauna Loa CO2 (ppm), weekly on Saturdays 1958-03-29..2001-12-29; 59 weeks are NaN."""
    from statsmodels.datasets import co2

    return co2.load_pandas().data.rename_axis("date").reset_index()


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (.csv, .txt; .tsv tab-separated) or Parquet (.parquet, .pq) file as a DataFrame."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", skipinitialspace=True)
    except ImportError as error:
        raise InputError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow): {error}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as error:
        raise InputError(f"{path}: not a readable {suffix[1:]} file ({str(error).splitlines()[0]})") from None
    raise InputError(f"{path}: unknown file type {suffix!r}: give a .csv, .tsv or .parquet file")


def load_series(path: Optional[str | Path] = None, *, time_column: Optional[str] = "date", target: str = "co2",
                features: Sequence[str] = (), missing: str = "interpolate") -> Series:
    """Read a series (default: the CO2 data), put it on a regular time grid and deal with missing values.

    Args:
        path: CSV or Parquet file; None reads the Mauna Loa CO2 series shipped with statsmodels.
        time_column: dates or numbers; rows are sorted by it and missing time steps become missing
            values. None: rows are consecutive steps as they are.
        target: the column to forecast.
        features: extra numeric input columns.
        missing: what to do with missing values (empty, NaN, non-numeric cells, missing time steps):
            "interpolate" linearly between neighbours, "drop" the rows, or "error".
    """
    if missing not in MISSING:
        raise InputError(f"missing={missing!r}: choose one of {', '.join(MISSING)}")
    frame, name = (co2_frame(), CO2_NAME) if path is None else (read_table(path), str(path))
    columns = [target, *features]
    wanted = columns + ([time_column] if time_column else [])
    for column in wanted:
        if column not in frame.columns:
            hint = " (or --data.time_column=null for rows at consecutive steps)" if column == time_column else ""
            raise InputError(f"{name}: no column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
                             f"set --data.{'time_column' if column == time_column else 'target or --data.features'}{hint}")
    duplicated = [c for c, n in Counter(wanted).items() if n > 1]
    if duplicated:
        raise InputError(f"{name}: column {duplicated[0]!r} is used twice (target, features, time column)")
    if frame.empty:
        raise InputError(f"{name}: no rows")
    notes: list[str] = []
    frame = frame.reset_index(drop=True)
    if time_column:
        times, frame, step = regular_times(frame, time_column, name, notes)
    else:
        times, step = pd.RangeIndex(len(frame)), None
    values = numeric_values(frame, columns, times, name, notes)
    values, times = fix_missing(values, times, columns, missing, name, notes)
    return Series(values, columns, times, step, name, notes)


def where(times: pd.Index, i: int) -> str:
    """Row i for a person: its time, or its 1-based row number when there is no time column."""
    return f"row {i + 1}" if isinstance(times, pd.RangeIndex) else show_time(times[i])


def show_time(time) -> str:
    """2001-12-29 rather than 2001-12-29 00:00:00; numbers as they are."""
    if isinstance(time, pd.Timestamp) and time == time.normalize():
        return time.strftime("%Y-%m-%d")
    return str(time)


def regular_times(frame: pd.DataFrame, column: str, name: str, notes: list[str]):
    """Parse and sort the time column and reindex onto a regular grid; missing steps become NaN rows."""
    raw = frame[column]
    numeric = pd.api.types.is_numeric_dtype(raw)
    if numeric:
        times = pd.Series(raw if pd.api.types.is_integer_dtype(raw) else raw.astype("float64"))
    else:
        times = pd.Series(pd.to_datetime(raw, errors="coerce"))
    bad = times.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{name}: {int(bad.sum())} rows have a {column!r} that is not a date or number "
                         f"(first: row {first + 1}: {raw.iloc[first]!r}); fix or remove them")
    if not times.is_monotonic_increasing:
        order = np.argsort(times.to_numpy(), kind="stable")
        frame, times = frame.iloc[order].reset_index(drop=True), times.iloc[order].reset_index(drop=True)
        notes.append(f"sorted the rows by {column!r} (they were not in time order)")
    repeated = times.duplicated()
    if repeated.any():
        raise InputError(f"{name}: {plural(int(repeated.sum()), 'repeated time')} in {column!r} "
                         f"(first: {show_time(times[repeated].iloc[0])}); "
                         "aggregate them to one row per time first")
    index = pd.Index(times)
    if len(index) < 3:
        return index, frame, None
    grid, step = time_grid(index, column, name)
    frame = frame.assign(_present=True).set_axis(index)
    if isinstance(grid, pd.DatetimeIndex) or pd.api.types.is_integer_dtype(grid):
        frame = frame.reindex(grid)
    else:  # numeric times: match the grid within rounding error
        frame = frame.reindex(grid, method="nearest", tolerance=step / 1000)
    added = frame["_present"].isna().to_numpy()
    if added.any():
        first = int(np.flatnonzero(added)[0])
        notes.append(f"{plural(int(added.sum()), 'missing time step')} in {column!r} (first: {show_time(grid[first])}) "
                     "added as missing values")
    return grid, frame.drop(columns="_present").reset_index(drop=True), step


def time_grid(times: pd.Index, column: str, name: str) -> tuple[pd.Index, str | float]:
    """The regular grid from the first to the last time that holds every time; its step."""
    diffs = np.diff(times.to_numpy())
    if not isinstance(times, pd.DatetimeIndex):
        step = pd.Series(diffs).mode().iloc[0].item()  # an int for integer times
        multiples = diffs / step
        if np.allclose(multiples, np.round(multiples)):
            count = int(round((times[-1] - times[0]) / step)) + 1
            return pd.Index(times[0] + step * np.arange(count)), step
    else:
        chunks = Counter(infer_freq(times[i : i + 5]) for i in range(0, max(1, len(times) - 4), 5))
        modal = pd.tseries.frequencies.to_offset(pd.Timedelta(pd.Series(diffs).mode().iloc[0])).freqstr
        # the whole series names its frequency when nothing is missing; runs of 5 rows do when something is
        # (weeks on Saturdays, month starts: steps of varying length); the commonest step is the fallback
        candidates = [infer_freq(times), *(freq for freq, _ in chunks.most_common(3)), modal]
        for freq in filter(None, candidates):
            grid = pd.date_range(times[0], times[-1], freq=freq)
            if len(grid) and grid[0] == times[0] and times.isin(grid).all():
                return grid, freq
    gaps = pd.Series(diffs)
    typical = gaps.mode().iloc[0]
    odd = int(np.flatnonzero((gaps != typical).to_numpy())[0])
    raise InputError(f"{name}: the times in {column!r} are not evenly spaced (most are {typical} apart; "
                     f"{times[odd]} -> {times[odd + 1]} is not a multiple of that): resample to a regular step "
                     "first, or set --data.time_column=null to treat the rows as consecutive steps")


def infer_freq(times: pd.DatetimeIndex) -> Optional[str]:
    try:
        return pd.infer_freq(times)
    except (TypeError, ValueError):
        return None


def numeric_values(frame: pd.DataFrame, columns: list[str], times: pd.Index, name: str, notes: list[str]) -> np.ndarray:
    """(N, C) float64 with NaN for empty cells and for cells that are not numbers (counted in notes)."""
    out = np.empty((len(frame), len(columns)))
    strange, first = 0, None
    for j, column in enumerate(columns):
        raw = frame[column]
        numbers = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
        not_numbers = numbers.isna() & raw.notna()
        if not_numbers.any():
            strange += int(not_numbers.sum())
            position = int(np.flatnonzero(not_numbers.to_numpy())[0])
            first = first or f"{column!r} at {where(times, position)}: {raw.iloc[position]!r}"
        out[:, j] = numbers.to_numpy(dtype="float64", na_value=np.nan)
        if np.isnan(out[:, j]).all():
            raise InputError(f"{name}: column {column!r} holds no numbers")
    out[~np.isfinite(out)] = np.nan  # inf counts as missing too
    if strange:
        notes.append(f"{plural(strange, 'non-numeric cell')} treated as missing (first: {first})")
    return out


def fix_missing(values: np.ndarray, times: pd.Index, columns: list[str], how: str, name: str,
                notes: list[str]) -> tuple[np.ndarray, pd.Index]:
    """Interpolate, drop or refuse the NaN cells; every choice is counted in notes."""
    holes = np.isnan(values)
    count = int(holes.sum())
    if not count:
        return values, times
    rows = np.flatnonzero(holes.any(axis=1))
    column = columns[int(np.flatnonzero(holes[rows[0]])[0])]
    found = f"{plural(count, 'missing value')} in {plural(len(rows), 'row')} (first: {column!r} at {where(times, int(rows[0]))})"
    if how == "error":
        raise InputError(f"{name}: {found}; set --data.missing=interpolate (or drop) to repair them")
    if how == "drop":
        keep = ~holes.any(axis=1)
        notes.append(f"dropped {plural(len(rows), 'row')} with missing values ({plural(count, 'value')})")
        return values[keep], times[keep]
    filled = pd.DataFrame(values).interpolate(method="linear", limit_area="inside").to_numpy()
    ends = np.isnan(filled).any(axis=1)  # before the first or after the last value: nothing to interpolate from
    notes.append(f"filled {plural(int((holes & ~np.isnan(filled)).sum()), 'missing value')} by interpolation")
    if ends.any():
        notes.append(f"dropped {plural(int(ends.sum()), 'row')} at the start or end with missing values "
                     "(nothing to interpolate from)")
    return filled[~ends], times[~ends]


def split_points(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Chronological split: [0, val_start) train, [val_start, test_start) val, [test_start, n) test."""
    test_start = n - int(round(n * test_fraction))
    val_start = test_start - int(round(n * val_fraction))
    return val_start, test_start


@dataclass
class Scaler:
    """Per-column affine scaling fitted on the training part only: scaled = (value - offset) / scale."""

    offset: np.ndarray  # (C,)
    scale: np.ndarray  # (C,)

    @classmethod
    def fit(cls, values: np.ndarray, kind: str = "standard") -> "Scaler":
        """values (N, C): standard (mean 0, sd 1) or minmax (0..1, as the Keras notebook's MinMaxScaler)."""
        if kind not in SCALINGS:
            raise InputError(f"scaling={kind!r}: choose one of {', '.join(SCALINGS)}")
        if kind == "standard":
            offset, scale = values.mean(axis=0), values.std(axis=0)
        else:
            offset, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        return cls(offset, np.where(scale > 0, scale, 1.0))  # a constant column stays constant, not NaN

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.offset) / self.scale

    def inverse_target(self, scaled):
        """Target values (any shape, numpy or torch) back to the original scale."""
        return scaled * float(self.scale[0]) + float(self.offset[0])


def window_origins(start: int, end: int, timesteps: int, horizon: int) -> np.ndarray:
    """Origins t whose targets t+1..t+H all lie in [start, end) and whose T inputs lie in the series.

    Inputs may reach back before `start` (the observed past); targets never leave their split.
    """
    return np.arange(max(start - 1, timesteps - 1), end - horizon)


def make_windows(scaled: np.ndarray, origins: np.ndarray, timesteps: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """scaled (N, C) -> inputs (W, T, C) and targets (W, H) (the target column) at `origins` (W,)."""
    inputs = origins[:, None] + np.arange(1 - timesteps, 1)  # (W, T) step indices
    targets = origins[:, None] + np.arange(1, horizon + 1)  # (W, H)
    return scaled[inputs], scaled[targets, 0]
