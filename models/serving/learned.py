"""A table learned from the store for serving (complements, what customers buy again).

Built when first needed, again at once after a training (`refresh`), and in the background when the
serving model's version changes (a model trained elsewhere was picked up) or the table is older than
`ttl_seconds`; serving keeps using the previous table meanwhile, so a request never waits for a
rebuild but the very first one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Learned(Protocol):
    @property
    def key(self) -> str:
        """What it was built for (the model version)."""

    @property
    def built_at(self) -> float:
        """time.time() when it was built."""


T = TypeVar("T", bound=Learned)


class LearnedTable(Generic[T]):
    def __init__(self, build: Callable[[str], T], name: str, ttl_seconds: float = 600.0) -> None:
        self._build = build
        self.name = name
        self.ttl = ttl_seconds
        self._table: T | None = None
        self._lock = threading.Lock()
        self._refreshing = False
        # bumped by every table stored: a background rebuild stores its table only if none was stored
        # since it began (a training's `refresh` must not be replaced by a rebuild from older data)
        self._generation = 0

    def get(self, key: str = "") -> T:
        """The table; built now the first time, in the background when stale or for a new key."""
        table = self._table
        if table is None:
            with self._lock:
                table = self._table  # another thread may have built it while this one waited
                if table is None:
                    table = self._build(key)
                    self._store(table)
                return table
        if table.key != key or time.time() - table.built_at > self.ttl:
            self._refresh_later(key)
        return table

    def refresh(self, key: str = "") -> T:
        """Rebuilds now (after a training, so the first request on the new model sees it)."""
        table = self._build(key)
        with self._lock:
            self._store(table)
        return table

    def _store(self, table: T) -> None:
        self._table = table
        self._generation += 1

    def _refresh_later(self, key: str) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
            began = self._generation

        def run() -> None:
            try:
                table = self._build(key)
                with self._lock:
                    if self._generation == began:  # else a newer table was stored meanwhile: keep it
                        self._store(table)
            except Exception:  # serving keeps the previous table; the failure is logged, not hidden
                log.exception("could not refresh the %s table", self.name)
            finally:
                self._refreshing = False

        threading.Thread(target=run, name=f"{self.name}-refresh", daemon=True).start()
