"""Which corpus the data module's settings choose: its split names, and the manifests it is read from.

Apart from corpus.py (one source -> one manifest) because one source is the synthesized corpus, and synth.py
writes its manifests with corpus.py: importing synth there would be a cycle.
`settings` is SpeechDataModule.hparams throughout.
"""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities.parsing import AttributeDict

from tasks.common.caching import stamp_digest
from tasks.speech.corpus import hf_manifest, librispeech_manifest
from tasks.speech.features import CACHE_VERSION
from tasks.speech.synth import CORPUS_VERSION, TEST_VOICES, TRAIN_VOICES, synthesize_corpus

SPLITS = ("train", "val", "test")
CORPORA = ("synth", "manifest", "librispeech", "hf")


def split_names(settings: AttributeDict) -> dict[str, str]:
    """Our split -> the source's name for it, for the splits this corpus has."""
    s = settings
    names = {
        "synth": dict(zip(SPLITS, SPLITS)),
        "manifest": {"train": s.train_manifest, "val": s.val_manifest, "test": s.test_manifest},
        "librispeech": {"train": s.librispeech_train, "val": s.librispeech_val, "test": s.librispeech_test},
        "hf": {"train": s.hf_train, "val": s.hf_val, "test": s.hf_test},
    }[s.corpus]
    return {split: name for split, name in names.items() if name}


def describe(settings: AttributeDict, split: str) -> str:
    name = split_names(settings)[split]
    return {"synth": f"synthesized {split}", "manifest": str(Path(name).expanduser()),
            "librispeech": f"LibriSpeech {name}", "hf": f"{settings.hf_name} {name}"}[settings.corpus]


def source_folder(settings: AttributeDict) -> Path:
    """Where a corpus other than "manifest" is written out as manifests (and audio, for synth and hf)."""
    s = settings
    stamp: list = [CACHE_VERSION, s.corpus, split_names(s)]
    if s.corpus == "synth":
        stamp += [s.synth_train, s.synth_val, s.synth_test, s.seed, TRAIN_VOICES, TEST_VOICES, CORPUS_VERSION]
    elif s.corpus == "librispeech":
        stamp += [str(Path(s.librispeech_root).expanduser().resolve())]
    else:
        stamp += [s.hf_name, s.hf_config]
    return Path(s.cache_dir).expanduser() / f"{s.corpus}-{stamp_digest(stamp)}"


def manifest_paths(settings: AttributeDict) -> dict[str, Path]:
    """Split -> manifest path; for corpora other than "manifest" they exist once write_manifests has run."""
    if settings.corpus == "manifest":
        return {split: Path(name).expanduser().resolve() for split, name in split_names(settings).items()}
    folder = source_folder(settings)
    return {split: folder / f"{split}.jsonl" for split in split_names(settings)}


def write_manifests(settings: AttributeDict) -> dict[str, Path]:
    """Synthesize, list or download the splits whose manifests are missing -> split -> manifest path."""
    s, manifests = settings, manifest_paths(settings)
    missing = {split: path for split, path in manifests.items() if not path.exists()}
    if s.corpus == "synth" and missing:
        synthesize_corpus(source_folder(s), train=s.synth_train, val=s.synth_val, test=s.synth_test,
                          seed=s.seed, workers=s.prepare_workers)
    elif s.corpus == "librispeech":
        for split, path in missing.items():
            librispeech_manifest(s.librispeech_root, split_names(s)[split], path)
    elif s.corpus == "hf":
        for split, path in missing.items():
            hf_manifest(s.hf_name, s.hf_config, split_names(s)[split], path)
    return manifests
