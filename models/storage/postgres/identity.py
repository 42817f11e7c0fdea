"""PostgreSQL: the identity part of the storage interface (models/storage/identity.py).

Lists are sent as binary arrays (`%b`): psycopg's text array dumper quotes every element through a
regular expression, ~1.5 us each, the binary one ~0.4 us, and a TrackBatch of 1,000 demo events sends
~6,000 elements (issue 11). The feed's rows (changes.py) and the batch's event ids (events.py) too.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence

from models.storage.changes import STATE, customer_subject, node_subject
from models.storage.identity import CustomerFacts, IdentifierRow, IdentifierView, NewIdentifier
from models.storage.postgres.base import Conn, PostgresBase
from models.storage.postgres.changes import append_changes

# Tables a merge handles by name; every other table with a customer_id column is re-pointed as is.
_OWN_TABLES = frozenset({"events", "identifiers", "consent", "customers", "customer_merges"})


class PostgresIdentity(PostgresBase):
    # -- identifiers ---------------------------------------------------------------------------------

    def identifier_row(self, kind: str, key: str) -> IdentifierRow | None:
        row = self._one(
            "SELECT customer_id, shared, links FROM identifiers WHERE kind = %s AND value_key = %s",
            (kind, key),
        )
        return None if row is None else IdentifierRow(kind, key, row[0], bool(row[1]), int(row[2] or 0))

    def identifier_rows(self, kind: str, keys: Sequence[str]) -> list[IdentifierRow]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        rows = self._rows(
            "SELECT value_key, customer_id, shared, links FROM identifiers"
            " WHERE kind = %s AND value_key = ANY(%b)",
            (kind, wanted),
        )
        return [
            IdentifierRow(kind, key, owner, bool(shared), int(links or 0))
            for key, owner, shared, links in rows
        ]

    def identifier_rows_of(self, nodes: Sequence[tuple[str, str]]) -> list[IdentifierRow]:
        # One statement whatever the kinds: inside a write transaction every read is a round trip.
        wanted = list(dict.fromkeys(nodes))
        if not wanted:
            return []
        rows = self._rows(
            "SELECT i.kind, i.value_key, i.customer_id, i.shared, i.links FROM identifiers i"
            " JOIN unnest(%b::text[], %b::text[]) AS w(kind, value_key)"
            " ON i.kind = w.kind AND i.value_key = w.value_key",
            ([k for k, _ in wanted], [v for _, v in wanted]),
        )
        make = tuple.__new__  # a named tuple's own __new__ is a Python function (see EventRow)
        return [
            make(IdentifierRow, (kind, key, owner, bool(shared), int(links or 0)))
            for kind, key, owner, shared, links in rows
        ]

    def customer_identifier_keys(self, customer_id: str, kinds: Collection[str]) -> list[tuple[str, str]]:
        wanted = sorted(kinds)
        if not wanted:
            return []
        rows = self._rows(
            "SELECT kind, value_key FROM identifiers WHERE customer_id = %s AND shared = 0"
            " AND kind = ANY(%b)",
            (customer_id, wanted),
        )
        return [(str(k), str(v)) for k, v in rows]

    def insert_identifier(
        self, kind: str, key: str, customer_id: str, display: str, created_at: float
    ) -> None:
        with self._write() as conn:
            self._send(
                conn,
                "INSERT INTO identifiers (kind, value_key, customer_id, display, created_at, shared, links)"
                " VALUES (%s, %s, %s, %s, %s, 0, 0) ON CONFLICT (kind, value_key) DO NOTHING",
                (kind, key, customer_id, display, created_at),
            )
            # it recognises someone now
            append_changes(self, conn, self._notes, STATE, [node_subject(kind, key)])

    def insert_identifiers(self, rows: Sequence[NewIdentifier]) -> None:
        if not rows:
            return
        with self._write() as conn:
            # One statement for the batch (column arrays, in order): a pipelined INSERT per identifier
            # cost ~0.5 ms of client time each.
            self._send(
                conn,
                "INSERT INTO identifiers (kind, value_key, customer_id, display, created_at, shared, links)"
                " SELECT kind, value_key, customer_id, display, created_at, 0, 0 FROM unnest(%b::text[],"
                " %b::text[], %b::text[], %b::text[], %b::float8[]) WITH ORDINALITY"
                " AS b(kind, value_key, customer_id, display, created_at, n)"
                " ORDER BY n ON CONFLICT (kind, value_key) DO NOTHING",
                (
                    [r.kind for r in rows],
                    [r.key for r in rows],
                    [r.customer_id for r in rows],
                    [r.display for r in rows],
                    [float(r.created_at) for r in rows],
                ),
            )
            append_changes(self, conn, self._notes, STATE, [node_subject(r.kind, r.key) for r in rows])

    def add_identifier_links(self, nodes: Sequence[tuple[str, str]]) -> None:
        if not nodes:
            return
        counts: dict[tuple[str, str], int] = {}
        for node in nodes:
            counts[node] = counts.get(node, 0) + 1
        with self._write() as conn:
            self._send(
                conn,
                "UPDATE identifiers i SET links = i.links + b.n"
                " FROM unnest(%b::text[], %b::text[], %b::int[]) AS b(kind, value_key, n)"
                " WHERE i.kind = b.kind AND i.value_key = b.value_key",
                ([k for k, _ in counts], [v for _, v in counts], list(counts.values())),
            )

    def mark_identifiers_shared(self, nodes: Sequence[tuple[str, str]]) -> None:
        if not nodes:
            return
        with self._write() as conn:
            self._send(
                conn,
                "UPDATE identifiers i SET shared = 1"
                " FROM unnest(%b::text[], %b::text[]) AS b(kind, value_key)"
                " WHERE i.kind = b.kind AND i.value_key = b.value_key",
                ([k for k, _ in nodes], [v for _, v in nodes]),
            )
            append_changes(self, conn, self._notes, STATE, [node_subject(k, v) for k, v in nodes])

    def add_identifier_link(self, kind: str, key: str) -> None:
        with self._write() as conn:
            self._send(
                conn,
                "UPDATE identifiers SET links = links + 1 WHERE kind = %s AND value_key = %s",
                (kind, key),
            )

    def mark_identifier_shared(self, kind: str, key: str) -> None:
        with self._write() as conn:
            self._send(
                conn, "UPDATE identifiers SET shared = 1 WHERE kind = %s AND value_key = %s", (kind, key)
            )
            # it recognises no one now
            append_changes(self, conn, self._notes, STATE, [node_subject(kind, key)])

    def identifier_views(self, customer_id: str) -> list[IdentifierView]:
        rows = self._rows(
            "SELECT kind, display, shared, created_at, value_key FROM identifiers WHERE customer_id = %s"
            " ORDER BY created_at, kind",
            (customer_id,),
        )
        return [IdentifierView(k, d or "", bool(s), float(t), str(v)) for k, d, s, t, v in rows]

    # -- customers and merges ------------------------------------------------------------------------

    def create_customer(self, customer_id: str, created_at: float) -> None:
        with self._write() as conn:
            self._send(
                conn,
                "INSERT INTO customers (customer_id, created_at) VALUES (%s, %s)"
                " ON CONFLICT (customer_id) DO NOTHING",
                (customer_id, created_at),
            )
            append_changes(self, conn, self._notes, STATE, [customer_subject(customer_id)])

    def create_customers(self, rows: Sequence[tuple[str, float]]) -> None:
        if not rows:
            return
        with self._write() as conn:
            self._send(
                conn,
                "INSERT INTO customers (customer_id, created_at) SELECT customer_id, created_at"
                " FROM unnest(%b::text[], %b::float8[]) WITH ORDINALITY AS b(customer_id, created_at, n)"
                " ORDER BY n ON CONFLICT (customer_id) DO NOTHING",
                ([c for c, _ in rows], [float(t) for _, t in rows]),
            )
            append_changes(self, conn, self._notes, STATE, [customer_subject(c) for c, _ in rows])

    def customer_facts(self, customer_ids: Sequence[str], kinds: Collection[str]) -> dict[str, CustomerFacts]:
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        created: dict[str, float | None] = dict.fromkeys(ids)
        keys: dict[str, list[tuple[str, str]]] = {c: [] for c in ids}
        # One round trip: the customers' rows and their identifiers, tagged.
        for tag, c, k, v, at in self._rows(
            "SELECT 'c', customer_id, NULL, NULL, created_at FROM customers WHERE customer_id = ANY(%b)"
            " UNION ALL SELECT 'i', customer_id, kind, value_key, NULL FROM identifiers"
            " WHERE customer_id = ANY(%b) AND shared = 0 AND kind = ANY(%b)",
            (ids, ids, sorted(kinds)),
        ):
            if tag == "c":
                created[c] = None if at is None else float(at)
            else:
                keys[c].append((str(k), str(v)))
        return {c: CustomerFacts(created[c], tuple(keys[c])) for c in ids}

    def customer_created_at(self, customer_id: str) -> float | None:
        row = self._one("SELECT created_at FROM customers WHERE customer_id = %s", (customer_id,))
        return None if row is None or row[0] is None else float(row[0])

    def merge_customers(self, loser: str, survivor: str, created_at: float, merged_at: float) -> None:
        args = (survivor, loser)
        with self._write() as conn:
            self._send(conn, "UPDATE events SET customer_id = %s WHERE customer_id = %s", args)
            self._send(conn, "UPDATE identifiers SET customer_id = %s WHERE customer_id = %s", args)
            self._merge_consent_and_others(conn, loser, survivor)
            self._send(
                conn,
                "INSERT INTO customers (customer_id, created_at) VALUES (%s, %s)"
                " ON CONFLICT (customer_id) DO UPDATE SET created_at = excluded.created_at",
                (survivor, created_at),
            )
            self._send(conn, "DELETE FROM customers WHERE customer_id = %s", (loser,))
            self._send(conn, "UPDATE customer_merges SET customer_id = %s WHERE customer_id = %s", args)
            self._send(
                conn,
                "INSERT INTO customer_merges (merged_id, customer_id, merged_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (merged_id) DO UPDATE SET customer_id = excluded.customer_id,"
                " merged_at = excluded.merged_at",
                (loser, survivor, merged_at),
            )
            append_changes(
                self, conn, self._notes, STATE, [customer_subject(loser), customer_subject(survivor)]
            )

    def merge_customers_many(self, merges: Sequence[tuple[str, str, float]], merged_at: float) -> None:
        if len(merges) <= 1:
            for loser, survivor, created_at in merges:
                self.merge_customers(loser, survivor, created_at, merged_at)
            return
        # What merging pair by pair would leave: every loser's rows with the root its chain of merges
        # ends at (a loser is merged once, then is no root), each root's created_at from the last merge
        # into it. Consent and the other tables keep their per-pair rules (the newer decision, the
        # loser's row on a collision), pair by pair in order; the customers and the aliases recorded
        # take one statement for all (~8 merges of a demo batch: ~40 statements fewer, issue 11).
        parent = {loser: survivor for loser, survivor, _ in merges}

        def root(c: str) -> str:
            while c in parent:
                c = parent[c]
            return c

        losers = [loser for loser, _, _ in merges]
        roots = [root(loser) for loser in losers]
        born = {survivor: created_at for _, survivor, created_at in merges}  # the last one into each
        kept = list(dict.fromkeys(roots))
        pairs = (losers, roots)
        with self._write() as conn:
            for loser, r in zip(losers, roots, strict=True):
                # One re-pointing UPDATE per table and pair, as merge_customers sends: joined to the
                # pairs as one statement, the planner of a store without statistics yet (a new or fast
                # growing one) took a hash join over every events row (78 ms at 200,000 events
                # against 1 ms through the customer_id index).
                for table in ("events", "identifiers", "customer_merges"):
                    repoint = f"UPDATE {table} SET customer_id = %s WHERE customer_id = %s"
                    self._send(conn, repoint, (r, loser))
            for loser, survivor, _ in merges:
                self._merge_consent_and_others(conn, loser, survivor)
            self._send(
                conn,
                "INSERT INTO customers (customer_id, created_at)"
                " SELECT * FROM unnest(%b::text[], %b::float8[])"
                " ON CONFLICT (customer_id) DO UPDATE SET created_at = excluded.created_at",
                (kept, [float(born[r]) for r in kept]),
            )
            self._send(conn, "DELETE FROM customers WHERE customer_id = ANY(%b::text[])", (losers,))
            self._send(
                conn,
                "INSERT INTO customer_merges (merged_id, customer_id, merged_at)"
                " SELECT loser, root, %s FROM unnest(%b::text[], %b::text[]) AS m(loser, root)"
                " ON CONFLICT (merged_id) DO UPDATE SET customer_id = excluded.customer_id,"
                " merged_at = excluded.merged_at",
                (merged_at, *pairs),
            )
            subjects = [customer_subject(c) for loser, survivor, _ in merges for c in (loser, survivor)]
            append_changes(self, conn, self._notes, STATE, subjects)

    def _merge_consent_and_others(self, conn: Conn, loser: str, survivor: str) -> None:
        """The loser's consent (where both sides decided on the same channel and purpose, the newer
        decision stands) and its rows of the tables a merge does not name, to the survivor."""
        self._send(
            conn,
            "INSERT INTO consent (customer_id, channel, purpose, granted, updated_at)"
            " SELECT %s, channel, purpose, granted, updated_at FROM consent WHERE customer_id = %s"
            " ON CONFLICT (customer_id, channel, purpose) DO UPDATE SET granted = excluded.granted,"
            " updated_at = excluded.updated_at WHERE excluded.updated_at > consent.updated_at",
            (survivor, loser),
        )
        self._send(conn, "DELETE FROM consent WHERE customer_id = %s", (loser,))
        for table in self._customer_tables():
            if table not in _OWN_TABLES:
                self._repoint(conn, table, loser, survivor)

    def _repoint(self, conn: Conn, table: str, loser: str, survivor: str) -> None:
        """SQLite's `UPDATE OR REPLACE`: the survivor's rows a re-pointed row would collide with (on a
        unique key holding customer_id) give way to the loser's, then the loser's rows move."""
        for key in self._unique_keys[table]:
            same = "".join(f' AND l."{c}" IS NOT DISTINCT FROM s."{c}"' for c in key if c != "customer_id")
            self._send(
                conn,
                f'DELETE FROM "{table}" s WHERE s.customer_id = %s AND EXISTS'
                f' (SELECT 1 FROM "{table}" l WHERE l.customer_id = %s{same})',
                (survivor, loser),
            )
        self._send(conn, f'UPDATE "{table}" SET customer_id = %s WHERE customer_id = %s', (survivor, loser))

    def customer_aliases(self, customer_id: str) -> list[str]:
        rows = self._rows(
            "SELECT merged_id FROM customer_merges WHERE customer_id = %s ORDER BY merged_at, merged_id",
            (customer_id,),
        )
        return [str(r[0]) for r in rows]

    # -- customer attributes -------------------------------------------------------------------------

    def set_customer_attributes(
        self, rows: Sequence[tuple[str, Mapping[str, str]]], updated_at: float
    ) -> None:
        # a later row of a customer wins: one row per customer, the last one
        last = {c: json.dumps(dict(a), sort_keys=True) for c, a in rows}
        with self._write() as conn:
            self._many(
                conn,
                "INSERT INTO customer_attributes (customer_id, attributes, updated_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (customer_id) DO UPDATE SET attributes = excluded.attributes,"
                " updated_at = excluded.updated_at",
                [(c, a, updated_at) for c, a in last.items()],
            )

    def customer_attributes(self, customer_id: str) -> dict[str, str]:
        row = self._one("SELECT attributes FROM customer_attributes WHERE customer_id = %s", (customer_id,))
        return dict(json.loads(row[0])) if row else {}

    def all_customer_attributes(self) -> dict[str, dict[str, str]]:
        rows = self._rows("SELECT customer_id, attributes FROM customer_attributes")
        return {str(c): dict(json.loads(a)) for c, a in rows}

    def customer_attributes_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM customer_attributes")
        return int(row[0]) if row else 0
