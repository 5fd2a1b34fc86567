"""Keras against our forecast task: the seed's LSTM(50) -> Dense(1) on the same windows of the same series.

    .venv/bin/pip install -e '.[keras]'                  # TensorFlow (CPU), needed by this benchmark only
    .venv/bin/python bench/forecast_keras.py             # CO2 defaults: 50 epochs each, 2 threads, 5 paired runs
    .venv/bin/python bench/forecast_keras.py --epochs 10 -- --data.timesteps=26   # task overrides after --

Both fit the same training windows (ours builds them; Keras gets them as arrays, read the same way:
relative to each window's last value when --model.relative is on), batch 32, Adam 1e-3, MSE, shuffled
each epoch, validated every epoch, and both keep the weights of the best validation epoch. Printed for
each: wall time per epoch (all of fit(): validation and checkpoint writing included), fit and total wall
time, and test MSE on the original scale over the same test windows; then the ratios, per pair and as the
median of the pairs (a single run swings with the machine's load: 2.1x and 2.5x on one day).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tasks.common.training import train
from tasks.forecast.baselines import scores
from tasks.forecast.callbacks import EpochLine, Threads
from tasks.registry import get_task

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "forecast_keras.json"

INSTALL = ("TensorFlow is not installed, and this benchmark runs the Keras side with it. Install the optional "
           "extra into the project's venv:\n    .venv/bin/pip install -e '.[keras]'      (or: .venv/bin/pip install tensorflow-cpu)")


def run_ours(epochs: int, root: str, overrides: list[str]) -> dict:
    began = time.perf_counter()
    result = train(get_task("forecast"), [f"--trainer.max_epochs={epochs}", "--run.wandb=off", f"--run.root={root}",
                                          f"--run.name=ours-{time.strftime('%Y%m%d-%H%M%S')}", *overrides])
    total = time.perf_counter() - began
    callbacks = result.trainer.callbacks
    timer = next(c for c in callbacks if isinstance(c, EpochLine))
    threads = next((c.num for c in callbacks if isinstance(c, Threads)), torch.get_num_threads())
    return {"result": result, "epochs": len(timer.seconds), "fit": timer.fit_seconds, "total": total,
            "mse": result.metrics["test/mse"], "threads": threads}


def run_keras(data, hparams, epochs: int, threads: int, seed: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    if hparams.strategy != "direct":
        raise SystemExit("the Keras side implements the direct strategy only (--model.strategy=direct)")
    keras.utils.set_random_seed(seed)

    def arrays(split: str):
        windows = data.windows[split]
        inputs, targets = windows.inputs.numpy(), windows.targets.numpy()  # (W, T, C), (W, H) scaled
        anchor = inputs[:, -1:, :] if hparams.relative else np.zeros_like(inputs[:, -1:, :])
        return inputs - anchor, targets - anchor[:, 0, :1], anchor[:, 0, :1]

    began = time.perf_counter()
    (x, y, _), (xv, yv, _), (xt, _, anchor) = arrays("train"), arrays("val"), arrays("test")
    layers = [keras.Input(shape=x.shape[1:])]
    for layer in range(hparams.num_layers):
        layers.append(keras.layers.LSTM(hparams.hidden_size, return_sequences=layer + 1 < hparams.num_layers))
        if hparams.dropout:
            layers.append(keras.layers.Dropout(hparams.dropout))
    layers.append(keras.layers.Dense(hparams.horizon))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=hparams.lr), loss="mse")
    with tempfile.TemporaryDirectory() as folder:
        best = os.path.join(folder, "best.weights.h5")
        keep_best = keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True, save_weights_only=True)
        fit_began = time.perf_counter()
        model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=data.hparams.batch_size, shuffle=True,
                  verbose=2, callbacks=[keep_best])
        fit = time.perf_counter() - fit_began
        model.load_weights(best)
    predicted = model.predict(xt, batch_size=1024, verbose=0) + anchor  # (W, H) scaled
    total = time.perf_counter() - began
    forecast = data.scaler.inverse_target(predicted.astype(np.float64))
    mse = scores(torch.from_numpy(forecast), data.windows["test"].actual)["mse"]
    return {"fit": fit, "total": total, "mse": mse, "epochs": epochs, "threads": threads,
            "name": f"Keras {keras.__version__} (TF {tf.__version__})"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=50, help="epochs for both (the seed's 50)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads available to each side (ours uses what "
                   "configs/forecast.yaml sets within this budget)")
    p.add_argument("--keras-threads", type=int, default=None, help="TensorFlow's intra- and inter-op threads (default: --threads)")
    p.add_argument("--runs-root", default="runs/bench", help="where our run folder goes")
    p.add_argument("--seed", type=int, default=1234, help="Keras' seed (ours: --seed_everything)")
    p.add_argument("--repeats", type=int, default=5, help="paired runs (ours, then Keras); the ratio is their median")
    args, overrides = p.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    if importlib.util.find_spec("tensorflow") is None:
        print(INSTALL, file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    pairs = []
    for index in range(args.repeats):
        print(f"== pair {index + 1} of {args.repeats}, ours: lstm-suite train forecast ({args.epochs} epochs)", flush=True)
        ours = run_ours(args.epochs, args.runs_root, overrides)
        result = ours["result"]
        data, hparams = result.trainer.datamodule, result.trainer.lightning_module.hparams
        print(f"\n== pair {index + 1}, Keras: the same windows ({args.epochs} epochs)", flush=True)
        keras_run = run_keras(data, hparams, args.epochs, args.keras_threads or args.threads, args.seed)
        pairs.append((ours, keras_run))

    train_windows = data.windows["train"].inputs.shape
    print(f"\n{data.series.name}: {train_windows[0]} training windows of {train_windows[1]} steps x {train_windows[2]} "
          f"inputs -> {hparams.horizon}; LSTM({hparams.hidden_size}) x {hparams.num_layers} -> Dense({hparams.horizon}), "
          f"Adam {hparams.lr:g}, MSE, batch {data.hparams.batch_size}, {args.epochs} epochs, {len(pairs)} paired runs")
    print(f"  {'':<34}{'s/epoch':>9}{'fit s':>9}{'total s':>9}{'test MSE':>10}   threads")
    ratios = []
    for index, (ours, keras_run) in enumerate(pairs, 1):
        rows = [(f"{index}: {keras_run['name']}", keras_run), (f"{index}: ours (Lightning {__import__('lightning').__version__})", ours)]
        for name, run in rows:
            print(f"  {name:<34}{run['fit'] / run['epochs']:>9.3f}{run['fit']:>9.1f}{run['total']:>9.1f}{run['mse']:>10.4f}"
                  f"   {run['threads']}")
        ratios.append((keras_run["fit"] / keras_run["epochs"]) / (ours["fit"] / ours["epochs"]))
        print(f"  {f'{index}: Keras / ours':<34}{ratios[-1]:>8.2f}x{keras_run['fit'] / ours['fit']:>8.2f}x"
              f"{keras_run['total'] / ours['total']:>8.2f}x{keras_run['mse'] / ours['mse']:>9.2f}x")
    m = result.metrics
    print(f"  baselines on the same test windows: last value MSE {m['test/baseline_last/mse']:.4f}, "
          f"seasonal naive MSE {m['test/baseline_seasonal/mse']:.4f}")
    per_epoch = statistics.median(ratios)
    ours_mse = statistics.median(o["mse"] for o, _ in pairs)
    keras_mse = statistics.median(k["mse"] for _, k in pairs)
    faster, better = per_epoch >= 2.5, ours_mse <= keras_mse
    print(f"\nours per epoch {per_epoch:.2f}x faster than Keras, the median of {len(ratios)} paired runs (range "
          f"{min(ratios):.2f}-{max(ratios):.2f}; {'meets' if faster else 'misses'} the 2.5x target); median test MSE "
          f"{ours_mse:.4f} vs {keras_mse:.4f} ({'same or lower' if better else 'higher'}).")
    print("Totals: ours includes reading the data, Lightning's setup and the test; Keras' excludes importing TensorFlow.")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)  # what `make bench` (bench/suite.py) shows
    RESULTS.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "epochs": args.epochs, "pairs": len(ratios),
                                   "ratio": {"median": per_epoch, "min": min(ratios), "max": max(ratios)},
                                   "test_mse": {"ours": ours_mse, "keras": keras_mse}}, indent=1))
    return 0 if faster and better else 1

if __name__ == "__main__":
    sys.exit(main())
