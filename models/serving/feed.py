"""Following the change feed: what keeps a replica's memory as fresh as the shared store.

A thread polls `Storage.changes_after(position)` every `poll_seconds` (one indexed range read; nothing
when nothing changed) and hands what it finds to the customer-state cache (models/serving/state_cache.py),
which drops what changed; a Forget also makes the model registry look again at once, so a forgotten
customer's vector leaves memory without waiting for the next model check. A poll that read everything
up to the feed's end marks the cache fresh as of the poll's start.

Gaps: a backend whose numbers are handed out before commit (PostgreSQL's identity column) can show
seq 12 before seq 11 commits. A seq skipped below the newest one seen is remembered as a gap and
asked for again (`changes_at`) on every poll until it shows up or `gap_seconds` pass (then it was
rolled back). SQLite numbers rows at commit under one writer, so it never has gaps. A backend with
such numbering should append its feed rows at the end of the transaction (just before COMMIT), so a
long transaction (a bulk TrackBatch) does not hold a seq open for longer than `gap_seconds`.

This process's own commits: their rows reach the cache at commit through `Storage.listen_changes`;
with the `Told` that call returned, the follower passes over the seq ranges those commits wrote instead
of reading them back, when a range starts right after its position (no other writer's row can hide
below it then). Anything else, another process's rows between two of this process's or a range told
after the follower read past it, is read as before.

Pruning: every replica deletes, about every minute, the rows older than `retention_seconds` (by the
feed head it noted that long ago). A follower that could not poll for half the retention may have lost
rows to pruning: it clears the cache and starts again from the head.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from models.serving.state_cache import CustomerStates
from models.storage import Storage
from models.storage.changes import FORGET, Change, Told

log = logging.getLogger(__name__)

START_WINDOW = 1_000  # seqs below the head at start whose absence counts as a gap (open transactions)
MAX_GAPS = 10_000  # more missing seqs than this: start again from the head (cache cleared)
PRUNE_EVERY = 60.0


class FeedFollower:
    def __init__(
        self,
        storage: Storage,
        states: CustomerStates,
        poll_seconds: float = 0.1,
        retention_seconds: float = 600.0,
        on_forget: Callable[[set[str]], None] = lambda subjects: None,
        gap_seconds: float = 5.0,
        batch: int = 10_000,
        told: Told | None = None,
    ) -> None:
        """`told`: what `storage.listen_changes(states.apply)` returned, when this process's commits are
        applied to `states` that way (None: every row is read back)."""
        self.storage = storage
        self.states = states
        self.poll_seconds = poll_seconds
        self.retention_seconds = retention_seconds
        self.on_forget = on_forget
        self.gap_seconds = gap_seconds
        self.batch = batch
        self.told = told
        self.position = 0  # every seq at or below this was applied, or is a gap below
        self._gaps: dict[int, float] = {}  # missing seq -> time.monotonic() it was first missed
        self._last_ok = -float("inf")
        self._heads: deque[tuple[float, int]] = deque()  # (time.monotonic(), feed head) for pruning
        self._next_prune = 0.0
        self._failing = ""
        self.caught_up = threading.Event()  # set by the first complete poll (health waits for it)
        self.applied = 0
        self._thread: threading.Thread | None = None

    def start_at_head(self) -> None:
        """Starts following from now: what the store holds already is read by every fill."""
        if self.told is not None:
            self.told.start()  # before the head is read: a commit after it is handed over
        head = self.storage.feed_head()
        present = {c.seq for c in self.storage.changes_after(max(0, head - START_WINDOW))}
        now = time.monotonic()
        self._gaps = {s: now for s in range(max(1, head - START_WINDOW + 1), head + 1) if s not in present}
        self.position = head
        self.states.clear()

    def poll(self) -> int:
        """Applies every change since the last poll; the number applied. Marks the cache fresh as of the
        poll's start once it read to the feed's end."""
        started = time.monotonic()
        if started - self._last_ok > self.retention_seconds / 2 and self._last_ok > -float("inf"):
            log.warning(
                "the change feed was not read for %.0f s: starting again from its end",
                started - self._last_ok,
            )
            self.start_at_head()
        found: list[Change] = []
        while True:
            if self.told is not None:
                self.position = self.told.pass_over(self.position)
            rows = self.storage.changes_after(self.position, self.batch)
            found += rows
            self._advance(rows, started)
            if len(rows) < self.batch:
                break
        if self._gaps:
            filled = self.storage.changes_at(list(self._gaps))
            for c in filled:
                self._gaps.pop(c.seq, None)
            found += filled
            for seq, since in list(self._gaps.items()):
                if started - since > self.gap_seconds:
                    del self._gaps[seq]  # rolled back: it will never show up
        if found:
            self.states.apply(found)
            forgotten = {c.subject for c in found if c.kind == FORGET}
            if forgotten:
                self.on_forget(forgotten)
        self.states.fresh_as_of(started)
        self._last_ok = started
        self.applied += len(found)
        self.caught_up.set()
        self._prune(started)
        return len(found)

    def follow(self, stop: threading.Event) -> threading.Thread:
        """Catches up now (in the caller's thread), then polls in a daemon thread until `stop`."""
        self.start_at_head()
        self.poll()

        def loop() -> None:
            while not stop.wait(self.poll_seconds):
                try:
                    self.poll()
                    self._failing = ""
                except Exception as exc:  # the thread must outlive a failed poll; the cache goes stale
                    self.states.stale()
                    if stop.is_set():  # the store was closed under the poll: shutting down
                        return
                    message = f"{type(exc).__name__}: {exc}"
                    if message != self._failing:
                        log.error(
                            "reading the change feed failed (%s); serving from the store meanwhile", message
                        )
                        self._failing = message

        thread = threading.Thread(target=loop, name="feed-follower", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def seconds_behind(self) -> float | None:
        """Seconds since this follower last read the feed to its end (an upper bound on the age of any
        change it has not applied); None before its first complete read."""
        if self._last_ok == -float("inf"):
            return None
        return max(0.0, time.monotonic() - self._last_ok)

    def join(self, timeout: float = 10.0) -> None:
        """Waits for the polling thread to end (after its `stop` was set): the store may close then."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _advance(self, rows: list[Change], now: float) -> None:
        for c in rows:
            if c.seq > self.position + 1:
                for missing in range(self.position + 1, c.seq):
                    self._gaps.setdefault(missing, now)
            self._gaps.pop(c.seq, None)
            self.position = max(self.position, c.seq)
        if len(self._gaps) > MAX_GAPS:
            log.warning("%d seqs missing from the change feed: starting again from its end", len(self._gaps))
            self.start_at_head()

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + min(PRUNE_EVERY, self.retention_seconds / 4)
        self._heads.append((now, self.position))
        through = 0
        while self._heads and now - self._heads[0][0] >= self.retention_seconds:
            through = self._heads.popleft()[1]
        if through:
            self.storage.prune_changes(through)
