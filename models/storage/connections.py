"""The SQLite file: connections, pragmas and schema (created through sqlite-utils).

WAL lets readers run beside the one writer; synchronous=FULL makes every acknowledged commit
durable against power loss as well as against a killed process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

SCHEMA_VERSION = 1


def connect(path: Path, sync_full: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync_full else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    if "events" not in db.table_names():
        db.table("events").create(
            {
                "seq": int,
                "event_id": str,
                "customer_id": str,
                "channel": str,
                "type": str,
                "item_id": str,
                "quantity": int,
                "price": float,
                "store_id": str,
                "order_id": str,
                "recommendation_id": str,
                "occurred_at": float,
                "received_at": float,
                "attributes": str,
            },
            pk="seq",
            not_null={"event_id", "customer_id", "channel", "type", "occurred_at"},
        )
        # The indexes the service needs: idempotency, a customer's history (exclusions, profile),
        # and time windows (popularity, reports).
        db.table("events").create_index(["event_id"], unique=True)
        db.table("events").create_index(["customer_id", "type", "item_id"])
        db.table("events").create_index(["occurred_at"])
    if "identifiers" not in db.table_names():
        db.table("identifiers").create(
            {
                "kind": str,
                "value_key": str,
                "customer_id": str,
                "display": str,
                "created_at": float,
                "shared": int,
                "links": int,  # the identity graph's over-merging guard (models/identity/graph.py)
            },
            pk=("kind", "value_key"),
            defaults={"shared": 0, "links": 0},
        )
        db.table("identifiers").create_index(["customer_id"])
    for column in ("shared", "links"):  # files made before the identity graph
        if column not in db.table("identifiers").columns_dict:
            db.table("identifiers").add_column(column, int, not_null_default=0)
    if "customer_merges" not in db.table_names():
        # Ids merged away into a surviving customer: their model rows still stand for the survivor.
        db.table("customer_merges").create(
            {"merged_id": str, "customer_id": str, "merged_at": float},
            pk="merged_id",
        )
        db.table("customer_merges").create_index(["customer_id"])
    if "customers" not in db.table_names():
        db.table("customers").create({"customer_id": str, "created_at": float}, pk="customer_id")
    if "items" not in db.table_names():
        db.table("items").create(
            {
                "item_id": str,
                "title": str,
                "category": str,
                "brand": str,
                "price": float,
                "repeatable": int,
                "active": int,
                "attributes": str,
                "accessory_for": str,
                "offer": str,
                "updated_at": float,
            },
            pk="item_id",
        )
    if "stock" not in db.table_names():
        db.table("stock").create(
            {"item_id": str, "store_id": str, "quantity": int}, pk=("item_id", "store_id")
        )
    if "accessories" not in db.table_names():
        db.table("accessories").create({"accessory_id": str, "item_id": str}, pk=("accessory_id", "item_id"))
        db.table("accessories").create_index(["item_id"])
    if "consent" not in db.table_names():
        db.table("consent").create(
            {"customer_id": str, "channel": str, "purpose": str, "granted": int, "updated_at": float},
            pk=("customer_id", "channel", "purpose"),
        )
    if "recommendations" not in db.table_names():
        db.table("recommendations").create(
            {
                "recommendation_id": str,
                "customer_id": str,
                "channel": str,
                "placement": str,
                "items": str,
                "strategy": str,
                "model_version": str,
                "arm": str,
                "served_at": float,
            },
            pk="recommendation_id",
        )
        db.table("recommendations").create_index(["customer_id"])
    if "meta" not in db.table_names():
        db.table("meta").create({"key": str, "value": str}, pk="key")
        db.table("meta").insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})
        db.table("meta").insert({"key": "catalog_version", "value": "0"})


class Connections:
    """One writer connection behind a lock, and one reader connection per thread."""

    def __init__(self, path: Path, sync_full: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._sync_full = sync_full
        self.writer = connect(path, sync_full)
        create_schema(self.writer)
        self.write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._sync_full)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer in one `BEGIN IMMEDIATE` transaction: committed on success, rolled back on error."""
        with self.write_lock:
            self.writer.execute("BEGIN IMMEDIATE")
            try:
                yield self.writer
            except BaseException:
                self.writer.execute("ROLLBACK")
                raise
            self.writer.execute("COMMIT")

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self.writer.close()
