"""Giving back the memory of large requests: glibc keeps it otherwise.

A call may carry up to the receive limit (64 MB); its decoded messages are freed when the call ends,
but glibc's malloc keeps the freed pages in the arena of the RPC thread that used them, one arena per
thread, so a server that once decoded a few large batches stays as large as their peak (the fuzz
campaign, docs/reliability.md: +36 % after ten rounds before this, +16 % to +27 % with it).
Two remedies, both no-ops where the C library is not glibc: fewer arenas (the RPC threads share
them), and `malloc_trim` after a call whose request was large, which hands the freed pages back.
A call with a small request can build a large answer or a large intermediate (a ChannelReport over
every recommendation served: +25 MB over three fuzz rounds): a call that ran long is trimmed after
too, since it likely allocated much and the trim costs little beside it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading

# Objects a young generation holds before the collector runs (Python's default: 700). See `tune_collector`.
COLLECTOR_THRESHOLD = 20_000
LARGE_REQUEST = 1 << 20  # bytes: a request this large is followed by a trim (a trim costs ~1 ms)
LONG_CALL = 0.05  # seconds: a call this long is followed by a trim too (its ~1 ms is 2 % or less of it)
_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 10  # bytes: blocks this large get pages of their own, unmapped when freed

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
    """Makes the RPC threads share `arenas` malloc arenas (set before the threads start), and fixes
    the size from which a block is mapped on its own. glibc raises that size up to 32 MB each time a
    mapped block is freed, so after one large request every later large buffer lands in an arena,
    where a single live block above it keeps all the freed pages below it from being returned."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, arenas)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def tune_collector() -> None:
    """Freezes what the process holds at start (modules, the service) out of the cyclic collector's
    passes, and lets the young generation grow to COLLECTOR_THRESHOLD objects before a pass.

    Why (issue 11): a TrackBatch of 1,000 events keeps ~15,000 small objects alive for the length of
    the call; with the default threshold of 700 the collector ran ~20 times per call, promoted those
    objects to the old generation, and every few calls that triggered a full pass over everything the
    process holds. In process, over 18,000 demo events, collection took 15-17 us of ~58 us of CPU per
    event; with this, under 1 us. A young pass over 20,000 objects takes ~3 ms; cyclic garbage waits a
    little longer for it, which bounds what it adds to memory to a few MB."""
    gc.freeze()
    gc.set_threshold(COLLECTOR_THRESHOLD, *gc.get_threshold()[1:])


def note_request_size(size: int) -> None:
    """Called by the decoder: remembers on this thread that the call it decodes for is large."""
    if size >= LARGE_REQUEST:
        _local.large = True


def after_call(seconds: float = 0.0) -> None:
    """Called when a call ends on this thread, `seconds` after it started: gives freed memory back
    after a large request or a long call."""
    large = getattr(_local, "large", False)
    _local.large = False
    if (large or seconds >= LONG_CALL) and _LIBC is not None:
        _LIBC.malloc_trim(0)
