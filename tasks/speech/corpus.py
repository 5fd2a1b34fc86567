"""Speech corpora -> manifests: JSON lines {"audio_filepath": ..., "text": ..., "duration": ...} (NeMo's format).

Every source becomes a manifest per split, so one reader serves them all: manifests you write yourself
(relative audio paths are relative to the manifest's folder), the LibriSpeech folder layout, a Hugging Face
audio dataset (its audio bytes are written out as files), and the synthesized default corpus.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional

from tqdm import tqdm

from tasks.common.atomic import write_atomic
from tasks.common.errors import InputError

TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")  # HF datasets disagree
SPEAKER_COLUMNS = ("speaker_id", "client_id", "speaker")


class Utterance(NamedTuple):
    audio: str  # absolute path of the audio file
    text: str  # the transcript, as the vocabulary sees it
    duration: float  # seconds
    speaker: str = ""  # speaker or synthetic voice, when the source says


class ManifestRow(NamedTuple):
    audio: str  # absolute path
    text: str
    speaker: str


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Rows of a JSON-lines manifest; a malformed line is an InputError naming the file and line."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise InputError(f"{path}: no such manifest file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path} line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("audio_filepath"), str):
            raise InputError(f"{path} line {number}: no \"audio_filepath\" (expected "
                             "{\"audio_filepath\": ..., \"text\": ..., \"duration\": ...})")
        text = row.get("text")
        if not isinstance(text, str):
            raise InputError(f"{path} line {number}: \"text\" should be a string, got {text!r}")
        speaker = next((str(row[key]) for key in ("speaker", "voice", "speaker_id") if key in row), "")
        audio = path.parent / Path(row["audio_filepath"]).expanduser()  # an absolute path stays as it is
        rows.append(ManifestRow(str(audio.resolve()), text, speaker))
    return rows


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # written last and whole: its presence means the corpus is complete. The features cache is named by its time,
    # so a manifest another process wrote first is kept, not replaced by our (identical) one
    return write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), replace=False)


def librispeech_manifest(root: str | Path, split: str, out: Path) -> Path:
    """root/LibriSpeech/<split>/<speaker>/<chapter>/*.flac + *.trans.txt -> a manifest with absolute paths.

    torchaudio's LIBRISPEECH only enumerates here: its audio loading needs torchcodec; read_audio reads the files.
    """
    from torchaudio.datasets import LIBRISPEECH

    root = Path(root).expanduser().resolve()
    try:
        dataset = LIBRISPEECH(root, url=split, folder_in_archive="LibriSpeech", download=False)
    except (RuntimeError, ValueError) as error:  # a missing folder or an unknown split name
        raise InputError(f"LibriSpeech {split} under {root}: {error}") from None
    if len(dataset) == 0:
        raise InputError(f"{root / 'LibriSpeech' / split}: no <speaker>/<chapter>/*.flac files in it")
    rows = []
    for n in tqdm(range(len(dataset)), desc=f"Listing LibriSpeech {split}", unit="file"):
        try:
            audio, _, text, speaker, _, _ = dataset.get_metadata(n)
        except (FileNotFoundError, ValueError):  # no transcript line: counted later as an empty transcript
            file_id = dataset._walker[n]  # "<speaker>-<chapter>-<utterance>"
            speaker, chapter, _ = file_id.split("-")
            audio, text = f"{split}/{speaker}/{chapter}/{file_id}.flac", ""
        rows.append({"audio_filepath": str(root / "LibriSpeech" / audio), "text": text, "speaker": str(speaker)})
    return write_manifest(out, rows)


def hf_manifest(name: str, config: Optional[str], split: str, out: Path) -> Path:
    """Download a Hugging Face audio dataset split (e.g. librispeech_asr clean train.100) -> files + manifest."""
    import datasets

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except ValueError as error:  # e.g. an unknown split or config
        raise InputError(f"Hugging Face dataset {name} ({config}) split {split}: {error}") from None
    return export_hf_split(dataset, out)


def export_hf_split(dataset, out: Path) -> Path:
    """A `datasets.Dataset` with an Audio column and a transcript column -> audio files + manifest `out`.

    The files go in a folder named like the manifest without its suffix.
    """
    from datasets import Audio

    audio_column = next((c for c, f in dataset.features.items() if isinstance(f, Audio)), None)
    text_column = next((c for c in TEXT_COLUMNS if c in dataset.column_names), None)
    if audio_column is None or text_column is None:
        raise InputError(f"dataset columns {', '.join(dataset.column_names)}: expected an Audio column and a "
                         f"transcript column named one of {', '.join(TEXT_COLUMNS)}")
    speaker_column = next((c for c in SPEAKER_COLUMNS if c in dataset.column_names), None)
    dataset = dataset.cast_column(audio_column, Audio(decode=False))  # raw bytes: decoding would need torchcodec
    audio_folder = out.with_suffix("")
    audio_folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, row in enumerate(tqdm(dataset, desc=f"Writing out {out.stem}", unit="utterance")):
        audio = row[audio_column]
        if audio.get("bytes") is None:  # a dataset built from local files keeps only their paths
            path = Path(audio["path"])
        else:
            path = audio_folder / f"{i:07d}{Path(audio.get('path') or '').suffix or '.wav'}"
            write_atomic(path, audio["bytes"])  # a concurrent export never reads a half-written file
        speaker = str(row[speaker_column]) if speaker_column else ""
        rows.append({"audio_filepath": str(path.resolve()), "text": row[text_column] or "", "speaker": speaker})
    return write_manifest(out, rows)
