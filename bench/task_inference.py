"""Each task's generation or inference figure, on the model bench/task_speed.py has just trained a little.

Every figure is the median of `REPEATS` timed runs after one warm-up run, with its range. Speed does not depend
on how well trained the weights are, except where the output's length does: translation decodes to its
length limit until the model has learned to stop, so its figures are a floor.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch

REPEATS = 3


def rate(count: int, run: Callable[[], object]) -> dict:
    """count / seconds of run(): median and range over REPEATS runs after a warm-up."""
    run()
    values = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        values.append(count / (time.perf_counter() - start))
    values.sort()
    return {"median": statistics.median(values), "min": values[0], "max": values[-1]}


def music(model, data) -> dict:
    length = 512
    return {f"events/s, batch {b}": rate(b * length, lambda b=b: model.generate(b, length, seed=0)) for b in (1, 64)}


def music_pianoroll(model, data) -> dict:
    frames, primer = 128, np.zeros((1, model.hparams["keys"]), dtype=np.uint8)
    return {f"frames/s, batch {b}": rate(b * frames, lambda b=b: model.generate(b, frames, primer, seed=0))
            for b in (1, 16)}


def translation(model, data) -> dict:
    model.eval()
    batch = next(iter(data.val_dataloader()))
    src, lengths = batch.src[:32], batch.src_lengths[:32]

    def one_by_one(beam: int):
        for i in range(len(src)):
            model.generate(src[i:i + 1], lengths[i:i + 1], beam_size=beam)

    return {"greedy sentences/s, batch 1": rate(len(src), lambda: one_by_one(1)),
            "beam-5 sentences/s, batch 1": rate(len(src), lambda: one_by_one(5)),
            "greedy sentences/s, batch 32": rate(len(src), lambda: model.generate(src, lengths, beam_size=1))}


def speech(model, data) -> dict:
    """Real-time factor (audio seconds per second of work) of `transcribe` on 32 validation files: reading,
    features, the network and the decoder."""
    utterances = data.utterances["val"][:32]
    paths, audio = [u.audio for u in utterances], sum(u.duration for u in utterances)
    return {f"x real time, {decoder}, batch 32": rate(audio, lambda d=decoder: model.transcribe(paths, d))
            for decoder in ("greedy", "beam")}


def video(model, data) -> dict:
    files = data.val_dataloader().dataset.files[:32]
    clips = [np.load(f) for f in files]
    return {"clips/s, batch 1": rate(len(clips), lambda: [model.probabilities([c]) for c in clips]),
            "clips/s, batch 32": rate(len(clips), lambda: model.probabilities(clips))}


def forecast(model, data) -> dict:
    return {"forecasts/s (one window)": rate(200, lambda: [model.forecast() for _ in range(200)])}


INFERENCE: dict[str, Callable[[object, object], dict]] = {
    "music": music, "music-pianoroll": music_pianoroll, "translation": translation, "speech": speech,
    "video": video, "forecast": forecast,
}


@torch.inference_mode()
def measure(task: str, model, data) -> dict:
    return INFERENCE[task](model, data)
