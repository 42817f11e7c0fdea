"""Consent, erasure, export and the insights reads behind the storage interface, on a known world."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.errors import FailedPrecondition
from models.storage import Storage, open_storage
from models.storage.events import EventRow
from models.storage.sqlite import migrations

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
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = open_storage(tmp_path / "p.db", sync_full=False)
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
    storage.insert_events([event("e1", "ann", "PURCHASE", "a", 5.0), event("e2", "bob", "VIEW", "b", 6.0)])
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


def test_reads_of_reports_and_reminders(storage: Storage) -> None:
    storage.insert_events(
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


def test_migrations_number_the_schema_and_refuse_a_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    storage = open_storage(path, sync_full=False)
    assert storage.schema_version() == migrations.SCHEMA_VERSION == len(migrations.MIGRATIONS)
    storage.close()
    reopened = open_storage(path, sync_full=False)  # nothing left to apply
    assert reopened.schema_version() == migrations.SCHEMA_VERSION
    reopened.close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE meta SET value=? WHERE key='schema_version'", (str(migrations.SCHEMA_VERSION + 1),)
        )
    with pytest.raises(FailedPrecondition, match="newer than this seenext knows"):
        open_storage(path, sync_full=False)


def test_a_file_from_before_the_identity_graph_is_upgraded(tmp_path: Path) -> None:
    """Files written by the first release say version 1 and lack the graph's columns and tables."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.migrate(conn, target=1) == 1
    conn.execute("INSERT INTO identifiers VALUES ('CUSTOMER_ID', 'ann', 'ann', 'ann', 1.0)")
    assert "shared" not in [c[1] for c in conn.execute("PRAGMA table_info(identifiers)")]
    conn.close()
    storage = open_storage(path, sync_full=False)
    try:
        assert storage.schema_version() == migrations.SCHEMA_VERSION
        row = storage.identifier_row("CUSTOMER_ID", "ann")
        assert row is not None and row.customer_id == "ann" and not row.shared
        assert storage.customer_attributes("ann") == {}
    finally:
        storage.close()
