"""The C heap under a long-running threaded kiosk: fewer glibc malloc arenas, and free pages
given back. Both are glibc calls through ctypes; elsewhere (musl, macOS) each does nothing.

glibc gives each thread that contends for the heap an arena of its own, up to 8 per core
(32 on a Pi 4). Memory freed in one arena is kept by that arena, so a web server whose
worker threads take turns can hold resident memory with no live object behind it
(docs/reliability.md, "Memory over a run", says what was measured). MALLOC_ARENA_MAX is
glibc's documented knob for this; mallopt(M_ARENA_MAX) sets the same limit from inside the
process, before the threads start.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

__all__ = ["ARENAS", "limit_arenas", "release_free_memory"]

ARENAS = 2              # malloc arenas for the whole process (glibc's default: 8 per core)
M_ARENA_MAX = -8        # mallopt parameter number, from glibc's malloc.h


@functools.cache
def _glibc():
    """The C library if it is glibc (it has malloc_trim), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt    # noqa: B018 - glibc's own; absent from musl
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for threads started from now on, unless MALLOC_ARENA_MAX in
    the environment already says how many (the operator's word wins).

    :param int arenas: arenas at most.
    :returns: True if the cap was set here.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _glibc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc's malloc_trim(0)); live objects
    are untouched.

    :returns: True if glibc released any memory.
    """
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0) == 1)
