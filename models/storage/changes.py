"""Storage interface: the change feed every serving process follows, and leases (fleet-wide locks).

The feed: every write that changes what a customer's Recommend reads (their events, an identifier
linked, marked shared or a customer created, a merge, a consent decision, Forget) appends one row per
customer or identifier it touched, in the same transaction, with a monotonic `seq`. A serving
process keeps customer states in memory (models/serving/state_cache.py) and follows the feed
(models/serving/feed.py) to drop what changed, so it needs no round trip per request.

A row names its subject by a short keyed-free hash (`customer_subject`, `node_subject`), never by an
id or an identifier: the feed holds nothing of a forgotten customer in the clear while it waits to be
pruned. A backend also tells listeners of its own process right after each commit
(`listen_changes`), so a process reads its own writes at once; other processes see them at their
next poll.

Leases: a row (name, holder, expires_at) taken in one transaction when free or expired; what keeps
one training at a time across every replica and trainer job (the database, not a file lock, since
replicas do not share a disk).
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import NamedTuple

# What a change did: `state` (drop the subject's cached state) or `forget` (also: a model vector may
# have to go from memory).
STATE, FORGET = "state", "forget"

# Event types that change no part of the cached state (models/storage/serving.py's customer record
# leaves them out of the recent events; the mailed part is never cached): not worth a feed row.
QUIET_EVENT_TYPES = frozenset({"IMPRESSION", "EMAIL_SENT"})


class Change(NamedTuple):
    seq: int
    kind: str  # STATE or FORGET
    subject: str  # customer_subject(...) or node_subject(...)


Listener = Callable[[list[Change]], None]


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def customer_subject(customer_id: str) -> str:
    """The feed's name for a customer (a hash: the feed never holds an id)."""
    return "c" + _digest(customer_id)


def node_subject(kind: str, key: str) -> str:
    """The feed's name for an identifier node (kind, stored key)."""
    return "n" + _digest(kind, key)


class ChangeNotes:
    """The changes a thread's open transaction wrote, told to this process's listeners once it commits
    (backend-neutral: a backend calls `note` as it writes, `committed`/`discarded` at the end)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def note(self, kind: str, subjects: Iterable[str]) -> list[tuple[str, str]]:
        """Records subjects for the listeners; returns the (kind, subject) rows to insert."""
        rows = [(kind, s) for s in dict.fromkeys(subjects)]
        pending: list[tuple[str, str]] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = []
        pending.extend(rows)
        return rows

    def committed(self) -> None:
        pending: list[tuple[str, str]] = getattr(self._local, "pending", None) or []
        self._local.pending = None
        if pending and self._listeners:
            changes = [Change(0, kind, subject) for kind, subject in pending]  # seq unknown: 0
            for listener in self._listeners:
                listener(changes)

    def discarded(self) -> None:
        self._local.pending = None


class ChangeStorage(ABC):
    """The change feed (written by the other concerns' writes) and leases."""

    @abstractmethod
    def changes_after(self, seq: int, limit: int = 10_000) -> list[Change]:
        """Feed rows with seq > `seq`, oldest first, at most `limit` (one indexed range read)."""

    @abstractmethod
    def changes_at(self, seqs: Iterable[int]) -> list[Change]:
        """The feed rows of these seqs that exist now (a follower asks again for gaps:
        models/serving/feed.py)."""

    @abstractmethod
    def feed_head(self) -> int:
        """The newest seq written (0 for an empty feed)."""

    @abstractmethod
    def prune_changes(self, through_seq: int) -> int:
        """Deletes feed rows with seq <= `through_seq`, always keeping the newest row (so a backend that
        numbers rows max+1 never goes back); the number deleted."""

    @abstractmethod
    def listen_changes(self, listener: Listener) -> None:
        """Calls `listener` in the writing thread right after each commit of this process that wrote
        feed rows (their seq is 0 there: the follower sees the numbered rows later)."""

    @abstractmethod
    def take_lease(self, name: str, holder: str, seconds: float, now: float) -> bool:
        """Takes (or renews, for the same holder) the lease `name` until now + seconds; False if another
        holder's lease has not expired. One transaction; safe across processes and hosts."""

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Gives the lease up if `holder` holds it."""

    @abstractmethod
    def lease_holder(self, name: str, now: float) -> str | None:
        """Who holds the lease now (None: free or expired)."""
