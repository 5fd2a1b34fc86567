"""Music end to end: a tiny training run through the real CLI path, wandb offline, checkpoint -> sample."""
import math
import os
import pickle
import subprocess
from pathlib import Path

import mido
import numpy as np
from lightning.pytorch import Callback
import pytest
import torch
from music21 import converter

from learning import RECORD, assert_beats, recorded
from music_fixtures import write_melody_folder
from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.logging import resolve_wandb_mode
from tasks.common.training import train
from tasks.music.data import MelodyDataset
from tasks.music.encoding import read_melody
from tasks.music.melody_model import MelodyModel
from tasks.music.render import audio_unavailable_reason
from tasks.registry import get_task
from wandb_records import history

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model.hidden_size=48", "--model.embedding_dim=16", "--model.num_layers=1", "--model.dropout=0.0",
        "--model.lr=0.01", "--data.batch_size=4", "--data.max_len=64", "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        # configs/music.yaml's LogSampledMelodies, made smaller
        "--trainer.callbacks.num=2", "--trainer.callbacks.length=32", "--trainer.callbacks.every_n_epochs=5"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny melody run on generated scales, logged to wandb offline."""
    root = tmp_path_factory.mktemp("music")
    write_melody_folder(root / "midi", 40)
    os.environ["WANDB_MODE"] = "offline"
    result = train(get_task("music"), [
        f"--data.midi_dir={root / 'midi'}", f"--data.cache_dir={root / 'cache'}", "--data.parse_workers=1",
        f"--run.root={root / 'runs'}", "--run.name=tiny", "--run.wandb=offline", "--trainer.max_epochs=15", *TINY,
        RECORD,
    ])
    return result


def event_frequency_nll(data) -> float:
    """NLL per predicted test event of the training events' frequencies (add-one smoothed), with no context:
    what a model that learned only how often each event occurs scores."""
    vocab = data.vocab
    counts = np.ones(vocab.size)
    for events in data.splits["train"]:
        np.add.at(counts, vocab.encode(events) + [vocab.EOS], 1)
    log_p = np.log(counts / counts.sum())
    test = MelodyDataset(data.splits["test"], vocab, data.hparams.max_len, train=False)  # the windows test/nll scores
    targets = np.concatenate([ids[1:].numpy() for ids in test])
    return float(-log_p[targets].mean())


def test_tiny_run_learns(trained):
    record = recorded(trained)
    baselines = {"uniform": math.log(42), "event frequencies": event_frequency_nll(trained.trainer.datamodule)}
    assert_beats(record.test["test/nll"], baselines, margin=0.3)  # measured 0.86 against 1.36
    losses = [epoch["train/loss"] for epoch in record.train]
    assert len(losses) == 15 and losses[-1] < 0.35 * math.log(42), losses  # from ~ln(42) = 3.7 to well below
    assert record.val[-1]["val/nll"] < record.val[0]["val/nll"]


def test_run_folder_has_best_and_last_checkpoints_and_config(trained):
    assert trained.best_checkpoint == trained.run_dir / "checkpoints" / "best.ckpt"
    assert trained.best_checkpoint.is_file() and trained.last_checkpoint.is_file()
    assert (trained.run_dir / "config.yaml").is_file()


def test_wandb_offline_run_holds_the_logged_metrics(trained):
    assert trained.wandb_dir.name.startswith("offline-run-")
    keys = {k for row in history(trained.wandb_dir) for k in row}
    for key in ("train/loss", "val/nll", "test/nll", "samples/pitch_range", "samples/in_key", "samples/longest_repeat",
                "samples/pitch_class_entropy", "samples/reference_in_key", "samples/interval_distance"):
        assert key in keys, sorted(keys)
    assert "samples/piano_roll/_type" in keys  # images (media are logged as nested records)
    assert ("samples/audio/_type" in keys) == (audio_unavailable_reason() is None)
    assert list((trained.run_dir / "samples").glob("epoch_*/melody_01.png"))


def test_checkpoint_sample_midi_round_trip(trained, tmp_path, capsys):
    out = tmp_path / "samples"
    code = main(["sample", "music", "--ckpt", str(trained.best_checkpoint), "--num", "3", "--length", "48",
                 "--seed", "7", "--primer", "[60, -2, -2, -2, 62, -2]", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    midis = sorted(out.glob("melody_*.mid"))
    assert len(midis) == 3 and len(list(out.glob("melody_*.png"))) == 3
    assert str(out) in printed and "melody_01.mid" in printed and "in key" in printed
    reference = torch.load(trained.best_checkpoint, weights_only=True)["reference_profile"]  # the held-out pieces'
    assert f"({reference['in_key']:.0%}) in key" in printed and "samples (held-out pieces)" in printed
    for midi in midis:
        assert mido.MidiFile(midi).length > 0
        events = read_melody(midi)  # music21 reads it back
        assert events[:5] == [60, -2, -2, -2, 62]  # the primer starts every melody
        assert converter.parse(str(midi)).flatten().notes
    if audio_unavailable_reason() is None:
        assert len(list(out.glob("melody_*.wav"))) == 3


def test_sampling_is_reproducible_and_o1(trained):
    model = load_model(MelodyModel, trained.best_checkpoint)
    a = model.generate(2, 40, seed=3)
    assert a == model.generate(2, 40, seed=3) and a != model.generate(2, 40, seed=4)
    assert all(len(m) == 40 for m in a)
    greedy = model.generate(1, 40, greedy_decoding=True, primer=[60, -2, -2, -2])
    assert greedy[0][:4] == [60, -2, -2, -2] and len(greedy[0]) == 44


def test_checkpoint_holds_no_code_and_rebuilds_without_config(trained):
    checkpoint = torch.load(trained.best_checkpoint, weights_only=True)
    assert checkpoint["hyper_parameters"]["vocab_size"] == 42  # linked from the data
    model = load_model(MelodyModel, trained.best_checkpoint)
    assert model.vocab.min_pitch == 48 and model.decoder.hidden_size == 48


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/lstm-suite-pickle-ran-code")


def test_make_sample_refuses_a_checkpoint_that_would_run_code(tmp_path):
    MARKER.unlink(missing_ok=True)
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": RunsCode()}, evil)
    done = subprocess.run(["make", "-s", "sample", "TASK=music", f"CKPT={evil}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    assert f"checkpoint {evil}: refused, loading it would run code" in done.stderr and "posix.system" in done.stderr
    assert "Traceback" not in done.stderr
    assert not MARKER.exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "chess"]) == 2
    assert "unknown task 'chess': choose one of music" in capsys.readouterr().err
    assert main(["sample", "music", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert f"checkpoint {tmp_path / 'missing.ckpt'}: no such file" in capsys.readouterr().err
    assert main(["sample", "music", "--runs-root", str(tmp_path)]) == 2
    assert "train first (make train TASK=music)" in capsys.readouterr().err
    assert main(["sample", "music", "--ckpt", "x.ckpt", "--primer", "[60, oops]"]) == 2
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    assert main(["sample", "music", "--ckpt", str(tmp_path / "garbage.ckpt")]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert main(["translate", "music"]) == 2
    assert "has no command 'translate'" in capsys.readouterr().err
    assert main(["train"]) == 2


def test_unknown_config_keys_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "music", "--model.hiden_size=3"])
    assert exit_info.value.code != 0
    assert "hiden_size" in capsys.readouterr().err


def test_wandb_mode_never_needs_a_prompt(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_wandb_mode("auto") == "offline"  # no key, no netrc: offline, never a login prompt
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = Path(os.environ["HOME"]) / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    netrc.chmod(0o600)  # as `wandb login` leaves it; Python refuses a netrc others can read
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "off" and resolve_wandb_mode("offline") == "offline"


class PressCtrlC(Callback):
    """Interrupts training like a user at the keyboard, mid-epoch."""

    def __init__(self, at_step: int = 6):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_work_and_resume_continues(trained, tmp_path, capsys):
    root = trained.run_dir.parents[2]
    common = [f"--data.midi_dir={root / 'midi'}", f"--data.cache_dir={root / 'cache'}", f"--run.root={tmp_path}",
              "--run.wandb=off", "--trainer.max_epochs=3", *TINY[:-3]]
    with pytest.raises(SystemExit):  # Lightning exits after a graceful shutdown
        train(get_task("music"), [*common, "--run.name=cut", "--trainer.callbacks+=test_music_training.PressCtrlC"])
    interrupted = tmp_path / "music" / "cut" / "checkpoints" / "interrupted.ckpt"
    assert interrupted.is_file() and f"--run.resume={interrupted}" in capsys.readouterr().out
    assert torch.load(interrupted, weights_only=True)["global_step"] == 6
    resumed = train(get_task("music"), [*common, "--run.name=resumed", f"--run.resume={interrupted}"])
    assert resumed.trainer.global_step > 6 and resumed.trainer.current_epoch == 3
