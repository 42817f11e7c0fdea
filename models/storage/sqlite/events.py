"""SQLite: the events part of the storage interface (models/storage/events.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain

from models.storage.base import chunks
from models.storage.changes import QUIET_EVENT_TYPES, STATE, customer_subject
from models.storage.events import EventRow, InteractionColumns, PurchaseCount
from models.storage.rows import EVENT_COLUMNS, event_values
from models.storage.sqlite.base import SqliteBase
from models.storage.sqlite.changes import append_changes

# OR IGNORE: the unique index on event_id makes a second insert of an event a no-op.
_INSERT = f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES "
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows per INSERT statement (TrackBatch's): one statement of many rows rather than executemany's one per
# row. Measured on 40,000 demo rows in batches of 1,000 (2026-11-28): 6.9 against 9.6 us of CPU per row;
# and the sqlite3 module lets go of the interpreter lock once per statement instead of once per row, so a
# second TrackBatch converting its events in another thread no longer takes the lock back from this
# insert a thousand times a batch (issue 11: calls in flight at once).
_ROWS_PER_INSERT = 250


@lru_cache(maxsize=8)
def _insert_rows(n: int) -> str:
    return _INSERT + ", ".join([_ROW] * n)


class SqliteEvents(SqliteBase):
    def stored_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        conn = self._read()
        for chunk in chunks(list(event_ids)):
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0] for r in conn.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
            )
        return found

    def insert_new_events(self, rows: Sequence[EventRow]) -> int:
        # OR IGNORE: a stored id is skipped. A plain INSERT (failing on it, as PostgreSQL's COPY does)
        # cost ~4 us more per event through TrackBatch at 200,000 events (ABORT, unlike IGNORE, keeps a
        # statement journal to undo a row's partial index writes).
        values = event_values(rows)
        if not values:
            return 0
        changed = {r.customer_id for r in rows if r.type not in QUIET_EVENT_TYPES}
        with self._write() as conn:
            # Within SQLite's limit of parameters per statement (32,766 since 3.32, 999 before).
            per = max(1, min(_ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 13))
            inserted = 0
            for start in range(0, len(values), per):
                part = values[start : start + per]
                inserted += conn.execute(_insert_rows(len(part)), list(chain.from_iterable(part))).rowcount
            append_changes(conn, self._notes, STATE, map(customer_subject, sorted(changed)))
            return inserted

    def event_customer(self, event_id: str) -> str | None:
        row = self._read().execute("SELECT customer_id FROM events WHERE event_id=?", (event_id,)).fetchone()
        return None if row is None else str(row[0])

    def event_count(self) -> int:
        return int(self._read().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def newest_event_time(self) -> float | None:
        row = self._read().execute("SELECT MAX(occurred_at) FROM events").fetchone()
        return None if row[0] is None else float(row[0])

    def interaction_columns(self, until: float | None = None) -> InteractionColumns:
        sql = (
            "SELECT customer_id, item_id, type, channel, occurred_at, order_id FROM events"
            " WHERE item_id != ''"
        )
        args: tuple[float, ...] = ()
        if until is not None:
            sql += " AND occurred_at < ?"
            args = (until,)
        rows = self._read().execute(sql, args).fetchall()
        if not rows:
            return InteractionColumns((), (), (), (), (), ())
        customer, item, type_, channel, at, order = zip(*rows, strict=True)
        return InteractionColumns(customer, item, type_, channel, at, order)

    def purchase_counts(self, customer_id: str) -> list[PurchaseCount]:
        rows = self._read().execute(
            "SELECT item_id, type, MAX(occurred_at), COUNT(*) FROM events"
            " WHERE customer_id=? AND type IN ('PURCHASE', 'RETURN') GROUP BY item_id, type",
            (customer_id,),
        )
        return [PurchaseCount(i, t, float(last), int(n)) for i, t, last, n in rows]
