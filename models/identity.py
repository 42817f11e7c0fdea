"""Identifiers -> customers.

Each identifier is stored under a key (kind, value_key) pointing at one customer. This module
keeps that mapping; merging of customers joined by a later event is the identity graph's work.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Iterable

from models.domain import Identifier


def value_key(ident: Identifier) -> str:
    """The stored form of an identifier's value (trimmed; case kept except for e-mail)."""
    value = ident.value.strip()
    return value.lower() if ident.kind == "EMAIL" else value


def display(ident: Identifier) -> str:
    """What responses may show of an identifier."""
    return value_key(ident)


def lookup(conn: sqlite3.Connection, ident: Identifier) -> str | None:
    row = conn.execute(
        "SELECT customer_id FROM identifiers WHERE kind=? AND value_key=?", (ident.kind, value_key(ident))
    ).fetchone()
    return row[0] if row else None


def resolve_for_write(
    conn: sqlite3.Connection, identifiers: Iterable[Identifier], now: float
) -> tuple[str, bool]:
    """The customer these identifiers belong to, creating and linking as needed.

    Must run inside the writer's transaction. Returns (customer_id, created).
    """
    idents = list(identifiers)
    known = [(i, lookup(conn, i)) for i in idents]
    owners = [c for _, c in known if c is not None]
    created = not owners
    if owners:
        customer_id = owners[0]
    else:
        ids = [i.value.strip() for i in idents if i.kind == "CUSTOMER_ID"]
        customer_id = ids[0] if ids else "anon-" + uuid.uuid4().hex[:20]
        conn.execute("INSERT OR IGNORE INTO customers (customer_id, created_at) VALUES (?, ?)", (customer_id, now))
    for ident, owner in known:
        if owner is None:
            conn.execute(
                "INSERT OR IGNORE INTO identifiers (kind, value_key, customer_id, display, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (ident.kind, value_key(ident), customer_id, display(ident), now),
            )
    return customer_id, created
