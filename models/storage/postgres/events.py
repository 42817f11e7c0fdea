"""PostgreSQL: the events part of the storage interface (models/storage/events.py).

Bulk ingest: the rows are COPYed (binary) into a temporary table, then one INSERT … SELECT … ON
CONFLICT (event_id) DO NOTHING moves them in, in their order (their `seq`). Measured against
executemany in pipeline mode in bench/track_postgres.py: COPY is the faster of the two
(docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from models.storage.events import EventRow, InteractionColumns, PurchaseCount
from models.storage.postgres.base import Conn, PostgresBase
from models.storage.rows import EVENT_COLUMNS, event_values

# ON CONFLICT: the unique index on event_id makes a second insert of an event a no-op, in this
# process or any other.
_INSERT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (event_id) DO NOTHING"
)
# Rows of one COPY; dropped at the end of the transaction that filled it.
_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS events_in (n BIGINT, event_id TEXT, customer_id TEXT,"
    " channel TEXT, type TEXT, item_id TEXT, quantity BIGINT, price DOUBLE PRECISION, store_id TEXT,"
    " order_id TEXT, recommendation_id TEXT, occurred_at DOUBLE PRECISION, received_at DOUBLE PRECISION,"
    " attributes TEXT) ON COMMIT DELETE ROWS; DELETE FROM events_in"
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
# Below this many rows, one pipelined INSERT per row beats the staging round trips.
COPY_FROM = 64


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
        with self._write() as conn:
            if len(values) < COPY_FROM:
                return self._many(conn, _INSERT, values)
            return self._copy(conn, values)

    def _copy(self, conn: Conn, values: list[tuple[object, ...]]) -> int:
        self._run(
            conn, _STAGE
        )  # one round trip: made if new, emptied of an earlier batch of this transaction
        self._trace(_COPY)
        with conn.cursor() as cur:
            with cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for n, value in enumerate(values):
                    copy.write_row((n, *value))
            self._trace(_MOVE)
            cur.execute(_MOVE)
            return max(cur.rowcount, 0)

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
