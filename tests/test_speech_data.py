"""Speech data: reading and resampling audio, features, SpecAugment, vocabularies, manifests, the LibriSpeech
layout, a Hugging Face dataset export, skipped utterances, and the synthesized corpus (tiny). Audio is generated."""
import json
import random
import re
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from tasks.common.errors import InputError
from tasks.common.training import SuiteCLI
from tasks.registry import get_task
from tasks.speech.audio import SAMPLE_RATE, SpecAugment, log_mel, read_audio, warp_frequencies
from tasks.speech.corpus import export_hf_split, read_manifest
from tasks.speech.data import SpeechDataModule
from tasks.speech.dataset import ctc_frames_needed
from tasks.speech.network import CTCAcousticModel, subsampled_length
from tasks.speech.synth import TEST_VOICES, normalize_text, split_sentences, synthesize_corpus
from tasks.speech.vocab import CharVocab, load_vocab, train_subwords

TEXTS = ["turn on", "play jazz", "Call Mum", "stop", "what's up", "set a timer", "lights off", "next song",
         "volume up", "go home", "say hi", "call dad"]


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """(S, channels) float32: a sine, each channel at its own loudness."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


def babble(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """(S, channels) float32: noise with a moving pitch and loudness, so every mel band varies over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sweep = np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    wave = sweep + 0.1 * rng.normal(size=t.shape)
    return np.repeat(0.4 * wave[:, None], channels, axis=1).astype(np.float32)


def write_rows(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    """Manifests in three places (relative paths from two folders, absolute paths), audio at four rates."""
    audio = tmp_path / "corpus" / "audio"
    audio.mkdir(parents=True)
    formats = [(8000, 1, "wav"), (22050, 2, "flac"), (44100, 2, "wav"), (16000, 1, "flac")]
    names = []
    for i, text in enumerate(TEXTS):
        rate, channels, suffix = formats[i % 4]
        name = f"u{i}.{suffix}"
        soundfile.write(audio / name, babble(1.0 + 0.1 * i, rate, seed=i, channels=channels), rate)
        names.append(name)
    rows = [{"audio_filepath": f"audio/{n}", "text": t, "duration": 1.0, "speaker": f"s{i % 3}"}
            for i, (n, t) in enumerate(zip(names, TEXTS))]
    train = write_rows(tmp_path / "corpus" / "train.jsonl", rows[:8])
    val = write_rows(tmp_path / "corpus" / "lists" / "val.jsonl",
                     [{**r, "audio_filepath": "../" + r["audio_filepath"]} for r in rows[8:11]])
    test = write_rows(tmp_path / "elsewhere" / "test.jsonl",
                      [{**rows[11], "audio_filepath": str(audio / names[11])}])
    return {"train": train, "val": val, "test": test, "audio": audio, "rows": rows}


def manifest_data(corpus, tmp_path, **kwargs) -> SpeechDataModule:
    data = SpeechDataModule(corpus="manifest", train_manifest=str(corpus["train"]), val_manifest=str(corpus["val"]),
                            test_manifest=str(corpus["test"]), cache_dir=str(tmp_path / "cache"), prepare_workers=1,
                            batch_size=4, **kwargs)
    data.prepare_data()
    data.setup()
    return data


def by_index(loader) -> dict[int, torch.Tensor]:
    return {int(i): b.features[row, : b.feature_lengths[row]] for b in loader for row, i in enumerate(b.index)}


# ---- audio and features ----

@pytest.mark.parametrize("rate, channels, suffix", [(8000, 1, "wav"), (44100, 2, "flac")])
def test_audio_comes_out_16k_mono_with_same_length_and_pitch(rate, channels, suffix, tmp_path):
    path = tmp_path / f"tone.{suffix}"
    soundfile.write(path, tone(1.5, rate, freq=440.0, channels=channels), rate)
    samples = read_audio(str(path))
    assert samples.dtype == torch.float32 and samples.dim() == 1
    assert abs(len(samples) - 1.5 * SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(samples.numpy()))
    peak = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[spectrum.argmax()]
    assert abs(peak - 440.0) < 1.0, peak
    assert 0.3 < samples.abs().max() < 0.5  # stereo is averaged: (0.5 + 0.35) / 2, not summed


def test_log_mel_shape_and_per_utterance_normalisation():
    samples = torch.from_numpy(babble(1.23, SAMPLE_RATE, seed=0)[:, 0])
    features = log_mel(samples, n_mels=80)
    assert features.shape == (1 + len(samples) // 160, 80)
    assert torch.allclose(features.mean(dim=0), torch.zeros(80), atol=1e-4)
    assert torch.allclose(features.std(dim=0, unbiased=False), torch.ones(80), atol=1e-3)
    quiet = log_mel(samples * 0.05, n_mels=80)  # loudness is normalised away
    assert torch.corrcoef(torch.stack([features.flatten(), quiet.flatten()]))[0, 1] > 0.99
    assert log_mel(samples, n_mels=40).shape == (len(features), 40)


def test_spec_augment_masks_bands_and_frames():
    torch.manual_seed(0)
    features = torch.randn(200, 80)
    masked = SpecAugment()(features)
    zero_bands = (masked == 0).all(dim=0).sum()
    zero_frames = (masked == 0).all(dim=1).sum()
    assert 0 < zero_bands <= 2 * 15 and 0 < zero_frames <= 2 * 20  # time masks: at most 10% of frames each
    kept = masked != 0
    assert torch.equal(masked[kept], features[kept])
    assert not torch.equal(SpecAugment()(features), masked)


def test_frequency_warp_moves_formants_with_the_factor():
    # torchaudio's mel filters: how strongly each of 80 bands hears each 40 Hz wide FFT bin of a 400-point FFT
    filters = torchaudio.functional.melscale_fbanks(201, 0.0, SAMPLE_RATE / 2, 80, SAMPLE_RATE, mel_scale="htk")
    tone_1000, tone_1200 = filters[25:26].repeat(3, 1), filters[30:31].repeat(3, 1)  # (T=3, 80) bands of a tone
    assert torch.allclose(warp_frequencies(tone_1000, 1.0), tone_1000)
    higher = warp_frequencies(tone_1000, 1.2)  # a vocal tract 1.2 times shorter: 1 kHz sounds at 1.2 kHz
    assert higher[0].argmax() == tone_1200[0].argmax()
    assert warp_frequencies(tone_1000, 0.8)[0].argmax() < tone_1000[0].argmax() < higher[0].argmax()


# ---- vocabularies ----

def test_char_vocab_round_trip_and_json():
    vocab = CharVocab()
    assert vocab.size == 29 and vocab.encode(" ") == [1] and vocab.encode("'") == [2] and vocab.encode("a") == [3]
    text = "what's the weather like"
    ids = vocab.encode(text)
    assert 0 not in ids and vocab.decode(ids) == text
    assert vocab.decode(torch.tensor([0] + ids + [0, 0])) == text  # blanks and padding are dropped
    copy = load_vocab(vocab.to_json())
    assert copy.encode(text) == ids and copy.size == 29
    other = CharVocab("абв ")
    assert other.decode(other.encode("ба в")) == "ба в" and other.size == 5
    with pytest.raises(ValueError, match="'é' is not in the alphabet"):
        vocab.encode("café")
    with pytest.raises(InputError, match="repeats 'a'"):
        CharVocab("abca")


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_subword_vocab_round_trip_and_json(kind):
    texts = [normalize_text(t) for t in TEXTS] * 20
    vocab = train_subwords(texts, kind, vocab_size=60)
    assert vocab.size <= 60
    for text in ["turn on the lights", "zebra quiz", "what's up"]:  # unseen words still encode: every letter is a token
        ids = vocab.encode(text)
        assert 0 not in ids and vocab.decode(ids) == text
        assert vocab.decode([0] + ids + [0]) == text
        assert load_vocab(vocab.to_json()).encode(text) == ids
    with pytest.raises(InputError, match="vocab_size 20 is too small"):
        train_subwords(texts, kind, vocab_size=20)


def test_sizes_are_known_before_any_io(tmp_path):
    data = SpeechDataModule(cache_dir=str(tmp_path / "cache"))
    assert data.vocab_size == 29 and data.n_mels == 80 and not (tmp_path / "cache").exists()
    assert SpeechDataModule(alphabet=" abc", n_mels=40).vocab_size == 5
    assert SpeechDataModule(vocab="bpe", subword_vocab_size=300).vocab_size == 300
    with pytest.raises(InputError, match="needs train_manifest and val_manifest"):
        SpeechDataModule(corpus="manifest", train_manifest="t.jsonl")
    with pytest.raises(InputError, match="subword_vocab_size 10 is too small"):
        SpeechDataModule(vocab="unigram", subword_vocab_size=10)
    with pytest.raises(InputError, match="call prepare_data"):
        data.setup()


# ---- manifests, LibriSpeech, Hugging Face ----

def test_manifests_with_relative_paths_give_batches(corpus, tmp_path):
    data = manifest_data(corpus, tmp_path)
    assert [len(data.utterances[s]) for s in ("train", "val", "test")] == [8, 3, 1]
    audio = corpus["audio"].resolve()
    assert [u.audio for u in data.utterances["val"]] == [str(audio / name) for name in ("u8.wav", "u9.flac", "u10.wav")]
    assert data.utterances["test"][0].audio == str(audio / "u11.flac")
    assert data.utterances["train"][2].text == "call mum" and data.utterances["train"][2].speaker == "s2"
    assert abs(data.utterances["train"][5].duration - 1.5) < 1e-3  # read from the audio, resampled
    batch = next(iter(data.val_dataloader()))
    B, T, M = batch.features.shape
    assert M == 80 and batch.features.dtype == torch.float32 and batch.targets.dtype == torch.long
    assert batch.feature_lengths.shape == batch.target_lengths.shape == batch.index.shape == (B,)
    assert batch.feature_lengths.max() == T and batch.target_lengths.max() == batch.targets.shape[1]
    for row in range(B):
        utterance = data.utterances["val"][batch.index[row]]
        frames, labels = batch.feature_lengths[row], batch.targets[row, : batch.target_lengths[row]]
        assert frames == 1 + round(utterance.duration * SAMPLE_RATE) // 160
        assert (batch.features[row, frames:] == 0).all() and (batch.targets[row, len(labels) :] == 0).all()
        assert 0 not in labels and data.vocab.decode(labels) == utterance.text
    train_indices = sorted(int(i) for b in data.train_dataloader() for i in b.index)
    assert train_indices == list(range(8))


def test_librispeech_layout(tmp_path):
    root = tmp_path / "data"
    for split, speakers in [("train-clean-100", ["19", "26"]), ("dev-clean", ["84"]), ("test-clean", ["61"])]:
        for speaker in speakers:
            chapter = root / "LibriSpeech" / split / speaker / "198"
            chapter.mkdir(parents=True)
            lines = []
            for u, text in enumerate(["HELLO THERE", "IT'S A TEST"]):
                name = f"{speaker}-198-{u:04d}"
                soundfile.write(chapter / f"{name}.flac", babble(1.0, 16000, seed=u), 16000)
                lines.append(f"{name} {text}\n")
            (chapter / f"{speaker}-198.trans.txt").write_text("".join(lines))
    data = SpeechDataModule(corpus="librispeech", librispeech_root=str(root), cache_dir=str(tmp_path / "cache"),
                            prepare_workers=1)
    data.prepare_data()
    data.setup()
    train = data.utterances["train"]
    assert [(u.speaker, u.text) for u in train] == [("19", "hello there"), ("19", "it's a test"),
                                                     ("26", "hello there"), ("26", "it's a test")]
    assert train[3].audio == str((root / "LibriSpeech/train-clean-100/26/198/26-198-0001.flac").resolve())
    assert len(data.utterances["val"]) == len(data.utterances["test"]) == 2
    assert data.utterances["test"][0].speaker == "61"
    with pytest.raises(InputError, match="LibriSpeech train-other-500 under"):
        SpeechDataModule(corpus="librispeech", librispeech_root=str(root), librispeech_train="train-other-500",
                         cache_dir=str(tmp_path / "cache")).prepare_data()


def test_hugging_face_audio_dataset_is_written_out_as_a_manifest(tmp_path):
    from datasets import Audio, Dataset

    soundfile.write(tmp_path / "a.flac", babble(1.0, 8000, seed=1), 8000)
    encoded = (tmp_path / "a.flac").read_bytes()
    audio = [{"bytes": encoded, "path": "a.flac"}, {"bytes": None, "path": str(tmp_path / "a.flac")}]
    dataset = Dataset.from_dict({"audio": audio, "sentence": ["Hello", "again"], "speaker_id": [7, 8]})
    dataset = dataset.cast_column("audio", Audio())
    manifest = export_hf_split(dataset, tmp_path / "hf" / "train.jsonl")
    rows = read_manifest(manifest)
    assert [(r.text, r.speaker) for r in rows] == [("Hello", "7"), ("again", "8")]
    assert rows[0].audio.endswith(".flac") and rows[1].audio == str((tmp_path / "a.flac").resolve())
    assert torch.equal(read_audio(rows[0].audio), read_audio(rows[1].audio))


# ---- SpecAugment in batches ----

def test_spec_augment_only_in_training_batches(corpus, tmp_path):
    torch.manual_seed(0)
    data = manifest_data(corpus, tmp_path)
    first, second = by_index(data.train_dataloader()), by_index(data.train_dataloader())
    plain = data.datasets["train"]
    for i, features in first.items():
        assert not torch.equal(features, second[i])  # a new draw every time
        clean = plain.features[plain.spans[i][0] : plain.spans[i][1]].float()
        masked = (features == 0) & (clean != 0)
        assert masked.all(dim=0).any() or masked.all(dim=1).any()  # whole bands or frames masked
        assert torch.equal(features[~masked], clean[~masked])
    val_once, val_twice = by_index(data.val_dataloader()), by_index(data.val_dataloader())
    for i, features in val_once.items():
        assert torch.equal(features, val_twice[i])
        start, end = data.datasets["val"].spans[i]
        assert torch.equal(features, data.datasets["val"].features[start:end].float())
    off = manifest_data(corpus, tmp_path, spec_augment=False)
    once, twice = by_index(off.train_dataloader()), by_index(off.train_dataloader())
    assert all(torch.equal(features, twice[i]) for i, features in once.items())


def test_subword_vocab_in_the_data_module(corpus, tmp_path):
    data = manifest_data(corpus, tmp_path, vocab="bpe", subword_vocab_size=40)
    assert data.vocab.size <= 40 == data.vocab_size
    batch = next(iter(data.train_dataloader()))
    for row, i in enumerate(batch.index):
        assert data.vocab.decode(batch.targets[row, : batch.target_lengths[row]]) == data.utterances["train"][i].text
    assert load_vocab(data.vocab.to_json()).encode("call mum") == data.vocab.encode("call mum")


# ---- what gets skipped ----

def test_bad_utterances_are_skipped_with_counts(corpus, tmp_path, recwarn):
    audio = corpus["audio"]
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00 not a wave file at all")
    soundfile.write(audio / "short.wav", babble(0.2, 16000, seed=9), 16000)  # 21 frames, 5 once stacked < 9 labels
    soundfile.write(audio / "long.wav", babble(1.0, 16000, seed=9), 16000)
    rows = corpus["rows"][:8] + [
        {"audio_filepath": "audio/broken.wav", "text": "turn on"},
        {"audio_filepath": "audio/missing.wav", "text": "turn off"},
        {"audio_filepath": "audio/long.wav", "text": "  "},
        {"audio_filepath": "audio/short.wav", "text": "play jazz"},
        {"audio_filepath": "audio/long.wav", "text": "café au lait"},
        {"audio_filepath": "audio/long.wav", "text": "r2-d2"},
        {"audio_filepath": "audio/long.wav", "text": "aa"},  # needs 3 frames: fits
    ]
    write_rows(corpus["train"], rows)
    data = manifest_data(corpus, tmp_path)
    assert [u.text for u in data.utterances["train"]] == [normalize_text(t) for t in TEXTS[:8]] + ["aa"]
    warnings = [str(w.message) for w in recwarn if "skipped" in str(w.message)]
    assert len(warnings) == 1, warnings  # val and test are clean
    message = warnings[0]
    assert message.startswith(f"skipped 6 of 15 utterances in {corpus['train']}: 2 unreadable audio (first: ")
    assert "broken.wav: " in message and "1 empty transcript," in message
    outside = re.search(r"2 with characters outside the alphabet \(([^;]*); set --data.alphabet\)", message)
    assert outside and sorted(outside.group(1).split(", ")) == ["'-'", "'2'", "'é'"]
    assert "1 shorter than their transcript (fewer frames after stack subsampling than CTC needs for their labels)" in message
    assert ctc_frames_needed([5, 5, 6]) == 4


@pytest.mark.parametrize("kind", ["stack", "conv"])
def test_subsampled_length_is_what_the_network_gives_ctc(kind):
    """The data module skips clips by subsampled_length: it must be the frames the model really outputs."""
    model = CTCAcousticModel(n_mels=16, vocab_size=5, hidden_size=8, num_layers=1, subsampling=kind).eval()
    with torch.no_grad():
        for frames in range(1, 41):
            expected = subsampled_length(frames, kind)
            try:
                out = model.subsample(torch.randn(1, frames, 16), torch.tensor([frames]))[0].shape[1]
            except RuntimeError:  # conv: under 7 frames is smaller than its kernels
                out = 0
            assert out == max(expected, 0), frames
            if expected >= 1:
                log_probs, lengths = model(torch.randn(1, frames, 16), torch.tensor([frames]))
                assert log_probs.shape[1] == lengths.item() == expected, frames
        _, lengths = model.subsample(torch.randn(40, 40, 16), torch.arange(1, 41))  # padded together
    assert all(n == subsampled_length(frames, kind) for frames, n in zip(range(1, 41), lengths.tolist()) if n >= 1)


def test_clips_too_short_for_the_models_subsampling_are_skipped(corpus, tmp_path, recwarn):
    """21 frames: 5 after stack, 4 after conv; "jazz" needs 5 (4 labels and a blank between the z's)."""
    soundfile.write(corpus["audio"] / "short.wav", babble(0.2, 16000, seed=9), 16000)
    write_rows(corpus["train"], corpus["rows"][:8] + [{"audio_filepath": "audio/short.wav", "text": "jazz"}])
    kept = {kind: [u.text for u in manifest_data(corpus, tmp_path, subsampling=kind).utterances["train"]]
            for kind in ("stack", "conv")}
    assert "jazz" in kept["stack"] and kept["conv"] == [t for t in kept["stack"] if t != "jazz"]
    assert [str(w.message).split(": ", 1)[1] for w in recwarn if "skipped" in str(w.message)] == [
        "1 shorter than their transcript (fewer frames after conv subsampling than CTC needs for their labels)"]


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_the_model_subsampling_reaches_the_data_module(tmp_path):
    cli = SuiteCLI(get_task("speech"), ["--model.subsampling=conv", "--run.wandb=off", f"--run.root={tmp_path}"])
    assert cli.datamodule.hparams.subsampling == cli.model.hparams.subsampling == "conv"


def test_broken_manifests_are_input_errors(corpus, tmp_path):
    corpus["train"].write_text('{"audio_filepath": "audio/u0.wav", "text": "hi"}\n{"audio_filepath": \n')
    with pytest.raises(InputError, match=r"train\.jsonl line 2: not valid JSON"):
        manifest_data(corpus, tmp_path)
    corpus["train"].write_text('{"path": "audio/u0.wav", "text": "hi"}\n')
    with pytest.raises(InputError, match=r"train\.jsonl line 1: no \"audio_filepath\""):
        manifest_data(corpus, tmp_path)
    corpus["train"].unlink()
    with pytest.raises(InputError, match=r"train\.jsonl: no such manifest"):
        manifest_data(corpus, tmp_path)


# ---- the synthesized default ----

def test_normalize_text():
    assert normalize_text("Four thousand, three hundred and forty-two!") == "four thousand three hundred and forty two"
    assert normalize_text("  What's   UP? ") == "what's up"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_synthesized_corpus_holds_out_test_voices(tmp_path, monkeypatch):
    data = SpeechDataModule(synth_train=12, synth_val=4, synth_test=4, cache_dir=str(tmp_path / "cache"),
                            prepare_workers=1, batch_size=4)
    data.prepare_data()
    manifests = data.manifests()
    rows = {split: [json.loads(line) for line in path.read_text().splitlines()] for split, path in manifests.items()}
    assert [len(rows[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    test_voices = {r["voice"] for r in rows["test"]}
    assert test_voices <= set(TEST_VOICES)
    assert not test_voices & {r["voice"] for split in ("train", "val") for r in rows[split]}
    texts = {split: {r["text"] for r in split_rows} for split, split_rows in rows.items()}
    assert sum(map(len, texts.values())) == 20  # every utterance its own sentence
    for row in rows["train"] + rows["test"]:
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", row["text"]), row["text"]
        info = soundfile.info(manifests["train"].parent / row["audio_filepath"])
        assert info.samplerate == 16000 and info.channels == 1 and abs(info.duration - row["duration"]) < 1e-3
    data.setup()
    assert [len(data.utterances[s]) for s in ("train", "val", "test")] == [12, 4, 4]  # nothing skipped
    assert {u.speaker for u in data.utterances["test"]} == test_voices
    again = SpeechDataModule(synth_train=12, synth_val=4, synth_test=4, cache_dir=str(tmp_path / "cache"))
    monkeypatch.setattr("tasks.speech.sources.synthesize_corpus", lambda *a, **k: pytest.fail("synthesized again"))
    monkeypatch.setattr("tasks.speech.data.extract_features", lambda *a, **k: pytest.fail("features again"))
    again.prepare_data()
    again.setup()
    assert again.utterances == data.utterances


def test_missing_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    hint = r"espeak-ng is not installed.*`apt-get install espeak-ng` \(Debian/Ubuntu\).*`brew install espeak-ng` \(macOS\)"
    with pytest.raises(InputError, match=hint):
        synthesize_corpus(tmp_path / "synth", train=2, val=1, test=1)
    with pytest.raises(InputError, match="apt-get install espeak-ng"):
        SpeechDataModule(cache_dir=str(tmp_path / "cache")).prepare_data()


def test_test_voices_are_new_voice_qualities():
    """Held-out voices: their variants (voice quality) never occur in training, and the rp accent neither."""
    from tasks.speech.synth import TEST_VOICES, TRAIN_VOICES
    train_accents = {v.split("+")[0] for v in TRAIN_VOICES}
    train_variants = {v.split("+")[1] for v in TRAIN_VOICES}
    assert not {v.split("+")[1] for v in TEST_VOICES} & train_variants
    assert "en-gb-x-rp" not in train_accents and len(train_accents) * len(train_variants) == len(TRAIN_VOICES)


def test_splits_hold_different_sentences_of_the_same_mix():
    """Test sentences are new, but drawn like the training ones: the same templates, words heard in training."""
    texts = split_sentences({"train": 4000, "val": 300, "test": 300}, random.Random(0))
    assert [len(texts[s]) for s in ("train", "val", "test")] == [4000, 300, 300]
    assert len(set().union(*texts.values())) == 4600
    heard = {word for sentence in texts["train"] for word in sentence.split()}
    opening = {split: Counter(s.split()[0] for s in sentences) for split, sentences in texts.items()}
    for split in ("val", "test"):
        words = [word for sentence in texts[split] for word in sentence.split()]
        unheard = sum(word not in heard for word in words) / len(words)
        assert unheard < 0.01, f"{unheard:.1%} of the {split} words never occur in training"
        # first words stand for templates; 0.12 between random splits, 0.3-0.4 when test took the first draws
        shares = [(opening[split][w] / 300, opening["train"][w] / 4000) for w in opening[split] | opening["train"]]
        distance = sum(abs(a - b) for a, b in shares) / 2
        assert distance < 0.2, f"{split} sentences are not drawn like the training ones"
