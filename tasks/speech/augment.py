"""Waveform augmentation for training clips, with torchaudio: speed perturbation, additive noise, room reverberation.

Real voices differ in speaking rate, background and room, and a small corpus shows too little of each. These run on
the training audio as it is read (never on validation or test), before features and SpecAugment.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch
import torchaudio

from tasks.speech.audio import SAMPLE_RATE, read_audio

SPEEDS = (0.9, 1.0, 1.1)  # Ko et al. 2015, as in Kaldi's and ESPnet's recipes: tempo and pitch change together
NOISE_SHARE = 0.5  # of training clips that get noise, so the model also keeps hearing clean speech
RT60 = (0.2, 0.8)  # seconds for the reverberation to decay by 60 dB: small rooms to large ones


def change_speed(samples: torch.Tensor, factor: float) -> torch.Tensor:
    """samples (S,) played `factor` times faster: about S / factor samples, every frequency times `factor`."""
    if factor == 1.0:
        return samples
    faster, _ = torchaudio.functional.speed(samples[None], SAMPLE_RATE, factor)
    return faster[0]


def coloured_noise(length: int, exponent: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gaussian noise whose power falls as 1 / f**exponent: 0 white (hiss), 1 pink, 2 brown (rumble)."""
    spectrum = torch.fft.rfft(torch.randn(length, generator=generator))
    frequencies = torch.arange(spectrum.shape[0], dtype=torch.float32).clamp(min=1.0)
    return torch.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)


def add_noise(samples: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """samples (S,) plus noise (S,) scaled to be snr_db below them in power."""
    return torchaudio.functional.add_noise(samples[None], noise[None], torch.tensor([snr_db]))[0]


def room_impulse_response(rt60: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A synthetic room: the direct sound, then exponentially decaying noise (-60 dB after rt60 seconds)."""
    length = int(rt60 * SAMPLE_RATE)
    t = torch.arange(length, dtype=torch.float32) / SAMPLE_RATE
    tail = torch.randn(length, generator=generator) * torch.exp(-t * 3 * math.log(10) / rt60)  # amplitude: -60 dB
    tail[0] = 0.0
    return torch.cat([torch.ones(1), 0.3 * tail / tail.norm().clamp(min=1e-9)])


def reverberate(samples: torch.Tensor, rt60: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """samples (S,) as heard in a room with that reverberation time, at the same loudness, S samples long."""
    wet = torchaudio.functional.fftconvolve(samples, room_impulse_response(rt60, generator))[: len(samples)]
    return wet * samples.norm() / wet.norm().clamp(min=1e-9)


class WaveAugment:
    """A new draw on every call: samples (S,) at 16 kHz -> augmented samples (length changes with the speed).

    Args:
        speed: play each clip at a speed drawn from 0.9, 1.0 and 1.1.
        noise_snr: (low, high) dB: half the clips get noise at an SNR drawn from this range; None = off.
        noise_files: recordings of background noise to draw from (a random stretch, looped if short); without
            them the noise is coloured Gaussian noise, from hiss to rumble.
        reverb: the share of clips played in a synthetic room (RT60 0.2-0.8 s); 0 = off.
    """

    def __init__(self, speed: bool = False, noise_snr: Optional[Sequence[float]] = None,
                 noise_files: Sequence[str] = (), reverb: float = 0.0, generator: Optional[torch.Generator] = None):
        self.speed, self.noise_snr, self.noise_files, self.reverb = speed, noise_snr, list(noise_files), reverb
        # None: torch's global generator, which DataLoader seeds differently in every worker and epoch
        self.generator = generator
        self._noise_cache: dict[str, torch.Tensor] = {}

    @property
    def active(self) -> bool:
        return self.speed or self.noise_snr is not None or self.reverb > 0

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _noise(self, length: int) -> torch.Tensor:
        if not self.noise_files:
            return coloured_noise(length, 2 * self._uniform(), self.generator)
        path = self.noise_files[int(torch.randint(len(self.noise_files), (), generator=self.generator))]
        if path not in self._noise_cache:
            self._noise_cache[path] = read_audio(path)
        noise = self._noise_cache[path]
        noise = noise.repeat(math.ceil(length / len(noise)) + 1)
        start = int(torch.randint(len(noise) - length, (), generator=self.generator))
        return noise[start : start + length]

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        if self.speed:
            samples = change_speed(samples, SPEEDS[int(torch.randint(len(SPEEDS), (), generator=self.generator))])
        if self.reverb > 0 and self._uniform() < self.reverb:
            samples = reverberate(samples, RT60[0] + (RT60[1] - RT60[0]) * self._uniform(), self.generator)
        if self.noise_snr is not None and self._uniform() < NOISE_SHARE:
            low, high = self.noise_snr
            samples = add_noise(samples, self._noise(len(samples)), low + (high - low) * self._uniform())
        return samples


def noise_recordings(folder: Optional[str]) -> list[str]:
    """The audio files in a noise folder (searched recursively), sorted; [] for None."""
    if folder is None:
        return []
    suffixes = {".wav", ".flac", ".ogg"}
    return sorted(str(p) for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in suffixes)
