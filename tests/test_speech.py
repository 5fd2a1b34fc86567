"""Speech end to end on a tiny espeak-ng corpus: CTC learning, checkpoint -> transcribe, bad audio."""
import shutil

import pytest
import torch

from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.training import train
from tasks.registry import get_task
from tasks.speech.model import SpeechModel
from wandb_records import history

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    return train(get_task("speech"), [
        "--data.synth_train=64", "--data.synth_val=8", "--data.synth_test=8", f"--data.cache_dir={root / 'cache'}",
        "--data.batch_size=8", "--data.spec_augment=false", "--model.dropout=0.0", "--model.hidden_size=128",
        "--model.num_layers=2", "--model.lr=0.003",
        "--trainer.max_epochs=40", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
        f"--run.root={root / 'runs'}", "--run.name=tiny", "--run.wandb=offline",
    ])


def test_tiny_run_learns(trained):
    rows = history(trained.wandb_dir)
    losses = [float(r["train/loss"]) for r in rows if "train/loss" in r]
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    keys = {k for r in rows for k in r}
    assert {"val/wer", "val/cer", "test/wer", "test/cer", "test/wer_greedy", "val/transcripts/_type"} <= keys, sorted(keys)
    assert trained.metrics["val/cer"] < 0.9  # some characters right already; chance is ~1


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
