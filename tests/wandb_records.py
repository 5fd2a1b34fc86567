"""Read the history an offline wandb run wrote (its .wandb file is a LevelDB-style log of protobufs).

wandb 0.31 no longer ships a Python reader for it, and the tests must see what reached wandb.
"""
from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, FILE_HEADER, RECORD_HEADER = 32768, 7, 7  # ":W&B" + magic + version; crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, pending = FILE_HEADER, b""
    while pos + RECORD_HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < RECORD_HEADER:  # the rest of a block too small for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + RECORD_HEADER])
        chunk = data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def history(run_dir: Path) -> list[dict[str, str]]:
    """Every history row of the run in run_dir (an offline-run-* folder), values as JSON strings."""
    (wandb_file,) = Path(run_dir).glob("run-*.wandb")
    rows = []
    for record in records(wandb_file):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows
