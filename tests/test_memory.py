"""Training keeps freed memory for reuse (tasks/common/memory.py)."""
import platform
import sys

from tasks.common.memory import keep_freed_memory


def test_glibc_takes_the_settings_and_other_platforms_are_left_alone():
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is on_glibc
