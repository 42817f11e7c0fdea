"""The SQLite store on a full or failing disk, and the modes of what it writes (issue 10, points 8
and 9). The end-to-end checks through a server are in tests/server/test_transport_faults.py.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest

from models.domain import Event, Identifier
from models.errors import ResourceExhausted, Unavailable
from models.service import Seenext
from models.settings import Settings
from models.storage.sqlite.connection import Connections, storage_fault
from tests.conftest import tiny_events, tiny_items


def _batch(start: int, n: int = 50) -> list[Event]:
    who = (Identifier("CUSTOMER_ID", "filler"),)
    return [
        Event(f"fill-{k}", who, "WEB", "VIEW", "phone-1", attributes={"note": "x" * 200})
        for k in range(start, start + n)
    ]


def test_a_full_database_refuses_the_whole_write_says_why_and_writes_again_once_there_is_room(
    service: Seenext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It raised "cannot rollback - no transaction is active", which hid the cause (SQLite had rolled
    back already), and the caller got INTERNAL."""
    service.upsert_items(tiny_items())
    assert not service.track_batch(tiny_events()).rejected
    acknowledged = service.count_events()
    monkeypatch.setattr(Connections, "page_limit", 1)  # the file may not grow: a full disk
    with pytest.raises(ResourceExhausted) as full:
        for n in range(0, 20_000, 50):
            acknowledged += service.track_batch(_batch(n)).accepted
    assert full.value.status == "RESOURCE_EXHAUSTED" and "SQLITE_FULL" in full.value.message
    cause = full.value.__cause__
    assert isinstance(cause, sqlite3.OperationalError) and "database or disk is full" in str(cause)
    assert not [r for r in caplog.records if "cannot rollback" in r.getMessage()]
    assert service.count_events() == acknowledged  # all of the refused batch or none of it
    refused = _batch(n)
    monkeypatch.setattr(Connections, "page_limit", None)  # space freed
    assert service.track_batch(refused).accepted == 50  # the writer is not left inside a transaction
    assert service.count_events() == acknowledged + 50


def test_driver_errors_of_the_disk_map_to_a_status_and_the_others_stay_internal() -> None:
    def error(code: int, name: str, text: str) -> sqlite3.Error:
        exc = sqlite3.OperationalError(text)
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        exc.sqlite_errorname = name  # type: ignore[attr-defined]
        return exc

    full = storage_fault(error(sqlite3.SQLITE_FULL, "SQLITE_FULL", "database or disk is full"))
    assert isinstance(full, ResourceExhausted)
    for code, name in (
        (sqlite3.SQLITE_IOERR_WRITE, "SQLITE_IOERR_WRITE"),
        (sqlite3.SQLITE_IOERR_FSYNC, "SQLITE_IOERR_FSYNC"),
        (sqlite3.SQLITE_BUSY, "SQLITE_BUSY"),
        (sqlite3.SQLITE_READONLY, "SQLITE_READONLY"),
    ):
        fault = storage_fault(error(code, name, "disk I/O error"))
        assert isinstance(fault, Unavailable) and name in fault.message, name
    assert storage_fault(error(sqlite3.SQLITE_ERROR, "SQLITE_ERROR", "no such table: x")) is None
    assert storage_fault(sqlite3.ProgrammingError("closed")) is None


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The usual 022, as a shell gives it: the modes below must not depend on it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_the_database_are_private(
    tmp_path: Path, shell_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    """They were 0755 and 0644 (the WAL and SHM files too): anyone on the host could read them."""
    settings = Settings(data_dir=tmp_path / "var", epochs=2, components=4, train_threads=1)
    with Seenext(settings) as service:
        service.upsert_items(tiny_items())
        service.track_batch(tiny_events())
        db = settings.db_path
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}
        assert _mode(settings.data_dir) == 0o700
        service.train()
        assert _mode(settings.models_dir / "train.lock") == 0o600

    # A store an older version made stays usable and is made private at the next start.
    for f in files:
        if f.exists():
            f.chmod(0o644)
    settings.data_dir.chmod(0o755)
    with Seenext(settings) as service:
        assert service.count_events() == len(tiny_events())
        assert _mode(db) == 0o600 and _mode(settings.data_dir) == 0o700


def test_a_data_folder_that_is_not_ours_is_left_as_it_is(
    tmp_path: Path, shell_umask: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)

    def refuse(self: Path, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "chmod", refuse)  # as for SEENEXT_DATA_DIR=/tmp, owned by root
    with caplog.at_level(logging.WARNING), Seenext(Settings(data_dir=folder)) as service:
        assert service.count_events() == 0
    assert "not ours to make private" in caplog.text
    assert _mode(folder / "seenext.db") == 0o600  # created private, no chmod needed


def test_a_shared_folder_like_tmp_is_never_closed(
    tmp_path: Path, shell_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    """SEENEXT_DATA_DIR=/tmp as root made /tmp 0700: every other user (PostgreSQL's server among them)
    was locked out of it. A folder with the sticky bit keeps its mode; the store in it is private."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    with caplog.at_level(logging.WARNING), Seenext(Settings(data_dir=folder)) as service:
        assert service.count_events() == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777
    assert "not ours to make private" in caplog.text
    assert _mode(folder / "seenext.db") == 0o600


def test_a_training_on_a_full_disk_is_resource_exhausted_and_leaves_no_half_written_version(
    trained: Seenext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model file cannot be written (ENOSPC, injected where the artifact is written): the half-
    written version folder went on taking space, and the caller got INTERNAL."""
    serving = trained.serving_model
    assert serving is not None

    def full_disk(path: Path, **arrays: object) -> None:
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(numpy, "savez", full_disk)
    with pytest.raises(ResourceExhausted, match=r"writing model .* no room left"):
        trained.train()
    assert trained.model_versions() == [serving.version]
    folders = [p.name for p in trained.settings.models_dir.iterdir() if p.is_dir()]
    assert folders == [serving.version]
    assert trained.serving_model is serving
