"""Testing on voices never heard in training: every clip of the held-out speakers, from any split, becomes the
test split, and none of theirs is trained or validated on. A corpus whose test clips come from its training
speakers otherwise says nothing about a new speaker."""
from __future__ import annotations

import hashlib
from typing import NamedTuple, Optional

import torch

from tasks.common.errors import InputError
from tasks.speech.corpus import Utterance


class Selection(NamedTuple):
    """One split's usable clips: features[start:end] of each span, with its utterance and labels."""
    utterances: list[Utterance]
    spans: list[tuple[int, int]]
    labels: list[list[int]]
    features: torch.Tensor


def held_out_speakers(selections: dict[str, Selection], names: Optional[list[str]], share: float) -> set[str]:
    """The speakers named, or about `share` of all speakers chosen by a stable hash of their names."""
    speakers = sorted({u.speaker for s in selections.values() for u in s.utterances if u.speaker})
    if not speakers:
        raise InputError("test_speakers / test_speaker_share: the corpus has no speaker ids (manifest field "
                         "`speaker`, or LibriSpeech's folders)")
    if names:
        unknown = sorted(set(names) - set(speakers))
        if unknown:
            raise InputError(f"test_speakers: {', '.join(unknown)} not in the corpus (its speakers: "
                             f"{', '.join(speakers[:10])}{', ...' if len(speakers) > 10 else ''})")
        held = set(names)
    else:
        count = max(1, round(share * len(speakers)))
        held = set(sorted(speakers, key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:count])
    if held >= set(speakers):
        raise InputError(f"test_speakers: holding out {len(held)} of {len(speakers)} speakers leaves none to train on")
    return held


def _take(selection: Selection, keep) -> Selection:
    chosen = [k for k, u in enumerate(selection.utterances) if keep(u)]
    return Selection([selection.utterances[k] for k in chosen], [selection.spans[k] for k in chosen],
                     [selection.labels[k] for k in chosen], selection.features)


def hold_out(selections: dict[str, Selection], held: set[str]) -> dict[str, Selection]:
    """train and val without the held-out speakers; test = all of their clips, from every split."""
    theirs = [_take(s, lambda u: u.speaker in held) for s in selections.values()]
    utterances, spans, labels, pieces, start = [], [], [], [], 0
    for selection in theirs:  # one feature tensor for the new test split, copied from each split's cache
        for utterance, (begin, end), ids in zip(*selection[:3]):
            pieces.append(selection.features[begin:end])
            utterances.append(utterance)
            spans.append((start, start + end - begin))
            labels.append(ids)
            start += end - begin
    features = torch.cat(pieces) if pieces else torch.empty(0, selections["train"].features.shape[1])
    rest = {split: _take(selections[split], lambda u: u.speaker not in held) for split in ("train", "val")}
    return {**rest, "test": Selection(utterances, spans, labels, features)}
