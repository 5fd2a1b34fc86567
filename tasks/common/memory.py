"""glibc's malloc hands large freed blocks back to the kernel at once, so a training step that frees its activations
and allocates them again next step pays for fresh zeroed pages every time: a storm of page faults.

Measured (bench/task_speed.py speech, 2 CPU cores, two paired runs): 1.96 million minor page faults in a 50 s run
with glibc's defaults, 0.32 million with freed memory kept for reuse, and 167-169 training examples/s end to end
against 189-190. keep_freed_memory() sets that once per
process, before training allocates: what PyTorch's CPU allocator gets from malloc stays in the process (its
peak resident memory is the same; it is just not returned between steps).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
KEEP = {
    M_MMAP_THRESHOLD: 32 * 2**20,  # blocks up to 32 MB (glibc's ceiling for this) from the heap, not fresh mappings
    M_TRIM_THRESHOLD: 2**31 - 1,  # never shrink the heap on free
    M_TOP_PAD: 256 * 2**20,  # grow it in 256 MB steps
}


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse -> whether it took the settings (False off glibc, e.g.
    macOS or musl, where nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in KEEP.items())
