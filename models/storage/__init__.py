"""The only place that talks to a database: one `Storage` interface, one module per concern.

`open_storage` picks the backend from the settings: the SQLite file in the data folder (the
embedded default), or PostgreSQL when SEENEXT_DATABASE_URL names one (a fleet of replicas sharing
it). Nothing outside this package imports a database driver or writes SQL.
"""

from __future__ import annotations

from pathlib import Path

from models.errors import FailedPrecondition
from models.storage.base import Storage, chunks


def open_storage(
    db_path: Path, sync_full: bool = True, *, database_url: str = "", pool_size: int = 16
) -> Storage:
    """The storage of one data folder (SQLite at `db_path`) or, with `database_url`, of one PostgreSQL
    database (a pool of at most `pool_size` connections); its schema migrated to the newest version."""
    if database_url:
        if not database_url.startswith(("postgresql://", "postgres://")):
            raise FailedPrecondition(
                "SEENEXT_DATABASE_URL must be a postgresql://user@host:port/database URL"
                " (or empty for the SQLite file in the data folder)"
            )
        from models.storage.postgres import PostgresStorage

        return PostgresStorage(database_url, pool_size)
    from models.storage.sqlite import SqliteStorage

    return SqliteStorage(db_path, sync_full)


__all__ = ["Storage", "chunks", "open_storage"]
