"""SQLite: the identity part of the storage interface (models/storage/identity.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence

from models.storage.base import chunks
from models.storage.changes import STATE, customer_subject, node_subject
from models.storage.identity import CustomerFacts, IdentifierRow, IdentifierView, NewIdentifier
from models.storage.sqlite.base import SqliteBase
from models.storage.sqlite.changes import append_changes

# Tables a merge handles by name; every other table with a customer_id column is re-pointed as is.
_OWN_TABLES = frozenset({"events", "identifiers", "consent", "customers", "customer_merges"})


class SqliteIdentity(SqliteBase):
    # (PRAGMA schema_version, the tables a merge re-points generically): the discovery costs a query
    # per table, so it is redone only when the schema changed.
    _merge_tables: tuple[int, list[str]] | None = None

    # -- identifiers ---------------------------------------------------------------------------------

    def identifier_row(self, kind: str, key: str) -> IdentifierRow | None:
        row = (
            self._read()
            .execute(
                "SELECT customer_id, shared, links FROM identifiers WHERE kind=? AND value_key=?", (kind, key)
            )
            .fetchone()
        )
        return None if row is None else IdentifierRow(kind, key, row[0], bool(row[1]), int(row[2] or 0))

    def identifier_rows(self, kind: str, keys: Sequence[str]) -> list[IdentifierRow]:
        out: list[IdentifierRow] = []
        conn = self._read()
        make = tuple.__new__  # a named tuple's own __new__ is a Python function (see EventRow)
        for chunk in chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            out.extend(
                make(IdentifierRow, (kind, key, owner, bool(shared), int(links or 0)))
                for key, owner, shared, links in conn.execute(
                    "SELECT value_key, customer_id, shared, links FROM identifiers"
                    f" WHERE kind=? AND value_key IN ({marks})",
                    [kind, *chunk],
                )
            )
        return out

    def identifier_rows_of(self, nodes: Sequence[tuple[str, str]]) -> list[IdentifierRow]:
        # One IN list per kind: the primary key (kind, value_key) answers each from the index.
        by_kind: dict[str, list[str]] = {}
        for kind, key in nodes:
            by_kind.setdefault(kind, []).append(key)
        return [row for kind, keys in by_kind.items() for row in self.identifier_rows(kind, keys)]

    def customer_identifier_keys(self, customer_id: str, kinds: Collection[str]) -> list[tuple[str, str]]:
        wanted = sorted(kinds)
        if not wanted:
            return []
        rows = self._read().execute(
            "SELECT kind, value_key FROM identifiers WHERE customer_id=? AND shared=0"
            f" AND kind IN ({','.join('?' * len(wanted))})",
            (customer_id, *wanted),
        )
        return [(str(k), str(v)) for k, v in rows]

    def insert_identifier(
        self, kind: str, key: str, customer_id: str, display: str, created_at: float
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO identifiers"
                " (kind, value_key, customer_id, display, created_at, shared, links)"
                " VALUES (?, ?, ?, ?, ?, 0, 0)",
                (kind, key, customer_id, display, created_at),
            )
            append_changes(conn, self._notes, STATE, [node_subject(kind, key)])  # it recognises someone now

    def insert_identifiers(self, rows: Sequence[NewIdentifier]) -> None:
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO identifiers"
                " (kind, value_key, customer_id, display, created_at, shared, links)"
                " VALUES (?, ?, ?, ?, ?, 0, 0)",
                rows,
            )
            append_changes(conn, self._notes, STATE, [node_subject(r.kind, r.key) for r in rows])

    def add_identifier_links(self, nodes: Sequence[tuple[str, str]]) -> None:
        if nodes:
            with self._write() as conn:
                conn.executemany("UPDATE identifiers SET links=links+1 WHERE kind=? AND value_key=?", nodes)

    def mark_identifiers_shared(self, nodes: Sequence[tuple[str, str]]) -> None:
        if not nodes:
            return
        with self._write() as conn:
            conn.executemany("UPDATE identifiers SET shared=1 WHERE kind=? AND value_key=?", nodes)
            append_changes(conn, self._notes, STATE, [node_subject(k, v) for k, v in nodes])

    def add_identifier_link(self, kind: str, key: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE identifiers SET links=links+1 WHERE kind=? AND value_key=?", (kind, key))

    def mark_identifier_shared(self, kind: str, key: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE identifiers SET shared=1 WHERE kind=? AND value_key=?", (kind, key))
            append_changes(conn, self._notes, STATE, [node_subject(kind, key)])  # it recognises no one now

    def identifier_views(self, customer_id: str) -> list[IdentifierView]:
        rows = self._read().execute(
            "SELECT kind, display, shared, created_at, value_key FROM identifiers WHERE customer_id=?"
            " ORDER BY created_at, kind",
            (customer_id,),
        )
        return [IdentifierView(k, d or "", bool(s), float(t), str(v)) for k, d, s, t, v in rows]

    # -- customers and merges ------------------------------------------------------------------------

    def create_customer(self, customer_id: str, created_at: float) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO customers (customer_id, created_at) VALUES (?, ?)",
                (customer_id, created_at),
            )
            append_changes(conn, self._notes, STATE, [customer_subject(customer_id)])

    def create_customers(self, rows: Sequence[tuple[str, float]]) -> None:
        if not rows:
            return
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO customers (customer_id, created_at) VALUES (?, ?)", rows)
            append_changes(conn, self._notes, STATE, [customer_subject(c) for c, _ in rows])

    def customer_facts(self, customer_ids: Sequence[str], kinds: Collection[str]) -> dict[str, CustomerFacts]:
        ids = list(dict.fromkeys(customer_ids))
        created: dict[str, float | None] = dict.fromkeys(ids)
        keys: dict[str, list[tuple[str, str]]] = {c: [] for c in ids}
        wanted = sorted(kinds)
        conn = self._read()
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            for c, at in conn.execute(
                f"SELECT customer_id, created_at FROM customers WHERE customer_id IN ({marks})", chunk
            ):
                created[c] = None if at is None else float(at)
            if wanted:
                # `+kind`: without statistics SQLite chose the primary key (kind, value_key) for the kind
                # list, reading every identifier of the strong kinds per batch (12 ms per TrackBatch at
                # 16,000 identifiers, growing with the store) instead of the customer_id index (0.4 ms).
                for c, k, v in conn.execute(
                    f"SELECT customer_id, kind, value_key FROM identifiers WHERE customer_id IN ({marks})"
                    f" AND shared=0 AND +kind IN ({','.join('?' * len(wanted))})",
                    [*chunk, *wanted],
                ):
                    keys[c].append((str(k), str(v)))
        return {c: CustomerFacts(created[c], tuple(keys[c])) for c in ids}

    def customer_created_at(self, customer_id: str) -> float | None:
        row = (
            self._read()
            .execute("SELECT created_at FROM customers WHERE customer_id=?", (customer_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    def merge_customers_many(self, merges: Sequence[tuple[str, str, float]], merged_at: float) -> None:
        # Pair by pair: a statement here is a call into the library, not a message to a server.
        for loser, survivor, created_at in merges:
            self.merge_customers(loser, survivor, created_at, merged_at)

    def merge_customers(self, loser: str, survivor: str, created_at: float, merged_at: float) -> None:
        args = (survivor, loser)
        with self._write() as conn:
            conn.execute("UPDATE events SET customer_id=? WHERE customer_id=?", args)
            conn.execute("UPDATE identifiers SET customer_id=? WHERE customer_id=?", args)
            # Consent: where both sides decided on the same channel and purpose, the newer decision stands.
            conn.execute(
                "INSERT INTO consent (customer_id, channel, purpose, granted, updated_at)"
                " SELECT ?, channel, purpose, granted, updated_at FROM consent WHERE customer_id=? AND 1"
                " ON CONFLICT (customer_id, channel, purpose) DO UPDATE SET granted=excluded.granted,"
                " updated_at=excluded.updated_at WHERE excluded.updated_at > consent.updated_at",
                args,
            )
            conn.execute("DELETE FROM consent WHERE customer_id=?", (loser,))
            for table in self._generic_customer_tables(conn):
                conn.execute(f'UPDATE OR REPLACE "{table}" SET customer_id=? WHERE customer_id=?', args)
            conn.execute(
                "INSERT INTO customers (customer_id, created_at) VALUES (?, ?)"
                " ON CONFLICT (customer_id) DO UPDATE SET created_at=excluded.created_at",
                (survivor, created_at),
            )
            conn.execute("DELETE FROM customers WHERE customer_id=?", (loser,))
            conn.execute("UPDATE customer_merges SET customer_id=? WHERE customer_id=?", args)
            conn.execute(
                "INSERT OR REPLACE INTO customer_merges (merged_id, customer_id, merged_at) VALUES (?, ?, ?)",
                (loser, survivor, merged_at),
            )
            append_changes(conn, self._notes, STATE, [customer_subject(loser), customer_subject(survivor)])

    def _generic_customer_tables(self, conn: sqlite3.Connection) -> list[str]:
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        cached = self._merge_tables
        if cached is None or cached[0] != version:
            cached = (version, [t for t in self._customer_tables(conn) if t not in _OWN_TABLES])
            self._merge_tables = cached
        return cached[1]

    def customer_aliases(self, customer_id: str) -> list[str]:
        rows = self._read().execute(
            "SELECT merged_id FROM customer_merges WHERE customer_id=? ORDER BY merged_at, merged_id",
            (customer_id,),
        )
        return [str(r[0]) for r in rows]

    # -- customer attributes -------------------------------------------------------------------------

    def set_customer_attributes(
        self, rows: Sequence[tuple[str, Mapping[str, str]]], updated_at: float
    ) -> None:
        values = [(c, json.dumps(dict(a), sort_keys=True), updated_at) for c, a in rows]
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO customer_attributes (customer_id, attributes, updated_at)"
                " VALUES (?, ?, ?)",
                values,
            )

    def customer_attributes(self, customer_id: str) -> dict[str, str]:
        row = (
            self._read()
            .execute("SELECT attributes FROM customer_attributes WHERE customer_id=?", (customer_id,))
            .fetchone()
        )
        return dict(json.loads(row[0])) if row else {}

    def all_customer_attributes(self) -> dict[str, dict[str, str]]:
        rows = self._read().execute("SELECT customer_id, attributes FROM customer_attributes")
        return {str(c): dict(json.loads(a)) for c, a in rows}

    def customer_attributes_count(self) -> int:
        return int(self._read().execute("SELECT COUNT(*) FROM customer_attributes").fetchone()[0])
