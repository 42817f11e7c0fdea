"""Migration 6 (issue 9 point 7): when each item was first upserted, kept by every later upsert."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from models.domain import Item
from models.service import Seenext
from models.storage import open_storage
from models.storage.sqlite import migrations
from tests.conftest import tiny_settings


def test_items_stored_before_the_column_count_from_their_last_upsert(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.migrate(conn, target=5) == 5
    conn.execute("INSERT INTO items (item_id, title, active, updated_at) VALUES ('lamp', 'Lamp', 1, 100.0)")
    conn.close()
    storage = open_storage(path, sync_full=False)
    try:
        assert storage.schema_version() == migrations.SCHEMA_VERSION
        assert storage.first_seen() == {"lamp": 100.0}
        storage.upsert_items([Item("lamp", "Lamp II")], 200.0)
        assert storage.first_seen() == {"lamp": 100.0} and storage.item("lamp") == Item("lamp", "Lamp II")
    finally:
        storage.close()


def test_whole_and_partial_upserts_keep_the_first_upsert(tmp_path: Path) -> None:
    with Seenext(tiny_settings(tmp_path)) as svc:
        svc.upsert_items([Item("lamp", "Lamp", "lamps", price=10.0)])
        first = svc.catalog_snapshot().first_seen["lamp"]
        svc.upsert_items([Item("lamp", "Lamp", "lamps", price=12.0)])  # whole
        svc.upsert_items([Item("lamp", stock={"": 3})], ["stock"])  # a till's stock-only update
        svc.upsert_items([Item("shade", accessory_for=["lamp"])])
        snap = svc.catalog_snapshot()
        assert snap.first_seen["lamp"] == first <= snap.first_seen["shade"]
        assert snap.items["lamp"].price == 12.0 and snap.items["lamp"].stock == {"": 3}
