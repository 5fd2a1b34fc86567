"""Audio in, features out: any WAV/FLAC -> 16 kHz mono -> normalised 80-band log-mel; SpecAugment for training.

Shapes: S samples at 16 kHz, T feature frames (one per 10 ms), M mel bands.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import BinaryIO, Union

import numpy as np
import soundfile
import torch
import torchaudio

SAMPLE_RATE = 16_000
HOP = 160  # samples per feature frame: 10 ms
N_FFT = 400  # 25 ms windows
LOG_FLOOR = 1e-6  # keeps log finite on digital silence
FREQ_MASKS, FREQ_MASK_BANDS = 2, 15  # SpecAugment: masks per utterance, widest mask in bands
TIME_MASKS, TIME_MASK_SHARE = 2, 0.1  # masks per utterance, widest mask as a share of the utterance
TIME_MASK_CAP = 100  # frames (1 s): torchaudio draws widths below min(cap, share * T)

AudioSource = Union[str, BinaryIO]


def read_audio(source: AudioSource) -> torch.Tensor:
    """A WAV/FLAC/OGG file (path or open file) at any rate and channel count -> samples (S,) float32, 16 kHz mono.

    soundfile rather than torchaudio.load: recent torchaudio needs torchcodec for that.
    """
    samples, rate = soundfile.read(source, dtype="float32", always_2d=True)  # (S, channels)
    if samples.shape[0] == 0:
        raise ValueError("no samples")
    if not np.isfinite(samples).all():
        raise ValueError("samples that are NaN or infinite")
    mono = torch.from_numpy(samples.mean(axis=1))  # (S,)
    if rate != SAMPLE_RATE:
        mono = torchaudio.functional.resample(mono, rate, SAMPLE_RATE)
    return mono


@lru_cache(maxsize=4)
def _mel(n_mels: int) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=n_mels)


def log_mel(samples: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """samples (S,) at 16 kHz -> features (T, M), T = 1 + S // 160, each band zero mean and unit variance over time.

    Normalising per utterance removes loudness and channel differences between corpora.
    """
    if len(samples) < N_FFT:  # (and the STFT's reflection padding fails below half a window)
        raise ValueError(f"too short: {len(samples)} samples ({1000 * len(samples) / SAMPLE_RATE:.1f} ms), "
                         f"under one {N_FFT}-sample ({1000 * N_FFT // SAMPLE_RATE} ms) analysis window")
    with torch.no_grad():
        power = _mel(n_mels)(samples)  # (M, T)
        logs = torch.log(power + LOG_FLOOR)
        logs = logs - logs.mean(dim=1, keepdim=True)
        logs = logs / (logs.std(dim=1, keepdim=True, unbiased=False) + 1e-5)  # a constant band stays at 0
    return logs.T.contiguous()  # (T, M)


@contextmanager
def single_threaded():
    """One clip is too little work to share out: extra torch threads only spin-wait (60 ms instead of 1 ms a clip
    when another job keeps the cores busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def file_features(source: AudioSource, n_mels: int = 80) -> tuple[np.ndarray, float]:
    """-> (features (T, M) float16, seconds of audio). float16 halves the cache; features are normalised so it fits."""
    with single_threaded():
        samples = read_audio(source)
        return log_mel(samples, n_mels).to(torch.float16).numpy(), len(samples) / SAMPLE_RATE


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)  # the HTK scale torchaudio's MelSpectrogram uses by default


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def warp_frequencies(features: torch.Tensor, factor: float) -> torch.Tensor:
    """Log-mel features (T, M) as if the speaker's vocal tract were `factor` times shorter (VTLP, Jaitly & Hinton
    2013): the spectrum is stretched by `factor` along Hz, so formants move up for factor > 1 (and down below 1).

    Band i reads the band at frequency hz(i) / factor, interpolated between its two neighbours on the mel axis.
    """
    low, high, share = _warp_table(features.shape[1], round(factor, 3))
    return features[:, low] * (1 - share) + features[:, high] * share


@lru_cache(maxsize=512)
def _warp_table(bands: int, factor: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> for each band: the band below and above where it reads from, and the share of the one above."""
    step = _hz_to_mel(torch.tensor(SAMPLE_RATE / 2)) / (bands + 1)  # band centres sit at (i + 1) * step
    centres = (torch.arange(bands) + 1) * step
    source = (_hz_to_mel(_mel_to_hz(centres) / factor) / step - 1).clamp(0, bands - 1)  # fractional band index
    low = source.floor().long()
    return low, (low + 1).clamp(max=bands - 1), source - low


class SpecAugment(torch.nn.Module):
    """Masks random bands and random stretches of time with 0 (the mean, after normalisation); training only.
    With `warp` > 0, the frequency axis is first warped by a factor drawn from 1 +- warp (VTLP: new voices).

    features (T, M) -> (T, M), a new draw on every call.
    """

    def __init__(self, warp: float = 0.0):
        super().__init__()
        self.warp = warp
        self.freq = torchaudio.transforms.FrequencyMasking(FREQ_MASK_BANDS)
        self.time = torchaudio.transforms.TimeMasking(TIME_MASK_CAP, p=TIME_MASK_SHARE)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.warp > 0:
            features = warp_frequencies(features, 1.0 + self.warp * (2 * float(torch.rand(())) - 1))
        spectrogram = features.T  # (M, T): torchaudio masks the last two axes as (freq, time)
        for _ in range(FREQ_MASKS):
            spectrogram = self.freq(spectrogram)
        for _ in range(TIME_MASKS):
            spectrogram = self.time(spectrogram)
        return spectrogram.T
