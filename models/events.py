"""The event store: durable, idempotent ingest of events and reads of the history.

A batch is one storage transaction, so it is all-or-nothing and an acknowledged event is on disk.
Idempotency is by event_id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.domain import BatchResult, Event, Identifier, Rejection, TrackResult
from models.errors import InvalidArgument
from models.identity.graph import IdentityGraph, Node
from models.storage import Storage
from models.storage.events import EventRow
from models.storage.rows import attributes_json
from models.validation import MAX_ID_LENGTH, check_event, event_passes


@dataclass(slots=True)
class InteractionLog:
    """Columns of the events that carry an item, for the dataset builder."""

    customer_id: np.ndarray
    item_id: np.ndarray
    type: np.ndarray
    channel: np.ndarray
    occurred_at: np.ndarray
    order_id: np.ndarray

    def __len__(self) -> int:
        return len(self.item_id)


class EventStore:
    def __init__(self, storage: Storage, graph: IdentityGraph, future_tolerance: float = 300.0) -> None:
        self.storage = storage
        # An event dated past the server's clock by more than this is refused: recency and fold-in are
        # measured from the newest event, so one event ten years ahead froze every customer's freshness.
        self.future_tolerance = future_tolerance
        # Resolves every event's identifiers to one customer (models/identity/graph.py).
        self.graph = graph

    # -- writes -------------------------------------------------------------------------------

    def track(self, event: Event) -> TrackResult:
        check_event(event)
        self._check_not_future(event, "event", time.time())
        self.graph.nodes(event.identifiers, "event.identifiers")  # a bad e-mail or phone names this field
        result = self.track_batch([event])
        if result.rejected:  # cannot happen after check_event; kept so nothing is ever silent
            raise InvalidArgument(result.rejected[0].field, result.rejected[0].reason)
        customer = self.customer_of_event(event.event_id)
        return TrackResult(customer_id=customer or "", duplicate=result.duplicates == 1)

    def track_batch(self, events: Sequence[Event], field: str = "events") -> BatchResult:
        """Stores the valid, new events of a batch in one transaction; reports every other one."""
        now = time.time()
        latest = now + self.future_tolerance
        nodes_of = self.graph.nodes
        rejected: list[Rejection] = []
        # (event, its identifier nodes, its attributes as stored): everything of an event that needs no
        # read of the store is made here, before the transaction takes the writers' lock, so a batch in
        # flight beside this one is not kept waiting for it (issue 11: calls in flight at once).
        valid: list[tuple[Event, tuple[Node, ...], str | None]] = []
        for i, ev in enumerate(events):
            try:
                # Field names are built only for an event that fails a check (issue 11).
                if not event_passes(ev):
                    check_event(ev, f"{field}[{i}]")
                if ev.occurred_at is not None and ev.occurred_at > latest:
                    self._check_not_future(ev, f"{field}[{i}]", now)
                nodes = nodes_of(ev.identifiers, field, i)
            except InvalidArgument as exc:
                # An over-long event_id is not echoed: a batch of them made a reply too large to read.
                echo = ev.event_id if len(ev.event_id) <= MAX_ID_LENGTH else ""
                rejected.append(Rejection(i, echo, exc.field, exc.message))
                continue
            valid.append((ev, nodes, attributes_json(ev.attributes)))
        duplicates = 0
        rows: list[EventRow] = []
        with self.storage.transaction():
            existing = self.storage.stored_event_ids([ev.event_id for ev, _, _ in valid])
            seen: set[str] = set()
            resolver = self.graph.resolver(now, deferred=True)  # its writes: a few statements, below
            resolver.prefetch(nodes for ev, nodes, _ in valid if ev.event_id not in existing)
            customer = resolver.customer
            # The row made by tuple.__new__: a named tuple's own __new__ is a Python function, ~0.2 us
            # more per event (issue 11); the fields are the same, in the same order.
            make_row = tuple.__new__
            for ev, nodes, attributes in valid:
                event_id = ev.event_id
                if event_id in existing or event_id in seen:
                    duplicates += 1
                    continue
                seen.add(event_id)
                at = ev.occurred_at
                rows.append(
                    make_row(
                        EventRow,
                        (
                            event_id,
                            customer(nodes),
                            ev.channel,
                            ev.type,
                            ev.item_id,
                            ev.quantity or 1,
                            ev.price,
                            ev.store_id,
                            ev.order_id,
                            ev.recommendation_id,
                            at if at is not None else now,
                            now,
                            attributes,
                        ),
                    )
                )
            if resolver.merges:  # a later event of the batch joined customers named by earlier rows
                # Only those rows are replaced: a demo batch of 1,000 has a merge almost always.
                find = resolver.find
                for i, r in enumerate(rows):
                    owner = find(r.customer_id)
                    if owner != r.customer_id:
                        rows[i] = r._replace(customer_id=owner)
            resolver.flush()
            self.storage.insert_new_events(rows)  # new: `existing` was read under this transaction
        return BatchResult(accepted=len(rows), duplicates=duplicates, rejected=rejected)

    # -- reads --------------------------------------------------------------------------------

    def _check_not_future(self, ev: Event, field: str, now: float) -> None:
        if ev.occurred_at is not None and ev.occurred_at > now + self.future_tolerance:
            raise InvalidArgument(
                f"{field}.occurred_at",
                f"is {ev.occurred_at - now:,.0f} s past the server's clock; at most "
                f"{self.future_tolerance:,.0f} s (SEENEXT_FUTURE_TOLERANCE_SECONDS) is accepted",
            )

    def customer_of_event(self, event_id: str) -> str | None:
        return self.storage.event_customer(event_id)

    def resolve(self, ident: Identifier) -> str | None:
        """The customer an identifier of any kind recognises; None if unknown (or a shared device)."""
        return self.graph.lookup(ident)

    def purchased_items(self, customer_id: str) -> list[tuple[str, float]]:
        """(item_id, last purchase time) of everything the customer bought more often than returned."""
        bought: dict[str, tuple[float, int]] = {}
        returned: dict[str, int] = {}
        for r in self.storage.purchase_counts(customer_id):
            if r.type == "PURCHASE":
                bought[r.item_id] = (r.last_at, r.times)
            else:
                returned[r.item_id] = r.times
        return [(i, t) for i, (t, n) in bought.items() if n > returned.get(i, 0)]

    def count_events(self) -> int:
        return self.storage.event_count()

    def newest_event_time(self) -> float | None:
        return self.storage.newest_event_time()

    def interaction_log(self, until: float | None = None) -> InteractionLog:
        """Every item event (optionally before a time), as columns."""
        cols = self.storage.interaction_columns(until)
        return InteractionLog(
            customer_id=np.array(cols.customer_id, dtype=object),
            item_id=np.array(cols.item_id, dtype=object),
            type=np.array(cols.type, dtype=object),
            channel=np.array(cols.channel, dtype=object),
            occurred_at=np.array(cols.occurred_at, dtype=np.float64),
            order_id=np.array(cols.order_id, dtype=object),
        )
