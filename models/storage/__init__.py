"""The only place that talks to a database: one `Storage` interface, one module per concern.

`open_storage` picks the backend from the settings: the SQLite file in the data folder (the
embedded default). Nothing outside this package imports a database driver or writes SQL.
"""

from __future__ import annotations

from pathlib import Path

from models.storage.base import Storage, chunks


def open_storage(db_path: Path, sync_full: bool = True) -> Storage:
    """The storage of one data folder, its schema migrated to the newest version."""
    from models.storage.sqlite import SqliteStorage

    return SqliteStorage(db_path, sync_full)


__all__ = ["Storage", "chunks", "open_storage"]
