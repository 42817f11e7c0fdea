"""What is popular, per channel: the fallback for unknown visitors and the hold-out arm.

Computed from the event store over a window ending at the newest event, cached, and refreshed
in the background so a request never waits for the query once a first answer exists.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from models.domain import DAY
from models.learning.event_weights import EVENT_WEIGHTS
from models.storage import Storage

# Lists cached at most (channels and stores); the oldest goes first. A retailer has far fewer stores,
# and a caller sending made-up store ids must not grow the server's memory.
MAX_CACHED = 4096


class Popularity:
    """Events weigh what they weigh in training (SEENEXT_EVENT_WEIGHTS): a purchase more than a view."""

    def __init__(
        self,
        storage: Storage,
        window_days: int,
        ttl_seconds: float = 60.0,
        depth: int = 500,
        event_weights: Mapping[str, float] | None = None,
    ) -> None:
        self.storage = storage
        self.window = window_days * DAY
        self.weights = dict(EVENT_WEIGHTS if event_weights is None else event_weights)
        self.ttl = ttl_seconds
        self.depth = depth
        self._cache: dict[str, tuple[float, list[tuple[str, float]]]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def top(self, channel: str = "", store_id: str = "") -> list[tuple[str, float]]:
        """(item_id, score) best first, for a channel ("" = all) or a store; empty in an empty store."""
        key = f"store:{store_id}" if store_id else channel
        entry = self._cache.get(key)
        if entry is None:
            ranked = self._query(key)
            if len(self._cache) >= MAX_CACHED:  # store ids come from requests: never an unbounded cache
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[key] = (time.monotonic(), ranked)
            return ranked
        if time.monotonic() - entry[0] > self.ttl:
            self._refresh_later(key)
        return entry[1]

    def invalidate(self) -> None:
        self._cache.clear()

    def _refresh_later(self, channel: str) -> None:
        with self._lock:
            if channel in self._refreshing:
                return
            self._refreshing.add(channel)

        def run() -> None:
            try:
                self._cache[channel] = (time.monotonic(), self._query(channel))
            finally:
                with self._lock:
                    self._refreshing.discard(channel)

        threading.Thread(target=run, name=f"popularity-{channel or 'all'}", daemon=True).start()

    def _query(self, channel: str) -> list[tuple[str, float]]:
        """`channel` is a channel name, "" for all, or "store:<id>" for one store's sales."""
        if channel.startswith("store:"):
            return self.storage.popularity(
                self.weights, self.window, store_id=channel.removeprefix("store:"), limit=self.depth
            )
        return self.storage.popularity(self.weights, self.window, channel=channel, limit=self.depth)
