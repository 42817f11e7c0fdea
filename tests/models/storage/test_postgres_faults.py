"""PostgreSQL's failures as callers see them: a lost connection is UNAVAILABLE and the next call works
again on a fresh one; a full disk is RESOURCE_EXHAUSTED; a bug stays a bug (SQLite's side of this is
test_disk_faults.py)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from models.errors import ResourceExhausted, Unavailable
from models.storage.events import EventRow
from models.storage.postgres.connection import storage_fault, where
from tests.conftest import Database

URL = "postgresql://seenext:secret@db.example:6543/shop"


def event(event_id: str) -> EventRow:
    return EventRow(event_id, "c1", "WEB", "VIEW", "i1", 1, 0.0, "", "", "", 1.0, 1.0, None)


def test_driver_errors_map_to_a_status_and_the_others_stay_internal() -> None:
    full = storage_fault(errors.DiskFull("could not extend file"), URL)
    assert isinstance(full, ResourceExhausted) and "53100" in full.message
    for exc in (
        errors.AdminShutdown("terminating connection"),
        errors.ReadOnlySqlTransaction("read-only"),
        psycopg.OperationalError("connection failed: server closed the connection unexpectedly"),
    ):
        fault = storage_fault(exc, URL)
        assert isinstance(fault, Unavailable), exc
        assert "db.example:6543/shop" in fault.message and "secret" not in fault.message
    assert storage_fault(errors.UniqueViolation("duplicate key"), URL) is None
    assert storage_fault(errors.SyntaxError("bad"), URL) is None
    assert where(URL) == "db.example:6543/shop"


def test_a_lost_connection_is_unavailable_and_the_next_call_reconnects(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Database("postgres", tmp_path / "unused.db", postgres_url)
    storage = db.open()
    try:
        storage.insert_new_events([event("a")])
        assert storage.event_count() == 1
        with psycopg.connect(
            postgres_url, autocommit=True
        ) as admin:  # the server drops the pool's connections
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid != pg_backend_pid()"
            )
        with pytest.raises(Unavailable, match="storage unavailable"):
            storage.insert_new_events([event("b")])
        assert storage.insert_new_events([event("b")]) == 1  # nothing of the failed write was kept
        assert storage.event_count() == 2
    finally:
        storage.close()
