"""JSB Chorales piano-roll benchmark: train, then print test NLL per frame next to published numbers.

    .venv/bin/python bench/jsb_pianoroll.py                      # NADE output (the default config)
    .venv/bin/python bench/jsb_pianoroll.py --output bernoulli   # the published baselines' output model
    .venv/bin/python bench/jsb_pianoroll.py -- --model.hidden_size=512   # any training override after --

NLL per frame = total Bernoulli NLL of predicting frame t+1 from frames <= t, divided by predicted
frames, on the Boulanger-Lewandowski 2012 test split (77 pieces, 4,648 predicted frames).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tasks.common.training import train
from tasks.registry import get_task

PUBLISHED = {"LSTM (Bai et al. 2018)": 8.45, "GRU (Bai et al. 2018)": 8.43, "TCN (Bai et al. 2018)": 8.10}
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "JSB_Chorales.mat"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED), help="JSB_Chorales.mat or the .json of the same split")
    p.add_argument("--output", choices=["nade", "bernoulli"], default="nade")
    p.add_argument("overrides", nargs="*", help="more training options, after --")
    args = p.parse_args()
    start = time.time()
    result = train(get_task("music-pianoroll"), [
        f"--data.path={args.data}", f"--model.output={args.output}", "--run.root=runs/bench", "--run.wandb=off",
        "--trainer.enable_progress_bar=false", *args.overrides,
    ])
    minutes = (time.time() - start) / 60
    nll = result.metrics["test/nll"]
    print(f"\nJSB Chorales test NLL per frame (lower is better), {minutes:.1f} min on this machine")
    print(f"  {'ours: LSTM + ' + args.output + ' output':<28}{nll:6.2f}")
    for name, value in PUBLISHED.items():
        print(f"  {name:<28}{value:6.2f}   ours / theirs = {nll / value:.3f}")


if __name__ == "__main__":
    main()
