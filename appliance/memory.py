"""The C allocator, told how a long-running server with many threads and multi-megabyte bodies uses it.

glibc gives each thread that allocates its own arena (up to 8 per core) and raises its mmap threshold after
the first large block is freed, so every listing render (a few MB in SQLite, then in Python) left its blocks
in whichever worker's arena rendered it: 16 HTTP workers kept about 250 MiB of freed memory at 100,000
images. Two arenas, and blocks of 1 MiB or more always mapped and unmapped (given back when freed), keep the
server's peak under 300 MiB (bench/api.py).
"""

from __future__ import annotations

import ctypes
import logging

M_MMAP_THRESHOLD = -3  # mallopt parameters, from glibc's malloc.h
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 1 << 20

log = logging.getLogger(__name__)


def tune_allocator() -> None:
    """Call before any thread starts (arenas already made stay). Does nothing where libc is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    if not (mallopt(M_ARENA_MAX, ARENAS) and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)):
        log.warning("the C allocator did not take its settings; memory may grow with the number of threads")
