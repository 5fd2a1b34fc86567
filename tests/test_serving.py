"""`lstm-suite serve` (issue 19): a real LitServe server on a free localhost port, over tiny checkpoints trained in this
session. Every endpoint answers what the model answers in-process; every kind of bad request gets its 4xx with one
line; concurrent requests all succeed, in fewer batches than requests."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("litserve", reason="the serve extra is not installed: pip install -e '.[serve]'")
requests = pytest.importorskip("requests")

from serving_fixtures import free_port, tiny_runs  # noqa: E402
from tasks.cli import main  # noqa: E402
from tasks.music.encoding import notes_of  # noqa: E402
from tasks.music.pianoroll_data import LOWEST_PITCH, pitches_to_roll  # noqa: E402
from tasks.music.render import audio_unavailable_reason  # noqa: E402
from tasks.registry import TASKS  # noqa: E402
from tasks.serving.loading import load  # noqa: E402
from tasks.translation.tokenizer import encode  # noqa: E402
from tasks.video.decode import decode_clip  # noqa: E402
from tiny_tasks import babble  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tiny_runs(tmp_path_factory)


def checkpoint(runs: Path, task: str) -> Path:
    return runs / task / "tiny" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def model(runs):
    """model(task) -> the task's tiny model, loaded in this process: what every answer is checked against."""
    loaded = {}
    return lambda task: loaded.setdefault(task, load(task, checkpoint(runs, task)))


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """`lstm-suite serve` over every task, as a user starts it; its base URL once GET /health says ok."""
    folder = tmp_path_factory.mktemp("serve")
    port, log = free_port(), folder / "serve.log"
    command = [sys.executable, "-m", "tasks", "serve", "--runs-root", str(runs), "--port", str(port),
               "--max-upload-mb", "3", "--batch-timeout", "0.05", "--threads", "1", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start (exit code {process.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)  # as `kill` or `docker stop`: it stops its workers itself
        try:
            process.wait(timeout=30)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever of its own session is left
            except ProcessLookupError:
                pass


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def post(url: str, path: str, **body) -> requests.Response:
    return requests.post(f"{url}{path}", timeout=120, **body)


def ok(response: requests.Response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def wav_bytes(seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0, fmt: str = "WAV") -> bytes:
    samples = babble(seconds, rate, seed)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([samples] * channels, axis=1), rate, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clip(runs) -> Path:
    """One of the tiny video task's rendered MP4 clips."""
    return sorted((runs.parent / "data" / "video").rglob("*.mp4"))[0]


# ---- every endpoint answers correctly ----

def test_health_and_info_describe_each_checkpoint(server, runs):
    health = requests.get(f"{server}/health", timeout=5)
    assert (health.status_code, health.text) == (200, "ok")
    tasks = ok(requests.get(f"{server}/info", timeout=5))["model"]["tasks"]
    assert set(tasks) == set(TASKS)
    for task, entry in tasks.items():
        assert entry["checkpoint"] == str(checkpoint(runs, task))
        saved = torch.load(checkpoint(runs, task), weights_only=True)
        best = next(s for s in saved["callbacks"].values() if s.get("monitor"))  # the best-checkpoint callback's
        assert entry["metrics"] == {best["monitor"]: pytest.approx(float(best["best_model_score"]), abs=1e-6)}
        assert entry["global_step"] == saved["global_step"]
    assert tasks["translation"]["max_batch_size"] == 16 and "max_batch_size" not in tasks["music"]


def test_translate_answers_what_the_model_answers(server, model):
    translation = model("translation")
    text = "three hundred and twelve"
    assert ok(post(server, "/translate", json={"text": text}))["translation"] == translation.translate([text])[0]
    texts = ["seven", "", "forty-two thousand"]
    answer = ok(post(server, "/translate", json={"texts": texts, "beam": 3}))
    assert answer["translations"] == [translation.translate([texts[0]], beam_size=3)[0], "",
                                      translation.translate([texts[2]], beam_size=3)[0]]
    # curl -d '...' sends its JSON as a form: read as the JSON it is
    as_form = post(server, "/translate", data=json.dumps({"text": text}),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ok(as_form)["translation"] == translation.translate([text])[0]


def test_transcribe_reads_uploads_of_any_rate_channels_and_size(server, model, tmp_path):
    speech = model("speech")
    uploads = {"clip.wav": wav_bytes(1.0), "clip.flac": wav_bytes(1.2, rate=8000, channels=2, seed=3, fmt="FLAC"),
               "long.wav": wav_bytes(8.0, rate=44100, channels=2, seed=5)}  # 1.4 MB: past the 1 MB Starlette
    assert len(uploads["long.wav"]) > 1_400_000                            # spools to a temporary file
    for name, data in uploads.items():
        (tmp_path / name).write_bytes(data)
        answer = ok(post(server, "/transcribe", files={"file": (name, data)}))
        assert answer["text"] == speech.transcribe([str(tmp_path / name)])[0], name
        assert answer["seconds"] == pytest.approx(soundfile.info(io.BytesIO(data)).duration, abs=0.01)
    greedy = ok(post(server, "/transcribe", files={"file": ("clip.wav", uploads["clip.wav"])},
                     data={"decoder": "greedy"}))
    assert greedy["decoder"] == "greedy"
    assert greedy["text"] == speech.transcribe([str(tmp_path / "clip.wav")], decoder="greedy")[0]


def test_classify_ranks_the_classes_as_the_model_does(server, model, clip):
    video = model("video")
    answer = ok(post(server, "/classify", files={"file": (clip.name, clip.read_bytes())}, data={"top": "3"}))
    h = video.hparams
    frames = decode_clip(clip, frames=h.cache_frames, height=h.height, width=h.width, fps=h.get("cache_fps"))
    probabilities = video.probabilities([frames])[0]
    top = probabilities.topk(3)
    assert [c["name"] for c in answer["classes"]] == [video.class_names[i] for i in top.indices.tolist()]
    assert [c["probability"] for c in answer["classes"]] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_forecast_past_the_training_data_and_past_an_uploaded_series(server, model):
    forecast = model("forecast")
    answer = ok(post(server, "/forecast", json={"horizon": 7}))
    assert answer["values"] == pytest.approx(forecast.forecast(7).tolist(), abs=1e-4)
    assert len(answer["times"]) == 7 and answer["times"][0] > forecast.hparams.series_info["times"][-1][:10]
    info = forecast.hparams.series_info
    history = np.asarray(info["history"])[:, 0] + 50.0  # a newer series: the same weeks, 50 ppm higher
    csv = "date,co2\n" + "".join(f"{t[:10]},{v}\n" for t, v in zip(info["times"], history))
    uploaded = ok(post(server, "/forecast", files={"file": ("newer.csv", csv.encode())}, data={"horizon": "5"}))
    assert uploaded["source"] == "newer.csv"
    expected = forecast.forecast(5, history[:, None])
    assert np.abs(expected - forecast.forecast(5)).max() > 1e-3  # (so the answer shows which series was read)
    assert uploaded["values"] == pytest.approx(expected.tolist(), abs=1e-4)
    plot = base64.b64decode(ok(post(server, "/forecast", json={"plot": True}))["png"])
    assert plot.startswith(PNG) and len(plot) > 5000


def test_music_sample_gives_the_seeded_melodies_as_events_midi_png_and_wav(server, model):
    import mido

    options = {"num": 2, "length": 24, "seed": 3, "temperature": 0.8, "top_k": 5}
    answer = ok(post(server, "/music/sample", json=options))
    expected = model("music").generate(2, 24, seed=3, temperature=0.8, top_k=5)
    assert [piece["events"] for piece in answer["pieces"]] == expected
    for piece, events in zip(answer["pieces"], expected):
        midi = mido.MidiFile(file=io.BytesIO(base64.b64decode(piece["midi"])))
        onsets = [m for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
        assert [m.note for m in onsets] == [pitch for _, _, pitch in notes_of(events)]
        assert base64.b64decode(piece["png"]).startswith(PNG)
        assert 0 <= piece["stats"]["in_key"] <= 1
        if audio_unavailable_reason() is None:
            audio, rate = soundfile.read(io.BytesIO(base64.b64decode(piece["wav"])))
            assert len(audio) / rate >= 24 / 4 * 60 / 100  # 24 16ths at 100 quarter notes a minute, and a release
        else:
            assert "wav" not in piece and "fluidsynth" in answer["no_wav"]
    primed = ok(post(server, "/music/sample", json={"num": 1, "length": 8, "seed": 1, "primer": "[60, -2, 62, -2]",
                                                     "formats": ["events"]}))["pieces"][0]
    assert primed["events"][:4] == [60, -2, 62, -2] and len(primed["events"]) == 12 and "midi" not in primed


def test_piano_roll_sample_continues_the_primer_chord(server, model):
    answer = ok(post(server, "/music-pianoroll/sample",
                     json={"num": 1, "frames": 6, "seed": 2, "primer": [48, 60, 64, 67], "formats": "events,midi"}))
    piece = answer["pieces"][0]
    (roll,) = model("music-pianoroll").generate(1, 6, pitches_to_roll([[48, 60, 64, 67]]), seed=2)
    assert piece["pitches"] == [(np.flatnonzero(frame) + LOWEST_PITCH).tolist() for frame in roll]
    assert piece["pitches"][0] == [48, 60, 64, 67] and set(piece) == {"pitches", "stats", "midi"}


# ---- every bad request gets its 4xx, with one line ----

BAD = [  # (path, body, status, what the line says)
    ("/translate", {"data": "{bad"}, 400, "not JSON"),
    ("/translate", {"json": ["one"]}, 400, "reads a JSON object"),
    ("/translate", {"json": {}}, 400, 'exactly one of "text"'),
    ("/translate", {"json": {"text": "one", "beam": 0}}, 422, "beam must be at least 1"),
    ("/translate", {"json": {"text": "one", "beam": 99}}, 422, "beam must be at most 16"),
    ("/translate", {"json": {"text": "one", "temperature": 1}}, 422, "has no option 'temperature'"),
    ("/translate", {"json": {"texts": "one"}}, 422, '"texts" must be a list of strings'),
    ("/translate", {"json": {"texts": [" ", ""]}}, 422, "nothing to translate"),
    ("/translate", {"json": {"text": "x" * 5000}}, 422, "at most 1000"),
    ("/music/sample", {"json": {"temperature": -1}}, 422, "temperature must be above 0"),
    ("/music/sample", {"json": {"num": 1000}}, 422, "num must be at most 16"),
    ("/music/sample", {"json": {"top_p": 2}}, 422, "top_p must be above 0 and at most 1"),
    ("/music/sample", {"json": {"primer": [20, -2]}}, 422, "outside this model's range"),
    ("/music/sample", {"json": {"formats": ["mp3"]}}, 422, "formats must list some of"),
    ("/music-pianoroll/sample", {"json": {"primer": "[[5]]"}}, 422, "off the piano"),
    ("/transcribe", {"json": {"file": "clip.wav"}}, 415, "multipart/form-data"),
    ("/transcribe", {"files": {"file": ("notes.txt", b"hello")}}, 415, "cannot read the audio"),
    ("/transcribe", {"files": {"file": ("short.wav", "short")}}, 422, "too short"),
    ("/transcribe", {"files": {"a": ("a.wav", "wav"), "b": ("b.wav", "wav")}}, 400, "exactly one audio file"),
    ("/transcribe", {"files": {"file": ("empty.wav", b"")}}, 400, "is empty"),
    ("/transcribe", {"files": {"file": ("clip.wav", "wav")}, "data": {"decoder": "fast"}}, 422,
     "decoder must be one of greedy, beam"),
    ("/transcribe", {"files": {"file": ("huge.wav", "huge")}}, 413, "too large"),
    ("/classify", {"files": {"file": ("clip.mp4", b"not a video")}}, 415, "cannot read the video"),
    ("/classify", {"files": {"file": ("clip.mp4", "clip")}, "data": {"top": "0"}}, 422, "top must be at least 1"),
    ("/forecast", {"json": {"horizon": 0}}, 422, "horizon must be at least 1"),
    ("/forecast", {"files": {"file": ("s.csv", b"a,b\n1,2\n")}}, 422, "s.csv: no column 'co2' (columns: a, b)"),
    ("/forecast", {"files": {"file": ("../..", b"a,b\n1,2\n")}}, 422, "upload: unknown file type ''"),
    ("/classify", {"files": {"file": ("x.mp4/../..", b"not a video")}}, 415, "cannot read the video"),
    ("/summarize", {"json": {"text": "one"}}, 404, "no endpoint POST /summarize; this server answers POST /music/sample"),
]


@pytest.fixture(scope="module")
def files(clip):
    """Named upload bodies for BAD."""
    return {"wav": wav_bytes(1.0), "short": wav_bytes(0.01), "huge": wav_bytes(150.0), "clip": clip.read_bytes()}


def one_line_detail(response: requests.Response, status: int, text: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    assert text in detail, detail
    return detail


@pytest.mark.parametrize("path, body, status, text", BAD, ids=[f"{b[0]}-{b[3][:30]}" for b in BAD])
def test_bad_request_gets_its_4xx_with_one_line(server, files, path, body, status, text):
    if "files" in body:
        body = {**body, "files": {k: (name, files.get(data, data) if isinstance(data, str) else data)
                                  for k, (name, data) in body["files"].items()}}
    one_line_detail(post(server, path, **body), status, text)


def test_wrong_method_and_unserved_tasks_say_what_is_served(server, tmp_path):
    one_line_detail(requests.get(f"{server}/translate", timeout=10), 405, "GET /translate is not allowed")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from starlette.exceptions import HTTPException

    from tasks.serving.server import unknown_paths_answer

    app = FastAPI()
    app.add_exception_handler(HTTPException, unknown_paths_answer(
        {"music": tmp_path}, {"video": "no checkpoint under runs/video/: train one with `make train TASK=video`"}))
    one_line_detail(TestClient(app).post("/classify"), 404, "video is not served here (no checkpoint under runs/video/: "
                    "train one with `make train TASK=video`); this server answers POST /music/sample, GET /health")


# ---- under load ----

def test_32_concurrent_translations_all_succeed_in_fewer_batches(server, model):
    translation = model("translation")
    by_length: dict[int, list[str]] = {}
    from num2words import num2words

    for n in range(1, 1000):  # sentences of one length decode the same alone or batched (same length limit)
        by_length.setdefault(len(encode(translation.tokenizer, num2words(n))), []).append(num2words(n))
    texts = max(by_length.values(), key=len)[:32]
    assert len(texts) == 32
    bad = [{"text": "one", "beam": 0}] * 4 + [{"texts": []}] * 4  # in the same burst: each fails alone
    bodies = [{"text": t} for t in texts] + bad
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: post(server, "/translate", json=body), bodies))
    good = [ok(a) for a in answers[:32]]
    assert [a["translation"] for a in good] == translation.translate(texts)  # (alone or together: the same here)
    assert all(a.status_code == 422 for a in answers[32:]), [a.text for a in answers[32:]]
    batches = {(a["batch"]["worker"], a["batch"]["number"]): a["batch"]["size"] for a in good}
    assert len(batches) < 32 and max(batches.values()) > 1, batches  # batching was used
    assert sum(batches.values()) <= len(bodies)


def test_concurrent_transcriptions_are_batched_too(server, model, tmp_path):
    clips = [wav_bytes(0.6 + 0.1 * i, seed=i) for i in range(8)]
    with ThreadPoolExecutor(len(clips)) as pool:
        answers = list(pool.map(lambda data: ok(post(server, "/transcribe", files={"file": ("c.wav", data)})), clips))
    for i, (data, answer) in enumerate(zip(clips, answers)):
        (tmp_path / f"{i}.wav").write_bytes(data)
        assert answer["text"] == model("speech").transcribe([str(tmp_path / f"{i}.wav")])[0]
    assert len({(a["batch"]["worker"], a["batch"]["number"]) for a in answers}) < len(clips)


# ---- the command's own errors: one line, before anything starts ----

@pytest.mark.parametrize("args, text", [
    (["--runs-root", "{empty}"], "no checkpoint of any task under"),
    (["video", "--runs-root", "{empty}"], "video: no checkpoint under"),
    (["bogus"], "unknown task 'bogus'"),
    (["--ckpt", "music"], "expected TASK=PATH"),
    (["--ckpt", "music=/nowhere/best.ckpt"], "no such file"),
    (["--ckpt", "music={translation}", "--runs-root", "{empty}"], "does not fit MelodyModel"),
    (["--port", "80"], "must be from 1024 to 65535"),
])
def test_serve_refuses_bad_arguments_in_one_line(runs, tmp_path, capsys, args, text):
    args = [a.format(empty=tmp_path, translation=checkpoint(runs, "translation")) for a in args]
    capsys.readouterr()
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err, err
