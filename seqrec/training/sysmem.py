"""Process-wide memory-allocator setting for CPU training.

A training step allocates and frees the same few multi-megabyte tensors every step (the
gathered item rows, their gradients, the score matrix). glibc's malloc serves blocks
above its mmap threshold (dynamic, from 128 KiB) with fresh ``mmap`` pages and returns
freed memory at the top of the heap to the kernel once it exceeds the trim threshold,
so such a step can touch thousands of new pages: GRU4Rec with layers [512] and batch
128 took ~3,600 minor page faults per step, a third of its time (benchmarks/PROFILE.md
section 8). :func:`keep_freed_memory` asks malloc to keep blocks of up to 32 MiB in the
heap and to trim only above 256 MiB of free memory, which removes those faults (0 per
step). It is what ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:trim_threshold=...``
does, set from inside the process.

The setting lasts for the rest of the process (glibc offers no way back to the dynamic
threshold); freed memory up to 256 MiB stays mapped instead of returning to the system.
It is applied once, on Linux with glibc only; ``SEQREC_MALLOPT=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

__all__ = ["KEEP_BLOCK_BYTES", "TRIM_BYTES", "keep_freed_memory"]

log = logging.getLogger("seqrec.sysmem")

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BLOCK_BYTES = 32 * 2**20  # blocks up to this size come from the heap (glibc's max)
TRIM_BYTES = 256 * 2**20  # free memory kept at the top of the heap before trimming

_applied: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Apply the malloc setting described in the module docstring (once per process).

    Returns whether it is in effect: False where it does not apply (not glibc, mallopt
    unavailable, or ``SEQREC_MALLOPT=0``).
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("SEQREC_MALLOPT", "1") == "0":
        log.debug("malloc setting off (SEQREC_MALLOPT=0)")
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, KEEP_BLOCK_BYTES) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    log.debug("malloc: mmap threshold %d, trim threshold %d: %s", KEEP_BLOCK_BYTES, TRIM_BYTES, ok)
    return ok
