"""PostgreSQL: the privacy part of the storage interface (models/storage/privacy.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from models.storage.changes import FORGET, STATE, customer_subject
from models.storage.postgres.base import PostgresBase
from models.storage.postgres.changes import append_changes
from models.storage.privacy import ConsentRow

# Tables the erase handles by name after the generic "every customer_id column" rule.
_GRAPH_TABLES = ("customers", "customer_merges")


class PostgresPrivacy(PostgresBase):
    def set_consent(self, customer_id: str, channel: str, purpose: str, granted: bool, at: float) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO consent (customer_id, channel, purpose, granted, updated_at)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (customer_id, channel, purpose) DO UPDATE SET granted = excluded.granted,"
                " updated_at = excluded.updated_at",
                (customer_id, channel, purpose, int(granted), at),
            )
            append_changes(self, conn, self._notes, STATE, [customer_subject(customer_id)])

    def consent_rows(self, customer_id: str) -> list[ConsentRow]:
        rows = self._rows(
            "SELECT channel, purpose, granted, updated_at FROM consent WHERE customer_id = %s"
            " ORDER BY purpose, channel",
            (customer_id,),
        )
        return [ConsentRow(c, p, bool(g), float(t)) for c, p, g, t in rows]

    def consent_decisions(
        self, customer_ids: Sequence[str], channel: str, purpose: str
    ) -> dict[str, dict[tuple[str, str], bool]]:
        out: dict[str, dict[tuple[str, str], bool]] = {}
        if not customer_ids:
            return out
        for cid, ch, granted in self._rows(
            "SELECT customer_id, channel, granted FROM consent WHERE purpose = %s AND channel IN (%s, 'ALL')"
            " AND customer_id = ANY(%s)",
            (purpose, channel or "ALL", list(dict.fromkeys(customer_ids))),
        ):
            out.setdefault(cid, {})[(ch, purpose)] = bool(granted)
        return out

    def erase_customer(self, customer_ids: Sequence[str]) -> dict[str, int]:
        ids = list(customer_ids)
        deleted: dict[str, int] = {}
        with self._write() as conn:
            for table in self._customer_tables():
                if table in _GRAPH_TABLES:
                    continue
                deleted[table] = self._count(
                    self._run(conn, f'DELETE FROM "{table}" WHERE customer_id = ANY(%s)', (ids,))
                )
            deleted["customer_merges"] = self._count(
                self._run(
                    conn,
                    "DELETE FROM customer_merges WHERE customer_id = ANY(%s) OR merged_id = ANY(%s)",
                    (ids, ids),
                )
            )
            deleted["customers"] = self._count(
                self._run(conn, "DELETE FROM customers WHERE customer_id = ANY(%s)", (ids,))
            )
            # every replica drops their state and identifiers from memory, and their vectors
            append_changes(self, conn, self._notes, FORGET, map(customer_subject, ids))
        return deleted

    def add_pending_erasures(self, model_user_ids: Sequence[str], at: float) -> None:
        with self._write() as conn:
            self._many(
                conn,
                "INSERT INTO pending_erasures (model_user_id, requested_at) VALUES (%s, %s)"
                " ON CONFLICT (model_user_id) DO UPDATE SET requested_at = excluded.requested_at",
                [(uid, at) for uid in dict.fromkeys(model_user_ids)],
            )

    def pending_erasures(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT model_user_id FROM pending_erasures ORDER BY 1")]

    def clear_pending_erasures(self, model_user_ids: Sequence[str]) -> None:
        if not model_user_ids:
            return
        with self._write() as conn:
            self._run(
                conn,
                "DELETE FROM pending_erasures WHERE model_user_id = ANY(%s)",
                (list(dict.fromkeys(model_user_ids)),),
            )

    def delete_recommendations(self, customer_ids: Sequence[str]) -> int:
        with self._write() as conn:
            return self._count(
                self._run(
                    conn, "DELETE FROM recommendations WHERE customer_id = ANY(%s)", (list(customer_ids),)
                )
            )

    def compact(self) -> None:
        # VACUUM takes the dead rows out of the tables' pages and their indexes, so their space is
        # reused; it cannot run inside a transaction, hence a connection of its own. PostgreSQL has no
        # secure_delete: the WAL and base backups keep erased rows until they are recycled
        # (docs/architecture.md: the operator's retention of WAL archives and backups bounds this).
        tables = ", ".join(f'"{t}"' for t in self._customer_tables())
        with self._reading_outside() as conn:
            self._run(conn, f"VACUUM {tables}")

    def customer_created_at(self, customer_id: str) -> float | None:
        row = self._one("SELECT created_at FROM customers WHERE customer_id = %s", (customer_id,))
        return None if row is None or row[0] is None else float(row[0])

    def customer_rows(
        self, customer_ids: Sequence[str], skip: Sequence[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        ids = list(customer_ids)
        found: list[tuple[str, dict[str, Any]]] = []
        with self._reading() as conn:  # read whole before the first yield: the connection goes back at once
            for table in self._customer_tables():
                if table in skip:
                    continue
                order = " ORDER BY occurred_at, seq" if table == "events" else ""
                cur = self._run(conn, f'SELECT * FROM "{table}" WHERE customer_id = ANY(%s){order}', (ids,))
                names = [d.name for d in cur.description or ()]
                found.extend((table, dict(zip(names, values, strict=True))) for values in cur.fetchall())
        yield from found
