"""Piano-roll benchmark: JSB Chorales, MuseData and Piano-midi.de, NADE and Bernoulli outputs, one table.

    .venv/bin/python bench/pianoroll.py                                   # every corpus found, both outputs
    .venv/bin/python bench/pianoroll.py --corpora jsb --outputs nade      # one run
    .venv/bin/python bench/pianoroll.py --data jsb=/data/JSB_Chorales.mat # your own copy of a corpus
    .venv/bin/python bench/pianoroll.py -- --model.hidden_size=512        # any training override after --

Each run is `make train TASK=music-pianoroll` on that corpus (its 15-minute budget, early stopping), then
the test NLL per frame: total NLL of predicting frame t+1 from frames <= t over every test piece, divided by
the predicted frames (the Boulanger-Lewandowski 2012 protocol). The table also gives the run's kernel (sys)
share of user time. Every run is added to bench/results/pianoroll.json (replacing an earlier run of the
same corpus and output), and the table shows all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tasks.common.training import train
from tasks.registry import get_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CORPORA = {"jsb": "JSB_Chorales.mat", "musedata": "MuseData.mat", "pianomidi": "Piano_midi.mat"}
# Test NLL per frame from the papers. Bai et al. 2018 checked against its Table 1; the others as recalled from
# Boulanger-Lewandowski et al. 2012 (RNN-NADE) and Chung et al. 2014 (LSTM): check before quoting.
PUBLISHED = {
    "jsb": {"RNN-NADE (Boulanger-Lewandowski 2012)": 5.56, "TCN (Bai 2018)": 8.10, "LSTM (Bai 2018)": 8.45},
    "musedata": {"RNN-NADE (Boulanger-Lewandowski 2012)": 5.60, "LSTM (Chung 2014)": 6.23},
    "pianomidi": {"RNN-NADE (Boulanger-Lewandowski 2012)": 7.05, "LSTM (Chung 2014)": 9.03},
}
RESULTS = Path(__file__).resolve().parent / "results" / "pianoroll.json"


def run(corpus: str, path: str, output: str, overrides: list[str]) -> dict:
    before, start = os.times(), time.time()
    result = train(get_task("music-pianoroll"), [
        f"--data.path={path}", f"--model.output={output}", "--run.root=runs/bench", f"--run.name={corpus}-{output}",
        "--run.wandb=off", "--trainer.enable_progress_bar=false", *overrides,
    ])
    after = os.times()
    user, system = after.user - before.user, after.system - before.system
    return {"corpus": corpus, "output": output, "test_nll": round(float(result.metrics["test/nll"]), 3),
            "minutes": round((time.time() - start) / 60, 1), "epochs": result.trainer.current_epoch,
            "sys_over_user": round(system / max(user, 1e-9), 3), "overrides": overrides}


def table(rows: list[dict]) -> str:
    lines = ["| corpus | model | test NLL per frame | minutes | epochs | sys / user time |", "|---|---|---|---|---|---|"]
    for corpus in dict.fromkeys(row["corpus"] for row in rows):
        for row in (r for r in rows if r["corpus"] == corpus):
            lines.append(f"| {corpus} | **ours: LSTM + {row['output']}** | **{row['test_nll']:.2f}** | {row['minutes']} "
                         f"| {row['epochs']} | {row['sys_over_user']:.0%} |")
        for name, value in PUBLISHED[corpus].items():
            lines.append(f"| {corpus} | {name} | {value:.2f} | | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", default=",".join(CORPORA), help=f"comma-separated, of {', '.join(CORPORA)}")
    p.add_argument("--outputs", default="nade,bernoulli", help="comma-separated, of nade, bernoulli")
    p.add_argument("--data", action="append", default=[], metavar="CORPUS=PATH",
                   help=f"where a corpus is (default: {SHARED}/<its file>)")
    p.add_argument("overrides", nargs="*", help="more training options, after --")
    args = p.parse_args()
    paths = {corpus: SHARED / name for corpus, name in CORPORA.items()}
    for item in args.data:
        corpus, _, path = item.partition("=")
        if corpus not in CORPORA or not path:
            p.error(f"--data {item}: give CORPUS=PATH with CORPUS one of {', '.join(CORPORA)}")
        paths[corpus] = Path(path)
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    unknown = [c for c in corpora if c not in CORPORA] + [o for o in outputs if o not in ("nade", "bernoulli")]
    if unknown:
        p.error(f"unknown corpus or output: {', '.join(unknown)}")
    missing = [f"{c} ({paths[c]})" for c in corpora if not paths[c].is_file()]
    if missing:
        p.error(f"no such file for {', '.join(missing)}: pass --data CORPUS=PATH")
    rows = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []  # earlier runs of other settings
    for corpus in corpora:
        for output in outputs:
            result = {**run(corpus, str(paths[corpus]), output, args.overrides), "date": time.strftime("%Y-%m-%d")}
            rows = [r for r in rows if (r["corpus"], r["output"]) != (corpus, output)] + [result]
            rows.sort(key=lambda r: (list(CORPORA).index(r["corpus"]), r["output"] != "nade"))
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps({"cpus": os.cpu_count(), "runs": rows}, indent=2))
            print(f"\n{table(rows)}\n(written to {RESULTS})", flush=True)  # a long benchmark shows what it has


if __name__ == "__main__":
    main()
