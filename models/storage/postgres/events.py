"""PostgreSQL: the events part of the storage interface (models/storage/events.py).

Bulk ingest (TrackBatch) is one binary COPY into `events` per batch of new events (`insert_new_events`,
see _COPY for why). bench/track_postgres.py measures it beside one INSERT … SELECT FROM unnest(one array
per column) and one INSERT per row (`WAY`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from models.storage.changes import QUIET_EVENT_TYPES, STATE, customer_subject
from models.storage.events import EventRow, InteractionColumns, PurchaseCount
from models.storage.postgres.base import Conn, PostgresBase
from models.storage.postgres.changes import append_changes
from models.storage.rows import EVENT_COLUMNS, event_values

# One statement for the whole batch (a way the benchmark measures): each column as one array parameter,
# sent in binary (%b: no quoting), unnested in the batch's order (its `seq` order); ON CONFLICT, the
# unique index on event_id makes a second insert of an event a no-op.
_INSERT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM unnest("
    "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::float8[], %b::text[],"
    " %b::text[], %b::text[], %b::float8[], %b::float8[], %b::text[]) WITH ORDINALITY"
    f" AS batch ({EVENT_COLUMNS}, n) ORDER BY n ON CONFLICT (event_id) DO NOTHING"
)
# insert_new_events (TrackBatch's path): binary COPY straight into `events`, in the batch's order. Its
# rows are new by contract (the caller read `stored_event_ids` in the same transaction, under the
# writers' lock, so no other writer can add one of them before the commit), so nothing needs ON
# CONFLICT; the unique index still refuses a duplicate, and the whole transaction with it. Measured
# (bench/track_postgres.py, 30,000 demo events, durable server, load ~4.5): the unnest INSERT above
# cost 6.8 us of client CPU and 26-28 us of the server's per event, this COPY 1.4 us and 18-20 us
# (psycopg formats binary COPY rows in C; its array dumper is Python, one call per element).
_COPY = f"COPY events ({EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = (
    "text", "text", "text", "text", "text", "int8", "float8", "text", "text", "text", "float8", "float8",
    "text",
)  # fmt: skip
# One pipelined INSERT per row: a way bench/track_postgres.py measures beside the two above.
_INSERT_ROW = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (event_id) DO NOTHING"
)
# How insert_new_events writes: "copy" (the product's), or "unnest" / "rows" (benchmarks only).
WAY = "copy"


class PostgresEvents(PostgresBase):
    def stored_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        rows = self._rows("SELECT event_id FROM events WHERE event_id = ANY(%b)", (list(event_ids),))
        return {str(r[0]) for r in rows}

    def insert_new_events(self, rows: Sequence[EventRow]) -> int:
        values = event_values(rows)
        if not values:
            return 0
        with self._write() as conn:
            if WAY == "copy":
                added = self._copy_in(conn, _COPY, _COPY_TYPES, _typed(values))
            elif WAY == "rows":
                cur = conn.cursor()
                self._trace(_INSERT_ROW)
                cur.executemany(_INSERT_ROW, values)
                added = self._count(cur)
            else:
                added = self._count(self._run(conn, _INSERT, _columns(values)))
            _note_customers(self, conn, rows)
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


def _note_customers(storage: PostgresBase, conn: Conn, rows: Sequence[EventRow]) -> None:
    """The feed rows of the customers whose cached state the events change."""
    changed = sorted({r.customer_id for r in rows if r.type not in QUIET_EVENT_TYPES})
    append_changes(storage, conn, storage._notes, STATE, map(customer_subject, changed))


def _typed(values: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The rows with each value of the Python type its binary COPY column takes: a price of 10 is sent
    as 10.0, a quantity of 2.0 as 2 (a caller's domain values may hold either)."""
    for v in values:
        if type(v[5]) is int and type(v[6]) is float and type(v[10]) is float and type(v[11]) is float:
            yield v
        else:
            yield (*v[:5], int(v[5]), float(v[6]), *v[7:10], float(v[10]), float(v[11]), v[12])


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
