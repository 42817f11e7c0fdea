"""The log of recommendations served, for attribution of later events and for hold-out reports.

Written by a background thread in small batches, so Recommend never waits for a disk sync (or, in a
fleet, for a round trip to the shared database); a crash loses at most the last flush interval of
this log (never an event), a clean shutdown nothing: `close()` writes what is queued. A batch the
store refuses (busy, briefly unreachable) is tried again a few times before it is reported lost.

A request only appends to a deque (atomic in CPython: no lock, no wake-up); the writer wakes every
`flush_seconds` and takes what is there. A queue that woke the writer on the first record of each
interval cost the request ~10 us (its lock and the wake-up call), and woke the writer mid-request,
where it competed with the request for the interpreter.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from models.storage import Storage
from models.storage.serving import ServedRecommendation as Served

log = logging.getLogger(__name__)

_ATTEMPTS = 3
MAX_QUEUED = (
    100_000  # records waiting for the writer; more are dropped (and logged) rather than stall serving
)


class ServedLog:
    def __init__(self, storage: Storage, flush_seconds: float = 0.2) -> None:
        self.storage = storage
        self._queued: deque[Served] = deque()
        self._flush_seconds = flush_seconds
        self._stop = threading.Event()
        # held while a batch is taken and written: `flush` waits for the writer's batch in flight
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)
        self._thread.start()

    def record(self, served: Served) -> None:
        if len(self._queued) >= MAX_QUEUED:  # a stalled disk must not stall serving; say so loudly
            log.error("served-recommendation log is full; dropping %s", served.recommendation_id)
            return
        self._queued.append(served)

    def flush(self) -> None:
        """Writes everything recorded so far, after a write in flight (used by tests and at shutdown)."""
        with self._writing:
            self._write(self._drain())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            with self._writing:
                batch = self._drain()
                if not batch:
                    continue
                try:
                    self._write_retrying(batch)
                except Exception:  # keep the writer alive; the rows are reported, not silently lost
                    log.exception("could not write %d served recommendations", len(batch))

    def _drain(self) -> list[Served]:
        out: list[Served] = []
        take = self._queued.popleft
        try:
            while True:
                out.append(take())
        except IndexError:
            return out

    def _write_retrying(self, batch: list[Served]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                self._write(batch)
                return
            except Exception as exc:
                if attempt == _ATTEMPTS - 1:
                    raise
                log.warning("writing %d served recommendations failed (%s); trying again", len(batch), exc)
                threading.Event().wait(0.5 * (attempt + 1))  # a pause even while closing

    def _write(self, batch: list[Served]) -> None:
        if batch:
            self.storage.record_served(batch)


__all__ = ["Served", "ServedLog"]
