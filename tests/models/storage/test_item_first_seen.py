"""Migration 6 (issue 9 point 7): when each item was first upserted, kept by every later upsert."""

from __future__ import annotations

import pytest

from models.domain import Item
from models.service import Seenext
from models.settings import Settings
from models.storage.sqlite import migrations
from tests.conftest import Database
from tests.models.storage.test_privacy_insights_storage import migrate_to

pytestmark = pytest.mark.both_backends


def test_items_stored_before_the_column_count_from_their_last_upsert(database: Database) -> None:
    migrate_to(database, 5)
    database.sql("INSERT INTO items (item_id, title, active, updated_at) VALUES ('lamp', 'Lamp', 1, 100.0)")
    storage = database.open()
    try:
        assert storage.schema_version() == migrations.SCHEMA_VERSION
        assert storage.first_seen() == {"lamp": 100.0}
        storage.upsert_items([Item("lamp", "Lamp II")], 200.0)
        assert storage.first_seen() == {"lamp": 100.0} and storage.item("lamp") == Item("lamp", "Lamp II")
    finally:
        storage.close()


def test_whole_and_partial_upserts_keep_the_first_upsert(settings: Settings) -> None:
    with Seenext(settings) as svc:
        svc.upsert_items([Item("lamp", "Lamp", "lamps", price=10.0)])
        first = svc.catalog_snapshot().first_seen["lamp"]
        svc.upsert_items([Item("lamp", "Lamp", "lamps", price=12.0)])  # whole
        svc.upsert_items([Item("lamp", stock={"": 3})], ["stock"])  # a till's stock-only update
        svc.upsert_items([Item("shade", accessory_for=["lamp"])])
        snap = svc.catalog_snapshot()
        assert snap.first_seen["lamp"] == first <= snap.first_seen["shade"]
        assert snap.items["lamp"].price == 12.0 and snap.items["lamp"].stock == {"": 3}
