"""What serving costs: requests per second and p50/p95 latency of POST /translate and POST /transcribe at 1 and 16
concurrent clients, against calling the same model in this process (never part of `make test`).

    .venv/bin/python bench/serving.py                                   # newest best translation and speech runs
    .venv/bin/python bench/serving.py --translation A.ckpt --speech B.ckpt --requests 64 --clients 1,16

The server is `lstm-suite serve translation speech` on a free port, one torch thread per worker (2 workers on 2
cores). In-process, the same model answers with the same number of threads: one request at a time for 1 client,
and for N clients, N requests at a time in one batched call (what a program that batches for itself gets).
Throughput ratio = server requests/s / in-process requests/s.
"""
from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import torch

from tasks.common.checkpoints import newest_checkpoint
from tasks.serving import inference
from tasks.serving.loading import load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sentences(count: int) -> list[str]:
    from num2words import num2words

    rng = random.Random(0)
    return [num2words(rng.randint(1, 999_999)) for _ in range(count)]


def clips(count: int, folder: Path) -> list[Path]:
    """Spoken commands (espeak-ng, as the default speech corpus), or noise sweeps when espeak-ng is missing."""
    from tasks.speech.synth import Job, command_phrase, find_espeak, speak

    rng, paths = random.Random(0), []
    for i in range(count):
        path = folder / f"clip{i}.wav"
        try:
            speak(Job(find_espeak(), command_phrase(rng), "en-us", 160, 50, 30.0, i, str(path)))
        except Exception:  # (no espeak-ng: the timing needs audio, not words)
            import soundfile

            t = np.arange(24000) / 16000
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32), 16000)
        paths.append(path)
    return paths


def stats(latencies: list[float], seconds: float) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p95 ms)."""
    ms = np.array(latencies) * 1000
    return len(latencies) / seconds, float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def in_process(answer, items: list, clients: int) -> tuple[float, float, float]:
    """answer(list of items) in calls of `clients` items; each item's latency is its call's."""
    answer(items[:clients])  # warm-up
    latencies, start = [], time.perf_counter()
    for i in range(0, len(items), clients):
        began = time.perf_counter()
        answer(items[i : i + clients])
        latencies += [time.perf_counter() - began] * len(items[i : i + clients])
    return stats(latencies, time.perf_counter() - start)


def over_http(send, items: list, clients: int) -> tuple[float, float, float]:
    """send(session, item) from `clients` threads at once, each with its own connection."""
    sessions = [requests.Session() for _ in range(clients)]
    for session, item in zip(sessions, items):  # warm-up: connections and the workers' first batches
        send(session, item)

    def timed(i: int) -> float:
        began = time.perf_counter()
        response = send(sessions[i % clients], items[i])
        assert response.status_code == 200, response.text
        return time.perf_counter() - began

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(timed, range(len(items))))
    return stats(latencies, time.perf_counter() - start)


def start_server(translation: Path, speech: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "tasks", "serve", "translation", "speech", "--ckpt", f"translation={translation}",
               "--ckpt", f"speech={speech}", "--port", str(port), "--threads", "1", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not start; its log:\n{log.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--translation", type=Path, help="checkpoint (default: newest best translation run)")
    parser.add_argument("--speech", type=Path, help="checkpoint (default: newest best speech run)")
    parser.add_argument("--requests", type=int, default=64, help="requests per endpoint and number of clients")
    parser.add_argument("--clients", default="1,16", help="concurrent clients, comma-separated")
    args = parser.parse_args()
    translation_ckpt = args.translation or newest_checkpoint("translation")
    speech_ckpt = args.speech or newest_checkpoint("speech")
    levels = [int(c) for c in args.clients.split(",")]
    torch.set_num_threads(1)  # as each server worker
    translation, speech = load("translation", translation_ckpt), load("speech", speech_ckpt)
    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    texts, audio = sentences(args.requests), clips(args.requests, folder)
    uploads = [path.read_bytes() for path in audio]
    decoder = speech.hparams.decoder
    local = {
        "/translate": (lambda batch: inference.translate(translation, batch), texts),
        "/transcribe": (lambda batch: speech.transcribe_features(
            [inference.audio_features(speech, data)[0] for data in batch], decoder), uploads),
    }
    port = free_port()
    process = start_server(translation_ckpt, speech_ckpt, port, folder / "serve.log")
    url = f"http://127.0.0.1:{port}"
    remote = {
        "/translate": lambda session, text: session.post(f"{url}/translate", json={"text": text}, timeout=300),
        "/transcribe": lambda session, data: session.post(f"{url}/transcribe", files={"file": ("clip.wav", data)},
                                                          timeout=300),
    }
    print(f"translation {translation_ckpt}\nspeech      {speech_ckpt} ({decoder} decoding)\n"
          f"{args.requests} requests per row; server: max batch 16, batch timeout 10 ms, 1 torch thread per worker\n")
    print(f"{'endpoint':<12} {'clients':>7} | {'in-process req/s':>16} {'p50 ms':>7} {'p95 ms':>7} | "
          f"{'server req/s':>12} {'p50 ms':>7} {'p95 ms':>7} | {'throughput ratio':>16}")
    try:
        for path, (answer, items) in local.items():
            for clients in levels:
                own = in_process(answer, items, clients)
                served = over_http(remote[path], items, clients)
                print(f"{path:<12} {clients:>7} | {own[0]:>16.1f} {own[1]:>7.1f} {own[2]:>7.1f} | "
                      f"{served[0]:>12.1f} {served[1]:>7.1f} {served[2]:>7.1f} | {served[0] / own[0]:>16.2f}",
                      flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


if __name__ == "__main__":
    main()
