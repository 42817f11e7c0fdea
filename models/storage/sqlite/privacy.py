"""SQLite: the privacy part of the storage interface (models/storage/privacy.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from models.storage.base import chunks
from models.storage.changes import FORGET, STATE, customer_subject
from models.storage.privacy import ConsentRow
from models.storage.sqlite.base import SqliteBase
from models.storage.sqlite.changes import append_changes

# Tables the erase handles by name after the generic "every customer_id column" rule.
_GRAPH_TABLES = ("customers", "customer_merges")


class SqlitePrivacy(SqliteBase):
    def set_consent(self, customer_id: str, channel: str, purpose: str, granted: bool, at: float) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO consent (customer_id, channel, purpose, granted, updated_at)"
                " VALUES (?,?,?,?,?)",
                (customer_id, channel, purpose, int(granted), at),
            )
            append_changes(conn, self._notes, STATE, [customer_subject(customer_id)])

    def consent_rows(self, customer_id: str) -> list[ConsentRow]:
        rows = self._read().execute(
            "SELECT channel, purpose, granted, updated_at FROM consent WHERE customer_id=?"
            " ORDER BY purpose, channel",
            (customer_id,),
        )
        return [ConsentRow(c, p, bool(g), float(t)) for c, p, g, t in rows]

    def consent_decisions(
        self, customer_ids: Sequence[str], channel: str, purpose: str
    ) -> dict[str, dict[tuple[str, str], bool]]:
        out: dict[str, dict[tuple[str, str], bool]] = {}
        conn = self._read()
        for chunk in chunks(list(dict.fromkeys(customer_ids))):
            marks = ",".join("?" * len(chunk))
            for cid, ch, granted in conn.execute(
                "SELECT customer_id, channel, granted FROM consent WHERE purpose=? AND channel IN (?, 'ALL')"
                f" AND customer_id IN ({marks})",
                (purpose, channel or "ALL", *chunk),
            ):
                out.setdefault(cid, {})[(ch, purpose)] = bool(granted)
        return out

    def erase_customer(self, customer_ids: Sequence[str]) -> dict[str, int]:
        ids = list(customer_ids)
        marks = ",".join("?" * len(ids))
        deleted: dict[str, int] = {}
        with self._write() as conn:
            for table in self._customer_tables(conn):
                if table in _GRAPH_TABLES:
                    continue
                deleted[table] = conn.execute(
                    f'DELETE FROM "{table}" WHERE customer_id IN ({marks})', ids
                ).rowcount
            deleted["customer_merges"] = conn.execute(
                f"DELETE FROM customer_merges WHERE customer_id IN ({marks}) OR merged_id IN ({marks})",
                ids + ids,
            ).rowcount
            deleted["customers"] = conn.execute(
                f"DELETE FROM customers WHERE customer_id IN ({marks})", ids
            ).rowcount
            # every replica drops their state and identifiers from memory, and their vectors
            append_changes(conn, self._notes, FORGET, map(customer_subject, ids))
        return deleted

    def add_pending_erasures(self, model_user_ids: Sequence[str], at: float) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO pending_erasures (model_user_id, requested_at) VALUES (?, ?)",
                [(uid, at) for uid in dict.fromkeys(model_user_ids)],
            )

    def pending_erasures(self) -> list[str]:
        return [r[0] for r in self._read().execute("SELECT model_user_id FROM pending_erasures ORDER BY 1")]

    def clear_pending_erasures(self, model_user_ids: Sequence[str]) -> None:
        with self._write() as conn:
            for chunk in chunks(list(dict.fromkeys(model_user_ids))):
                conn.execute(
                    f"DELETE FROM pending_erasures WHERE model_user_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )

    def delete_recommendations(self, customer_ids: Sequence[str]) -> int:
        ids = list(customer_ids)
        with self._write() as conn:
            return int(
                conn.execute(
                    f"DELETE FROM recommendations WHERE customer_id IN ({','.join('?' * len(ids))})", ids
                ).rowcount
            )

    def compact(self) -> None:
        # secure_delete (set at open) zeroes freed cells; the checkpoint moves the WAL into the main file
        # and truncates it, so erased rows leave the WAL too.
        with self.connections.write_lock:
            self.connections.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def customer_created_at(self, customer_id: str) -> float | None:
        row = (
            self._read()
            .execute("SELECT created_at FROM customers WHERE customer_id=?", (customer_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    def customer_rows(
        self, customer_ids: Sequence[str], skip: Sequence[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        ids = list(customer_ids)
        marks = ",".join("?" * len(ids))
        conn = self._read()
        for table in self._customer_tables(conn):
            if table in skip:
                continue
            order = " ORDER BY occurred_at, seq" if table == "events" else ""
            cur = conn.execute(f'SELECT * FROM "{table}" WHERE customer_id IN ({marks}){order}', ids)
            names = [d[0] for d in cur.description]
            for values in cur:
                yield table, dict(zip(names, values, strict=True))
