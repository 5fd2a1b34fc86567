"""A stand-in for a small corpus of real isolated words (the layout of the Free Spoken Digit Dataset): a few
"speakers" (espeak-ng voices, each with its own pitch and rate) saying zero..nine many times with variation, 8 kHz
WAVs cut tightly around the word, NeMo manifests with a speaker field. For developing against, not for numbers to
quote about real voices.

    .venv/bin/python bench/make_spoken_digits.py /tmp/digits          # 6 speakers x 10 words x 50 takes
    .venv/bin/python bench/speech_real.py /tmp/digits --minutes 6
"""
from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from tasks.speech.synth import TRAIN_VOICES, find_espeak

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RATE = 8000


def take(espeak: str, voice: str, word: str, speed: int, pitch: int, seed: int, out: Path) -> None:
    spoken = subprocess.run([espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                            capture_output=True, check=True).stdout
    samples, rate = soundfile.read(io.BytesIO(spoken), dtype="float32")
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, RATE).numpy()
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    rng = np.random.default_rng(seed)
    margin = int(rng.integers(0, RATE // 50))  # 0-20 ms kept around the word: cut tightly, as FSDD is
    samples = samples[max(0, loud[0] - margin) : loud[-1] + margin]
    samples = samples * rng.uniform(0.3, 1.0) + rng.normal(0, 0.003, samples.shape).astype(np.float32)
    soundfile.write(out, np.clip(samples, -1, 1), RATE, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--takes", type=int, default=50, help="recordings of each word by each speaker")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    espeak, rng = find_espeak(), random.Random(args.seed)
    folder = args.folder.expanduser()
    (folder / "recordings").mkdir(parents=True, exist_ok=True)
    voices = rng.sample(TRAIN_VOICES, args.speakers)
    jobs, rows = [], {"train": [], "val": [], "test": []}
    for s, voice in enumerate(voices):
        speaker, base_pitch, base_speed = f"speaker{s}", rng.randint(25, 75), rng.randint(140, 200)
        for word in WORDS:
            for n in range(args.takes):
                out = folder / "recordings" / f"{WORDS.index(word)}_{speaker}_{n}.wav"
                jobs.append((espeak, voice, word, base_speed + rng.randint(-25, 25), base_pitch + rng.randint(-8, 8),
                             rng.randrange(2**32), out))
                split = "test" if n < args.takes // 10 else "val" if n < args.takes // 5 else "train"  # FSDD: takes 0-4 test
                rows[split].append({"audio_filepath": str(out), "text": word, "speaker": speaker})
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: take(*job), jobs))
    for split, split_rows in rows.items():
        for row in split_rows:
            row["duration"] = round(soundfile.info(row["audio_filepath"]).duration, 3)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    print(f"{folder}: {', '.join(f'{k} {len(v)}' for k, v in rows.items())} clips of {args.speakers} speakers "
          f"({', '.join(voices)})")


if __name__ == "__main__":
    main()
