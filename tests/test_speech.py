"""Speech end to end on a tiny espeak-ng corpus: CTC learning, checkpoint -> transcribe, bad audio."""
import itertools
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate

from learning import RECORD, assert_beats, recorded
from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.training import train
from tasks.registry import get_task
from tasks.speech.corpus import write_manifest
from tasks.speech.model import SpeechModel
from tasks.speech.synth import Job, find_espeak, speak
from wandb_records import history

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


DIGITS = "zero one two three four five six seven eight nine".split()


def write_digit_corpus(folder: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, Path]:
    """Three spoken digits per utterance, in two voices at random speeds and pitches; no digit string is in two
    splits. The default corpus (thousands of words in 231 voices) is too much for a tiny model in seconds: after 40
    epochs on 64 of its utterances, test CER was 0.85, no better than always answering one training transcript."""
    rng = random.Random(seed)
    strings = rng.sample(list(itertools.product(DIGITS, repeat=3)), sum(sizes.values()))
    espeak, manifests = find_espeak(), {}
    for split, count in sizes.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for n in range(count):
            text, audio = " ".join(strings.pop()), f"{split}/{n:03d}.wav"
            seconds = speak(Job(espeak, text, rng.choice(["en-us+m1", "en-gb+f2"]), rng.randint(150, 190),
                                rng.randint(40, 60), 30.0, rng.randrange(2**32), str(folder / audio)))
            rows.append({"audio_filepath": audio, "text": text, "duration": round(seconds, 3)})
        manifests[split] = write_manifest(folder / f"{split}.jsonl", rows)
    return manifests


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    manifests = write_digit_corpus(root / "cache" / "digits", {"train": 96, "val": 16, "test": 16})
    return train(get_task("speech"), [
        "--data.corpus=manifest", *(f"--data.{split}_manifest={path}" for split, path in manifests.items()),
        f"--data.cache_dir={root / 'cache'}", "--data.prepare_workers=1",
        "--data.batch_size=8", "--data.spec_augment=false", "--model.dropout=0.0", "--model.hidden_size=128",
        "--model.num_layers=2", "--model.lr=0.003",
        "--trainer.max_epochs=30", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
        f"--run.root={root / 'runs'}", "--run.name=tiny", "--run.wandb=offline", RECORD,
    ])


def constant_transcript_baselines(data, split: str, error_rate) -> dict[str, float]:
    """The error rate on a split of answers that ignore the audio: nothing (what a blank-only CTC model says), the
    most frequent training transcript, and the training transcript that happens to score best on this split."""
    references = [u.text for u in data.utterances[split]]
    texts = [u.text for u in data.utterances["train"]]

    def always(text: str) -> float:
        return float(error_rate([text] * len(references), references))

    return {"blank only": always(""), "most frequent transcript": always(Counter(texts).most_common(1)[0][0]),
            "best constant transcript": min(map(always, set(texts)))}


def test_tiny_run_learns(trained):
    record, data = recorded(trained), trained.trainer.datamodule
    # digit strings training never heard; test/cer is the beam search's, test/wer_greedy the network's own
    assert_beats(record.test["test/cer"], constant_transcript_baselines(data, "test", char_error_rate), margin=0.4)
    assert_beats(record.test["test/wer_greedy"], constant_transcript_baselines(data, "test", word_error_rate),
                 margin=0.2)
    losses = [epoch["train/loss"] for epoch in record.train]
    assert losses[-1] < 0.5 * losses[0], losses


def test_wandb_offline_run_holds_the_metrics(trained):
    keys = {k for r in history(trained.wandb_dir) for k in r}
    assert {"train/loss", "val/wer", "val/cer", "test/wer", "test/cer", "test/wer_greedy",
            "val/transcripts/_type"} <= keys, sorted(keys)


def test_checkpoint_transcribes_files(trained, capsys):
    model = load_model(SpeechModel, trained.best_checkpoint)
    assert model.vocab is not None and model.hparams.vocab_size == 29
    clips = sorted((trained.run_dir.parents[2] / "cache").rglob("*.wav"))[:3]
    texts = model.transcribe([str(c) for c in clips])
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert main(["transcribe", "speech", "--ckpt", str(trained.best_checkpoint), "--verbose", *map(str, clips)]) == 0
    captured = capsys.readouterr()
    assert [line.split("\t")[1] for line in captured.out.splitlines()] == texts
    assert "real-time factor" in captured.err


def test_transcribe_skips_bad_audio_and_says_so(trained, tmp_path, capsys):
    good = sorted((trained.run_dir.parents[2] / "cache").rglob("*.wav"))[0]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    assert main(["transcribe", "speech", "--ckpt", str(trained.best_checkpoint), str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: cannot read audio" in captured.err and str(good) in captured.out
    assert main(["transcribe", "speech", "--ckpt", str(trained.best_checkpoint), str(tmp_path / "none.wav")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_checkpoint_is_weights_only(trained):
    checkpoint = torch.load(trained.best_checkpoint, weights_only=True)
    assert "abcdefghijklmnopqrstuvwxyz" in checkpoint["hyper_parameters"]["vocab_json"]


def test_decoder_is_chosen_on_validation_and_kept_in_the_checkpoint(trained):
    checkpoint = torch.load(trained.best_checkpoint, weights_only=True)
    choice, hparams = checkpoint["decoder_choice"], checkpoint["hyper_parameters"]
    assert (hparams["decoder"], hparams["lm_weight"], hparams["word_score"]) == (
        choice["decoder"], choice["lm_weight"], choice["word_score"])
    assert choice["decoder"] == ("beam" if choice["val_wer_beam"] <= choice["val_wer_greedy"] else "greedy")
    data = trained.trainer.datamodule
    assert choice["clips"] == len(data.utterances["val"])
    model = load_model(SpeechModel, trained.best_checkpoint)
    assert model.decoder_choice.as_dict() == choice and model.hparams.decoder == choice["decoder"]
    clips = [u.audio for u in data.utterances["val"]]
    references = [u.text for u in data.utterances["val"]]
    greedy = float(word_error_rate(model.transcribe(clips, "greedy"), references))
    assert abs(greedy - choice["val_wer_greedy"]) < 1e-6  # measured, not assumed
    chosen = float(word_error_rate(model.transcribe(clips), references))  # as transcribe decodes by default
    assert chosen <= greedy + 1e-6
    assert trained.metrics["test/decoder_val_wer_greedy"] == pytest.approx(choice["val_wer_greedy"])


def test_beam_search_speaks_only_training_words(trained, capsys):
    model = load_model(SpeechModel, trained.best_checkpoint)
    assert set(model.beam_files) == {"lexicon", "lm"} and "\\3-grams:" in model.beam_files["lm"]
    words = {line.split()[0] for line in model.beam_files["lexicon"].splitlines()}
    train_words = {w for u in trained.trainer.datamodule.utterances["train"] for w in u.text.split()}
    assert words == train_words
    clips = sorted((trained.run_dir.parents[2] / "cache").rglob("test/*.wav"))[:4]
    assert main(["transcribe", "speech", "--ckpt", str(trained.best_checkpoint), "--decoder", "beam", *map(str, clips)]) == 0
    texts = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert len(texts) == 4 and {w for t in texts for w in t.split()} <= words
    # a missing LM file is a one-line error before any audio is read
    assert main(["transcribe", "speech", "--ckpt", str(trained.best_checkpoint), "--lm", "missing.arpa", str(clips[0])]) == 2
    assert "lm missing.arpa: no such file" in capsys.readouterr().err
