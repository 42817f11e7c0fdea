"""Customer states kept in memory, so a Recommend of a known customer sends no statement at all.

`CustomerStates.record` answers what `Storage.customer_record` answers. With a cache (capacity > 0)
it keeps the records of recent customers (LRU, bounded) and a record is dropped as soon as anything
it was read from changes: this process's own writes tell it right after their commit
(`Storage.listen_changes`), every other replica's writes reach it through the change feed that
models/serving/feed.py follows every ~0.1 s. A cached record is served only while that follower is
fresh (its last complete poll started at most `max_lag` seconds ago); otherwise, and for a window the
cached record cannot answer (the mailed items of an e-mail request), the read goes to the store.

Ordering: a fill registers a `_Flight` before it reads; every change applied while the read is in
flight is collected on it, and the record is kept only if none of them names what the record was
read from (the identifier, the customer). A change committed before the read is in the record; one
committed after is either applied before the fill ends (caught by the flight) or after it (drops the
entry): a fill racing with a feed entry never keeps a stale state.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from models.storage import Storage
from models.storage.changes import Change, customer_subject, node_subject
from models.storage.serving import CustomerRecord, ItemEvent, StateWindow

Key = tuple[str, ...]  # ("node", kind, key) or ("customer", customer_id)

# The widest window a cached record is read with: every age of recent events (the newest
# `limit`), no mailed items. A request's window is cut from it in memory (`_cut`).
RECENT_LIMIT = 50


@dataclass(slots=True)
class _Entry:
    record: CustomerRecord
    subjects: tuple[str, ...]


@dataclass(eq=False, slots=True)
class _Flight:
    """A fill in progress: the subjects changes named while it read."""

    key: Key
    named: set[str] = field(default_factory=set)
    everything: bool = False  # the cache was cleared meanwhile


class CustomerStates:
    """Customer records for requests: from memory when fresh, else one `customer_record` statement."""

    def __init__(self, storage: Storage, capacity: int = 0, max_lag: float = 0.5) -> None:
        self.storage = storage
        self.capacity = capacity
        self.max_lag = max_lag
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._by_subject: dict[str, set[Key]] = {}
        self._flights: set[_Flight] = set()
        self._lock = threading.Lock()
        self._fresh_as_of = -float("inf")  # time.monotonic() of the start of the last complete feed poll
        self.hits = 0
        self.misses = 0

    # -- reads --------------------------------------------------------------------------------------

    def record(
        self, window: StateWindow, *, node: tuple[str, str] | None = None, customer_id: str | None = None
    ) -> CustomerRecord:
        """The customer of an identifier node (kind, key) or of a customer id, as `window` asks."""
        key: Key = ("node", *node) if node is not None else ("customer", customer_id or "")
        if not self._cacheable(window):
            return self.storage.customer_record(window, node=node, customer_id=customer_id)
        with self._lock:
            entry = self._entries.get(key) if self._fresh() else None
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return _cut(entry.record, window)
            self.misses += 1
            if not self._fresh():  # the feed is not followed (a command, a test) or lags: no filling
                flight = None
            else:
                flight = _Flight(key)
                self._flights.add(flight)
        if flight is None:
            return self.storage.customer_record(window, node=node, customer_id=customer_id)
        try:
            wide = self.storage.customer_record(_WIDE, node=node, customer_id=customer_id)
        finally:
            with self._lock:
                self._flights.discard(flight)
        self._keep(flight, wide, node)
        return _cut(wide, window)

    def __len__(self) -> int:
        return len(self._entries)

    # -- what the follower and the local commits tell -----------------------------------------------

    def apply(self, changes: Iterable[Change]) -> None:
        """Drops every record a change names (by its identifier or its customer)."""
        subjects = {c.subject for c in changes}
        if not subjects:
            return
        with self._lock:
            for flight in self._flights:
                flight.named |= subjects
            for subject in subjects:
                for key in self._by_subject.pop(subject, ()):
                    self._drop(key)

    def clear(self) -> None:
        """Forgets every record (the follower lost its place in the feed)."""
        with self._lock:
            for flight in self._flights:
                flight.everything = True
            self._entries.clear()
            self._by_subject.clear()

    def fresh_as_of(self, started: float) -> None:
        """Every change committed before `started` (time.monotonic()) has been applied."""
        with self._lock:
            self._fresh_as_of = max(self._fresh_as_of, started)

    def stale(self) -> None:
        """Serve nothing from memory until the follower says otherwise."""
        with self._lock:
            self._fresh_as_of = -float("inf")

    # -- internals (under the lock unless said) -----------------------------------------------------

    def _cacheable(self, window: StateWindow) -> bool:
        return (
            self.capacity > 0
            and window.mailed_since is None
            and (window.recent_since is None or window.recent_since >= 0.0)
            and window.recent_limit <= RECENT_LIMIT
        )

    def _fresh(self) -> bool:
        return time.monotonic() - self._fresh_as_of <= self.max_lag

    def _keep(self, flight: _Flight, record: CustomerRecord, node: tuple[str, str] | None) -> None:
        """Caches a record read in flight unless a change applied meanwhile names it (takes the lock)."""
        subjects: list[str] = []
        if node is not None:
            subjects.append(node_subject(*node))
        key_customer = flight.key[1] if flight.key[0] == "customer" else None
        for cid in (key_customer, record.customer_id):
            if cid is not None:
                subjects.append(customer_subject(cid))
        with self._lock:
            if flight.everything or flight.named.intersection(subjects):
                return
            self._drop(flight.key)
            self._entries[flight.key] = _Entry(record, tuple(dict.fromkeys(subjects)))
            for subject in subjects:
                self._by_subject.setdefault(subject, set()).add(flight.key)
            while len(self._entries) > self.capacity:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for subject in entry.subjects:
            keys = self._by_subject.get(subject)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_subject[subject]


_WIDE = StateWindow(recent_since=0.0, recent_limit=RECENT_LIMIT)


def _cut(record: CustomerRecord, window: StateWindow) -> CustomerRecord:
    """The record as `window` would have read it, from one read with the widest window: the newest
    events at or after `recent_since` are a prefix of the newest events of every age."""
    if window.recent_since is None:
        recent: tuple[ItemEvent, ...] = ()
    elif window.recent_since <= 0.0 and window.recent_limit >= len(record.recent):
        return record
    else:
        since = window.recent_since
        recent = tuple(e for e in record.recent if e.at >= since)[: window.recent_limit]
    return CustomerRecord(
        record.customer_id,
        record.aliases,
        record.purchases,
        record.returns,
        recent,
        record.consents,
        record.mailed,
    )


__all__ = ["RECENT_LIMIT", "CustomerStates"]
