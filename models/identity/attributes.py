"""Customer attributes (age band, segment, club status, …): the user features of the model.

Kept in their own table keyed by the resolved customer, written by the importers (and any caller
that knows a customer's attributes), read by training. Values are short strings; an empty value
means "unknown" and is not a feature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from models.domain import Identifier
from models.identity.graph import IdentityGraph
from models.storage import Storage

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS customer_attributes"
    " (customer_id TEXT PRIMARY KEY, attributes TEXT NOT NULL, updated_at REAL NOT NULL)"
)


class CustomerAttributes:
    """The table has a customer_id column, so identity merges re-point it and Forget erases it."""

    def __init__(self, db: Storage, graph: IdentityGraph) -> None:
        self.db = db
        self.graph = graph
        with db.write_lock:
            db.writer.execute(_SCHEMA)

    def upsert(self, rows: Sequence[tuple[Identifier, Mapping[str, str]]]) -> int:
        """Sets the attributes of each identified customer (created if new, as an event would)."""
        now = time.time()
        nodes = [self.graph.nodes([ident], "customers", i) for i, (ident, _) in enumerate(rows)]
        with self.db.transaction() as conn:
            resolver = self.graph.resolver(conn, now)
            values = []
            for node, (_, attrs) in zip(nodes, rows):
                customer_id = resolver.resolve(node).customer_id
                clean = {str(k): str(v) for k, v in attrs.items() if v is not None and str(v) != ""}
                values.append((customer_id, json.dumps(clean, sort_keys=True), now))
            if resolver.merges:
                values = [(resolver.find(c), a, t) for c, a, t in values]
            conn.executemany(
                "INSERT OR REPLACE INTO customer_attributes (customer_id, attributes, updated_at)"
                " VALUES (?, ?, ?)",
                values,
            )
        return len(rows)

    def get(self, customer_id: str) -> dict[str, str]:
        row = (
            self.db.reader()
            .execute("SELECT attributes FROM customer_attributes WHERE customer_id=?", (customer_id,))
            .fetchone()
        )
        return json.loads(row[0]) if row else {}

    def all(self) -> dict[str, dict[str, str]]:
        return {
            c: json.loads(a)
            for c, a in self.db.reader().execute("SELECT customer_id, attributes FROM customer_attributes")
        }

    def count(self) -> int:
        return int(self.db.reader().execute("SELECT COUNT(*) FROM customer_attributes").fetchone()[0])
