"""Cache names: a short hash of everything a cached result depends on, so a changed input or setting is
never served a stale result. Imports nothing heavy: decoding worker processes use it."""
from __future__ import annotations

import hashlib
import json


def stamp_digest(stamp, length: int = 16) -> str:
    """A JSON-able description of the inputs (versions, settings, file sizes and times) -> `length` hex digits."""
    return hashlib.sha1(json.dumps(stamp).encode()).hexdigest()[:length]
