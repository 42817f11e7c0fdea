"""Importers: a retailer's history into the store, through the same doors as live traffic.

Events go through `EventStore.track_batch` (validation, identity rules, idempotency by event_id),
items through `Catalog.upsert`, customer attributes through `CustomerAttributes.upsert` — in
batches of up to 10,000, one transaction each. Re-running an import adds nothing twice.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from models.domain import BatchResult, Event, Identifier, Item
from models.validation import MAX_BATCH

# progress(stage, done, total): called after every batch; total is 0 when unknown.
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: silent."""


@dataclass
class ImportSummary:
    source: str
    rows_read: int = 0
    events: int = 0  # events built from the rows
    accepted: int = 0  # newly stored
    duplicates: int = 0  # already stored (a re-run)
    rejected: int = 0  # events the store refused
    unreadable: int = 0  # rows that never became an event (a time or number that does not parse)
    rejections: list[str] = field(default_factory=list)  # the first few, "row N: field: reason"
    items: int = 0
    customers: int = 0  # distinct customers in the events
    customer_attributes: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    first_at: float | None = None
    last_at: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["by_channel"] = dict(sorted(self.by_channel.items()))
        out["by_type"] = dict(sorted(self.by_type.items()))
        out["events_per_second"] = round(self.events / self.seconds) if self.seconds else 0
        out["seconds"] = round(self.seconds, 2)
        return out


class Target(Protocol):
    """Where an import writes: the service's own doors (the `Seenext` facade is one), so imported
    history gets the same validation, identity rules and idempotency as live traffic."""

    def upsert_items(self, items: Sequence[Item]) -> int: ...

    def track_batch(self, events: Sequence[Event]) -> BatchResult: ...

    def upsert_customer_attributes(self, rows: Sequence[tuple[Identifier, Mapping[str, str]]]) -> int: ...


class Loader:
    """Writes events, items and attributes in bulk batches and keeps the summary."""

    def __init__(
        self,
        target: Target,
        summary: ImportSummary,
        progress: Progress = no_progress,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.target = target
        self.summary = summary
        self.progress = progress
        self.batch_size = min(batch_size, MAX_BATCH)
        self._customers: set[str] = set()

    def items(self, items: Sequence[Item], total: int | None = None) -> None:
        done = 0
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            self.target.upsert_items(chunk)
            done += len(chunk)
            self.summary.items += len(chunk)
            self.progress("items", done, total or len(items))

    def attributes(self, rows: Sequence[tuple[Identifier, Mapping[str, str]]]) -> None:
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            self.target.upsert_customer_attributes(chunk)
            self.summary.customer_attributes += len(chunk)
            self.progress("customers", start + len(chunk), len(rows))

    def events(
        self, events: Iterable[Event], total: int = 0, row_of: Callable[[int], int] | None = None
    ) -> None:
        """Stores events in batches; `row_of(i)` maps the i-th event to its source row for messages."""
        batch: list[Event] = []
        offset = 0
        for ev in events:
            batch.append(ev)
            if len(batch) == self.batch_size:
                self._flush(batch, offset, total, row_of)
                offset += len(batch)
                batch = []
        if batch:
            self._flush(batch, offset, total, row_of)

    def _flush(
        self, batch: list[Event], offset: int, total: int, row_of: Callable[[int], int] | None
    ) -> None:
        result = self.target.track_batch(batch)
        s = self.summary
        s.events += len(batch)
        s.accepted += result.accepted
        s.duplicates += result.duplicates
        s.rejected += len(result.rejected)
        bad = {r.index for r in result.rejected}
        for r in result.rejected[: max(0, 5 - len(s.rejections))]:
            row = row_of(offset + r.index) if row_of else offset + r.index
            problem = r.reason.removeprefix(f"{r.field}: ")
            s.rejections.append(f"row {row}: {r.field.split('.', 1)[-1]}: {problem}")
        for i, ev in enumerate(batch):
            if i in bad:
                continue
            s.by_channel[ev.channel] += 1
            s.by_type[ev.type] += 1
            if ev.occurred_at is not None:
                s.first_at = ev.occurred_at if s.first_at is None else min(s.first_at, ev.occurred_at)
                s.last_at = ev.occurred_at if s.last_at is None else max(s.last_at, ev.occurred_at)
            self._customers.add(ev.identifiers[0].value)
        s.customers = len(self._customers)
        self.progress("events", offset + len(batch), total)


def stable_id(prefix: str, *parts: object) -> str:
    """A deterministic event id from a row's content, so re-importing a file is idempotent."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=12).hexdigest()
    return f"{prefix}-{digest}"


class Timer:
    """Measures an import for its summary."""

    def __init__(self, summary: ImportSummary) -> None:
        self.summary = summary

    def __enter__(self) -> Self:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.summary.seconds = time.perf_counter() - self.started
