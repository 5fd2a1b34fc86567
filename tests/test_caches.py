"""On-disk caches built by several processes (or machines sharing a home) at once: never a half or mixed file,
never another writer's result deleted, the same result as one process builds, and no truncated leftover reused."""
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import threading
import time
import warnings

import numpy as np
import pytest
import soundfile

from music_fixtures import write_melody_folder
from tasks.common.atomic import build_folder_atomic, building_once, save_atomic, write_atomic


def litter(folder) -> list[str]:
    """Temporary files and folders of writers (hidden, or named *.tmp or *.partial) left anywhere under `folder`;
    the build lock is meant to stay."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if (p.name.startswith(".") and p.name != ".build.lock") or p.suffix in (".tmp", ".partial"))


# ---- the helpers ----

def test_interleaved_writers_never_mix_their_files(tmp_path):
    path = tmp_path / "entry.json"

    def slow_writer(file):  # another writer writes the whole file while this one is halfway
        file.write(b"A" * 1000)
        write_atomic(path, "B" * 3000)
        file.write(b"A" * 1000)

    save_atomic(path, slow_writer)
    assert path.read_bytes() == b"A" * 2000  # the last rename wins, whole: no B bytes, nothing truncated
    assert litter(tmp_path) == []
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())  # like any file, not mkstemp's 0600


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_concurrent_writers_and_a_reader_only_ever_see_whole_files(tmp_path):
    path = tmp_path / "entry.bin"
    contents = [bytes([k]) * (200_000 + 1000 * k) for k in range(4)]
    write_atomic(path, contents[0])
    seen, done = set(), threading.Event()

    def write(content):
        for _ in range(25):
            write_atomic(path, content)

    def read():
        while not done.is_set():
            seen.add(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(c,)) for c in contents]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert seen <= set(contents) and path.read_bytes() in contents
    assert litter(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_litter(tmp_path):
    path = tmp_path / "entry.npy"
    save_atomic(path, lambda file: np.save(file, np.arange(3)))

    def fail(file):
        file.write(b"half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        save_atomic(path, fail)
    assert np.load(path).tolist() == [0, 1, 2]
    assert litter(tmp_path) == []


def test_a_file_kept_once_written_is_not_replaced(tmp_path):
    path = tmp_path / "train.jsonl"
    write_atomic(path, "first\n", replace=False)
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    write_atomic(path, "second\n", replace=False)
    assert path.read_text() == "first\n" and path.stat().st_mtime_ns == stamp  # caches named by its time stay valid
    assert litter(tmp_path) == []


def test_a_build_that_raises_leaves_no_folder_and_no_litter(tmp_path):
    def build(folder):
        (folder / "half").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        build_folder_atomic(tmp_path / "corpus", build)
    assert list(tmp_path.iterdir()) == []


def test_a_second_finished_build_keeps_the_first_folder(tmp_path):
    final = tmp_path / "corpus"

    def build_second(folder):  # the first writer finishes while this one is still building
        (folder / "who").write_text("second")
        build_folder_atomic(final, lambda first: (first / "who").write_text("first"))
        opened.append((final / "who").open())  # a reader of the first result

    opened = []
    assert build_folder_atomic(final, build_second) == final
    assert (final / "who").read_text() == "first" and opened[0].read() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # the second writer's folder is gone, and only it
    build_folder_atomic(final, lambda folder: (folder / "who").write_text("third"))
    assert (final / "who").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def _hold_the_build_lock(folder, holding) -> None:
    with building_once(folder):
        holding.set()
        time.sleep(120)


def test_a_waiting_builder_says_so_and_a_killed_builder_frees_the_lock(tmp_path, capfd):
    context = multiprocessing.get_context("fork")
    holding = context.Event()
    holder = context.Process(target=_hold_the_build_lock, args=(tmp_path / "cache", holding))
    holder.start()
    assert holding.wait(timeout=30)
    threading.Timer(1.0, holder.kill).start()  # a builder killed mid-build (SIGKILL: no cleanup of its own)
    started = time.monotonic()
    with building_once(tmp_path / "cache"):
        waited = time.monotonic() - started
    holder.join()
    assert 0.5 < waited < 30  # it waited for the holder, and not past the holder's death
    assert "waiting for another process that is building the cache in" in capfd.readouterr().err


# ---- two processes preparing the same cold cache ----

def _prepare(kind: str, settings: dict, barrier, writes=None) -> int:
    """Build the cache at the same moment as the other process, then load it; nothing may be skipped.
    Returns how many files or folders this process put in place (renames and links) -> `writes` if given.

    The first os.replace of each process waits half a second, the way a slow (network) file system would
    between writing a file and renaming it, so without the build lock the two writers' steps would interleave.
    """
    real = {name: getattr(os, name) for name in ("replace", "rename", "link")}
    count = []

    def counted(name):
        def write(src, dst, **kwargs):
            if name == "replace" and not any(n == "replace" for n in count):
                time.sleep(0.5)
            count.append(name)
            real[name](src, dst, **kwargs)
        return write

    for name in real:
        setattr(os, name, counted(name))
    try:
        data = _data_module(kind, settings)
        barrier.wait(timeout=120)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data.prepare_data()
            data.setup()
    finally:
        for name, function in real.items():
            setattr(os, name, function)
    skipped = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert not skipped, skipped  # the inputs are all good: a file that failed was read half-written
    if writes is not None:
        writes.put(len(count))
    return len(count)


def _data_module(kind: str, settings: dict):
    if kind == "music":
        from tasks.music.data import MelodyDataModule as Module
    elif kind == "translation":
        from tasks.translation.data import TranslationDataModule as Module
    elif kind == "speech":
        from tasks.speech.data import SpeechDataModule as Module
    else:
        from tasks.video.data import VideoDataModule as Module
    return Module(**settings)


def snapshot(folder, unstable: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Every file under `folder` (hidden ones too) -> sorted (relative path, content hash); files with a suffix
    in `unstable` by their size class only (npy header + shape), their bytes differing from one build to the next.

    Frame cache entries and the speech features folder are named by the modification time of a clip or a
    manifest, which differs from one build to the next: their names are compared without the key.
    """
    def content(path) -> str:
        if path.suffix in unstable:
            return str(np.load(path).shape) if path.suffix == ".npy" else "media"
        return hashlib.sha1(path.read_bytes()).hexdigest()

    def name(path) -> str:
        return re.sub(r"^features-[0-9a-f]{16}/", "features-<key>/", re.sub(r"[0-9a-f]{24}\.", "<clip>.", path))

    return sorted((name(str(p.relative_to(folder))), content(p))
                  for p in folder.rglob("*") if p.is_file())


def build_twice_at_once(kind: str, settings: dict, cache, unstable: tuple[str, ...] = ()) -> None:
    """This process and a spawned one build `cache` at once: both must succeed, one of them must build it while the
    other waits and writes nothing, and the result must be what one process builds alone."""
    context = multiprocessing.get_context("spawn")
    barrier, writes = context.Barrier(2), context.Queue()
    other = context.Process(target=_prepare, args=(kind, settings, barrier, writes))
    other.start()
    try:
        ours = _prepare(kind, settings, barrier)
        theirs = writes.get(timeout=120)
    finally:
        other.join(timeout=120)
    assert other.exitcode == 0  # the other writer failed: its traceback is above
    assert sorted([ours, theirs])[0] == 0 < sorted([ours, theirs])[1], (ours, theirs)  # built once, not twice
    together = snapshot(cache, unstable)
    assert together and litter(cache) == []
    shutil.move(cache, cache.with_name("together"))
    alone = _data_module(kind, settings)
    alone.prepare_data()
    alone.setup()
    assert together == snapshot(cache, unstable)


def test_two_processes_build_one_melody_cache(tmp_path):
    write_melody_folder(tmp_path / "midi", 30)
    build_twice_at_once("music", dict(midi_dir=str(tmp_path / "midi"), cache_dir=str(tmp_path / "cache"),
                                      parse_workers=1), tmp_path / "cache")


def test_two_processes_build_one_translation_cache(tmp_path):
    settings = dict(numbers_train=300, numbers_val=30, numbers_test=30, vocab_size=200, cache_dir=str(tmp_path / "cache"))
    build_twice_at_once("translation", settings, tmp_path / "cache")


TINY_VIDEO = dict(frames=4, cache_frames=4, height=32, width=32, crop=28, batch_size=4, prepare_workers=1,
                  synth_clips_per_class=3, synth_frames=4, synth_size=32, test_fraction=0.34, val_fraction=0.5)


def test_two_processes_build_one_video_corpus_and_frame_cache(tmp_path):
    settings = dict(TINY_VIDEO, cache_dir=str(tmp_path / "cache"))
    # x264 output is not bit-identical from run to run once torch is loaded: clips and frames compare by shape
    build_twice_at_once("video", settings, tmp_path / "cache", unstable=(".mp4", ".npy"))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the synthesized speech corpus needs espeak-ng")
def test_two_processes_build_one_speech_corpus_features_and_lm(tmp_path):
    settings = dict(synth_train=6, synth_val=2, synth_test=2, n_mels=40, prepare_workers=1,
                    cache_dir=str(tmp_path / "cache"))
    build_twice_at_once("speech", settings, tmp_path / "cache")


# ---- failures that are not the input's fault ----

def test_a_full_disk_marks_no_clip_unreadable(tmp_path, monkeypatch, recwarn):
    from tasks.video.data import VideoDataModule

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    data = VideoDataModule(**TINY_VIDEO, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(OSError, match=r"could not write 30 clips into the frame cache .*No space left on device.*"
                                      r"not marked unreadable"):
        data.prepare_data()
    assert list((tmp_path / "cache").glob("frames-*/*")) == []
    monkeypatch.undo()  # space freed: the next run caches every clip
    data.prepare_data()
    data.setup()
    assert sum(map(len, data.clips.values())) == 30 and not [w for w in recwarn if "skipped" in str(w.message)]


# ---- a truncated file from an older, killed run ----

def test_a_truncated_lexicon_or_lm_is_rebuilt_not_reused(tmp_path):
    from tasks.speech.data import SpeechDataModule

    words = ["turn on the light", "play some jazz", "call mum now", "stop the music", "set a timer", "lights off"]
    rows = []
    for i, text in enumerate(words):
        wave = np.random.default_rng(i).normal(0, 0.1, 16000).astype(np.float32)
        soundfile.write(tmp_path / f"u{i}.wav", wave, 16000)
        rows.append({"audio_filepath": f"u{i}.wav", "text": text, "duration": 1.0})
    for split, part in (("train", rows[:4]), ("val", rows[4:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    settings = dict(corpus="manifest", train_manifest=str(tmp_path / "train.jsonl"), n_mels=40, prepare_workers=1,
                    val_manifest=str(tmp_path / "val.jsonl"), cache_dir=str(tmp_path / "cache"))
    SpeechDataModule(**settings).prepare_data()
    whole = SpeechDataModule(**settings).beam_search_files()
    assert whole["lm"].endswith("\\end\\\n") and "call c a l l |" in whole["lexicon"]
    lexicon, lm = sorted((tmp_path / "cache").glob("features-*/lexicon-*")), sorted((tmp_path / "cache").glob("features-*/lm-*"))
    assert len(lexicon) == len(lm) == 1
    lexicon[0].write_text(whole["lexicon"][:-5], encoding="utf-8")  # an older version killed mid-write left these
    lm[0].write_text(whole["lm"][: len(whole["lm"]) // 2], encoding="utf-8")
    SpeechDataModule(**settings).prepare_data()
    assert SpeechDataModule(**settings).beam_search_files() == whole
    assert litter(tmp_path / "cache") == []
