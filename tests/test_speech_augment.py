"""Waveform augmentation for real voices: speed, noise and reverberation do what they say, on training clips only."""
import math
import shutil

import numpy as np
import pytest
import soundfile
import torch

from tasks.common.errors import InputError
from tasks.speech.audio import SAMPLE_RATE
from tasks.speech.augment import (NOISE_SHARE, WaveAugment, add_noise, change_speed, coloured_noise, reverberate,
                                  room_impulse_response)


def tone(hz: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return torch.sin(2 * math.pi * hz * t)


def dominant_hz(samples: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(samples).abs()
    return float(spectrum.argmax()) * SAMPLE_RATE / len(samples)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_tempo_and_pitch_together(factor):
    faster = change_speed(tone(440.0), factor)
    assert len(faster) == pytest.approx(SAMPLE_RATE / factor, rel=0.01)
    assert dominant_hz(faster) == pytest.approx(440.0 * factor, rel=0.01)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_noise_is_added_at_the_asked_snr(snr_db, exponent):
    clean = tone(300.0)
    noise = coloured_noise(len(clean), exponent, torch.Generator().manual_seed(0))
    noisy = add_noise(clean, noise, snr_db)
    measured = 10 * math.log10(float(clean.pow(2).sum() / (noisy - clean).pow(2).sum()))
    assert measured == pytest.approx(snr_db, abs=0.01)


def test_coloured_noise_has_its_slope():
    generator = torch.Generator().manual_seed(0)
    low_band, high_band = slice(100, 200), slice(4000, 4100)  # rfft bins of a 1 s noise: 1 Hz each
    for exponent, louder_low in ((0.0, False), (2.0, True)):
        power = torch.fft.rfft(coloured_noise(SAMPLE_RATE, exponent, generator)).abs().pow(2)
        ratio = float(power[low_band].mean() / power[high_band].mean())
        assert (ratio > 100) if louder_low else (0.5 < ratio < 2), (exponent, ratio)


@pytest.mark.parametrize("rt60", [0.2, 0.6])
def test_reverberation_decays_60_db_in_rt60(rt60):
    response = room_impulse_response(rt60, torch.Generator().manual_seed(0))
    energy = response[1:].pow(2).flip(0).cumsum(0).flip(0)  # Schroeder's backward integration
    decay_db = 10 * torch.log10(energy / energy[0])
    t20 = int(torch.nonzero(decay_db < -20)[0]) / SAMPLE_RATE  # -20 dB takes a third of RT60
    assert 3 * t20 == pytest.approx(rt60, rel=0.15)
    wet = reverberate(tone(300.0, 0.5), rt60, torch.Generator().manual_seed(1))
    assert len(wet) == SAMPLE_RATE // 2 and float(wet.norm()) == pytest.approx(float(tone(300.0, 0.5).norm()), rel=1e-4)


def test_wave_augment_draws_each_switch_and_leaves_clips_alone_when_off(tmp_path):
    clip = tone(300.0)
    assert torch.equal(WaveAugment()(clip), clip) and not WaveAugment().active
    lengths = {len(WaveAugment(speed=True, generator=torch.Generator().manual_seed(s))(clip)) for s in range(30)}
    assert len(lengths) == 3  # 0.9, 1.0 and 1.1
    noisy = WaveAugment(noise_snr=(5.0, 5.0), generator=torch.Generator().manual_seed(0))
    changed = sum(not torch.equal(noisy(clip), clip) for _ in range(200))
    assert abs(changed / 200 - NOISE_SHARE) < 0.1
    recording = tmp_path / "hum.wav"
    soundfile.write(recording, 0.1 * np.sin(2 * np.pi * 50 * np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE), SAMPLE_RATE)
    hum = WaveAugment(noise_snr=(0.0, 0.0), noise_files=[str(recording)], generator=torch.Generator().manual_seed(0))
    added = next(out - clip for out in (hum(clip) for _ in range(20)) if not torch.equal(out, clip))
    assert dominant_hz(added) == pytest.approx(50.0, abs=2)  # the recording's hum, looped to the clip's length


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the test clips are spoken by espeak-ng")
def test_the_data_module_augments_training_clips_only(tmp_path):
    from test_speech import write_digit_corpus
    from tasks.speech.dataset import AudioDataset, SpeechDataset
    from tasks.speech.data import SpeechDataModule

    manifests = write_digit_corpus(tmp_path / "digits", {"train": 6, "val": 3, "test": 3})
    data = SpeechDataModule(corpus="manifest", **{f"{s}_manifest": str(p) for s, p in manifests.items()},
                            speed_perturb=True, noise_snr=[10, 20], reverb=0.5, cache_dir=str(tmp_path / "cache"),
                            prepare_workers=1, spec_augment=False)
    data.prepare_data()
    data.setup()
    assert isinstance(data.datasets["train"], AudioDataset)
    assert all(isinstance(data.datasets[s], SpeechDataset) for s in ("val", "test"))
    draws = {tuple(data.datasets["train"][0][0].shape) + (float(data.datasets["train"][0][0].sum()),) for _ in range(8)}
    assert len(draws) > 1  # a new draw on every access
    val = [data.datasets["val"][0][0] for _ in range(2)]
    assert torch.equal(val[0], val[1])
    with pytest.raises(InputError, match="noise_snr"):
        SpeechDataModule(noise_snr=[30, 5])
    with pytest.raises(InputError, match="noise_dir .*no .wav"):
        SpeechDataModule(noise_snr=[5, 30], noise_dir=str(tmp_path / "digits" / "nothing-here"))


def tone_corpus(folder, speakers=("ann", "bob", "cy")) -> dict:
    """Manifests whose clips are tones (what they sound like does not matter here), each clip with a speaker."""
    import json

    folder.mkdir(parents=True)
    manifests = {}
    for split, per_speaker in (("train", 4), ("val", 2), ("test", 2)):
        rows = []
        for s, speaker in enumerate(speakers):
            for k in range(per_speaker):
                audio = folder / f"{split}-{speaker}-{k}.wav"
                soundfile.write(audio, tone(200.0 + 50 * s + 10 * k, 0.6).numpy(), SAMPLE_RATE)
                rows.append({"audio_filepath": str(audio), "text": f"word {k}", "duration": 0.6, "speaker": speaker})
        manifests[split] = folder / f"{split}.jsonl"
        manifests[split].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifests


def speech_data(tmp_path, manifests, **settings):
    from tasks.speech.data import SpeechDataModule

    data = SpeechDataModule(corpus="manifest", **{f"{s}_manifest": str(p) for s, p in manifests.items()},
                            alphabet=" 0123456789abcdefghijklmnopqrstuvwxyz", lm_order=0, prepare_workers=1,
                            cache_dir=str(tmp_path / "cache"), **settings)
    data.prepare_data()
    data.setup()
    return data


def test_held_out_speakers_are_tested_on_and_never_trained_on(tmp_path):
    manifests = tone_corpus(tmp_path / "tones")
    data = speech_data(tmp_path, manifests, test_speakers=["bob"])
    speakers = {split: {u.speaker for u in data.utterances[split]} for split in ("train", "val", "test")}
    assert speakers == {"train": {"ann", "cy"}, "val": {"ann", "cy"}, "test": {"bob"}}
    assert len(data.utterances["test"]) == 4 + 2 + 2  # every clip of bob's, from all three manifests
    features, _, index = data.datasets["test"][5]
    bob = [u.audio for u in data.utterances["test"]]
    assert index == 5 and "bob" in bob[5]
    alone = speech_data(tmp_path / "again", manifests)  # the same clip's features, from the cache of its own split
    position = [u.audio for u in alone.utterances["val"]].index(bob[5])
    assert torch.equal(features, alone.datasets["val"][position][0])
    shared = speech_data(tmp_path / "share", manifests, test_speaker_share=0.3)
    assert len({u.speaker for u in shared.utterances["test"]}) == 1
    assert not {u.speaker for u in shared.utterances["test"]} & {u.speaker for u in shared.utterances["train"]}


def test_held_out_speakers_refuse_what_cannot_work(tmp_path):
    manifests = tone_corpus(tmp_path / "tones")
    with pytest.raises(InputError, match="test_speakers: dan not in the corpus"):
        speech_data(tmp_path, manifests, test_speakers=["dan"])
    with pytest.raises(InputError, match="leaves none to train on"):
        speech_data(tmp_path, manifests, test_speakers=["ann", "bob", "cy"])
    anonymous = tone_corpus(tmp_path / "anonymous", speakers=("",))
    with pytest.raises(InputError, match="no speaker ids"):
        speech_data(tmp_path, anonymous, test_speaker_share=0.5)
