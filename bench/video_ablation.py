"""Video ablation: which inputs and which frame encoder, on the cluttered synthetic preset; one table.

    .venv/bin/python bench/video_ablation.py                                    # rgb, diff, rgb+diff x small
    .venv/bin/python bench/video_ablation.py --inputs rgb+diff --backbones small,mobilenet_v3_small
    .venv/bin/python bench/video_ablation.py --minutes 5 -- --data.synth_clips_per_class=150   # more overrides

Each run is `make train TASK=video ARGS="--config configs/video-cluttered.yaml --model.inputs=... --model.backbone=..."`
with its time budget; the table gives test accuracy (held-out clips), the validation score its checkpoint was
chosen on (validation loss; rows from before 2026-12-04 were chosen on validation accuracy), and minutes. Runs
are added to bench/results/video_ablation.json, replacing earlier ones of the same setting.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tasks.common.training import train
from tasks.registry import get_task
from tasks.video.backbones import BACKBONES
from tasks.video.network import INPUTS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "video_ablation.json"


def run(inputs: str, backbone: str, minutes: float, overrides: list[str]) -> dict:
    start = time.time()
    result = train(get_task("video"), [
        "--config", str(REPO / "configs" / "video-cluttered.yaml"), f"--model.inputs={inputs}",
        f"--model.backbone={backbone}", f"--trainer.max_time=00:00:{int(minutes):02d}:{int(minutes % 1 * 60):02d}",
        "--run.root=runs/bench", f"--run.name=video-{inputs.replace('+', '-')}-{backbone}{time.strftime('-%H%M%S') if overrides else ''}", "--run.wandb=off",
        "--trainer.enable_progress_bar=false", *overrides,
    ])
    chosen = result.trainer.checkpoint_callback
    return {"inputs": inputs, "backbone": backbone, "test_acc": round(float(result.metrics["test/acc"]), 3),
            "chosen_on": f"{chosen.monitor} {float(chosen.best_model_score or 0):.3f}",
            "epochs": result.trainer.current_epoch, "minutes": round((time.time() - start) / 60, 1),
            "budget_minutes": minutes, "overrides": overrides, "date": time.strftime("%Y-%m-%d")}


def chosen_on(row: dict) -> str:
    """The validation score a row's checkpoint was chosen on (older rows kept their validation accuracy)."""
    return row["chosen_on"] if "chosen_on" in row else f"val/acc {row['val_acc']:.1%}"


def table(rows: list[dict]) -> str:
    lines = ["| inputs | backbone | other options | test accuracy | chosen on | epochs | minutes (with data) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['inputs']} | {r['backbone']} | {' '.join(r.get('overrides', [])) or '-'} | **{r['test_acc']:.1%}** | "
              f"{chosen_on(r)} | {r['epochs']} | {r['minutes']} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", default=",".join(INPUTS), help=f"comma-separated, of {', '.join(INPUTS)}")
    p.add_argument("--backbones", default="small", help=f"comma-separated, of {', '.join(BACKBONES)}")
    p.add_argument("--minutes", type=float, default=11.0, help="training budget of each run (default: the preset's 11)")
    p.add_argument("overrides", nargs="*", help="more training options, after --")
    args = p.parse_args()
    grid = [(i.strip(), b.strip()) for i in args.inputs.split(",") for b in args.backbones.split(",")]
    wrong = [f"{i}/{b}" for i, b in grid if i not in INPUTS or b not in BACKBONES]
    if wrong:
        p.error(f"unknown inputs or backbone: {', '.join(wrong)}")
    rows = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    for inputs, backbone in grid:
        result = run(inputs, backbone, args.minutes, args.overrides)
        same = (inputs, backbone, args.overrides)  # a run replaces an earlier one of the same setting
        rows = [r for r in rows if (r["inputs"], r["backbone"], r.get("overrides", [])) != same] + [result]
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"runs": rows}, indent=2))
        print(f"\n{table(rows)}\n(written to {RESULTS})", flush=True)


if __name__ == "__main__":
    main()
