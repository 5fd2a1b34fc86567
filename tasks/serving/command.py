"""`lstm-suite serve [TASK ...]` and `lstm-suite demo [TASK ...]`: the newest checkpoint of each task, in use."""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import signal
from pathlib import Path

from tasks.common.arguments import CommandParser, positive_float, positive_int, user_path
from tasks.common.errors import InputError
from tasks.serving.loading import choose_checkpoints, describe, load, parse_overrides

HOSTS = ("127.0.0.1", "0.0.0.0", "::")
quiet = "%(default).0s"  # ends a help text whose default says nothing ("(default: [])")


def port(text: str) -> int:
    value = positive_int(text)
    if not 1024 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 1024 to 65535, got {text!r}")
    return value


def parser(command: str, description: str, default_port: int) -> argparse.ArgumentParser:
    p = CommandParser(prog=f"lstm-suite {command}", description=description)
    p.add_argument("tasks", nargs="*", metavar="TASK",
                   help=f"tasks to load (default: every task that has a checkpoint){quiet}")
    p.add_argument("--ckpt", action="append", default=[], metavar="TASK=PATH",
                   help=f"a checkpoint for a task instead of its newest run's best.ckpt (repeat for several tasks){quiet}")
    p.add_argument("--runs-root", type=user_path, default="runs", help="where to look for each task's newest run")
    p.add_argument("--host", choices=HOSTS, default="127.0.0.1",
                   help="127.0.0.1: this machine only; 0.0.0.0 or ::, every network interface")
    p.add_argument("--port", type=port, default=default_port, help="TCP port")
    return p


def require(package: str, command: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise InputError(f"lstm-suite {command} needs {package}, from the serve extra: pip install -e '.[serve]'")


def chosen(args: argparse.Namespace) -> tuple[dict[str, Path], dict, dict[str, str]]:
    """({task: checkpoint}, {task: its model}, {task: why it has none}): every checkpoint is loaded here, so that a
    bad one is a one-line error before anything starts."""
    served, missing = choose_checkpoints(args.tasks, parse_overrides(args.ckpt), args.runs_root)
    models = {task: load(task, path) for task, path in served.items()}
    for task, path in served.items():
        print(f"  {task:<16} {path}")
    for task, why in missing.items():
        print(f"  {task:<16} not loaded: {why}")
    return served, models, missing


def serve(argv: list[str]) -> int:
    p = parser("serve", "Serve the newest best checkpoint of each task over HTTP (LitServe): POST /music/sample, "
               "/music-pianoroll/sample, /translate, /transcribe, /classify, /forecast; GET /health and /info. "
               "Each model is loaded once, in a worker process of its own.", 8000)
    p.add_argument("--max-batch-size", type=positive_int, default=16,
                   help="requests answered together by translate, transcribe and classify")
    p.add_argument("--batch-timeout", type=positive_float, default=0.01,
                   help="seconds a worker waits for more requests to fill a batch")
    p.add_argument("--threads", type=positive_int, default=None,
                   help=f"torch threads per worker (default: the CPU cores shared among the tasks served){quiet}")
    p.add_argument("--max-upload-mb", type=positive_float, default=20.0, help="largest upload accepted, in MB")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="seconds a request may wait for its answer")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    args = p.parse_args(argv)
    require("litserve", "serve")
    from tasks.serving.server import build_server, endpoint_list  # imports LitServe

    served, models, missing = chosen(args)
    del models  # (each worker loads its own)
    threads = args.threads or max(1, (os.cpu_count() or 1) // len(served))
    server = build_server(served, info={task: describe(path) for task, path in served.items()}, missing=missing,
                          threads=threads, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout,
                          timeout=args.timeout, max_upload=int(args.max_upload_mb * 1e6))
    shown = "localhost" if args.host != "::" else "[::1]"
    print(f"Starting {len(served)} model worker(s), {threads} torch thread(s) each; http://{shown}:{args.port} answers "
          f"{endpoint_list(served)} (GET /health says ok once every model is loaded)", flush=True)
    stop_on_signals()
    try:
        server.run(host=args.host, port=args.port, num_api_servers=1, generate_client_file=False,
                   log_level=args.log_level)
    except KeyboardInterrupt:  # during startup: LitServe stops its processes itself only once it is running
        pass
    finally:
        for child in multiprocessing.active_children():
            child.terminate()
    return 0


def stop_on_signals() -> None:
    """SIGTERM (kill, docker stop, systemd) ends the server as Ctrl+C does, its worker processes with it; Ctrl+C
    works even when the shell started it in the background."""
    main = os.getpid()

    def stop(signum, frame):
        if os.getpid() != main:  # a process LitServe forked (its HTTP server) that kept this handler
            raise SystemExit(0)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def demo(argv: list[str]) -> int:
    p = parser("demo", "A web page (Gradio) with a tab per task that has a checkpoint: sample melodies and listen to "
               "them, translate, transcribe an upload or the microphone, classify a video, plot a forecast. Runs "
               "offline.", 7860)
    args = p.parse_args(argv)
    require("gradio", "demo")
    from tasks.serving.demo import build_demo, launch  # imports Gradio

    served, models, missing = chosen(args)
    stop_on_signals()
    launch(build_demo(models, served, missing), host=args.host, port=args.port, block=True)  # (until Ctrl+C)
    return 0
