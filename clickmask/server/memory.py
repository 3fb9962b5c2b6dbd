"""Give freed memory back to the operating system.

The server frees image-sized arrays all the time (a finished object's
predictions, an evicted click session). glibc keeps freed blocks of the main
heap for reuse, so without a trim the process's resident size only ever grows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None on other C libraries."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_memory() -> bool:
    """Return the C heap's free memory to the system (glibc); False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
