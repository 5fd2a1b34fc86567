"""Files given to transcribe/classify: folders searched by suffix, one-line errors for what is not there."""
import pytest

from tasks.common.errors import InputError
from tasks.common.inputs import expand_inputs


def test_files_and_folders_expand_in_order(tmp_path):
    (tmp_path / "clips" / "deeper").mkdir(parents=True)
    for name in ("clips/b.WAV", "clips/a.flac", "clips/deeper/c.wav", "clips/notes.txt", "single.ogg"):
        (tmp_path / name).write_bytes(b"")
    found = expand_inputs([str(tmp_path / "single.ogg"), str(tmp_path / "clips")], (".wav", ".flac", ".ogg"), "audio")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["single.ogg", "clips/a.flac", "clips/b.WAV",
                                                                   "clips/deeper/c.wav"]


def test_an_empty_folder_or_missing_path_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no video files \(\.mp4\) in this folder"):
        expand_inputs([str(tmp_path / "empty")], (".mp4",), "video")
    with pytest.raises(InputError, match="nothing.mp4: no such file or folder"):
        expand_inputs([str(tmp_path / "nothing.mp4")], (".mp4",), "video")
