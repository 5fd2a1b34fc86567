"""`lstm-suite demo`: a Gradio page with a tab per task that has a checkpoint. It runs offline: no analytics, no
web fonts, nothing fetched; tasks without a checkpoint are listed with the command that trains one."""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before Gradio is imported: no calls home

import gradio as gr  # noqa: E402

from tasks.common.errors import InputError  # noqa: E402
from tasks.music.render import audio_unavailable_reason  # noqa: E402
from tasks.registry import TASKS  # noqa: E402
from tasks.serving import inference  # noqa: E402
from tasks.serving.loading import train_command  # noqa: E402

SLOTS = 4  # pieces shown at once
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
TITLES = {"music": "Melodies", "music-pianoroll": "Piano rolls", "translation": "Translation", "speech": "Speech",
          "video": "Video", "forecast": "Forecast"}


def shown_errors(work: Callable) -> Callable:
    """Bad input (a primer off the model's range, audio it cannot read, ...) as a message on the page."""
    @functools.wraps(work)
    def run(*args):
        try:
            return work(*args)
        except InputError as error:  # (BadRequest is one)
            raise gr.Error(str(error)) from None

    return run


def header(served: dict[str, Path], missing: dict[str, str]) -> str:
    lines = ["# lstm-suite: the trained models", "",
             "Each tab uses the newest best checkpoint of its task (or the one given with `--ckpt TASK=PATH`).", ""]
    lines += [f"- **{task}**: `{path}`" for task, path in served.items()]
    if missing:
        lines += ["", "No checkpoint yet: " + "; ".join(f"**{task}** (train one: `{train_command(task)}`)"
                                                    for task in missing)]
    return "\n".join(lines)


def seed_of(text: str) -> Optional[int]:
    """The seed box: empty for a random draw, else a whole number."""
    if not str(text or "").strip():
        return None
    try:
        return int(str(text).strip())
    except ValueError:
        raise InputError(f"seed must be a whole number or empty, got {text!r}") from None


def piece_slots(kind: str) -> list:
    """SLOTS rows of (audio player, piano roll), then the MIDI files and a summary: the outputs of a sampling."""
    rows, audios, rolls = [], [], []
    for i in range(SLOTS):
        with gr.Row(visible=False) as row:
            audios.append(gr.Audio(label=f"{kind} {i + 1}", type="filepath", interactive=False,
                                   elem_id=f"{kind}-audio-{i}"))
            rolls.append(gr.Image(label="piano roll", type="filepath", interactive=False, elem_id=f"{kind}-roll-{i}"))
        rows.append(row)
    files = gr.File(label="MIDI files", file_count="multiple", interactive=False, height=120, elem_id=f"{kind}-midi")
    return [*rows, *audios, *rolls, files, gr.Markdown(elem_id=f"{kind}-summary")]


def pieces_outputs(pieces: list[inference.Piece], describe_piece: Callable[[inference.Piece], str]) -> list:
    """What piece_slots shows of sampled pieces: a row each (the others hidden), their MIDI files and stats."""
    rows = [gr.Row(visible=i < len(pieces)) for i in range(SLOTS)]
    empty = [None] * (SLOTS - len(pieces))
    audios = [str(p.files["wav"]) if "wav" in p.files else None for p in pieces] + empty
    rolls = [str(p.files["png"]) for p in pieces] + empty
    lines = [f"{i}. {describe_piece(p)}" for i, p in enumerate(pieces, start=1)]
    no_audio = audio_unavailable_reason()
    if no_audio:
        lines.append(f"\nNo audio: {no_audio}. The MIDI files play in any MIDI player.")
    return [*rows, *audios, *rolls, [str(p.files["midi"]) for p in pieces], "\n".join(lines)]


def describe_melody(piece: inference.Piece) -> str:
    s = piece.stats
    return (f"{len(piece.notes)} sixteenths, range {s['pitch_range']} semitones, {s['in_key']:.0%} of notes in key, "
            f"pitch-class entropy {s['pitch_class_entropy']:.2f} bits, longest repeat {s['longest_repeat']}")


def melody_tab(model, folder: Callable[[], Path]) -> None:
    with gr.Row():
        num = gr.Slider(1, SLOTS, value=2, step=1, label="melodies", elem_id="music-num")
        length = gr.Slider(16, 512, value=128, step=16, label="length (16th notes)")
        temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature")
    with gr.Row():
        top_k = gr.Number(value=0, precision=0, minimum=0, label="top-k (0: all)")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p")
        seed = gr.Textbox(label="seed (empty: random)", elem_id="music-seed")
        primer = gr.Textbox(label="primer (events: pitch, -1 note off, -2 hold)", placeholder="[60, -2, 62, -2]")
    button = gr.Button("Sample melodies", variant="primary", elem_id="music-sample")
    outputs = piece_slots("music")

    @shown_errors
    def sample(num, length, temperature, top_k, top_p, seed, primer):
        pieces = inference.sample_melodies(model, folder(), num=int(num), length=int(length), temperature=temperature,
                                           top_k=int(top_k or 0), top_p=top_p, seed=seed_of(seed),
                                           primer=primer.strip() or None)
        return pieces_outputs(pieces, describe_melody)

    button.click(sample, [num, length, temperature, top_k, top_p, seed, primer], outputs)


def piano_roll_tab(model, folder: Callable[[], Path]) -> None:
    with gr.Row():
        num = gr.Slider(1, SLOTS, value=2, step=1, label="pieces")
        frames = gr.Slider(8, 256, value=64, step=8, label="frames (quarter notes)")
        seed = gr.Textbox(label="seed (empty: random)")
        primer = gr.Textbox(label="first chord(s), MIDI pitches", placeholder="48,60,64,67  or  [[48,60],[50,62]]")
    button = gr.Button("Sample piano rolls", variant="primary", elem_id="pianoroll-sample")
    outputs = piece_slots("pianoroll")

    @shown_errors
    def sample(num, frames, seed, primer):
        pieces = inference.sample_piano_rolls(model, folder(), num=int(num), frames=int(frames),
                                              seed=seed_of(seed), primer=primer.strip() or None)
        return pieces_outputs(pieces, lambda p: f"{len(p.notes)} frames, {p.stats['notes_per_frame']:.1f} notes per "
                                                "frame on average")

    button.click(sample, [num, frames, seed, primer], outputs)


def translation_tab(model, folder: Callable[[], Path]) -> None:
    from tasks.translation.callbacks import attention_png

    with gr.Row():
        source = gr.Textbox(label="text (one sentence per line)", lines=3, elem_id="translate-input",
                            placeholder="three hundred and twelve")
        target = gr.Textbox(label="translation", lines=3, interactive=False, elem_id="translate-output")
    beam = gr.Slider(1, 10, value=model.hparams.beam_size, step=1, label="beam size (1: greedy)")
    button = gr.Button("Translate", variant="primary", elem_id="translate-run")
    attention = gr.Image(label="attention of the first sentence (greedy decoding)", type="filepath",
                         interactive=False, elem_id="translate-attention")

    @shown_errors
    def translate(text, beam):
        lines = text.splitlines()
        if not any(line.strip() for line in lines):
            raise InputError("type a sentence to translate")
        first = next(line for line in lines if line.strip())
        heatmap = attention_png(model, first, folder() / "attention.png")
        return "\n".join(inference.translate(model, lines, int(beam))), str(heatmap)

    button.click(translate, [source, beam], [target, attention])


def speech_tab(model, folder: Callable[[], Path]) -> None:
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech: upload a file or record",
                     elem_id="speech-input")
    decoder = gr.Radio(["greedy", "beam"], value=model.hparams.decoder, label="decoder")
    button = gr.Button("Transcribe", variant="primary", elem_id="speech-run")
    transcript = gr.Textbox(label="transcript", interactive=False, elem_id="speech-output")
    details = gr.Markdown(elem_id="speech-details")

    @shown_errors
    def transcribe(path, decoder):
        if not path:
            raise InputError("upload or record some speech first")
        features, seconds = inference.audio_features(model, path)
        text = model.transcribe_features([features], decoder)[0]
        return text, f"{seconds:.2f} s of audio, {decoder} decoding" + ("" if text else ": nothing recognised")

    button.click(transcribe, [audio, decoder], [transcript, details])


def video_tab(model, folder: Callable[[], Path]) -> None:
    video = gr.Video(sources=["upload"], label="video clip", elem_id="video-input")
    top = gr.Slider(1, len(model.class_names), value=min(5, len(model.class_names)), step=1, label="classes shown")
    button = gr.Button("Classify", variant="primary", elem_id="video-run")
    label = gr.Label(label="likeliest classes", elem_id="video-output")

    @shown_errors
    def classify(path, top):
        if not path:
            raise InputError("upload a video first")
        ranked = inference.top_classes(model, [inference.read_clip(model, path)], int(top))[0]
        return gr.Label(value=dict(ranked), num_top_classes=int(top))

    button.click(classify, [video, top], [label])


def forecast_tab(model, folder: Callable[[], Path]) -> None:
    info = model.hparams.series_info
    with gr.Row():
        horizon = gr.Number(value=model.hparams.horizon, precision=0, minimum=1, label="steps to forecast")
        series = gr.File(label=f"newer series (optional): CSV or Parquet with {', '.join(info['columns'])}"
                         + (f" and {info['time_column']}" if info["time_column"] else ""),
                         file_types=[".csv", ".tsv", ".parquet", ".pq"], type="filepath")
    button = gr.Button("Forecast", variant="primary", elem_id="forecast-run")
    plot = gr.Image(label="forecast", type="filepath", interactive=False, elem_id="forecast-plot")
    table = gr.Dataframe(label="forecast values", interactive=False, elem_id="forecast-table")

    @shown_errors
    def run(horizon, series):
        if not horizon or horizon < 1:
            raise InputError("forecast at least 1 step")
        result = inference.forecast(model, horizon=int(horizon), series=Path(series) if series else None,
                                    plot=folder() / "forecast.png")
        return str(result.plot), {"headers": [result.time_column, result.target],
                                  "data": [[t, v] for t, v in zip(result.times, result.values)]}

    button.click(run, [horizon, series], [plot, table])


TABS = {"music": melody_tab, "music-pianoroll": piano_roll_tab, "translation": translation_tab,
        "speech": speech_tab, "video": video_tab, "forecast": forecast_tab}


def build_demo(models: dict, served: dict[str, Path], missing: dict[str, str]) -> gr.Blocks:
    """The page: a header naming each checkpoint (and the tasks without one), then a tab per loaded model."""
    work = tempfile.TemporaryDirectory(prefix="lstm-suite-demo-")  # each answer's files, in a folder of its own
    count = iter(range(1 << 62))

    def folder() -> Path:
        path = Path(work.name) / str(next(count))
        path.mkdir()
        return path

    with gr.Blocks(title="lstm-suite demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(header(served, missing), elem_id="header")
        with gr.Tabs():
            for task in TASKS:
                if task in models:
                    with gr.Tab(TITLES[task], id=task, elem_id=f"tab-{task}"):
                        TABS[task](models[task], folder)
    demo.work_folder = work  # kept as long as the page is
    return demo


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the page; block=False returns at once (tests), demo.close() stops it."""
    if block:
        print(f"The demo is at http://{'localhost' if host != '::' else '[::1]'}:{port} (Ctrl+C stops it)", flush=True)
    return demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
                       show_error=True, theme=THEME, max_file_size="50mb", footer_links=[], quiet=True)
