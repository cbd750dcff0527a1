"""Keep freed memory in the serving process for reuse (glibc's malloc, via ``mallopt``).

Why: by default glibc maps every allocation above its mmap threshold (128 KB, growing with use) fresh from the
kernel and hands it back on free, so each activation buffer of a request, a few MB at a time, is page-faulted and
zeroed again on its first write. Serving allocates the same shapes over and over: raising the mmap threshold to its
maximum (32 MB) and keeping up to 256 MB of freed heap instead of trimming it lets those buffers be reused. Measured
by ``python bench/malloc.py`` (the same requests in a process with and one without). Process-wide, glibc only:
elsewhere (musl, macOS, Windows) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt option numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD_BYTES = 256 * 2**20


def keep_freed_memory() -> bool:
    """Tune glibc's malloc of this process for reuse (see the module docstring); True if it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return all(mallopt(option, value) == 1 for option, value in settings)
