"""Generation speed at the default model sizes: melody events/s and translation sentences/s.

Untrained models of the configs' sizes (speed does not depend on the weights' values), on this machine's CPU
unless --device says otherwise. Every figure is the median of --repeats runs, with its spread (min-max).

    .venv/bin/python bench/generation.py                 # the table
    .venv/bin/python bench/generation.py --reference     # also the module-by-module step (the old path), for a ratio
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import core.lean  # noqa: E402
from tasks.music.melody_model import MelodyModel  # noqa: E402
from tasks.translation.model import TranslationModel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "generation.json"


def model_settings(task: str) -> dict:
    return yaml.safe_load((REPO / "configs" / f"{task}.yaml").read_text())["model"]


def paired(run, repeats: int, variants: tuple[bool, ...]) -> dict[bool, list[float]]:
    """Seconds per run for each variant (core.lean on / off), alternating, so load drifts hit both alike."""
    times: dict[bool, list[float]] = {lean: [] for lean in variants}
    for index in range(repeats + 1):  # the first round warms up (allocator, first-call dispatch)
        for lean in variants:
            core.lean.ENABLED = lean
            start = time.perf_counter()
            run()
            if index:
                times[lean].append(time.perf_counter() - start)
    core.lean.ENABLED = True
    return times


def summary(count: int, times: dict[bool, list[float]]) -> dict:
    """Median and range of count/second for the lean path; with the reference, the median of paired ratios."""
    rates = sorted(count / t for t in times[True])
    out = {"median": statistics.median(rates), "min": rates[0], "max": rates[-1]}
    if False in times:
        out["reference"] = statistics.median(count / t for t in times[False])
        out["ratio"] = statistics.median(ref / lean for lean, ref in zip(times[True], times[False]))
    return out


def melody_rates(variants, repeats: int, length: int, device: str) -> dict:
    model = MelodyModel(vocab_size=40, **model_settings("music")).to(device)
    return {f"melody events/s, batch {batch}": summary(batch * length, paired(
        lambda: model.generate(batch, length, seed=0), repeats, variants)) for batch in (1, 64)}


def melody_floor(repeats: int, length: int, device: str) -> dict:
    """Batch-1 events/s if a step were its weight products alone (every addmm of the lean step, nothing else), in
    runs alternating with whole sampling runs: the ceiling the step's memory traffic sets, and the share of a step
    that is that traffic. Each product reads a (in, 4H) float32 matrix (1 MB for 256 x 1024) for one row."""
    model = MelodyModel(vocab_size=40, **model_settings("music")).to(device).eval()
    with torch.inference_mode():
        lean = core.lean.for_generation(model.decoder)
        weights = [(lean.bias[0], lean.w_hh[0])] + [(lean.bias[k], w) for k in range(1, lean.num_layers)
                                                     for w in (lean.w_ih[k], lean.w_hh[k])]
        if lean.bottleneck is not None:
            weights.append((lean.bottleneck[1], lean.bottleneck[0]))
        weights.append((lean.output_bias, lean.output_weight))
        products = [(bias, torch.zeros(1, weight.shape[0], device=device), weight) for bias, weight in weights]

        def weight_products():
            for _ in range(length):
                for bias, row, weight in products:
                    torch.addmm(bias, row, weight)

        floor, whole = [], []
        for index in range(repeats + 1):
            for run, times in ((weight_products, floor), (lambda: model.generate(1, length, seed=0), whole)):
                start = time.perf_counter()
                run()
                if index:
                    times.append(time.perf_counter() - start)
    rates = sorted(length / t for t in floor)
    return {"melody events/s, batch 1, weight products alone": {
        "median": statistics.median(rates), "min": rates[0], "max": rates[-1],
        "share of a step": statistics.median(f / w for f, w in zip(floor, whole))}}


def translation_rates(variants, repeats: int, sentences: int, device: str) -> dict:
    model = TranslationModel(vocab_size=1000, **model_settings("translation")).to(device).eval()
    src = torch.randint(4, 1000, (sentences, 12), device=device)  # about a numbers sentence's length in subwords
    lengths = torch.full((sentences,), 12, device=device)

    def one_by_one(beam: int):
        for i in range(sentences):
            model.generate(src[i:i + 1], lengths[i:i + 1], beam_size=beam)

    return {
        "translation greedy sentences/s, batch 1": summary(sentences, paired(lambda: one_by_one(1), repeats, variants)),
        "translation beam-5 sentences/s, batch 1": summary(sentences, paired(lambda: one_by_one(5), repeats, variants)),
        "translation greedy sentences/s, batch 64": summary(sentences, paired(
            lambda: model.generate(src, lengths, beam_size=1), repeats, variants)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--length", type=int, default=512, help="melody events per sample")
    parser.add_argument("--sentences", type=int, default=64, help="sentences per translation run")
    parser.add_argument("--reference", action="store_true",
                        help="also time the module-by-module step (LSTMDecoder.step, core.lean off), for a ratio")
    args = parser.parse_args(argv)

    variants = (True, False) if args.reference else (True,)
    table = {**melody_rates(variants, args.repeats, args.length, args.device),
             **melody_floor(args.repeats, args.length, args.device),
             **translation_rates(variants, args.repeats, args.sentences, args.device)}
    print(f"{'':44} {'median':>10} {'min-max':>20}" + ("   lean / reference (paired)" if args.reference else ""))
    for key, row in table.items():
        line = f"{key:44} {row['median']:10.1f} {row['min']:9.1f}-{row['max']:<10.1f}"
        if "ratio" in row:
            line += f"   {row['ratio']:.2f}x (reference {row['reference']:.1f})"
        if "share of a step" in row:
            line += f"   {row['share of a step']:.0%} of a whole step"
        print(line)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "device": args.device,
                                   "threads": torch.get_num_threads(), "table": table}, indent=1))
    print(f"written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
