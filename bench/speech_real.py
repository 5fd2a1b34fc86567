"""Speech on your own recordings: WER greedy and with the validated beam search, without and with each waveform
augmentation, one training run per row (never part of `make test`).

    # a folder holding train / val / test manifests (NeMo JSON lines: audio_filepath, text, optional speaker)
    .venv/bin/python bench/speech_real.py /data/digits --minutes 12
    .venv/bin/python bench/speech_real.py /data/digits --minutes 3 --rows none,speed,all -- --data.test_speaker_share=0.2

Manifests are found as train*.json[l], val*/dev*.json[l] and test*.json[l] in the folder. Arguments after `--`
go to every training run (any `lstm-suite train speech` option). Rows run one after the other, never at once.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tasks.common.errors import InputError
from tasks.common.training import train
from tasks.registry import get_task

ROWS = {
    "none": [],
    "speed": ["--data.speed_perturb=true"],
    "noise": ["--data.noise_snr=[5,30]"],
    "reverb": ["--data.reverb=0.3"],
    "all": ["--data.speed_perturb=true", "--data.noise_snr=[5,30]", "--data.reverb=0.3"],
}


def find_manifests(folder: Path) -> dict[str, Path]:
    found = {}
    for split, stems in (("train", ("train",)), ("val", ("val", "dev")), ("test", ("test",))):
        matches = sorted(p for stem in stems for suffix in ("json", "jsonl") for p in folder.glob(f"{stem}*.{suffix}"))
        if matches:
            found[split] = matches[0]
    if "train" not in found or "val" not in found:
        raise InputError(f"{folder}: needs train*.json[l] and val*.json[l] (or dev*) manifests")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the folder with the manifests")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time per row")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which of {', '.join(ROWS)}")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (augmented rows read audio)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    manifests = find_manifests(args.folder.expanduser())
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise InputError(f"--rows: {', '.join(unknown)}: choose from {', '.join(ROWS)}")
    budget = time.strftime("00:%H:%M:%S", time.gmtime(args.minutes * 60))
    common = ["--data.corpus=manifest", *(f"--data.{split}_manifest={path}" for split, path in manifests.items()),
              f"--trainer.max_time={budget}", f"--data.num_workers={args.workers}", "--run.wandb=off",
              "--run.root=runs/bench", "--trainer.enable_progress_bar=false"]
    results = []
    for row in rows:
        began = time.perf_counter()
        result = train(get_task("speech"), [*common, *ROWS[row], *extra, f"--run.name=real-{row}-{int(time.time())}"])
        m = result.metrics
        results.append((row, m.get("test/wer_greedy"), m.get("test/wer"), m.get("test/decoder_val_wer_greedy"),
                        m.get("test/decoder_val_wer_beam"), m.get("test/decoder_beam_chosen"),
                        time.perf_counter() - began))
    print(f"\n{args.folder}: {args.minutes:g} min of training per row\n")
    print("| augmentation | test WER greedy | test WER (chosen decoder) | val WER greedy | val WER best beam | decoder | wall |")
    print("|---|---|---|---|---|---|---|")
    for row, greedy, chosen, val_greedy, val_beam, beam, wall in results:
        def pct(x):
            return "-" if x is None else f"{x:.2%}"
        decoder = "-" if beam is None else "beam" if beam else "greedy"
        print(f"| {row} | {pct(greedy)} | {pct(chosen)} | {pct(val_greedy)} | {pct(val_beam)} | {decoder} | {wall / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as error:
        sys.exit(f"bench/speech_real.py: {error}")
