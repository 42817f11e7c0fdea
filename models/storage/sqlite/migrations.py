"""The numbered migrations of both backends, and their SQLite bodies (created through sqlite-utils).

`meta.schema_version` is the newest migration applied. A migration never changes once released:
a new column or table is a new migration. A database newer than this code stops the start.
`MIGRATIONS` is the one list PostgreSQL follows too: the next migration is best a `Portable` list of
statements both run (models/storage/migrations.py says how); 1..6 are SQLite bodies paired with the
PostgreSQL ones of models/storage/postgres/migrations.py.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from models.errors import FailedPrecondition
from models.storage.migrations import Portable


def _import_without_pandas(name: str) -> ModuleType:
    """Imports `name` as if pandas were not installed, unless something imported pandas already.

    sqlite-utils imports pandas whenever it can, only to map pandas column types; the migrations pass
    it plain Python types. A serving process would hold ~75 MB for pandas and pyarrow it never uses
    (docs/performance.md, "Serving memory"). A None in sys.modules makes that import fail as if
    pandas were missing; it is taken out again at once, so a later `import pandas` works."""
    if "pandas" in sys.modules:
        return importlib.import_module(name)
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]


if TYPE_CHECKING:
    import sqlite_utils
else:
    sqlite_utils = _import_without_pandas("sqlite_utils")


def _m1_base(db: sqlite_utils.Database) -> None:
    """The first released schema: events, identifiers, customers, catalogue, consent, served, meta."""
    if "events" not in db.table_names():
        db.table("events").create(
            {
                "seq": int, "event_id": str, "customer_id": str, "channel": str, "type": str,
                "item_id": str, "quantity": int, "price": float, "store_id": str, "order_id": str,
                "recommendation_id": str, "occurred_at": float, "received_at": float, "attributes": str,
            },
            pk="seq",
            not_null={"event_id", "customer_id", "channel", "type", "occurred_at"},
        )  # fmt: skip
        # The indexes the service needs: idempotency, a customer's history (exclusions, profile),
        # and time windows (popularity, reports).
        db.table("events").create_index(["event_id"], unique=True)
        db.table("events").create_index(["customer_id", "type", "item_id"])
        db.table("events").create_index(["occurred_at"])
    if "identifiers" not in db.table_names():
        db.table("identifiers").create(
            {"kind": str, "value_key": str, "customer_id": str, "display": str, "created_at": float},
            pk=("kind", "value_key"),
        )
        db.table("identifiers").create_index(["customer_id"])
    if "customers" not in db.table_names():
        db.table("customers").create({"customer_id": str, "created_at": float}, pk="customer_id")
    if "items" not in db.table_names():
        db.table("items").create(
            {
                "item_id": str, "title": str, "category": str, "brand": str, "price": float,
                "repeatable": int, "active": int, "attributes": str, "accessory_for": str,
                "offer": str, "updated_at": float,
            },
            pk="item_id",
        )  # fmt: skip
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
                "recommendation_id": str, "customer_id": str, "channel": str, "placement": str,
                "items": str, "strategy": str, "model_version": str, "arm": str, "served_at": float,
            },
            pk="recommendation_id",
        )  # fmt: skip
        db.table("recommendations").create_index(["customer_id"])
    if db.table("meta").count_where("key='catalog_version'") == 0:
        db.table("meta").insert({"key": "catalog_version", "value": "0"})


def _m2_identity_graph(db: sqlite_utils.Database) -> None:
    """The identity graph: the over-merging guard's columns, ids merged away, customer attributes.

    Files written before this migration may already have some of these (they were once added in
    place without a version), so each step checks first.
    """
    identifiers = db.table("identifiers")
    for column in ("shared", "links"):
        if column not in identifiers.columns_dict:
            identifiers.add_column(column, int, not_null_default=0)
    if "customer_merges" not in db.table_names():
        # Ids merged away into a surviving customer: their model rows still stand for the survivor.
        db.table("customer_merges").create(
            {"merged_id": str, "customer_id": str, "merged_at": float}, pk="merged_id"
        )
        db.table("customer_merges").create_index(["customer_id"])
    if "customer_attributes" not in db.table_names():
        db.table("customer_attributes").create(
            {"customer_id": str, "attributes": str, "updated_at": float},
            pk="customer_id",
            not_null={"attributes", "updated_at"},
        )


def _m3_customer_timeline(db: sqlite_utils.Database) -> None:
    """A customer's events by time: the one customer-state read of every Recommend (its recent events
    and mail history) and the call-centre timeline walk this index instead of the customer's rows."""
    db.table("events").create_index(["customer_id", "occurred_at"], if_not_exists=True)


def _m4_pending_erasures(db: sqlite_utils.Database) -> None:
    """Model rows a Forget still has to remove (issue 10): written in the transaction that erases the
    customer's rows, deleted once no kept model version holds them. The column is not `customer_id`
    on purpose: a merge must not re-point these rows, nor an erase or an export see them."""
    if "pending_erasures" not in db.table_names():
        db.table("pending_erasures").create(
            {"model_user_id": str, "requested_at": float}, pk="model_user_id", not_null={"requested_at"}
        )


def _m5_no_readable_pii(db: sqlite_utils.Database) -> None:
    """Nothing readable of an e-mail or phone is stored (issue 10): the masks written before (first
    letter and domain, last three digits) are blanked; responses derive a mask from what the caller
    sent. Identifiers stored before values without a letter or digit were refused ("-" as a loyalty
    card) are marked shared, so they link and recognise nobody from now on."""
    db.execute("PRAGMA secure_delete=ON")  # the blanked masks' bytes are zeroed, not just freed
    db.execute("UPDATE identifiers SET display='' WHERE kind IN ('EMAIL', 'PHONE') AND display != ''")
    blank = [
        (kind, key)
        for kind, key in db.execute("SELECT kind, value_key FROM identifiers WHERE shared=0").fetchall()
        if not any(c.isalnum() for c in str(key))
    ]
    db.conn.executemany("UPDATE identifiers SET shared=1 WHERE kind=? AND value_key=?", blank)


def _m6_item_first_seen(db: sqlite_utils.Database) -> None:
    """When each item was first upserted (issue 9 point 7): what makes an item new, with when its
    first event happened. Items stored before carry their last upsert (the best there is). The index
    finds an item's first event and its customers without scanning the event log."""
    items = db.table("items")
    if "first_seen_at" not in items.columns_dict:
        items.add_column("first_seen_at", float)
        db.execute("UPDATE items SET first_seen_at = updated_at")
    items.create_index(["first_seen_at"], if_not_exists=True)
    db.table("events").create_index(["item_id", "occurred_at"], if_not_exists=True)


# Migration 7 is plain DDL but for the numbering of `changes.seq`: here the rowid (max + 1, never
# reused while the newest row is kept, which pruning does); in PostgreSQL an identity column
# (models/storage/postgres/migrations.py BODIES[7]).
_M7_FEED_AND_LEASES = (
    "CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY, changed_at REAL NOT NULL,"
    " kind TEXT NOT NULL, subject TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
    " expires_at REAL NOT NULL)",
)


def _m7_feed_and_leases(db: sqlite_utils.Database) -> None:
    """The change feed replicas follow instead of reading a customer per request, and leases (one
    training at a time across the fleet): models/storage/changes.py. No column is `customer_id` on
    purpose: a merge must not re-point feed rows, nor an erase or an export see them."""
    for statement in _M7_FEED_AND_LEASES:
        db.execute(statement)


# Plain portable DDL (TEXT, BIGINT, DOUBLE PRECISION): the PostgreSQL backend runs the same statements.
_MERCHANDISING_DDL = (
    "CREATE TABLE IF NOT EXISTS merchandising_rules ("
    " rule_id TEXT PRIMARY KEY, spec TEXT NOT NULL, version BIGINT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, updated_by TEXT NOT NULL,"
    " updated_at DOUBLE PRECISION NOT NULL, deleted BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS merchandising_rule_history ("
    " rule_id TEXT NOT NULL, version BIGINT NOT NULL, change TEXT NOT NULL, spec TEXT NOT NULL,"
    " changed_by TEXT NOT NULL, changed_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (rule_id, version))",
    "CREATE INDEX IF NOT EXISTS merchandising_rule_history_at ON merchandising_rule_history (changed_at)",
    # placement plans and experiments (kind "placement" / "experiment"), as JSON, with their history
    "CREATE TABLE IF NOT EXISTS merchandising_configs ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, spec TEXT NOT NULL, version BIGINT NOT NULL,"
    " updated_by TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, key))",
    "CREATE TABLE IF NOT EXISTS merchandising_config_history ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, version BIGINT NOT NULL, change TEXT NOT NULL,"
    " spec TEXT NOT NULL, changed_by TEXT NOT NULL, changed_at DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (kind, key, version))",
    "INSERT INTO meta (key, value) VALUES ('merchandising_version', '0') ON CONFLICT (key) DO NOTHING",
)


_M8_MERCHANDISING = Portable(
    "Merchandising rules, placement plans and experiments, with their history (issue 12), and the"
    " counter every serving process follows",
    _MERCHANDISING_DDL,
)


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None] | Portable, ...] = (
    _m1_base,
    _m2_identity_graph,
    _m3_customer_timeline,
    _m4_pending_erasures,
    _m5_no_readable_pii,
    _m6_item_first_seen,
    _m7_feed_and_leases,
    _M8_MERCHANDISING,
)
SCHEMA_VERSION = len(MIGRATIONS)


def applied_version(conn: sqlite3.Connection) -> int:
    db = sqlite_utils.Database(conn)
    if "meta" not in db.table_names():
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Applies the migrations this database lacks up to `target` (tests build old files with a lower
    one), each in its own transaction; returns the version reached."""
    db = sqlite_utils.Database(conn)
    if "meta" not in db.table_names():
        db.table("meta").create({"key": str, "value": str}, pk="key")
    version = applied_version(conn)
    if version > SCHEMA_VERSION:
        raise FailedPrecondition(
            f"the database is at schema version {version}, newer than this seenext knows "
            f"({SCHEMA_VERSION}); run the newer seenext or restore a backup"
        )
    for number in range(version + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step = MIGRATIONS[number - 1]
            if isinstance(step, Portable):
                for statement in step.statements:
                    conn.execute(statement)
            else:
                step(db)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(number),)
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return max(version, target)
