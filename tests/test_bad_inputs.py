"""Every bad input answered (issue 13): one line naming the file or flag and the problem, exit code 2, no
traceback, and checked before the work, so nothing already computed is lost."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch

from tasks.cli import main
from tasks.common.training import train
from tasks.registry import TASKS, get_task
from tiny_tasks import babble, cli_args, tiny

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--run.wandb=off",
         "--run.test=false"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """ckpt(task) -> best.ckpt of a tiny one-epoch run of the task, trained on first use."""
    root, trained = tmp_path_factory.mktemp("bad-inputs"), {}

    def trained_checkpoint(task: str) -> Path:
        if task not in trained:
            args = [*cli_args(tiny(task, root / task)), "--trainer.max_epochs=1", f"--run.root={root / 'runs'}", *QUIET]
            trained[task] = train(get_task(task), args).best_checkpoint
        return trained[task]

    return trained_checkpoint


def one_line_error(capsys, argv: list[str], *expected: str):
    """Run the CLI: exit code 2 and a single `lstm-suite: error:` line holding every `expected` text."""
    capsys.readouterr()  # (what training a fixture printed)
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lstm-suite: error: "), err
    for text in expected:
        assert text in err, err
    return captured


def wav(path: Path, samples: int) -> Path:
    soundfile.write(path, babble(samples / 16000, 16000, seed=1), 16000)
    return path


# ---- transcribe ----

def test_transcribe_skips_a_clip_shorter_than_one_window(ckpt, tmp_path, capsys):
    short, good, checkpoint = wav(tmp_path / "short.wav", 100), wav(tmp_path / "good.wav", 8000), ckpt("speech")
    capsys.readouterr()
    assert main(["transcribe", "speech", "--ckpt", str(checkpoint), str(short), str(good)]) == 1  # 1: one skipped
    captured = capsys.readouterr()
    assert f"{short}: " in captured.err and "too short" in captured.err and "skipped 1 of 2" in captured.err
    assert captured.out.startswith(f"{good}\t")  # the other file is still transcribed


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--batch-size", "-1"], ["--decoder", "beam", "--beam-size", "0"]],
                         ids=["batch-0", "batch-negative", "beam-0"])
def test_transcribe_refuses_sizes_below_one(ckpt, tmp_path, capsys, flags):
    good = wav(tmp_path / "good.wav", 8000)
    one_line_error(capsys, ["transcribe", "speech", "--ckpt", str(ckpt("speech")), *flags, str(good)],
                   flags[-2], "must be at least 1", repr(flags[-1]))


@pytest.mark.parametrize("bad", ["lexicon-garbage", "lexicon-unknown-letter", "lm-truncated"])
def test_transcribe_names_a_bad_lexicon_or_lm(ckpt, tmp_path, capsys, bad):
    checkpoint = ckpt("speech")
    files = torch.load(checkpoint, weights_only=True)["beam_search_files"]
    lexicon, lm = tmp_path / "words.lex", tmp_path / "words.arpa"
    lexicon.write_text({"lexicon-garbage": "garbage\n", "lexicon-unknown-letter": "café c a f é |\n"}.get(bad, files["lexicon"]))
    lm.write_text(files["lm"][: len(files["lm"]) // 2])  # cut off mid-file, like an interrupted download
    named = f"lm {lm}: " if bad == "lm-truncated" else f"lexicon {lexicon}: "
    one_line_error(capsys, ["transcribe", "speech", "--ckpt", str(checkpoint), "--decoder", "beam", "--lexicon", str(lexicon),
                            *(["--lm", str(lm)] if bad == "lm-truncated" else []), str(wav(tmp_path / "good.wav", 8000))],
                   named)


# ---- translate and forecast ----

@pytest.mark.parametrize("size", ["0", "-1"])
def test_translate_refuses_batch_sizes_below_one(ckpt, tmp_path, capsys, size):
    (tmp_path / "in.txt").write_text("one\ntwo hundred\n")
    one_line_error(capsys, ["translate", "translation", "--ckpt", str(ckpt("translation")), "--in", str(tmp_path / "in.txt"),
                            "--batch-size", size], "--batch-size", "at least 1")


def test_translate_out_folder_is_refused_before_translating(ckpt, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("one\ntwo hundred\n")
    (tmp_path / "out").mkdir()
    # one line only: no progress bar, so no sentence was translated first
    one_line_error(capsys, ["translate", "translation", "--ckpt", str(ckpt("translation")), "--in", str(tmp_path / "in.txt"),
                            "--out", str(tmp_path / "out")], f"--out {tmp_path / 'out'}: is a folder")


@pytest.mark.parametrize("flag", ["--out", "--plot"])
def test_forecast_output_folder_is_refused_before_forecasting(ckpt, tmp_path, capsys, flag):
    (tmp_path / "out").mkdir()
    captured = one_line_error(capsys, ["forecast", "forecast", "--ckpt", str(ckpt("forecast")), flag, str(tmp_path / "out")],
                              f"{flag} {tmp_path / 'out'}: is a folder")
    assert captured.out == ""  # no forecast printed: it was refused first


# ---- sample ----

@pytest.mark.parametrize("task, flags", [("music-pianoroll", ["--tempo", "0"]), ("music-pianoroll", ["--tempo", "-90"]),
                                         ("music", ["--top-k", "-5"])], ids=["tempo-0", "tempo-negative", "top-k-negative"])
def test_sample_refuses_bad_numbers_before_making_the_folder(ckpt, tmp_path, capsys, task, flags):
    one_line_error(capsys, ["sample", task, "--ckpt", str(ckpt(task)), "--out", str(tmp_path / "samples"), *flags],
                   flags[0], repr(flags[1]))
    assert not (tmp_path / "samples").exists()


@pytest.mark.parametrize("primer, frames", [("48,60,64,67", 1), ("[[48, 60], [50, 62]]", 2)])
def test_pianoroll_primer_in_the_documented_form(ckpt, tmp_path, capsys, primer, frames):
    assert main(["sample", "music-pianoroll", "--ckpt", str(ckpt("music-pianoroll")), "--out", str(tmp_path), "--num", "1",
                 "--frames", "2", "--primer", primer]) == 0
    assert (tmp_path / "piece_01.mid").is_file()


# ---- checkpoints ----

def damaged(source: Path, kind: str, path: Path) -> Path:
    data = source.read_bytes()
    if kind.startswith("hparams-"):
        checkpoint = torch.load(source, weights_only=True)
        checkpoint["hyper_parameters"] = torch.zeros(3) if kind == "hparams-tensor" else [1, 2]
        torch.save(checkpoint, path)
    else:
        path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"hello, world\n"}[kind])
    return path


@pytest.mark.parametrize("kind, says", [("hparams-tensor", "hyper_parameters"), ("hparams-list", "hyper_parameters"),
                                        ("truncated", "truncated or empty"), ("empty", "truncated or empty"),
                                        ("text", "not a readable PyTorch checkpoint (no torch.save file starts with b'hell')")])
def test_a_damaged_checkpoint_is_named(ckpt, tmp_path, capsys, kind, says):
    path = damaged(ckpt("forecast"), kind, tmp_path / f"{kind}.ckpt")
    err = one_line_error(capsys, ["forecast", "forecast", "--ckpt", str(path)], f"checkpoint {path}: ", says).err
    assert "Errno" not in err and "()" not in err


# ---- training ----

def test_wandb_online_without_credentials_stops_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # restored afterwards, whatever the run sets
    monkeypatch.delenv("NETRC", raising=False)
    one_line_error(capsys, ["train", "forecast", *cli_args(tiny("forecast", tmp_path)), "--trainer.max_epochs=1",
                            f"--run.root={tmp_path / 'runs'}", "--run.wandb=online"],
                   "--run.wandb=online", "wandb login", "--run.wandb=offline")
    assert not (tmp_path / "runs").exists()  # no checkpoint, not even an empty run folder


@pytest.mark.parametrize("task", list(TASKS))
def test_a_negative_learning_rate_is_refused_at_startup(tmp_path, capsys, task):
    one_line_error(capsys, ["train", task, *cli_args(tiny(task, tmp_path)), "--model.lr=-1", "--trainer.max_epochs=1",
                            f"--run.root={tmp_path / 'runs'}", *QUIET], "--model.lr", "-1")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()  # no data prepared, no run folder


@pytest.mark.parametrize("task", ["music-pianoroll", "forecast"])  # the models that step their optimiser themselves
@pytest.mark.parametrize("option, names", [("--trainer.gradient_clip_val=1", "--model.grad_clip"),
                                           ("--trainer.accumulate_grad_batches=2", "--data.batch_size")])
def test_lightnings_clipping_and_accumulation_are_refused_where_the_model_steps_itself(tmp_path, capsys, task, option,
                                                                                       names):
    one_line_error(capsys, ["train", task, *cli_args(tiny(task, tmp_path)), option, "--trainer.max_epochs=1",
                            f"--run.root={tmp_path / 'runs'}", *QUIET], option.split("=")[0], names)
    assert not (tmp_path / "runs").exists()


# ---- ~ in paths ----

def test_tilde_is_expanded_in_every_path(ckpt, tmp_path, capsys):
    home = Path.home()  # a fresh folder per test (conftest)
    for task in ("translation", "speech", "forecast", "music-pianoroll"):
        shutil.copy(ckpt(task), home / f"{task}.ckpt")
    (home / "in.txt").write_text("one\n")
    (home / "clips").mkdir()
    wav(home / "clips" / "a.wav", 8000)
    assert main(["translate", "translation", "--ckpt", "~/translation.ckpt", "--in", "~/in.txt", "--out", "~/out.txt"]) == 0
    assert main(["transcribe", "speech", "--ckpt", "~/speech.ckpt", "~/clips"]) == 0
    assert main(["forecast", "forecast", "--ckpt", "~/forecast.ckpt", "--out", "~/f.csv", "--plot", "~/f.png"]) == 0
    assert main(["sample", "music-pianoroll", "--ckpt", "~/music-pianoroll.ckpt", "--out", "~/pieces", "--num", "1",
                 "--frames", "2"]) == 0
    assert {p.name for p in home.iterdir()} >= {"out.txt", "f.csv", "f.png", "pieces"}
    (home / "clip.mp4").write_bytes(b"")
    capsys.readouterr()
    one_line_error(capsys, ["classify", "video", "--ckpt", "~/video.ckpt", "~/clip.mp4"],
                   f"checkpoint {home / 'video.ckpt'}: no such file")


# ---- Makefile ----

ARGV = f"{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))'"  # stands in for lstm-suite


def make(*args: str, cwd: Path = REPO) -> str:
    """Run make (never reinstalling .venv) and return what it printed."""
    done = subprocess.run(["make", "-s", "-o", ".venv/.installed", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target, variables, expected", [
    ("translate", ["CKPT=my runs/best.ckpt", "IN=in put.txt", "OUT=out put.txt"],
     ["--ckpt", "my runs/best.ckpt", "--in", "in put.txt", "--out", "out put.txt"]),
    ("translate", ["TEXT=two hundred"], ["--text", "two hundred"]),
    ("forecast", ["CKPT=a b.ckpt", "OUT=c d.csv"], ["--ckpt", "a b.ckpt", "--out", "c d.csv"]),
    ("sample", ["CKPT=a b.ckpt"], ["--ckpt", "a b.ckpt"]),
    ("transcribe", ["AUDIO=tests"], ["tests"]),
    ("transcribe", ["AUDIO=tests/tiny_tasks.py tests/conftest.py"], ["tests/tiny_tasks.py", "tests/conftest.py"]),
])
def test_make_quotes_paths(target, variables, expected, tmp_path):
    argv = json.loads(make(target, f"SUITE={ARGV}", *variables).splitlines()[-1])
    assert all(item in argv for item in expected), argv
    assert argv[argv.index(expected[0]):][: len(expected)] == expected, argv


@pytest.mark.parametrize("target, variable", [("transcribe", "AUDIO"), ("classify", "VIDEO")])
def test_make_keeps_a_file_with_spaces_whole(tmp_path, target, variable):
    clip = tmp_path / "my clip.mp4"
    clip.write_bytes(b"")
    assert json.loads(make(target, f"SUITE={ARGV}", f"{variable}={clip}").splitlines()[-1])[-1] == str(clip)


def test_make_clean_keeps_venv_and_says_what_it_removes(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path)
    for folder in (".venv/lib/site/__pycache__", "pkg/__pycache__", "runs/music/x", "samples", ".pytest_cache"):
        (tmp_path / folder).mkdir(parents=True)
    make("clean", cwd=tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_dir()) == [
        ".venv", ".venv/lib", ".venv/lib/site", ".venv/lib/site/__pycache__", "pkg", "samples"]
    line = next(l for l in make("help", cwd=tmp_path).splitlines() if l.strip().startswith("clean"))
    assert all(word in line for word in ("runs/", ".pytest_cache", "__pycache__", ".venv")), line


def test_a_data_option_linked_from_the_model_names_the_one_to_give(tmp_path, capsys):
    assert main(["train", "speech", "--data.subsampling=conv", f"--run.root={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().endswith("--data.subsampling is set from --model.subsampling: give "
                                                    "--model.subsampling instead")
    assert not (tmp_path / "speech").exists()  # refused before anything was made
