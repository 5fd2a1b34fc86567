"""`make bench`: every task's quick benchmark, one table (and bench/results/suite.json).

    make bench                                  # all tasks, ~15 minutes on 2 CPU cores (with first-use data)
    .venv/bin/python bench/suite.py music speech --batches 30

Per task, each in a process of its own (bench/task_speed.py): training examples/s end to end and of the model
alone on batches already in memory, their ratio (the pipeline's efficiency), peak resident memory, and the
task's generation or inference figure (bench/task_inference.py). Then the core encoder against a bare nn.LSTM
(bench/encoder_parity.py), and forecast against Keras as last measured by bench/forecast_keras.py (5 paired
runs take 7 minutes and TensorFlow: run it on its own). Figures are medians, with their range over repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import encoder_parity  # noqa: E402

RESULTS = REPO / "bench" / "results" / "suite.json"
KERAS = REPO / "bench" / "results" / "forecast_keras.json"
TASKS = ("music", "music-pianoroll", "translation", "speech", "video", "forecast")
JSB = REPO.parent / "shared" / "data" / "JSB_Chorales.mat"  # where this project's machines keep it


def run_task(task: str, batches: int, repeats: int, log: Path, overrides: list[str]) -> dict:
    """bench/task_speed.py in its own process (its peak memory is the task's alone); its output goes to `log`."""
    command = [sys.executable, str(REPO / "bench" / "task_speed.py"), task, f"--batches={batches}",
               f"--repeats={repeats}", *overrides]
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=out, text=True, cwd=REPO)
    out_lines = done.stdout.splitlines()
    result = next((line[len("RESULT "):] for line in out_lines if line.startswith("RESULT ")), None)
    if done.returncode or result is None:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        return {"task": task, "error": f"exit {done.returncode}: {tail[0]} (whole log: {log})"}
    return json.loads(result)


def spread(row: dict, digits: int = 0) -> str:
    return f"{row['median']:,.{digits}f} ({row['min']:,.{digits}f}-{row['max']:,.{digits}f})"


def keras_row() -> str:
    if not KERAS.is_file():
        return "not measured: `make bench BENCH=forecast_keras`"
    result = json.loads(KERAS.read_text())
    ratio = result.get("ratio", {})
    if not ratio:
        return f"see {KERAS.relative_to(REPO)}"
    return (f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f}) faster per epoch than Keras, "
            f"{result.get('date', '?')}")


def table(results: list[dict], parity: dict) -> str:
    lines = ["| task | training examples/s, end to end | model only | efficiency | where the rest goes | peak RSS | "
             "generation / inference |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['task']} | " + (f"failed: {r['error']}" if "error" in r else f"skipped: {r['skipped']}")
                         + " | | | | | |")
            continue
        figures = "; ".join(f"{name} {spread(row)}" for name, row in r["inference"].items())
        if r["task"] == "forecast":
            figures += "; " + keras_row()
        rest = ", ".join(f"{name} {share:.0%}" for name, share in r["shares"].items() if name != "model")
        lines.append(f"| {r['task']} | {spread(r['end_to_end'], 1)} | {spread(r['model_only'], 1)} | "
                     f"**{r['efficiency']:.2f}** | {rest} | {r['peak_rss_mib'] / 1024:.2f} GiB | {figures} |")
    lines += ["", "| encoder shape: call path | bare nn.LSTM time / LSTMEncoder time |", "|---|---|"]
    lines += [f"| {key} | {row['median']:.2f} ({row['min']:.2f}-{row['max']:.2f}) |" for key, row in parity.items()]
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", default=list(TASKS), help=f"default: {' '.join(TASKS)}")
    parser.add_argument("--batches", type=int, default=30, help="training batches per timed epoch at most")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (and runs of each figure)")
    parser.add_argument("--jsb", default=str(JSB) if JSB.is_file() else None,
                        help="JSB_Chorales.mat for music-pianoroll, which has no default corpus (default: " + str(JSB) + ")")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}: choose from {', '.join(TASKS)}")
    logs = RESULTS.parent / "suite-logs"
    logs.mkdir(parents=True, exist_ok=True)
    start, results = time.time(), []
    for i, task in enumerate(args.tasks, 1):
        print(f"[{i}/{len(args.tasks)}] {task} (log: {(logs / task).relative_to(REPO)}.log) ...", end=" ", flush=True)
        began = time.time()
        if task == "music-pianoroll" and not args.jsb:
            results.append({"task": task, "skipped": "it needs the JSB Chorales split, give --jsb FILE"})
            print("skipped", flush=True)
            continue
        overrides = [f"--data.path={args.jsb}"] if task == "music-pianoroll" else []
        results.append(run_task(task, args.batches, args.repeats, logs / f"{task}.log", overrides))
        print("failed" if "error" in results[-1] else f"{time.time() - began:.0f} s", flush=True)
    print("[encoder] the core encoder against a bare nn.LSTM ...", end=" ", flush=True)
    import torch

    parity = encoder_parity.measure()
    print("done", flush=True)
    report = table(results, parity)
    header = (f"`make bench`, {time.strftime('%Y-%m-%d')}, {machine()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads; {(time.time() - start) / 60:.1f} min in all")
    print(f"\n{header}\n\n{report}")
    RESULTS.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": machine(), "tasks": results,
                                   "encoder_parity": parity, "minutes": (time.time() - start) / 60}, indent=1))
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 1 if any("error" in r for r in results) else 0  # a task skipped for want of its data is not a failure


if __name__ == "__main__":
    sys.exit(main())
