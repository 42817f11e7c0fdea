"""Giving back the memory of large requests: glibc keeps it otherwise.

A call may carry up to the receive limit (64 MB); its decoded messages are freed when the call ends,
but glibc's malloc keeps the freed pages in the arena of the RPC thread that used them, one arena per
thread, so a server that once decoded a few large batches stays as large as their peak (the fuzz
campaign, docs/reliability.md: +36 % after ten rounds before this, +16 % to +27 % with it).
Two remedies, both no-ops where the C library is not glibc: fewer arenas (the RPC threads share
them), and `malloc_trim` after a call whose request was large, which hands the freed pages back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

LARGE_REQUEST = 1 << 20  # bytes: a request this large is followed by a trim (a trim costs ~1 ms)
_M_ARENA_MAX = -8  # glibc's mallopt parameter

_local = threading.local()


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 (glibc only: musl and others have no malloc_trim)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int = 2) -> None:
    """Makes the RPC threads share `arenas` malloc arenas (set before the threads start)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, arenas)


def note_request_size(size: int) -> None:
    """Called by the decoder: remembers on this thread that the call it decodes for is large."""
    if size >= LARGE_REQUEST:
        _local.large = True


def after_call() -> None:
    """Called when a call ends on this thread: gives freed memory back after a large request."""
    if getattr(_local, "large", False):
        _local.large = False
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
