"""Consent, erasure, export and the insights reads behind the storage interface, on a known world."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.errors import FailedPrecondition
from models.storage import Storage
from models.storage.events import EventRow
from models.storage.sqlite import migrations
from tests.conftest import Database

pytestmark = pytest.mark.both_backends

DAY = 86_400.0


def event(eid: str, customer: str, etype: str, item: str, at: float, **kw: object) -> EventRow:
    fields: dict[str, object] = {
        "channel": "WEB",
        "quantity": 1,
        "price": 10.0,
        "store_id": "",
        "order_id": "",
    }
    fields |= {"recommendation_id": "", "received_at": at, "attributes": None}
    fields.update(kw)
    return EventRow(event_id=eid, customer_id=customer, type=etype, item_id=item, occurred_at=at, **fields)  # type: ignore[arg-type]


@pytest.fixture
def storage(database: Database) -> Iterator[Storage]:
    s = database.open()
    with s.transaction():
        s.create_customer("ann", 1.0)
        s.create_customer("bob", 2.0)
    yield s
    s.close()


def test_consent_rows_and_decisions_for_a_list(storage: Storage) -> None:
    storage.set_consent("ann", "ALL", "marketing", True, 10.0)
    storage.set_consent("ann", "EMAIL", "marketing", False, 11.0)
    storage.set_consent("ann", "EMAIL", "marketing", True, 12.0)  # replaces the decision
    storage.set_consent("bob", "POS", "marketing", True, 13.0)
    assert [(r.channel, r.purpose, r.granted, r.updated_at) for r in storage.consent_rows("ann")] == [
        ("ALL", "marketing", True, 10.0),
        ("EMAIL", "marketing", True, 12.0),
    ]
    decided = storage.consent_decisions(["ann", "bob", "nobody", "ann"], "EMAIL", "marketing")
    assert decided == {"ann": {("ALL", "marketing"): True, ("EMAIL", "marketing"): True}}  # bob's is for POS


def test_erase_deletes_every_row_of_the_ids_and_export_reads_them_first(storage: Storage) -> None:
    storage.insert_new_events(
        [event("e1", "ann", "PURCHASE", "a", 5.0), event("e2", "bob", "VIEW", "b", 6.0)]
    )
    storage.set_consent("ann", "ALL", "marketing", True, 10.0)
    exported = list(
        storage.customer_rows(["ann"], skip=("customers", "identifiers", "consent", "customer_merges"))
    )
    assert [(table, row["event_id"]) for table, row in exported if table == "events"] == [("events", "e1")]
    assert storage.customer_created_at("ann") == 1.0
    deleted = storage.erase_customer(["ann"])
    assert deleted["events"] == 1 and deleted["consent"] == 1 and deleted["customers"] == 1
    storage.compact()
    assert storage.customer_created_at("ann") is None and storage.consent_rows("ann") == []
    assert storage.event_count() == 1 and storage.customer_created_at("bob") == 2.0


def migrate_to(database: Database, target: int) -> None:
    """The database as an older release left it: the migrations up to `target` only."""
    if database.backend == "sqlite":
        conn = sqlite3.connect(database.path, isolation_level=None)
        try:
            assert migrations.migrate(conn, target=target) == target
        finally:
            conn.close()
        return
    import psycopg

    from models.storage.postgres import migrations as pg_migrations

    with psycopg.connect(database.url, autocommit=True) as conn:
        assert pg_migrations.migrate(conn, target=target) == target


def columns(database: Database, table: str) -> list[str]:
    if database.backend == "sqlite":
        return [str(c[1]) for c in database.sql(f'PRAGMA table_info("{table}")')]
    return [
        str(c[0])
        for c in database.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position",
            table,
        )
    ]


def test_reads_of_reports_and_reminders(storage: Storage) -> None:
    storage.insert_new_events(
        [
            event("v1", "ann", "VIEW", "a", 1 * DAY),
            event("p1", "ann", "PURCHASE", "a", 2 * DAY, price=3.0, quantity=2),
            event("p2", "ann", "PURCHASE", "a", 32 * DAY),
            event("p3", "bob", "PURCHASE", "b", 3 * DAY, channel="POS", store_id="s1"),
        ]
    )
    purchases = storage.events_between(["PURCHASE"], 0.0, 10 * DAY)
    assert [(e.type, e.customer_id, e.price * e.quantity) for e in purchases] == [
        ("PURCHASE", "ann", 6.0),
        ("PURCHASE", "bob", 10.0),
    ]
    assert storage.first_purchase_since(2.5 * DAY) == 3 * DAY
    assert storage.purchases_in([(0.0, 2.5 * DAY), (30 * DAY, 40 * DAY)]) == [
        ("ann", "a", 32 * DAY),
        ("ann", "a", 2 * DAY),
    ]
    assert storage.customer_purchases_between("ann", 0.0, 10 * DAY) == [("a", 2 * DAY)]
    activity = storage.customer_activity("ann", purchases=1, timeline=2, after=None)
    assert activity.channels == [("WEB", 3, 32 * DAY)] and [p.occurred_at for p in activity.purchases] == [
        32 * DAY
    ]
    assert [t.event_id for t in activity.timeline] == ["p2", "p1"]
    older = storage.customer_activity(
        "ann", purchases=1, timeline=2, after=(2 * DAY, activity.timeline[-1].seq)
    )
    assert [t.event_id for t in older.timeline] == ["v1"]
    assert (activity.first_seen, activity.last_seen) == (1 * DAY, 32 * DAY)
    assert storage.item_events(["event_id", "item_id"]) == [
        ("v1", "a"),
        ("p1", "a"),
        ("p3", "b"),
        ("p2", "a"),
    ]
    with pytest.raises(ValueError, match="no event column 'password'"):
        storage.item_events(["password"])


def test_migrations_number_the_schema_and_refuse_a_newer_database(database: Database) -> None:
    storage = database.open()
    assert storage.schema_version() == migrations.SCHEMA_VERSION == len(migrations.MIGRATIONS)
    storage.close()
    reopened = database.open()  # nothing left to apply
    assert reopened.schema_version() == migrations.SCHEMA_VERSION
    reopened.close()
    database.sql("UPDATE meta SET value=? WHERE key='schema_version'", str(migrations.SCHEMA_VERSION + 1))
    with pytest.raises(FailedPrecondition, match="newer than this seenext knows"):
        database.open()


def test_both_backends_make_the_same_tables_and_columns(tmp_path: Path, postgres_url: str) -> None:
    """The numbered migrations give PostgreSQL the schema SQLite has: same tables, same columns in the
    same order, the same indexed column lists."""
    lite = Database("sqlite", tmp_path / "same.db")
    pg = Database("postgres", tmp_path / "unused.db", postgres_url)
    for db in (lite, pg):
        db.open().close()
    lite_columns = {t: [c[1] for c in lite.sql(f'PRAGMA table_info("{t}")')] for t in lite.tables()}
    pg_columns = {
        t: [
            str(c[0])
            for c in pg.sql(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = ? ORDER BY ordinal_position",
                t,
            )
        ]
        for t in pg.tables()
    }
    assert lite_columns == pg_columns
    lite_indexes = {
        (t, tuple(c[2] for c in lite.sql(f'PRAGMA index_info("{i[1]}")')))
        for t in lite.tables()
        for i in lite.sql(f'PRAGMA index_list("{t}")')
    }
    pg_indexes = {
        (str(t), tuple(str(c) for c in cols))
        for t, cols in pg.sql(
            "SELECT t.relname, array_agg(a.attname::text ORDER BY k.n) FROM pg_index i"
            " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE s.nspname = current_schema() GROUP BY i.indexrelid, t.relname"
        )
    }
    # SQLite's INTEGER PRIMARY KEY is the rowid itself, not an index
    assert lite_indexes == pg_indexes - {("events", ("seq",)), ("changes", ("seq",))}


def test_a_database_from_before_the_identity_graph_is_upgraded(database: Database) -> None:
    """Databases written by the first release say version 1 and lack the graph's columns and tables."""
    migrate_to(database, 1)
    database.sql("INSERT INTO identifiers VALUES ('CUSTOMER_ID', 'ann', 'ann', 'ann', 1.0)")
    assert "shared" not in columns(database, "identifiers")
    storage = database.open()
    try:
        assert storage.schema_version() == migrations.SCHEMA_VERSION
        row = storage.identifier_row("CUSTOMER_ID", "ann")
        assert row is not None and row.customer_id == "ann" and not row.shared
        assert storage.customer_attributes("ann") == {}
    finally:
        storage.close()
