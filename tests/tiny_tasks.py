"""Tiny data and model settings for every task, written into a folder: what the distributed tests train.

tiny(task, folder) -> {"data": {...}, "model": {...}}; `cli_args` turns it into `lstm-suite train TASK`
arguments, and the data module can be built straight from "data". The task configs' callbacks stay on.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
from scipy.io import savemat

from music_fixtures import write_melody_folder

SPEECH_TEXTS = ["turn on", "play jazz", "call mum", "stop", "what's up", "set a timer", "lights off", "next song",
                "volume up", "go home", "say hi", "call dad", "lights on", "play rock", "stop it", "go back"]


def chorale_like_rolls(rng, pieces, frames=(32, 32)):
    """Four voices moving by small steps around a chord: learnable structure, not noise. frames: (fewest, most)."""
    rolls = []
    for _ in range(pieces):
        length = frames[0] if frames[0] == frames[1] else int(rng.integers(frames[0], frames[1] + 1))
        roll = np.zeros((length, 88), dtype=np.uint8)
        voices = np.array([36, 43, 52, 60]) + rng.integers(0, 5)
        for t in range(len(roll)):
            voices = np.clip(voices + rng.choice([-2, 0, 0, 2], size=4), 21, 100)
            roll[t, voices - 21] = 1
        rolls.append(roll)
    return rolls


def write_jsb_like(path: Path, train: int = 24, val: int = 6, test: int = 6, frames=(32, 32)) -> Path:
    """A .mat file in the layout of JSB_Chorales.mat (Bai et al. 2018), of chorale-like rolls."""
    rng = np.random.default_rng(0)
    splits = {"traindata": chorale_like_rolls(rng, train, frames), "validdata": chorale_like_rolls(rng, val, frames),
              "testdata": chorale_like_rolls(rng, test, frames)}
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {k: np.array(v + [None], dtype=object)[:-1][None] for k, v in splits.items()})
    return path


def babble(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Noise with a moving pitch and loudness, so every mel band varies over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sweep = np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.4 * (sweep + 0.1 * rng.normal(size=t.shape))).astype(np.float32)


def write_speech_manifests(folder: Path, sizes=(10, 5, 3)) -> dict[str, Path]:
    """train/val/test JSON-lines manifests of babble clips (no espeak-ng needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifests, i = {}, 0
    for split, count in zip(("train", "val", "test"), sizes):
        rows = []
        for _ in range(count):
            audio = folder / f"u{i}.wav"
            soundfile.write(audio, babble(0.8 + 0.05 * i, 16000, seed=i), 16000)
            rows.append({"audio_filepath": str(audio), "text": SPEECH_TEXTS[i % len(SPEECH_TEXTS)], "duration": 1.0})
            i += 1
        manifests[split] = folder / f"{split}.jsonl"
        manifests[split].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifests


def tiny(task: str, folder: Path) -> dict:
    folder = Path(folder)
    cache = str(folder / "cache")
    if task == "music":
        write_melody_folder(folder / "midi", 24)
        return {"data": dict(midi_dir=str(folder / "midi"), cache_dir=cache, parse_workers=1, batch_size=4, max_len=64,
                             val_percent=20, test_percent=20),
                "model": dict(hidden_size=32, embedding_dim=16, num_layers=1, dropout=0.0)}
    if task == "music-pianoroll":
        # pieces of 8 to 40 frames in windows of 6: processes whose batches need different numbers of windows
        return {"data": dict(path=str(write_jsb_like(folder / "jsb.mat", 12, 5, 3, frames=(8, 40))), batch_size=4),
                "model": dict(hidden_size=16, num_layers=1, nade_hidden=8, dropout=0.0, window=6)}
    if task == "translation":
        return {"data": dict(numbers_train=300, numbers_val=30, numbers_test=20, vocab_size=200, batch_size=16,
                             cache_dir=cache),
                "model": dict(embedding_dim=16, hidden_size=32, num_layers=1, val_bleu_sentences=20, beam_size=2)}
    if task == "speech":
        manifests = write_speech_manifests(folder / "corpus")
        return {"data": dict(corpus="manifest", train_manifest=str(manifests["train"]),
                             val_manifest=str(manifests["val"]), test_manifest=str(manifests["test"]), cache_dir=cache,
                             prepare_workers=1, batch_size=3, n_mels=40),
                "model": dict(hidden_size=32, num_layers=1, dropout=0.0, decoder="beam")}
    if task == "forecast":
        return {"data": dict(timesteps=26, batch_size=64),
                "model": dict(hidden_size=16)}
    if task == "video":
        return {"data": dict(synth_clips_per_class=3, synth_frames=8, synth_size=32, test_fraction=0.34,
                             val_fraction=0.5, frames=4, cache_frames=8, height=32, width=32, crop=28, batch_size=4,
                             num_workers=0, prepare_workers=1, cache_dir=cache),
                "model": dict(channels=[8, 16], feature_size=16, hidden_size=16, dropout=0.0)}
    raise KeyError(task)


def cli_args(settings: dict) -> list[str]:
    def show(value):
        return json.dumps(value) if isinstance(value, (list, dict)) else str(value)

    return ([f"--data.{k}={show(v)}" for k, v in settings["data"].items()]
            + [f"--model.{k}={show(v)}" for k, v in settings["model"].items()])
