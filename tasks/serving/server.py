"""The LitServe APIs: one endpoint per task, each task's model loaded once in its own worker process.

Every API reads a request in `read` (in the worker, one request at a time) and answers a batch of read requests in
`answer`. A request that cannot be answered becomes its own 4xx with one line; the other requests of its batch are
answered as usual (LitServe would fail the whole batch on an exception).
"""
from __future__ import annotations

import base64
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import litserve as ls
import torch
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tasks.music.render import audio_unavailable_reason
from tasks.serving import inference
from tasks.serving.batching import FirstRequestBatchedLoop
from tasks.serving.checks import EITHER, JSON, UPLOAD, RequestChecks, one_upload, split_form
from tasks.serving.errors import BadRequest
from tasks.serving.loading import load
from tasks.serving.options import (CLASSIFY, FORECAST, MELODY, PIANO_ROLL, TRANSCRIBE, TRANSLATE, json_object,
                                   read_options, sentences)


def exit_with(parent: int) -> None:
    """End this worker when the server's main process is gone (killed, or it crashed): never an orphan."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def json_safe(value):
    """NaN and infinities (a diverged model's) as null: JSON has no such numbers, and FastAPI would answer 500."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return [json_safe(v) for v in value] if isinstance(value, list) else value


def encoded(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


class TaskAPI(ls.LitAPI):
    task: str
    path: str
    reads: str = JSON  # JSON, UPLOAD or EITHER (checks.RequestChecks)
    batched: bool = False  # whether requests can share a forward pass
    example: str = ""  # a request, for the help in error messages
    options: Mapping = {}  # name -> options.Option

    def __init__(self, checkpoint: str | Path, *, threads: int = 1, max_batch_size: int = 16,
                 batch_timeout: float = 0.01):
        batch = dict(max_batch_size=max_batch_size, batch_timeout=batch_timeout) if self.batched else {}
        if self.batched and max_batch_size > 1:
            batch["loop"] = FirstRequestBatchedLoop()
        super().__init__(api_path=self.path, **batch)
        self.checkpoint, self.threads, self.batches = str(checkpoint), threads, 0

    def setup(self, device) -> None:
        threading.Thread(target=exit_with, args=(os.getppid(),), daemon=True).start()
        torch.set_num_threads(self.threads)
        self.model = load(self.task, self.checkpoint)
        print(f"{self.task}: ready at POST {self.path} ({self.checkpoint})", flush=True)

    def decode_request(self, request):
        try:
            return self.read(request)
        except BadRequest as error:
            return error

    def predict(self, x):
        requests = x if self.max_batch_size > 1 else [x]
        self.batches += 1
        batch = {"worker": os.getpid(), "number": self.batches, "size": len(requests)}  # for whoever counts batches
        good = [i for i, request in enumerate(requests) if not isinstance(request, BadRequest)]
        answers = list(requests)
        try:
            done = self.answer([requests[i] for i in good]) if good else []
        except BadRequest as error:  # (answers of batched APIs never raise it: one request would fail them all)
            done = [error]
        for i, answer in zip(good, done):
            answers[i] = answer if isinstance(answer, BadRequest) or not self.batched else {**answer, "batch": batch}
        return answers if self.max_batch_size > 1 else answers[0]

    def encode_response(self, output):
        if isinstance(output, BadRequest):
            return JSONResponse({"detail": output.message}, status_code=output.status)
        return json_safe(output)

    def read(self, request) -> Any:
        return read_options(self.path, json_object(request, self.path, self.example), self.options)

    def answer(self, requests: list) -> list[dict]:
        raise NotImplementedError


def pieces_json(pieces: list[inference.Piece], notes: str, formats) -> dict:
    """Sampled pieces as JSON: the notes (when "events" is asked for), stats and each file in base64."""
    out = []
    for piece in pieces:
        files = {kind: encoded(path) for kind, path in piece.files.items() if kind in formats}
        out.append({**({notes: piece.notes} if "events" in formats else {}), "stats": piece.stats, **files})
    missing = "wav" in formats and audio_unavailable_reason()
    return {"pieces": out, **({"no_wav": missing} if missing else {})}


class MelodyAPI(TaskAPI):
    task, path, options = "music", "/music/sample", MELODY
    example = '{"num": 2, "length": 64, "temperature": 0.9, "seed": 1}'
    sample, notes = staticmethod(inference.sample_melodies), "events"

    def answer(self, requests: list[dict]) -> list[dict]:
        with tempfile.TemporaryDirectory() as folder:
            return [pieces_json(self.sample(self.model, Path(folder), **options), self.notes, options["formats"])
                    for options in requests]


class PianoRollAPI(MelodyAPI):
    task, path, options = "music-pianoroll", "/music-pianoroll/sample", PIANO_ROLL
    example = '{"num": 2, "frames": 32, "primer": [48, 60, 64, 67]}'
    sample, notes = staticmethod(inference.sample_piano_rolls), "pitches"


class TranslateAPI(TaskAPI):
    task, path, options, batched = "translation", "/translate", TRANSLATE, True
    example = '{"text": "three hundred and twelve"}'

    def read(self, request) -> dict:
        options = super().read(request)
        return {"texts": sentences(options), "beam": options["beam"], "one": options["text"] is not None}

    def answer(self, requests: list[dict]) -> list[dict]:
        translations: dict[int, list[str]] = {}
        for beam in {r["beam"] for r in requests}:  # one decoding per beam size asked for
            group = [i for i, r in enumerate(requests) if r["beam"] == beam]
            done = iter(inference.translate(self.model, [t for i in group for t in requests[i]["texts"]], beam))
            translations.update({i: [next(done) for _ in requests[i]["texts"]] for i in group})
        return [{"translation": translations[i][0]} if r["one"] else {"translations": translations[i]}
                for i, r in enumerate(requests)]


class TranscribeAPI(TaskAPI):
    task, path, reads, batched = "speech", "/transcribe", UPLOAD, True

    def read(self, request) -> dict:
        upload, fields = one_upload(request, "audio", "clip.wav")
        options = read_options(self.path, fields, TRANSCRIBE)
        features, seconds = inference.audio_features(self.model, upload.data)
        return {"features": features, "seconds": round(seconds, 3),
                "decoder": options["decoder"] or self.model.hparams.decoder}

    def answer(self, requests: list[dict]) -> list[dict]:
        texts: dict[int, str] = {}
        for decoder in {r["decoder"] for r in requests}:
            group = [i for i, r in enumerate(requests) if r["decoder"] == decoder]
            texts.update(zip(group, self.model.transcribe_features([requests[i]["features"] for i in group], decoder)))
        return [{"text": texts[i], "seconds": r["seconds"], "decoder": r["decoder"]} for i, r in enumerate(requests)]


class ClassifyAPI(TaskAPI):
    task, path, reads, batched = "video", "/classify", UPLOAD, True

    def read(self, request) -> dict:
        upload, fields = one_upload(request, "video", "clip.mp4")
        options = read_options(self.path, fields, CLASSIFY)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{upload.suffix}"
            path.write_bytes(upload.data)
            return {"clip": inference.read_clip(self.model, path), "top": options["top"]}

    def answer(self, requests: list[dict]) -> list[dict]:
        ranked = inference.top_classes(self.model, [r["clip"] for r in requests], max(r["top"] for r in requests))
        return [{"classes": [{"name": name, "probability": p} for name, p in classes[: r["top"]]]}
                for r, classes in zip(requests, ranked)]


class ForecastAPI(TaskAPI):
    task, path, reads, options = "forecast", "/forecast", EITHER, FORECAST
    example = '{"horizon": 52}'

    def read(self, request) -> dict:
        if isinstance(request, Mapping) and not isinstance(request, dict):  # a form: options, and maybe a series
            fields, files = split_form(request)
            if len(files) > 1:
                raise BadRequest(f"send at most one series file (got {len(files)}), e.g. curl -F file=@series.csv URL")
            return {**read_options(self.path, fields, self.options), "series": files[0] if files else None}
        return {**super().read(request), "series": None}

    def answer(self, requests: list[dict]) -> list[dict]:
        (request,) = requests
        with tempfile.TemporaryDirectory() as folder:
            series = request["series"]
            path = None
            if series is not None:
                path = Path(folder) / series.name
                path.write_bytes(series.data)
            plot = Path(folder) / "forecast.png" if request["plot"] else None
            result = inference.forecast(self.model, horizon=request["horizon"], series=path, plot=plot)
            return [{"target": result.target, "time_column": result.time_column, "times": result.times,
                     "values": result.values, "source": result.source, **({"png": encoded(plot)} if plot else {})}]


APIS: dict[str, type[TaskAPI]] = {api.task: api for api in
                                  (MelodyAPI, PianoRollAPI, TranslateAPI, TranscribeAPI, ClassifyAPI, ForecastAPI)}


def endpoint_list(served) -> str:
    return ", ".join([f"POST {APIS[task].path}" for task in served] + ["GET /health", "GET /info"])


def unknown_paths_answer(served: Mapping[str, Path], missing: Mapping[str, str]):
    """FastAPI's 404 and 405, in one line that says what this server does answer."""
    async def answer(request: Request, error: HTTPException) -> JSONResponse:
        detail, path = error.detail, request.url.path
        owner = next((task for task, api in APIS.items() if api.path == path), None)
        if error.status_code == 404 and detail == "Not Found":
            why = (f": {owner} is not served here ({missing.get(owner, 'not asked for')})" if owner else "")
            detail = f"no endpoint {request.method} {path}{why}; this server answers {endpoint_list(served)}"
        elif error.status_code == 405:
            detail = f"{request.method} {path} is not allowed; this server answers {endpoint_list(served)}"
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=getattr(error, "headers", None))

    return answer


def build_server(served: Mapping[str, Path], *, info: Mapping[str, Any], missing: Mapping[str, str],
                 threads: int = 1, max_batch_size: int = 16, batch_timeout: float = 0.01, timeout: float = 120,
                 max_upload: int = 20_000_000, max_json: int = 1_000_000) -> ls.LitServer:
    """A LitServer with one API per served task ({task: checkpoint}); `info` is what GET /info reports."""
    apis = [APIS[task](path, threads=threads, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
            for task, path in served.items()]
    endpoints = {api.path: api.reads for api in apis}
    metadata = {"tasks": {task: {"endpoint": f"POST {APIS[task].path}", **info[task],
                                 **({"max_batch_size": max_batch_size, "batch_timeout": batch_timeout}
                                    if APIS[task].batched else {})} for task in served},
                "not_served": dict(missing), "max_upload_bytes": max_upload}
    server = ls.LitServer(apis, accelerator="cpu", timeout=timeout, model_metadata=metadata,
                          middlewares=[(RequestChecks, {"endpoints": endpoints, "max_json": max_json,
                                                        "max_upload": max_upload})])
    server.app.add_exception_handler(HTTPException, unknown_paths_answer(served, missing))
    return server
