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
next poll. A backend that learns the seqs its rows got (`ChangeNotes.numbered`) hands them, after the
listener returned, to the listener's `Told`: a follower applying into the same place passes over
those rows instead of reading them back (they cost a TrackBatch ~3 us of the server's CPU per event
read twice, issue 11).

Leases: a row (name, holder, expires_at) taken in one transaction when free or expired; what keeps
one training at a time across every replica and trainer job (the database, not a file lock, since
replicas do not share a disk).
"""

from __future__ import annotations

import hashlib
import heapq
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


class Told:
    """The seq ranges of this process's commits that one listener was told of, handed from the committing
    threads to the follower that applies the feed into the same place (models/serving/feed.py): it may
    move past them without reading them back.

    A range is handed over only after the listener returned, so whatever is passed over was applied.
    Commits hand over in any order (a thread may commit after another but tell first), so the follower
    takes only a range starting right after its position; anything else it reads as before, and a range
    it never takes costs nothing but that read. Records nothing until a follower starts (`start`), and
    at most KEEP ranges (the oldest dropped first: those rows are only read back)."""

    KEEP = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: list[tuple[int, int]] = []  # a heap of (first seq, last seq)
        self._on = False

    def start(self) -> None:
        self._on = True

    @property
    def on(self) -> bool:
        return self._on

    def add(self, ranges: list[tuple[int, int]]) -> None:
        if not self._on:
            return
        with self._lock:
            for r in ranges:
                heapq.heappush(self._ranges, r)
            if len(self._ranges) > self.KEEP:
                self._ranges = sorted(self._ranges)[-self.KEEP // 2 :]  # a sorted list is a heap

    def pass_over(self, position: int) -> int:
        """How far a follower that applied every seq up to `position` may move without reading: the end
        of the run of told ranges starting at position + 1 (`position` itself when there is none)."""
        if not self._ranges:  # read without the lock: a range told meanwhile is read back instead
            return position
        with self._lock:
            ranges = self._ranges
            while ranges and ranges[0][0] <= position + 1:
                # Every seq of a range is this process's and applied: one reaching past `position` (a
                # read's batch may have ended inside it) moves it; one below it was read already.
                position = max(position, heapq.heappop(ranges)[1])
            return position


class ChangeNotes:
    """The changes a thread's open transaction wrote, told to this process's listeners once it commits
    (backend-neutral: a backend calls `note` as it writes, `numbered` once it knows the seqs the rows
    got, `committed`/`discarded` at the end)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._listeners: list[tuple[Listener, Told]] = []

    def listen(self, listener: Listener) -> Told:
        told = Told()
        self._listeners.append((listener, told))
        return told

    @property
    def numbering(self) -> bool:
        """Whether some follower takes the seq ranges (else a backend need not learn them)."""
        return any(told.on for _, told in self._listeners)

    def note(self, kind: str, subjects: Iterable[str]) -> list[tuple[str, str]]:
        """Records subjects for the listeners; returns the (kind, subject) rows to insert."""
        rows = [(kind, s) for s in dict.fromkeys(subjects)]
        pending: list[tuple[str, str]] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = []
            self._local.ranges = []
            self._local.later = []
            self._local.forgets = False
        pending.extend(rows)
        if kind == FORGET and rows:
            self._local.forgets = True
        return rows

    def numbered(self, first: int, last: int) -> None:
        """The rows of the last `note` were inserted as seqs first..last, every one of them (no seq in
        between is another transaction's)."""
        self._local.ranges.append((first, last))

    def numbered_later(self, read: Callable[[], tuple[int, int] | None]) -> None:
        """As `numbered`, from a reply that may come only with the COMMIT (`read` is called after it;
        None: the seqs are unknown, and the follower reads those rows back)."""
        self._local.later.append(read)

    def committed(self) -> None:
        pending: list[tuple[str, str]] = getattr(self._local, "pending", None) or []
        self._local.pending = None
        if pending and self._listeners:
            changes = [Change(0, kind, subject) for kind, subject in pending]  # seq unknown: 0
            # Not a Forget's: the follower reads those back and tells `on_forget`, as it always did (a
            # local Forget rewrites the model files itself; the read-back drops the vectors in memory).
            ranges = [] if self._local.forgets else self._numbered()
            for listener, told in self._listeners:
                listener(changes)
                if ranges:
                    told.add(ranges)
        self._local.ranges, self._local.later = [], []  # the replies read: not kept until the next write

    def _numbered(self) -> list[tuple[int, int]]:
        """The seq ranges of the thread's committed rows that are known (each exact: every seq in it is
        one of these rows; a row of none is read back by the follower)."""
        ranges: list[tuple[int, int]] = list(self._local.ranges)
        for read in self._local.later:
            numbered = read()
            if numbered is not None:
                ranges.append(numbered)
        return ranges

    def discarded(self) -> None:
        self._local.pending = None
        self._local.ranges, self._local.later = [], []


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
    def listen_changes(self, listener: Listener) -> Told:
        """Calls `listener` in the writing thread right after each commit of this process that wrote
        feed rows (their seq is 0 there: the follower sees the numbered rows later). Returns where the
        seq ranges of those commits are handed over once the listener returned (a follower applying into
        the same place passes over them: `Told`); a backend that does not learn its seqs hands none."""

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
