"""What is popular, per channel: the fallback for unknown visitors and the hold-out arm.

Computed from the event store over a window ending at the newest event, cached, and refreshed
in the background so a request never waits for the query once a first answer exists.
"""

from __future__ import annotations

import threading
import time

from models.storage import Storage

# Same order of interest as the dataset builder's weights.
_SCORE = (
    "SUM(CASE type WHEN 'PURCHASE' THEN 5 WHEN 'ADD_TO_CART' THEN 3 WHEN 'CLICK' THEN 2"
    " WHEN 'VIEW' THEN 1 ELSE 0 END)"
)


class Popularity:
    def __init__(
        self, db: Storage, window_days: int, ttl_seconds: float = 60.0, depth: int = 500
    ) -> None:
        self.db = db
        self.window = window_days * 86400.0
        self.ttl = ttl_seconds
        self.depth = depth
        self._cache: dict[str, tuple[float, list[tuple[str, float]]]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def top(self, channel: str = "", store_id: str = "") -> list[tuple[str, float]]:
        """(item_id, score) best first, for a channel ("" = all channels) or a store; empty in an empty store."""
        key = f"store:{store_id}" if store_id else channel
        entry = self._cache.get(key)
        if entry is None:
            ranked = self._query(key)
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
        conn = self.db.reader()
        newest = conn.execute("SELECT MAX(occurred_at) FROM events").fetchone()[0]
        if newest is None:
            return []
        sql = f"SELECT item_id, {_SCORE} AS s FROM events WHERE occurred_at >= ? AND item_id != ''"
        args: list = [newest - self.window]
        if channel.startswith("store:"):
            sql += " AND store_id = ?"
            args.append(channel.removeprefix("store:"))
        elif channel:
            sql += " AND channel = ?"
            args.append(channel)
        sql += " GROUP BY item_id HAVING s > 0 ORDER BY s DESC, item_id LIMIT ?"
        args.append(self.depth)
        return [(i, float(s)) for i, s in conn.execute(sql, args)]
