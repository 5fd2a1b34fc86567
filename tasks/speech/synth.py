"""The offline default corpus: spoken numbers and voice-assistant commands, synthesized with espeak-ng.

Sentences come from num2words and small templates x slots (a few thousand distinct ones); each is spoken
by one of several espeak-ng voices at a random speed and pitch, with light white noise at a random SNR.
The test split is spoken only by voices that never occur in train or val, and no sentence is in two splits.
Output: <folder>/<split>/<n>.wav (16 kHz mono) and <folder>/<split>.jsonl manifests (see corpus.py).
"""
from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import soundfile
from num2words import num2words
from tqdm import tqdm

from tasks.common.atomic import save_atomic
from tasks.common.errors import InputError
from tasks.speech.audio import SAMPLE_RATE, read_audio, single_threaded
from tasks.speech.corpus import write_manifest

# A voice is an espeak-ng accent + a variant (`espeak-ng --voices=variant`); mbrola voices are rarely installed.
# Training draws from every pairing below (7 x 33); the test voices' accent (rp) and variants (f3, m7) are in
# none of them, so a test voice is new in both accent and voice quality, as a new speaker would be.
TRAIN_ACCENTS = ("en-us", "en-us-nyc", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m8", "f1", "f2", "f4", "f5", "adam", "alex", "andy", "annie",
                  "aunty", "benjamin", "david", "ed", "edward", "john", "linda", "max", "michael", "paul", "rob",
                  "robert", "steph", "travis", "victor", "zac", "grandma", "klatt3")
TRAIN_VOICES = tuple(f"{accent}+{variant}" for accent in TRAIN_ACCENTS for variant in TRAIN_VARIANTS)
TEST_VOICES = ("en-gb-x-rp+f3", "en-us+m7")
CORPUS_VERSION = 2  # part of the cache name: raise it when the same settings would make a different corpus
SPEEDS = (130, 210)  # words per minute
PITCHES = (25, 75)  # espeak-ng's 0..99 scale
SNR_DB = (20.0, 40.0)  # light noise, so silence is not digital zero
NUMBER_SHARE = 0.5  # of the sentences; the rest are commands
INSTALL_HINT = ("install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS), "
                "or train on real speech with --data.corpus manifest, librispeech or hf")

SLOTS = {
    "switch": ("on", "off"),
    "device": ("lights", "lamp", "fan", "heater", "radio", "television", "speaker", "air conditioning"),
    "room": ("kitchen", "living room", "bedroom", "bathroom", "hallway", "office", "garage", "garden", "basement",
             "nursery"),
    "track": ("next", "previous", "last", "first"),
    "genre": ("jazz", "rock", "classical", "pop", "country", "reggae", "blues", "folk", "soul", "dance"),
    "unit": ("seconds", "minutes", "hours"),
    "when": ("today", "tomorrow", "tonight", "this evening", "on monday", "on friday", "at the weekend", "next week"),
    "city": ("london", "paris", "berlin", "tokyo", "new york", "madrid", "rome", "sydney", "dublin", "boston",
             "chicago", "lisbon"),
    "person": ("mum", "dad", "anna", "peter", "sarah", "john", "grandma", "lucy", "tom", "the doctor", "my boss",
               "james"),
    "chore": ("buy milk", "call the bank", "water the plants", "take out the bins", "feed the cat", "pay the rent",
              "book a table", "pick up the kids", "charge my phone", "walk the dog"),
    "item": ("eggs", "apples", "bananas", "tomatoes", "onions", "carrots", "lemons", "bread rolls", "potatoes",
             "yoghurts"),
    "loudness": ("turn up", "turn down", "mute", "lower", "raise"),
    "count": tuple(num2words(n) for n in range(1, 100)),
    "few": tuple(num2words(n) for n in range(2, 13)),
    "degrees": tuple(num2words(n) for n in range(15, 31)),
    "clock": tuple(f"{num2words(h)} {m}" for h in range(1, 13) for m in ("o'clock", "fifteen", "thirty", "forty five")),
}
TEMPLATES = (
    "turn {switch} the {device}",
    "turn the {device} {switch} in the {room}",
    "play the {track} song",
    "play some {genre} music in the {room}",
    "don't play {genre} music",
    "set a timer for {count} {unit}",
    "set an alarm for {clock} {when}",
    "what's the weather like {when} in {city}",
    "what time is it in {city}",
    "how long does it take to get to {city}",
    "call {person}",
    "send a message to {person}",
    "remind me to {chore} {when}",
    "remind me to {chore} at {clock}",
    "set the {room} to {degrees} degrees",
    "set the volume to {count} percent",
    "{loudness} the volume in the {room}",
    "add {few} {item} to the shopping list",
)


def normalize_text(text: str) -> str:
    """Lower case, letters, apostrophes and single spaces: "Forty-two, please!" -> "forty two please"."""
    text = re.sub(r"[^a-z' ]", "", text.lower().replace("-", " "))
    return " ".join(text.split())


def number_phrase(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.7:
        digits = rng.randint(1, 4)  # as many short numbers as long ones
        return num2words(rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10**digits))
    if draw < 0.85:
        return num2words(rng.randint(1, 100), to="ordinal")
    return num2words(rng.randint(1900, 2099), to="year")


def command_phrase(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    return template.format(**{name: rng.choice(SLOTS[name]) for name in re.findall(r"{(\w+)}", template)})


def distinct_sentences(count: int, rng: random.Random) -> list[str]:
    """`count` different normalised sentences, numbers and commands mixed."""
    sentences: dict[str, None] = {}  # a dict keeps the draw order, so the corpus depends on the seed alone
    for _ in range(50 * count + 1000):
        if len(sentences) == count:
            return list(sentences)
        phrase = number_phrase(rng) if rng.random() < NUMBER_SHARE else command_phrase(rng)
        sentences.setdefault(normalize_text(phrase))
    raise InputError(f"could only make {len(sentences)} different sentences, not {count}: "
                     "ask for a smaller synthetic corpus")


def split_sentences(sizes: dict[str, int], rng: random.Random) -> dict[str, list[str]]:
    """{split: number of sentences} -> {split: sentences}, no sentence in two splits, all drawn from one shuffled pool.

    Shuffling gives every split the same mix of templates. Without it, the first sentences drawn (which went to
    test) held nearly all of the small templates, such as "call {person}", since those run out of new sentences
    before the later draws: 5.6% of the test words were never heard in training.
    """
    pool = distinct_sentences(sum(sizes.values()), rng)
    rng.shuffle(pool)
    texts, start = {}, 0
    for split, size in sizes.items():
        texts[split], start = pool[start : start + size], start + size
    return texts


class Job(NamedTuple):
    espeak: str  # the executable's path
    text: str
    voice: str
    speed: int
    pitch: int
    snr_db: float
    noise_seed: int
    out: str


def speak(job: Job) -> float:
    """Synthesize one utterance and write it as a 16 kHz mono WAV -> its duration in seconds."""
    command = [job.espeak, "-v", job.voice, "-s", str(job.speed), "-p", str(job.pitch), "--stdout", job.text]
    spoken = subprocess.run(command, capture_output=True, check=False)
    if spoken.returncode != 0 or not spoken.stdout:
        raise RuntimeError(f"{' '.join(command)} failed: {spoken.stderr.decode(errors='replace').strip()}")
    with single_threaded():
        samples = read_audio(io.BytesIO(spoken.stdout)).numpy()  # espeak-ng speaks at 22.05 kHz
    rng = np.random.default_rng(job.noise_seed)
    noise_power = np.mean(samples**2) / 10 ** (job.snr_db / 10)
    noisy = samples + rng.normal(0.0, np.sqrt(noise_power), samples.shape).astype(np.float32)
    noisy = np.clip(noisy, -1.0, 1.0)
    # whole or not at all: a process building the same corpus at the same time may be reading this file
    save_atomic(job.out, lambda file: soundfile.write(file, noisy, SAMPLE_RATE, subtype="PCM_16", format="WAV"))
    return len(samples) / SAMPLE_RATE


def find_espeak() -> str:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise InputError(f"espeak-ng is not installed (not found on PATH); the default speech corpus is synthesized "
                         f"with it: {INSTALL_HINT}")
    return espeak


def synthesize_corpus(
    folder: str | Path,
    *,
    train: int = 4000,
    val: int = 300,
    test: int = 300,
    voices: Sequence[str] = TRAIN_VOICES,
    test_voices: Sequence[str] = TEST_VOICES,
    seed: int = 0,
    workers: int = 0,
) -> dict[str, Path]:
    """Synthesize the corpus into `folder` unless it is already there -> {"train"|"val"|"test": manifest path}.

    Args:
        folder: where the WAV files and the three manifests go.
        train, val, test: utterances per split; every utterance has its own sentence.
        voices: espeak-ng voices for train and val.
        test_voices: voices for test only; they must not be among `voices`.
        seed: draws sentences, voices, speeds, pitches and noise.
        workers: synthesis processes; 0 = one per core, 1 = in this process.
    """
    folder = Path(folder).expanduser()
    manifests = {split: folder / f"{split}.jsonl" for split in ("train", "val", "test")}
    if all(path.exists() for path in manifests.values()):
        return manifests
    shared = set(voices) & set(test_voices)
    if shared:
        raise InputError(f"test voices {', '.join(sorted(shared))} are also train voices: "
                         "the test split must hold out whole voices")
    espeak = find_espeak()
    rng = random.Random(seed)
    texts = split_sentences({"train": train, "val": val, "test": test}, rng)
    jobs, rows = [], []
    for split in ("train", "val", "test"):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(texts[split]):
            job = Job(espeak, text, rng.choice(test_voices if split == "test" else voices), rng.randint(*SPEEDS),
                      rng.randint(*PITCHES), round(rng.uniform(*SNR_DB), 1), rng.randrange(2**32),
                      str(folder / split / f"{n:05d}.wav"))
            jobs.append(job)
            rows.append((split, {"audio_filepath": f"{split}/{n:05d}.wav", "text": text, "voice": job.voice,
                                 "speed": job.speed, "pitch": job.pitch, "snr_db": job.snr_db}))
    durations = _run(jobs, workers)
    for split, path in manifests.items():
        done = [{**row, "duration": round(seconds, 3)} for (s, row), seconds in zip(rows, durations) if s == split]
        write_manifest(path, done)
    return manifests


def _run(jobs: list[Job], workers: int) -> list[float]:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    desc = f"Synthesizing {len(jobs)} utterances with espeak-ng (once, then cached)"
    if workers <= 1:
        return [speak(job) for job in tqdm(jobs, desc=desc, unit="utt")]
    with get_context("spawn").Pool(workers) as pool:  # spawn, like tasks.common.workers: no forked torch threads
        return list(tqdm(pool.imap(speak, jobs, chunksize=16), total=len(jobs), desc=desc, unit="utt"))
