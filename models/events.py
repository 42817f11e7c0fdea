"""The event store: durable, idempotent ingest of events and reads of the history.

Writes go through one connection under a lock, each call one `BEGIN IMMEDIATE` transaction, so
a batch is all-or-nothing and an acknowledged event is on disk. Idempotency is by event_id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from models.domain import BatchResult, Event, Identifier, Rejection, TrackResult
from models.errors import InvalidArgument
from models.identity import pii
from models.identity.graph import IdentityGraph, Node
from models.storage import Storage
from models.validation import check_event

_INSERT = (
    "INSERT INTO events (event_id, customer_id, channel, type, item_id, quantity, price, store_id,"
    " order_id, recommendation_id, occurred_at, received_at, attributes)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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
    def __init__(self, db: Storage, graph: IdentityGraph | None = None) -> None:
        self.db = db
        # Resolves every event's identifiers to one customer (models/identity/graph.py); by default keyed by
        # the pii.key beside the database file, as Settings.pii_key_path is unless configured.
        self.graph = graph or IdentityGraph(pii.open_key(db.path.parent / "pii.key", db.writer))

    # -- writes -------------------------------------------------------------------------------

    def track(self, event: Event) -> TrackResult:
        check_event(event)
        self.graph.nodes(event.identifiers, "event.identifiers")  # a bad e-mail or phone names this field
        result = self.track_batch([event])
        if result.rejected:  # cannot happen after check_event; kept so nothing is ever silent
            raise InvalidArgument(result.rejected[0].field, result.rejected[0].reason)
        customer = self.customer_of_event(event.event_id)
        return TrackResult(customer_id=customer or "", duplicate=result.duplicates == 1)

    def track_batch(self, events: Sequence[Event], field: str = "events") -> BatchResult:
        """Stores the valid, new events of a batch in one transaction; reports every other one."""
        now = time.time()
        rejected: list[Rejection] = []
        valid: list[tuple[Event, tuple[Node, ...]]] = []
        for i, ev in enumerate(events):
            try:
                check_event(ev, f"{field}[{i}]")
                nodes = self.graph.nodes(ev.identifiers, field, i)
            except InvalidArgument as exc:
                rejected.append(Rejection(i, ev.event_id, exc.field, exc.message))
                continue
            valid.append((ev, nodes))
        duplicates = 0
        rows = []
        conn = self.db.writer
        with self.db.write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                existing = self._existing_ids(conn, [ev.event_id for ev, _ in valid])
                seen: set[str] = set()
                resolver = self.graph.resolver(conn, now)
                resolver.prefetch(n for ev, nodes in valid if ev.event_id not in existing for n in nodes)
                for ev, nodes in valid:
                    if ev.event_id in existing or ev.event_id in seen:
                        duplicates += 1
                        continue
                    seen.add(ev.event_id)
                    rows.append(_row(ev, resolver.resolve(nodes).customer_id, now))
                if resolver.merges:  # a later event of the batch joined customers named by earlier rows
                    rows = [(r[0], resolver.find(r[1]), *r[2:]) for r in rows]
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return BatchResult(accepted=len(rows), duplicates=duplicates, rejected=rejected)

    @staticmethod
    def _existing_ids(conn, ids: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0] for r in conn.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
            )
        return found

    # -- reads --------------------------------------------------------------------------------

    def customer_of_event(self, event_id: str) -> str | None:
        row = (
            self.db.reader()
            .execute("SELECT customer_id FROM events WHERE event_id=?", (event_id,))
            .fetchone()
        )
        return row[0] if row else None

    def customer_exists(self, customer_id: str) -> bool:
        return (
            self.db.reader().execute("SELECT 1 FROM customers WHERE customer_id=?", (customer_id,)).fetchone()
            is not None
        )

    def resolve(self, ident: Identifier) -> str | None:
        """The customer an identifier of any kind recognises; None if unknown (or a shared device)."""
        return self.graph.lookup(self.db.reader(), ident)

    def aliases(self, customer_id: str) -> list[str]:
        """Ids merged into this customer (a model trained before the merge knows them)."""
        return self.graph.aliases(self.db.reader(), customer_id)

    def purchase_history(self, customer_id: str) -> list[tuple[str, str, float, int]]:
        """(item_id, PURCHASE or RETURN, last time, count) per item and type: one read a request shares
        between its exclusions and its repurchase blend."""
        return (
            self.db.reader()
            .execute(
                "SELECT item_id, type, MAX(occurred_at), COUNT(*) FROM events"
                " WHERE customer_id=? AND type IN ('PURCHASE', 'RETURN') GROUP BY item_id, type",
                (customer_id,),
            )
            .fetchall()
        )

    def purchased_items(
        self,
        customer_id: str,
        history: list[tuple[str, str, float, int]] | None = None,
    ) -> list[tuple[str, float]]:
        """(item_id, last purchase time) of everything the customer bought and did not return
        (from `history`, their purchase_history, when the caller has already read it)."""
        rows = self.purchase_history(customer_id) if history is None else history
        bought: dict[str, tuple[float, int]] = {}
        returned: dict[str, int] = {}
        for item_id, etype, last, n in rows:
            if etype == "PURCHASE":
                bought[item_id] = (last, n)
            else:
                returned[item_id] = n
        return [(i, t) for i, (t, n) in bought.items() if n > returned.get(i, 0)]

    def recent_items(self, customer_id: str, since: float, limit: int = 50) -> list[tuple[str, str, float]]:
        """(item_id, type, occurred_at) of the customer's item events since a time, newest first."""
        return (
            self.db.reader()
            .execute(
                "SELECT item_id, type, occurred_at FROM events WHERE customer_id=? AND occurred_at>=?"
                " AND item_id != '' ORDER BY occurred_at DESC LIMIT ?",
                (customer_id, since, limit),
            )
            .fetchall()
        )

    def count_events(self) -> int:
        return int(self.db.reader().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def newest_event_time(self) -> float | None:
        row = self.db.reader().execute("SELECT MAX(occurred_at) FROM events").fetchone()
        return row[0]

    def interaction_log(self, until: float | None = None) -> InteractionLog:
        """Every item event (optionally before a time), as columns."""
        sql = "SELECT customer_id, item_id, type, channel, occurred_at, order_id FROM events WHERE item_id != ''"
        args: tuple = ()
        if until is not None:
            sql += " AND occurred_at < ?"
            args = (until,)
        rows = self.db.reader().execute(sql, args).fetchall()
        if not rows:
            empty = np.array([], dtype=object)
            return InteractionLog(empty, empty, empty, empty, np.array([], dtype=np.float64), empty)
        cols = list(zip(*rows))
        return InteractionLog(
            customer_id=np.array(cols[0], dtype=object),
            item_id=np.array(cols[1], dtype=object),
            type=np.array(cols[2], dtype=object),
            channel=np.array(cols[3], dtype=object),
            occurred_at=np.array(cols[4], dtype=np.float64),
            order_id=np.array(cols[5], dtype=object),
        )

    def iter_events(self, customer_id: str) -> Iterator[dict]:
        cur = self.db.reader().execute(
            "SELECT * FROM events WHERE customer_id=? ORDER BY occurred_at DESC, seq DESC", (customer_id,)
        )
        names = [d[0] for d in cur.description]
        for row in cur:
            yield dict(zip(names, row))


def _row(ev: Event, customer: str, now: float) -> tuple:
    return (
        ev.event_id,
        customer,
        ev.channel,
        ev.type,
        ev.item_id,
        ev.quantity or 1,
        ev.price,
        ev.store_id,
        ev.order_id,
        ev.recommendation_id,
        ev.occurred_at if ev.occurred_at is not None else now,
        now,
        json.dumps(ev.attributes, sort_keys=True) if ev.attributes else None,
    )
