"""Forecasts next to what happened, as PNG files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def forecast_png(path: str | Path, actual_times: Sequence, actual: np.ndarray, lines: dict[str, tuple[Sequence, np.ndarray]],
                 title: str = "", ylabel: str = "", split_at: Optional[object] = None) -> Path:
    """actual (N,) at actual_times in black; each of `lines` {label: (times, values)} in colour; an optional
    dotted vertical line where the forecast begins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
    ax.plot(actual_times, actual, color="black", linewidth=1.2, label="actual")
    for (label, (times, values)), style in zip(lines.items(), ("-", "--", ":", "-.")):
        ax.plot(times, values, style, linewidth=1.2, label=label)
    if split_at is not None:
        ax.axvline(split_at, color="grey", linestyle=":", linewidth=1)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
