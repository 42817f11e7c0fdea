"""SQLite: the catalog part of the storage interface (models/storage/catalog.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqliteCatalog(SqliteBase):
    pass
