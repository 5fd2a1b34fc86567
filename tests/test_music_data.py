"""Music data: encoding, chorale parsing, MIDI folders with corrupt files, datasets, piano rolls."""
import json
import math
import os
import pickle
import random
import time
import zlib
from pathlib import Path

import mido
import numpy as np
import pytest
import torch
from music21 import chord, converter, corpus, note, stream, tie
from scipy.io import savemat

from music_fixtures import write_melody_folder
from tasks.common.errors import InputError
from tasks.music.data import MelodyDataModule, MelodyDataset, chorale_paths, split_of
from tasks.music.encoding import NO_EVENT, NOTE_OFF, MelodyVocab, melody_events, melody_part, parse_primer, read_melody, write_midi
from tasks.music.metrics import (compare, in_key_share, interval_distance, interval_histogram, longest_repeat,
                                 pitch_class_entropy, pitch_range, profile)
from tasks.music.pianoroll_data import PianoRollDataModule, load_rolls, roll_to_events, write_roll_midi


def test_chorale_corpus_is_the_scores_not_the_analyses():
    paths = chorale_paths()
    assert len(paths) == 413  # 433 Bach files minus 20 roman-numeral analyses
    assert not [p for p in paths if p.endswith(".rntxt")]


def test_chorale_parsing_takes_the_soprano_on_a_16th_grid():
    score = corpus.parse("bach/bwv1.6")
    assert score.parts[0].partName == "Horn 2"  # the first part is not the melody here
    assert melody_part(score).partName == "Soprano"
    events = melody_events(melody_part(score))
    assert len(events) == score.highestTime * 4
    assert events[:9] == [65, NO_EVENT, NO_EVENT, NO_EVENT, 72, NO_EVENT, NO_EVENT, NO_EVENT, 69]
    onsets = [e for e in events if e >= 0]
    assert len(onsets) == len([n for n in melody_part(score).flatten().notes if not (n.tie and n.tie.type != "start")])


def test_ties_rests_chords_and_leading_silence():
    part = stream.Part()
    part.insert(0, note.Rest(quarterLength=1))
    first, second = note.Note(60, quarterLength=1), note.Note(60, quarterLength=0.5)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    part.insert(1, first)
    part.insert(2, second)
    part.insert(2.5, note.Rest(quarterLength=0.5))
    part.insert(3, chord.Chord([64, 67], quarterLength=0.25))
    events = melody_events(part)
    H = NO_EVENT
    assert events == [NOTE_OFF, H, H, H, 60, H, H, H, H, H, NOTE_OFF, H, 67]


def test_midi_written_is_read_back_by_mido_and_music21(tmp_path):
    events = [NOTE_OFF, NO_EVENT, 60, NO_EVENT, 62, NOTE_OFF, 64, NO_EVENT, NO_EVENT, NO_EVENT, 64, NO_EVENT]
    path = write_midi(events, tmp_path / "m.mid", tempo_bpm=120)
    on = [m for m in mido.MidiFile(path).tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert [m.note for m in on] == [60, 62, 64, 64]
    assert read_melody(path) == events
    notes = converter.parse(str(path)).flatten().notes
    assert max(n.offset + n.quarterLength for n in notes) == 3.0  # the last note ends where the events do


def test_vocab_round_trip_and_range():
    vocab = MelodyVocab(48, 84)
    events = [60, NO_EVENT, NOTE_OFF, 84, 48]
    assert vocab.decode(vocab.encode(events)) == events
    assert vocab.decode([vocab.BOS] + vocab.encode(events, shift=2) + [vocab.EOS]) == [62, NO_EVENT, NOTE_OFF, 86, 50]
    assert vocab.fits(events) and not vocab.fits(events, shift=1)
    with pytest.raises(ValueError):
        MelodyVocab(60, 40)


def test_primer_text():
    assert parse_primer("[60, -2, 62, -1]") == [60, -2, 62, -1]
    assert parse_primer("60 -2") == [60, -2]
    for bad in ("[60, x]", "[]", "[200]", "[-3]"):
        with pytest.raises(ValueError, match="primer"):
            parse_primer(bad)


def test_split_is_stable_and_by_piece():
    names = [f"/any/where/piece_{i}.mid" for i in range(1000)]
    splits = [split_of(n, 10, 10) for n in names]
    assert splits == [split_of(n.replace("/any/where", "/else"), 10, 10) for n in names]
    assert 60 < splits.count("test") < 140 and 60 < splits.count("val") < 140


def test_transposition_only_in_training():
    random.seed(0)
    vocab = MelodyVocab(48, 84)
    melody = [60, NO_EVENT, NO_EVENT, NO_EVENT] * 15  # one pitch: a window's shift is its pitch - 60
    train = MelodyDataset([melody], vocab, max_len=16, train=True, transpose=5)
    shifts = set()
    for _ in range(200):
        pitches = {e for e in vocab.decode(train[0].tolist()) if e >= 0}
        assert len(pitches) == 1  # the whole window is shifted together
        shifts.add(pitches.pop() - 60)
    assert shifts == set(range(-5, 6))
    evaluation = MelodyDataset([melody], vocab, max_len=16, train=False)
    assert len(evaluation) == 4  # 60 events in windows of 16
    assert vocab.decode(torch.cat([evaluation[i] for i in range(4)]).tolist()) == melody  # every event once, unshifted
    assert evaluation[0][0] == vocab.BOS and evaluation[3][-1] == vocab.EOS and evaluation[1][0] != vocab.BOS


def test_transposition_keeps_pitches_in_range():
    random.seed(1)
    vocab = MelodyVocab(48, 84)
    high = [82, NO_EVENT] * 4
    train = MelodyDataset([high], vocab, max_len=16, train=True, transpose=5)
    assert {max(vocab.decode(train[0].tolist())) for _ in range(100)} == set(range(77, 85))


def test_midi_folder_with_corrupt_files_is_skipped_with_a_count(tmp_path, recwarn):
    folder = tmp_path / "midi"
    write_melody_folder(folder, 30)
    (folder / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage" + bytes(range(40)))
    (folder / "empty.midi").write_bytes(b"")
    data = MelodyDataModule(midi_dir=str(folder), cache_dir=str(tmp_path / "cache"), parse_workers=2)
    data.prepare_data()
    data.setup()
    messages = [str(w.message) for w in recwarn]
    assert any("skipped 2 of 32 MIDI files" in m for m in messages), messages
    assert sum(len(v) for v in data.splits.values()) == 30
    tokens, lengths = next(iter(data.train_dataloader()))
    assert tokens.shape[0] == min(32, len(data.splits["train"])) and lengths.max() == tokens.shape[1]
    cache_files = list((tmp_path / "cache").glob("melodies-*.json"))
    assert len(cache_files) == 1
    data.prepare_data()  # second time: served from the cache, no new file
    assert list((tmp_path / "cache").glob("melodies-*.json")) == cache_files


def test_midi_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        MelodyDataModule(midi_dir=str(tmp_path / "nope")).prepare_data()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .mid"):
        MelodyDataModule(midi_dir=str(tmp_path / "empty")).prepare_data()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mid").write_bytes(b"not midi")
    with pytest.raises(InputError, match="no readable melody"):
        MelodyDataModule(midi_dir=str(tmp_path / "bad"), cache_dir=str(tmp_path / "c"), parse_workers=1).prepare_data()


def test_melody_metrics():
    scale = [60, NO_EVENT, 62, NO_EVENT, 64, 65, 67, 69, 71, 72]
    assert pitch_range(scale) == 12
    assert in_key_share(scale) == 1.0
    chromatic = list(range(60, 72))
    assert in_key_share(chromatic) < 0.7
    assert longest_repeat([60, 60, NO_EVENT, 60, 62, 62]) == 3
    assert longest_repeat([60, NO_EVENT, NO_EVENT]) == 1 and pitch_range([]) == 0


def test_pitch_class_entropy_and_intervals_on_known_melodies():
    assert pitch_class_entropy([60, 72, 48, 60]) == 0.0  # one pitch class in three octaves
    assert pitch_class_entropy(list(range(60, 72))) == pytest.approx(math.log2(12))
    assert pitch_class_entropy([60, 62, 64, 65, 67, 69, 71]) == pytest.approx(math.log2(7))
    steps = interval_histogram([60, NO_EVENT, 62, 64, 60, 84, 60])  # +2, +2, -4, +24 -> +12, -24 -> -12
    assert {i - 12: int(n) for i, n in enumerate(steps) if n} == {-12: 1, -4: 1, 2: 2, 12: 1}
    up, down = interval_histogram([60, 62, 64, 66]), interval_histogram([66, 64, 62, 60])
    assert interval_distance(up, up) == 0.0 and interval_distance(up, down) == 1.0
    assert interval_distance(up, up + down) == pytest.approx(0.5)


def test_samples_and_held_out_pieces_are_profiled_the_same_way():
    scale = [60, NO_EVENT, 62, 64, 65, 67, 69, 71, 72]
    chromatic = list(range(60, 72))
    reference, sampled = profile([scale, scale]), profile([chromatic])
    both = compare(sampled, reference)
    assert both["reference_in_key"] == 1.0 and both["in_key"] < 0.7
    assert both["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert both["reference_pitch_class_entropy"] == pytest.approx(pitch_class_entropy(scale))
    assert 0 < both["interval_distance"] < 1  # scale steps of 1 and 2 semitones against only 1
    assert compare(reference, reference)["interval_distance"] == 0.0


def scale_melody(tonic: int, minor: bool = False) -> list[int]:
    steps = (0, 2, 3, 5, 7, 8, 10, 12) if minor else (0, 2, 4, 5, 7, 9, 11, 12)
    up = [e for step in steps for e in (tonic + step, NO_EVENT)]
    return up + [tonic + 7, NO_EVENT, NO_EVENT, NO_EVENT, tonic + 4 - minor, NO_EVENT, tonic, NO_EVENT, NO_EVENT, NO_EVENT]


@pytest.mark.parametrize("tonic,minor,shift", [(67, False, 5), (62, False, -2), (66, False, 6 - 12), (57, True, 0),
                                              (64, True, 5), (60, True, -3)])
def test_every_key_is_found_and_moved_the_short_way_to_c_major_or_a_minor(tonic, minor, shift):
    from tasks.music.keys import key_of, shift_to_common_key, transposed

    melody = scale_melody(tonic, minor)
    assert key_of(melody) == (tonic % 12, minor)
    assert shift_to_common_key(melody) == shift and -6 <= shift <= 5
    assert key_of(transposed(melody, shift)) == ((9, True) if minor else (0, False))
    assert in_key_share(transposed(melody, shift)) == 1.0


def test_common_key_moves_every_split_and_keeps_pieces_in_range(tmp_path):
    from tasks.music.keys import key_of

    write_melody_folder(tmp_path / "midi", 30)
    data = MelodyDataModule(midi_dir=str(tmp_path / "midi"), cache_dir=str(tmp_path / "cache"), common_key=True, parse_workers=1,
                            val_percent=20, test_percent=20)
    data.prepare_data()
    data.setup()
    for split, melodies in data.splits.items():
        assert melodies, split
        assert all(key_of(m) in ((0, False), (9, True)) for m in melodies), split
        assert all(data.vocab.fits(m) for m in melodies)


def random_rolls(rng, pieces, frames=20):
    return [(rng.random((frames + i, 88)) < 0.05).astype(np.uint8) for i in range(pieces)]


def test_piano_roll_mat_and_json_give_the_same_rolls(tmp_path):
    rng = np.random.default_rng(0)
    rolls = {"train": random_rolls(rng, 3), "val": random_rolls(rng, 2), "test": random_rolls(rng, 2)}
    mat = {k: np.array(v + [None], dtype=object)[:-1][None] for k, v in
           {"traindata": rolls["train"], "validdata": rolls["val"], "testdata": rolls["test"]}.items()}
    savemat(tmp_path / "jsb.mat", mat)
    as_pitches = lambda rs: [[[int(k) + 21 for k in np.flatnonzero(frame)] for frame in r] for r in rs]
    (tmp_path / "jsb.json").write_text(json.dumps({"train": as_pitches(rolls["train"]), "valid": as_pitches(rolls["val"]),
                                                   "test": as_pitches(rolls["test"])}))
    from_mat, from_json = load_rolls(tmp_path / "jsb.mat"), load_rolls(tmp_path / "jsb.json")
    for split in rolls:
        for a, b, c in zip(rolls[split], from_mat[split], from_json[split]):
            assert np.array_equal(a, b) and np.array_equal(a, c)


def test_piano_roll_bad_files(tmp_path):
    for name, content, message in [
        ("x.json", "{not json", "not valid JSON"),
        ("y.json", json.dumps({"train": []}), "missing valid, test"),
        ("z.json", json.dumps({"train": [[[5]]], "valid": [], "test": []}), "off the piano"),
        ("w.txt", "", "unsupported file type"),
    ]:
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError, match=message):
            load_rolls(tmp_path / name)
    with pytest.raises(InputError, match="no such file"):
        load_rolls(tmp_path / "missing.mat")
    with pytest.raises(InputError, match="needs the JSB Chorales"):
        PianoRollDataModule().setup()


def test_piano_roll_midi_merges_held_keys(tmp_path):
    roll = np.zeros((4, 88), dtype=np.uint8)
    roll[0:3, 60 - 21] = 1
    roll[1, 64 - 21] = 1
    roll[3, 67 - 21] = 1
    assert roll_to_events(roll) == [(0, 3, 60), (1, 2, 64), (3, 4, 67)]
    path = write_roll_midi(roll, tmp_path / "r.mid")
    assert sorted(p.midi for n in converter.parse(str(path)).flatten().notes for p in n.pitches) == [60, 64, 67]


class _RunsCode:
    """What an attacker would plant: unpickling it calls os.mkdir (any function would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_planted_music21_pickle_is_never_loaded(tmp_path):
    """music21 first unpickles <its temp folder>/m21-*.p.gz when it is newer than the source: anyone who can
    write that shared folder would run code in `train music --data.midi_dir` and `sample --primer tune.mid`."""
    write_melody_folder(tmp_path / "midi", 1)
    tune = tmp_path / "midi" / "tune_000.mid"
    planted = Path(converter.PickleFilter(tune, False, None).status()[2])  # where music21 would look
    marker = tmp_path / "code-ran"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(zlib.compress(pickle.dumps(_RunsCode(marker))))
    try:
        future = time.time() + 3600
        os.utime(planted, (future, future))  # newer than the MIDI file: music21 would trust it
        assert read_melody(tune)  # the melody, from the MIDI file itself
        assert not marker.exists()
    finally:
        planted.unlink(missing_ok=True)
