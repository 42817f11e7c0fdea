"""The log of recommendations served, for attribution of later events and for hold-out reports.

Written by a background thread in small batches, so Recommend never waits for a disk sync (or, in a
fleet, for a round trip to the shared database); a crash loses at most the last flush interval of
this log (never an event), a clean shutdown nothing: `close()` writes what is queued. A batch the
store refuses (busy, briefly unreachable) is tried again a few times before it is reported lost.
"""

from __future__ import annotations

import logging
import queue
import threading

from models.storage import Storage
from models.storage.serving import ServedRecommendation as Served

log = logging.getLogger(__name__)

_ATTEMPTS = 3


class ServedLog:
    def __init__(self, storage: Storage, flush_seconds: float = 0.2) -> None:
        self.storage = storage
        self._queue: queue.Queue[Served | None] = queue.Queue(maxsize=100_000)
        self._flush_seconds = flush_seconds
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)
        self._thread.start()

    def record(self, served: Served) -> None:
        try:
            self._queue.put_nowait(served)
        except queue.Full:  # a stalled disk must not stall serving; say so loudly
            log.error("served-recommendation log is full; dropping %s", served.recommendation_id)

    def flush(self) -> None:
        """Writes everything queued so far and waits for a write in flight (used by tests and at shutdown)."""
        batch = self._drain()
        try:
            self._write(batch)
        finally:
            for _ in batch:
                self._queue.task_done()
        if self._thread.is_alive():
            self._queue.join()  # the writer thread's batch, taken off the queue but maybe not committed yet

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first, *self._drain()]
            try:
                self._write_retrying(batch)
            except Exception:  # keep the writer alive; the rows are reported, not silently lost
                log.exception("could not write %d served recommendations", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self._flush_seconds:
                threading.Event().wait(self._flush_seconds)

    def _drain(self) -> list[Served]:
        out: list[Served] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if item is None:  # the stop sentinel stays for the writer thread
                self._queue.put(None)
                self._queue.task_done()
                return out
            out.append(item)

    def _write_retrying(self, batch: list[Served]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                self._write(batch)
                return
            except Exception as exc:
                if attempt == _ATTEMPTS - 1:
                    raise
                log.warning("writing %d served recommendations failed (%s); trying again", len(batch), exc)
                threading.Event().wait(0.5 * (attempt + 1))

    def _write(self, batch: list[Served]) -> None:
        self.storage.record_served(batch)


__all__ = ["Served", "ServedLog"]
