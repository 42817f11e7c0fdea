"""PostgreSQL: the events part of the storage interface (models/storage/events.py).

Bulk ingest is one INSERT … SELECT FROM unnest(one array per column) … ON CONFLICT (event_id) DO
NOTHING per batch (see _INSERT for why this one of the three ways measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.storage.changes import QUIET_EVENT_TYPES, STATE, customer_subject
from models.storage.events import EventRow, InteractionColumns, PurchaseCount
from models.storage.postgres.base import LOCK_WRITERS, PostgresBase
from models.storage.postgres.changes import append_changes
from models.storage.rows import EVENT_COLUMNS, event_values

# ON CONFLICT: the unique index on event_id makes a second insert of an event a no-op, in this
# process or any other. One statement for the whole batch: each column as one array parameter, sent
# in binary (%b: no quoting), unnested in the batch's order (its `seq` order). Unlike COPY it runs
# inside the transaction's pipeline, and it was the fastest of the three ways bench/track_postgres.py
# measures (20,000 demo events, durable server: unnest 25,600/s, COPY to a temp table 18,300/s, one
# pipelined INSERT per row 11,500/s).
_INSERT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM unnest("
    "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::float8[], %b::text[],"
    " %b::text[], %b::text[], %b::float8[], %b::float8[], %b::text[]) WITH ORDINALITY"
    f" AS batch ({EVENT_COLUMNS}, n) ORDER BY n ON CONFLICT (event_id) DO NOTHING"
)
# The ways measured against it (bench/track_postgres.py): one pipelined INSERT per row, and COPY into
# a temporary table then one INSERT … SELECT (COPY cannot run inside a pipeline).
_INSERT_ROW = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (event_id) DO NOTHING"
)
_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS events_in (n BIGINT, event_id TEXT, customer_id TEXT,"
    " channel TEXT, type TEXT, item_id TEXT, quantity BIGINT, price DOUBLE PRECISION, store_id TEXT,"
    " order_id TEXT, recommendation_id TEXT, occurred_at DOUBLE PRECISION, received_at DOUBLE PRECISION,"
    " attributes TEXT) ON COMMIT DELETE ROWS"
)
_COPY = f"COPY events_in (n, {EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = [
    "int8", "text", "text", "text", "text", "text", "int8", "float8", "text", "text", "text",
    "float8", "float8", "text",
]  # fmt: skip
_MOVE = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events_in ORDER BY n"
    " ON CONFLICT (event_id) DO NOTHING"
)
# How insert_events writes: "unnest" (the product's), or "rows" / "copy" (benchmarks only).
WAY = "unnest"


class PostgresEvents(PostgresBase):
    def stored_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        rows = self._rows("SELECT event_id FROM events WHERE event_id = ANY(%s)", (list(event_ids),))
        return {str(r[0]) for r in rows}

    def insert_events(self, rows: Sequence[EventRow]) -> int:
        values = event_values(rows)
        if not values:
            return 0
        changed = sorted({r.customer_id for r in rows if r.type not in QUIET_EVENT_TYPES})
        if WAY == "copy":
            added = self._copy(values)  # a transaction of its own (benchmarks only): the feed rows after it
            with self._write() as conn:
                append_changes(self, conn, self._notes, STATE, map(customer_subject, changed))
            return added
        with self._write() as conn:
            if WAY == "rows":
                cur = conn.cursor()
                self._trace(_INSERT_ROW)
                cur.executemany(_INSERT_ROW, values)
                added = self._count(cur)
            else:
                added = self._count(self._run(conn, _INSERT, _columns(values)))
            append_changes(self, conn, self._notes, STATE, map(customer_subject, changed))
            return added

    def _copy(self, values: list[tuple[object, ...]]) -> int:
        """COPY cannot run in a pipeline: a transaction of its own (benchmarks only: it is not part of
        the thread's transaction)."""
        with self._reading_outside() as conn, conn.transaction(), conn.cursor() as cur:
            self._run(conn, LOCK_WRITERS)
            self._run(conn, _STAGE)
            with cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for n, value in enumerate(values):
                    copy.write_row((n, *value))
            cur.execute(_MOVE)
            added = max(cur.rowcount, 0)
            cur.execute("DELETE FROM events_in")
            return added

    def event_customer(self, event_id: str) -> str | None:
        row = self._one("SELECT customer_id FROM events WHERE event_id = %s", (event_id,))
        return None if row is None else str(row[0])

    def event_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM events")
        return int(row[0]) if row else 0

    def newest_event_time(self) -> float | None:
        row = self._one("SELECT MAX(occurred_at) FROM events")
        return None if row is None or row[0] is None else float(row[0])

    def interaction_columns(self, until: float | None = None) -> InteractionColumns:
        sql = (
            "SELECT customer_id, item_id, type, channel, occurred_at, order_id FROM events"
            " WHERE item_id != ''"
        )
        args: tuple[float, ...] = ()
        if until is not None:
            sql += " AND occurred_at < %s"
            args = (until,)
        rows = self._rows(sql, args)
        if not rows:
            return InteractionColumns((), (), (), (), (), ())
        customer, item, type_, channel, at, order = zip(*rows, strict=True)
        return InteractionColumns(customer, item, type_, channel, at, order)

    def purchase_counts(self, customer_id: str) -> list[PurchaseCount]:
        rows = self._rows(
            "SELECT item_id, type, MAX(occurred_at), COUNT(*) FROM events"
            " WHERE customer_id = %s AND type IN ('PURCHASE', 'RETURN') GROUP BY item_id, type",
            (customer_id,),
        )
        return [PurchaseCount(i, t, float(last), int(n)) for i, t, last, n in rows]


def _columns(values: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows as one list per column, each of one type (a binary array takes no mix: a price of 10
    beside 9.5 is sent as 10.0)."""
    columns: list[list[Any]] = [list(c) for c in zip(*values, strict=True)]
    for n in _FLOAT_COLUMNS:
        columns[n] = [float(v) for v in columns[n]]
    columns[_QUANTITY] = [int(v) for v in columns[_QUANTITY]]
    return columns


# positions in EVENT_COLUMNS: quantity; price, occurred_at, received_at
_QUANTITY = 5
_FLOAT_COLUMNS = (6, 10, 11)
