"""Speech data: utterances -> log-mel features and CTC label ids, in batches of similar length (dataset.py).

prepare_data writes the chosen corpus out as manifests (sources.py), caches their features once (features.py)
and builds the subword vocabulary or the beam search's lexicon and LM (lm.py). setup only reads that cache and
skips unusable utterances with a count, so a bad file shows before training rather than crashing an epoch.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from tasks.common.atomic import builds_cache_once, save_atomic, write_atomic
from tasks.common.batching import bucketed_loader
from tasks.common.caching import stamp_digest
from tasks.common.errors import InputError, plural
from tasks.common.splits import SplitDataModule
from tasks.speech import sources
from tasks.speech.audio import HOP, SAMPLE_RATE, SpecAugment
from tasks.speech.corpus import Utterance, read_manifest
from tasks.speech.augment import SPEEDS, WaveAugment, noise_recordings
from tasks.speech.dataset import AudioDataset, SpeechDataset, collate_utterances, ctc_frames_needed
from tasks.speech.features import extract_features, features_folder
from tasks.speech.lm import write_beam_files, written_whole
from tasks.speech.network import SUBSAMPLINGS, subsampled_length
from tasks.speech.speakers import Selection, hold_out, held_out_speakers
from tasks.speech.vocab import (DEFAULT_ALPHABET, CharVocab, Vocab, check_alphabet, load_vocab, train_subwords,
                                unknown_characters)

FRAMES_PER_SECOND = SAMPLE_RATE // HOP


class SpeechDataModule(SplitDataModule):
    """Utterances -> Batches of log-mel features and CTC labels: synthesized speech offline by default, or real speech.

    Args:
        corpus: "synth" (spoken numbers and commands made with espeak-ng on first use, offline; test voices are
            never heard in training), "manifest" (NeMo-style JSON-lines manifests, one per split), "librispeech"
            (the LibriSpeech folder layout) or "hf" (a Hugging Face audio dataset, downloaded in prepare_data).
        train_manifest: for corpus "manifest": JSON lines {"audio_filepath": ..., "text": ..., "duration": ...};
            relative audio paths are relative to the manifest's folder; WAV/FLAC at any rate, any channels.
        val_manifest: likewise, for validation.
        test_manifest: likewise, for the test split (optional).
        librispeech_root: the folder holding LibriSpeech/<split>/<speaker>/<chapter>/.
        librispeech_train: LibriSpeech subset for training, e.g. train-clean-100 or train-clean-360.
        librispeech_val: subset for validation.
        librispeech_test: subset for testing (optional).
        hf_name: the dataset for corpus "hf", e.g. "openslr/librispeech_asr".
        hf_config: its configuration, e.g. "clean".
        hf_train: its training split, e.g. "train.100".
        hf_val: its validation split.
        hf_test: its test split (optional).
        synth_train: training utterances of the synthesized corpus.
        synth_val: validation utterances (training voices, unseen sentences).
        synth_test: test utterances (unseen voices, unseen sentences).
        alphabet: the characters transcripts may use; utterances with others are skipped with a count that
            names them. Char labels are 1..len(alphabet) in this order, 0 is the CTC blank.
        lowercase: lower-case transcripts first (LibriSpeech is upper case); turn off for alphabets with case.
        vocab: "char" labels, or "bpe" / "unigram" subwords learned from the training transcripts.
        subword_vocab_size: the most subwords (blank included), for vocab bpe or unigram; the model's output size.
        n_mels: mel bands per feature frame (10 ms frames, 25 ms windows, 16 kHz audio).
        spec_augment: mask random bands and stretches of time in training batches (never in val or test).
        freq_warp: with spec_augment, also warp the frequency axis of training batches by a random factor in
            1 +- freq_warp (VTLP: formants move as between speakers); 0 = off.
        speed_perturb: play training clips at 0.9, 1.0 or 1.1 times their speed (drawn per clip and epoch).
        noise_snr: [low, high] dB: add background noise to half the training clips at an SNR drawn from this
            range (e.g. [5, 30]); None = off.
        noise_dir: a folder of noise recordings (WAV/FLAC/OGG) for noise_snr; None = coloured Gaussian noise.
        reverb: the share of training clips played in a synthetic room (RT60 0.2-0.8 s); 0 = off.
            These three read training audio from its files every epoch (augment.py) instead of the feature
            cache: slower per epoch (use num_workers), worth it for real voices from a small corpus.
        test_speakers: speaker ids (manifest field `speaker`, LibriSpeech's speaker folders) to test on and never
            train or validate on: the test split becomes every clip of theirs, from any manifest.
        test_speaker_share: instead of naming them, hold out about this share of the speakers (stable choice).
        lm_order: the word n-gram language model built from the training transcripts for beam search (with a
            lexicon of their words); 0 = lexicon only. Char vocabularies only.
        subsampling: the model's subsampling in time, "stack" or "conv" (the CLI copies --model.subsampling here);
            clips left with fewer frames after it than CTC needs for their transcript are skipped with a count.
        batch_size: utterances per batch, unless batch_seconds is set.
        batch_seconds: if set, batches hold up to this many seconds of audio (utterances x longest).
        num_workers: DataLoader worker processes.
        prepare_workers: processes that synthesize audio and compute features in prepare_data (0 = one per core).
        cache_dir: where the synthesized corpus, features and subword model are kept, built once per setting.
        seed: draws the synthesized corpus and the batch order.
    """

    def __init__(
        self,
        *,
        corpus: Literal["synth", "manifest", "librispeech", "hf"] = "synth",
        train_manifest: Optional[str] = None,
        val_manifest: Optional[str] = None,
        test_manifest: Optional[str] = None,
        librispeech_root: Optional[str] = None,
        librispeech_train: str = "train-clean-100",
        librispeech_val: str = "dev-clean",
        librispeech_test: Optional[str] = "test-clean",
        hf_name: Optional[str] = None,
        hf_config: Optional[str] = None,
        hf_train: str = "train",
        hf_val: str = "validation",
        hf_test: Optional[str] = "test",
        synth_train: int = 4000,
        synth_val: int = 300,
        synth_test: int = 300,
        alphabet: str = DEFAULT_ALPHABET,
        lowercase: bool = True,
        vocab: Literal["char", "bpe", "unigram"] = "char",
        subword_vocab_size: int = 256,
        n_mels: int = 80,
        spec_augment: bool = True,
        freq_warp: float = 0.0,
        speed_perturb: bool = False,
        noise_snr: Optional[list[float]] = None,
        noise_dir: Optional[str] = None,
        reverb: float = 0.0,
        test_speakers: Optional[list[str]] = None,
        test_speaker_share: float = 0.0,
        lm_order: int = 3,
        subsampling: Literal["stack", "conv"] = "stack",
        batch_size: int = 32,
        batch_seconds: Optional[float] = None,
        num_workers: int = 0,
        prepare_workers: int = 0,
        cache_dir: str = "~/.cache/lstm-suite/speech",
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if corpus not in sources.CORPORA:
            raise InputError(f"corpus {corpus!r}: choose {', '.join(sources.CORPORA)}")
        if corpus == "manifest" and not (train_manifest and val_manifest):
            raise InputError("corpus 'manifest' needs train_manifest and val_manifest (test_manifest is optional)")
        if corpus == "librispeech" and not librispeech_root:
            raise InputError("corpus 'librispeech' needs librispeech_root, the folder holding LibriSpeech/")
        if corpus == "hf" and not hf_name:
            raise InputError("corpus 'hf' needs hf_name, e.g. openslr/librispeech_asr")
        if vocab not in ("char", "bpe", "unigram"):
            raise InputError(f"vocab {vocab!r}: choose char, bpe or unigram")
        check_alphabet(alphabet)
        if vocab != "char" and subword_vocab_size < 1 + len(alphabet):
            raise InputError(f"subword_vocab_size {subword_vocab_size} is too small for {vocab}: the blank and the {len(alphabet)} "
                             f"characters of the alphabet alone take {1 + len(alphabet)}")
        if lm_order < 0:
            raise InputError(f"lm_order {lm_order} must be 0 (no language model) or more")
        if n_mels < 1:
            raise InputError(f"n_mels {n_mels} must be at least 1")
        if noise_snr is not None and (len(noise_snr) != 2 or noise_snr[0] > noise_snr[1]):
            raise InputError(f"noise_snr {noise_snr}: give [low, high] in dB, low <= high, e.g. [5, 30]")
        if not 0 <= reverb <= 1:
            raise InputError(f"reverb {reverb}: the share of training clips, from 0 to 1")
        if noise_dir is not None and not noise_recordings(noise_dir):
            raise InputError(f"noise_dir {noise_dir}: no .wav, .flac or .ogg files in it")
        if not 0 <= test_speaker_share < 1:
            raise InputError(f"test_speaker_share {test_speaker_share}: a share of the speakers, from 0 to below 1")
        if subsampling not in SUBSAMPLINGS:
            raise InputError(f"subsampling {subsampling!r}: choose {', '.join(SUBSAMPLINGS)}")
        self.vocab: Optional[Vocab] = None  # after setup(): encode(text), decode(ids), to_json()
        self.utterances: dict[str, list[Utterance]] = {}  # per split, in the order of Batch.index
        self.datasets: dict[str, SpeechDataset | AudioDataset] = {}

    @property
    def n_mels(self) -> int:
        """Features per frame: the model's input size."""
        return self.hparams.n_mels

    @property
    def vocab_size(self) -> int:
        """Labels including the blank, known before any data is read (LightningCLI links it to the model).

        Subword vocabularies may come out smaller on a small corpus, never larger.
        """
        h = self.hparams
        return 1 + len(h.alphabet) if h.vocab == "char" else h.subword_vocab_size

    @property
    def has_test(self) -> bool:
        return bool(self.utterances.get("test"))

    # ---- where things are ----

    def describe(self, split: str) -> str:
        return sources.describe(self.hparams, split)

    def manifests(self) -> dict[str, Path]:
        """Split -> manifest path; for corpora other than "manifest" they exist once prepare_data has run."""
        return sources.manifest_paths(self.hparams)

    def _features_folder(self, manifests: dict[str, Path]) -> Path:
        for path in manifests.values():
            if not path.is_file():
                raise InputError(f"{path}: no such manifest" + ("" if self.hparams.corpus == "manifest" else
                                                                 ": call prepare_data() before setup()"))
        return features_folder(self.hparams.cache_dir, self.hparams.n_mels, manifests)

    def _vocab_file(self, folder: Path) -> Path:
        h = self.hparams
        return folder / f"{h.vocab}-{h.subword_vocab_size}-{stamp_digest([h.alphabet, h.lowercase])}.json"

    def _beam_files(self, folder: Path) -> dict[str, Path]:
        """The lexicon and word LM of the training transcripts, for beam search (char vocabularies only)."""
        h = self.hparams
        if h.vocab != "char":
            return {}
        stamp = stamp_digest([h.alphabet, h.lowercase, h.lm_order])
        files = {"lexicon": folder / f"lexicon-{stamp}.txt"}
        if h.lm_order:
            files["lm"] = folder / f"lm-{h.lm_order}gram-{stamp}.arpa"
        return files

    def beam_search_files(self) -> dict[str, str]:
        """{"lexicon": text, "lm": ARPA text} built in prepare_data, for the model to keep in its checkpoints."""
        folder = self._features_folder(self.manifests())
        return {name: path.read_text(encoding="utf-8") for name, path in self._beam_files(folder).items()}

    # ---- building the cache ----

    @builds_cache_once
    def prepare_data(self) -> None:
        h = self.hparams
        manifests = sources.write_manifests(h)
        folder = self._features_folder(manifests)
        folder.mkdir(parents=True, exist_ok=True)
        for split, manifest in manifests.items():
            out = folder / f"{split}.pt"
            if not out.exists():
                cached = extract_features(read_manifest(manifest), h.n_mels, h.prepare_workers, self.describe(split))
                # kept if another process wrote it first: a process training on it has it memory-mapped, which a
                # file replaced from another machine (NFS) would break
                save_atomic(out, lambda file: torch.save(cached, file), replace=False)
        vocab_file, beam_files = self._vocab_file(folder), self._beam_files(folder)
        if (h.vocab != "char" and not vocab_file.exists()) or not all(map(written_whole, beam_files.values())):
            texts = [self.clean(t) for t in torch.load(folder / "train.pt", weights_only=True, mmap=True)["text"]]
            usable = [t for t in texts if not unknown_characters(t, h.alphabet)]
            if h.vocab != "char":
                vocab = train_subwords(usable, h.vocab, h.subword_vocab_size, h.alphabet)
                write_atomic(vocab_file, vocab.to_json())
            if beam_files and usable:
                write_beam_files(usable, beam_files, h.lm_order)

    # ---- loading it ----

    def clean(self, text: str) -> str:
        """The transcript as labels see it: single spaces, lower case unless lowercase is off."""
        text = " ".join(text.split())
        return text.lower() if self.hparams.lowercase else text

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        h = self.hparams
        folder = self._features_folder(self.manifests())
        vocab_file = self._vocab_file(folder)
        if not all((folder / f"{split}.pt").exists() for split in sources.split_names(h)) or (
                h.vocab != "char" and not vocab_file.exists()):
            raise InputError(f"no prepared data in {folder}: call prepare_data() before setup()")
        self.vocab = CharVocab(h.alphabet) if h.vocab == "char" else load_vocab(vocab_file.read_text(encoding="utf-8"))
        selections = {}
        for split in sources.split_names(h):
            cached = torch.load(folder / f"{split}.pt", weights_only=True, mmap=True)  # big corpora stay on disk
            selections[split] = self._select(split, cached)
        if h.test_speakers or h.test_speaker_share:
            held = held_out_speakers(selections, h.test_speakers, h.test_speaker_share)
            selections = hold_out(selections, held)
            rank_zero_info(f"testing on {len(held)} speakers never heard in training: {', '.join(sorted(held)[:10])}")
        for split in ("train", "val"):
            if not selections[split].utterances:
                raise InputError(f"{self.describe(split)}: no usable utterances (see the warning above)")
        self.utterances = {split: s.utterances for split, s in selections.items()}
        self.datasets = {split: self._dataset(split, s) for split, s in selections.items()}
        hours = sum(u.duration for u in self.utterances["train"]) / 3600
        counts = ", ".join(f"{split} {len(u)}" for split, u in self.utterances.items())
        rank_zero_info(f"{self.describe('train')}: {counts} utterances ({hours:.1f} h of training audio), "
                       f"{self.vocab.size} labels ({h.vocab})")

    def _select(self, split: str, cached: dict) -> Selection:
        """The utterances fit for CTC; one warning counts the others by reason."""
        h = self.hparams
        utterances, spans, labels = [], [], []
        unknown, outside, too_short = Counter(), 0, 0
        starts, frame_counts, seconds = cached["starts"].tolist(), cached["frames"].tolist(), cached["seconds"].tolist()
        for k, text in enumerate(cached["text"]):
            text = self.clean(text)
            strange = unknown_characters(text, h.alphabet)
            if strange:
                unknown.update(strange)
                outside += 1
                continue
            ids = self.vocab.encode(text)
            frames = frame_counts[k] / max(SPEEDS) if split == "train" and h.speed_perturb else frame_counts[k]
            if subsampled_length(int(frames), h.subsampling) < ctc_frames_needed(ids):
                too_short += 1
                continue
            utterances.append(Utterance(cached["audio"][k], text, seconds[k], cached["speaker"][k]))
            spans.append((starts[k], starts[k] + frame_counts[k]))
            labels.append(ids)
        reasons = []
        if cached["unreadable"]:
            path, reason = cached["unreadable"][0]
            reasons.append(f"{len(cached['unreadable'])} unreadable audio (first: {path}: {reason})")
        if cached["empty"]:
            reasons.append(plural(cached["empty"], "empty transcript"))
        if outside:
            listed = ", ".join(repr(c) for c, _ in unknown.most_common(10))
            reasons.append(f"{outside} with characters outside the alphabet ({listed}; set --data.alphabet)")
        if too_short:
            reasons.append(f"{too_short} shorter than their transcript (fewer frames after {h.subsampling} "
                           "subsampling than CTC needs for their labels)")
        if reasons:
            rank_zero_warn(f"skipped {cached['total'] - len(utterances)} of {cached['total']} utterances in "
                           f"{self.describe(split)}: {', '.join(reasons)}")
        return Selection(utterances, spans, labels, cached["features"])

    def _dataset(self, split: str, selection: Selection) -> SpeechDataset | AudioDataset:
        """Training clips are augmented (SpecAugment; waveform augmentation reads them from their files)."""
        h = self.hparams
        augment = SpecAugment(h.freq_warp) if h.spec_augment and split == "train" else None
        wave_augment = WaveAugment(h.speed_perturb, h.noise_snr, noise_recordings(h.noise_dir), h.reverb)
        if split == "train" and wave_augment.active:
            frames = [end - start for start, end in selection.spans]
            return AudioDataset([u.audio for u in selection.utterances], frames, selection.labels, h.n_mels,
                                wave_augment, augment)
        return SpeechDataset(selection.features, selection.spans, selection.labels, augment)

    def split_loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            raise InputError(f"{self.describe('train')} has no {split} split")
        h = self.hparams
        budget = None if h.batch_seconds is None else int(h.batch_seconds * FRAMES_PER_SECOND)
        return bucketed_loader(self.datasets[split], collate_utterances, self.trainer, batch_size=h.batch_size,
                               batch_tokens=budget, shuffle=split == "train", seed=h.seed, num_workers=h.num_workers)

